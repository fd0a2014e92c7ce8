"""The Responses conversation, sans-io: upstream events in, client frames out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibridge_cli.errors import UpstreamBroken
from aibridge_cli.providers.openai_responses import (
    Continuations,
    OpenAIResponses,
    ResponsesConversation,
    responses_tool_spec,
)
from aibridge_cli.sse import SSEDecoder, SSEEvent
from aibridge_cli.tools import ToolOutcome, ToolSet

from .conftest import WEATHER
from .openai_scripts import function_item, message_item, responses_stream

INJECTED = ToolSet.of([WEATHER])


def conversation(
    tools: ToolSet = INJECTED,
    continuations: Continuations | None = None,
    tools_body: list[Any] | None = None,
    **body: Any,
) -> ResponsesConversation:
    if tools_body is not None:
        body["tools"] = tools_body
    return ResponsesConversation({"model": "gpt-x", "input": "hi", **body}, tools, continuations)


def events(response_id: str, items: list[Any], tools: list[Any] | None = None) -> list[SSEEvent]:
    return SSEDecoder().feed(b"".join(responses_stream(response_id, items, tools).chunks))


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


def data_of(frame: bytes) -> dict[str, Any]:
    (event,) = SSEDecoder().feed(frame)
    return dict(json.loads(event.data))


SPEC = responses_tool_spec(WEATHER)
CLIENT_TOOL: Any = {"type": "function", "name": "read_file", "parameters": {}, "strict": False}


def test_items_flow_as_they_come_the_lifecycle_with_the_first() -> None:
    conv = conversation()
    evs = events("r1", [message_item("m", "hi")])
    created, in_progress, added, *rest = evs
    assert conv.on_event(created) == []
    assert conv.on_event(in_progress) == []
    # nothing to renumber or hide: the upstream's own bytes
    assert conv.on_event(added) == [created.raw, in_progress.raw, added.raw]
    for ev in rest:
        assert conv.on_event(ev) == [ev.raw]
    assert conv.end_stream() == []


def test_a_tool_turn_that_shows_nothing_is_dropped_and_the_next_response_stands() -> None:
    conv = conversation()
    assert run(conv, events("r1", [function_item("bmcp_weather")])) == []
    (call,) = conv.end_stream()
    assert (call.id, call.name, call.input) == ("call_1", "bmcp_weather", {"city": "Paris"})
    conv.add_results([call], [ToolOutcome("sunny")])
    assert conv.upstream_body()["input"] == [
        {"role": "user", "content": "hi"},
        function_item("bmcp_weather"),
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    final = events("r2", [message_item("m", "Sunny.")])
    out = run(conv, final)
    assert out[:-1] == [e.raw for e in final[:-1]]
    # the terminal event carries both iterations' usage added up
    terminal = data_of(out[-1])
    assert terminal["response"]["id"] == "r2"
    assert terminal["response"]["usage"]["input_tokens"] == 10
    assert terminal["response"]["usage"]["total_tokens"] == 16
    assert conv.end_stream() == []


def test_an_injected_call_after_a_visible_item() -> None:
    """The message goes out as it comes; the call is hidden; the next iteration's items
    continue the client's numbering, and its end names the response the client saw."""
    continuations = Continuations()
    conv = conversation(continuations=continuations, tools_body=[CLIENT_TOOL])
    first = events(
        "r1", [message_item("m0", "Checking."), function_item("bmcp_weather", id="fc_1")]
    )
    shown = run(conv, first)
    assert shown == [e.raw for e in first[:8]]  # lifecycle and the message, as they came
    (call,) = conv.end_stream()
    conv.add_results([call], [ToolOutcome("sunny")])
    assert conv.upstream_body()["input"][1] == message_item("m0", "Checking.")
    out = [data_of(f) for f in run(conv, events("r2", [message_item("m1", "Sunny.")]))]
    assert [d["type"] for d in out] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [d["sequence_number"] for d in out] == list(range(8, 15))
    assert {d["output_index"] for d in out[:-1]} == {1}
    response = out[-1]["response"]
    assert response["id"] == "r1"  # the SDK refuses a lifecycle whose id changes
    assert response["output"] == [message_item("m0", "Checking."), message_item("m1", "Sunny.")]
    assert response["usage"]["total_tokens"] == 16
    # a request continuing from the shown response continues from the stored one
    later = conversation(continuations=continuations, previous_response_id="r1")
    assert later.upstream_body()["previous_response_id"] == "r2"
    other = conversation(continuations=continuations, previous_response_id="r9")
    assert other.upstream_body()["previous_response_id"] == "r9"


def test_injected_tools_are_left_out_of_every_response_object() -> None:
    conv = conversation(tools_body=[CLIENT_TOOL])
    out = run(conv, events("r1", [message_item("m", "hi")], tools=[CLIENT_TOOL, SPEC]))
    responses = [d["response"] for d in map(data_of, out) if "response" in d]
    assert len(responses) == 3
    assert all(r["tools"] == [CLIENT_TOOL] for r in responses)
    assert not any(b"bmcp_" in frame for frame in out)


def test_error_event_releases_the_lifecycle() -> None:
    conv = conversation()
    evs = events("r1", [message_item("m", "hi")])[:2]
    error = SSEDecoder().feed(
        b'event: error\ndata: {"type":"error","code":"x","message":"bad","sequence_number":2}\n\n'
    )
    assert run(conv, evs + error) == [e.raw for e in evs + error]
    assert conv.failed
    assert conv.end_stream() == []


def test_client_call_ends_the_loop_and_is_relayed() -> None:
    conv = conversation()
    evs = events("r1", [function_item("read_file")])
    assert run(conv, evs) == [e.raw for e in evs]
    assert conv.end_stream() == []


@pytest.mark.parametrize("tools", [ToolSet(), ToolSet.of([WEATHER])])
def test_malformed_event_breaks_the_stream(tools: ToolSet) -> None:
    conv = conversation(tools)
    (bad,) = SSEDecoder().feed(b'event: response.output_text.delta\nda\nta: { "wrong format"\n\n')
    with pytest.raises(UpstreamBroken, match="not JSON"):
        conv.on_event(bad)


def test_stream_cut_before_anything_was_shown_releases_nothing() -> None:
    conv = conversation()
    assert run(conv, events("r1", [function_item("bmcp_weather")])[:4]) == []
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


def test_blocking_shows_every_iterations_visible_items_and_the_clients_tools() -> None:
    conv = conversation(tools_body=[CLIENT_TOOL])
    preamble = message_item("m0", "Checking.")
    first = {"id": "r1", "output": [preamble, function_item("bmcp_weather")], "tools": [SPEC]}
    (call,) = conv.on_body(first)
    conv.add_results([call], [ToolOutcome("sunny")])
    last = {"id": "r2", "output": [message_item("m1", "Sunny.")], "tools": [CLIENT_TOOL, SPEC]}
    assert conv.on_body(last) == []
    assert conv.client_body() == {
        "id": "r2",
        "output": [preamble, message_item("m1", "Sunny.")],
        "tools": [CLIENT_TOOL],
    }


def test_error_event_carries_an_error_object_the_sdk_raises_on() -> None:
    api = OpenAIResponses()
    (ev,) = SSEDecoder().feed(api.error_frame(api.error_body("rate_limit", "slow down")))
    data = json.loads(ev.data)
    assert ev.event == "error"
    assert data["type"] == "error"
    assert data["message"] == data["error"]["message"] == "slow down"
    assert data["code"] == "rate_limit_exceeded"


def test_a_client_call_beside_an_injected_one_ends_the_loop_without_it() -> None:
    conv = conversation()
    evs = events(
        "r1",
        [function_item("bmcp_weather", id="fc_1"), function_item("read_file", "call_2", id="fc_2")],
    )
    out = [data_of(f) for f in run(conv, evs)]
    assert conv.end_stream() == []  # the client runs its call; the injected one never runs
    assert not any(b"bmcp_" in json.dumps(d).encode() for d in out)
    assert {d["output_index"] for d in out if "output_index" in d} == {0}
    assert [i["name"] for i in out[-1]["response"]["output"]] == ["read_file"]
    assert [d["sequence_number"] for d in out] == list(range(len(out)))


def test_an_incomplete_end_after_a_tool_turn_names_the_shown_response() -> None:
    conv = conversation()
    run(conv, events("r1", [message_item("m0", "Checking."), function_item("bmcp_weather")]))
    (call,) = conv.end_stream()
    conv.add_results([call], [ToolOutcome("sunny")])
    final = events("r2", [message_item("m1", "Sun")])
    incomplete = json.loads(final[-1].data)
    incomplete["type"] = "response.incomplete"
    incomplete["response"]["status"] = "incomplete"
    (cut,) = SSEDecoder().feed(
        f"event: response.incomplete\ndata: {json.dumps(incomplete)}\n\n".encode()
    )
    out = data_of(run(conv, [*final[:-1], cut])[-1])
    assert out["type"] == "response.incomplete"
    assert out["response"]["id"] == "r1"
    assert [i["id"] for i in out["response"]["output"]] == ["m0", "m1"]
    assert out["response"]["usage"]["total_tokens"] == 16
    assert conv.end_stream() == []
