"""The Responses conversation, sans-io: upstream events in, client frames out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibridge_cli.errors import UpstreamBroken
from aibridge_cli.providers.openai_responses import OpenAIResponses, ResponsesConversation
from aibridge_cli.sse import SSEDecoder, SSEEvent
from aibridge_cli.tools import ToolOutcome, ToolSet

from .conftest import WEATHER
from .openai_scripts import function_item, message_item, responses_stream

INJECTED = ToolSet.of([WEATHER])


def conversation(tools: ToolSet = INJECTED, **body: Any) -> ResponsesConversation:
    return ResponsesConversation({"model": "gpt-x", "input": "hi", **body}, tools)


def events(response_id: str, items: list[Any]) -> list[SSEEvent]:
    return SSEDecoder().feed(b"".join(responses_stream(response_id, items).chunks))


def run(conv: ResponsesConversation, evs: list[SSEEvent]) -> list[bytes]:
    out: list[bytes] = []
    for ev in evs:
        out += conv.on_event(ev)
    return out


def test_without_injected_tools_events_flow_as_they_come() -> None:
    conv = conversation(ToolSet())
    evs = events("r1", [message_item("m", "hi")])
    assert conv.on_event(evs[0]) == [evs[0].raw]
    assert run(conv, evs[1:]) == [e.raw for e in evs[1:]]
    assert conv.end_stream() == []


def test_iteration_is_held_until_it_ends_then_released_whole() -> None:
    conv = conversation()
    evs = events("r1", [message_item("m", "hi")])
    assert run(conv, evs[:-1]) == []
    assert conv.on_event(evs[-1]) == [e.raw for e in evs]


def test_injected_call_iteration_is_dropped_and_its_call_returned() -> None:
    conv = conversation()
    assert (
        run(conv, events("r1", [message_item("m0", "Checking."), function_item("bmcp_weather")]))
        == []
    )
    (call,) = conv.end_stream()
    assert (call.id, call.name, call.input) == ("call_1", "bmcp_weather", {"city": "Paris"})
    conv.add_results([call], [ToolOutcome("sunny")])
    body = conv.upstream_body()
    assert body["input"] == [
        {"role": "user", "content": "hi"},
        message_item("m0", "Checking."),
        function_item("bmcp_weather"),
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    final = events("r2", [message_item("m", "Sunny.")])
    out = run(conv, final)
    assert out[:-1] == [e.raw for e in final[:-1]]
    # the terminal event carries both iterations' usage added up
    terminal = json.loads(out[-1].split(b"data: ", 1)[1])
    assert terminal["response"]["usage"]["input_tokens"] == 10
    assert terminal["response"]["usage"]["total_tokens"] == 16
    assert conv.end_stream() == []


def test_conversation_follow_up_sends_only_the_outputs() -> None:
    conv = conversation(conversation="conv_1")
    run(conv, events("r1", [function_item("bmcp_weather")]))
    conv.add_results(conv.end_stream(), [ToolOutcome("bad", is_error=True)])
    body = conv.upstream_body()
    assert body["conversation"] == "conv_1"
    assert body["input"] == [
        {"type": "function_call_output", "call_id": "call_1", "output": "error: bad"}
    ]


def test_client_call_ends_the_loop_and_is_relayed() -> None:
    conv = conversation()
    evs = events("r1", [function_item("read_file")])
    assert run(conv, evs) == [e.raw for e in evs]
    assert conv.end_stream() == []


def test_error_event_releases_what_was_held() -> None:
    conv = conversation()
    evs = events("r1", [message_item("m", "hi")])[:3]
    error = SSEDecoder().feed(
        b'event: error\ndata: {"type":"error","code":"x","message":"bad","sequence_number":3}\n\n'
    )
    assert run(conv, evs + error) == [e.raw for e in evs + error]
    assert conv.failed
    assert conv.end_stream() == []


@pytest.mark.parametrize("tools", [ToolSet(), ToolSet.of([WEATHER])])
def test_malformed_event_breaks_the_stream(tools: ToolSet) -> None:
    conv = conversation(tools)
    (bad,) = SSEDecoder().feed(b'event: response.output_text.delta\nda\nta: { "wrong format"\n\n')
    with pytest.raises(UpstreamBroken, match="not JSON"):
        conv.on_event(bad)


def test_stream_cut_before_completion_is_broken_and_releases_nothing_it_held() -> None:
    conv = conversation()
    assert run(conv, events("r1", [message_item("m", "hi")])[:-1]) == []
    with pytest.raises(UpstreamBroken):
        conv.end_stream()
    assert conv.closing_frames() == []  # the client gets the error alone


def test_blocking_tool_turn_then_answer_returns_the_last_response() -> None:
    conv = conversation()
    (call,) = conv.on_body({"id": "r1", "output": [function_item("bmcp_weather")]})
    conv.add_results([call], [ToolOutcome("sunny")])
    last = {"id": "r2", "output": [message_item("m", "Sunny.")]}
    assert conv.on_body(last) == []
    assert conv.client_body() == last


def test_error_event_carries_an_error_object_the_sdk_raises_on() -> None:
    api = OpenAIResponses()
    (ev,) = SSEDecoder().feed(api.error_frame(api.error_body("rate_limit", "slow down")))
    data = json.loads(ev.data)
    assert ev.event == "error"
    assert data["type"] == "error"
    assert data["message"] == data["error"]["message"] == "slow down"
    assert data["code"] == "rate_limit_exceeded"
