"""The Chat Completions conversation, sans-io: upstream chunks in, client frames out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibridge_cli.errors import UpstreamBroken
from aibridge_cli.providers.openai_chat import DONE_FRAME, ChatConversation, OpenAIChat
from aibridge_cli.sse import SSEDecoder, SSEEvent, encode_event
from aibridge_cli.tools import ToolOutcome, ToolSet

from .conftest import WEATHER
from .openai_scripts import chunk, tool_delta

TOOLS = ToolSet.of([WEATHER])


def conversation(**body: Any) -> ChatConversation:
    return ChatConversation(
        {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], **body}, TOOLS
    )


def event(data: Any) -> SSEEvent:
    text = data if isinstance(data, str) else json.dumps(data)
    raw = encode_event(None, text)
    (decoded,) = SSEDecoder().feed(raw)
    return decoded


def feed(conv: ChatConversation, *chunks: Any) -> list[dict[str, Any]]:
    """Feed chunks (``chunk()`` tuples or "[DONE]"); the client frames, decoded."""
    out: list[bytes] = []
    for item in chunks:
        out += conv.on_event(event(item[1] if isinstance(item, tuple) else item))
    frames: list[dict[str, Any]] = []
    for frame in out:
        (decoded,) = SSEDecoder().feed(frame)
        frames.append(json.loads(decoded.data))
    return frames


def deltas(frames: list[dict[str, Any]]) -> list[Any]:
    return [f["choices"][0]["delta"] if f["choices"] else None for f in frames]


USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 7,
    "total_tokens": 12,
    "prompt_tokens_details": {"cached_tokens": 2},
}


def test_untouched_chunks_pass_as_raw_bytes() -> None:
    conv = conversation()
    raw = encode_event(None, json.dumps(chunk({"content": "hi"})[1]))
    (decoded,) = SSEDecoder().feed(raw)
    assert conv.on_event(decoded) == [raw]


def test_upstream_done_is_swallowed_and_sent_once_at_the_end() -> None:
    conv = conversation()
    assert (
        feed(conv, chunk({"content": "hi"}, "stop"), "[DONE]")[0]["choices"][0]["finish_reason"]
        == "stop"
    )
    assert conv.end_stream() == []
    assert conv.closing_frames() == [DONE_FRAME]


def test_no_preamble_injected_call_yields_no_frames_and_a_call() -> None:
    """The first chunk is the injected call: nothing reaches the client, the loop continues."""
    conv = conversation()
    frames = feed(
        conv,
        chunk({"content": None, **tool_delta(0, "bmcp_weather", None, "call_1")}),
        chunk({"content": None, **tool_delta(0, arguments="")}),
        chunk({"content": None, **tool_delta(0, arguments='{"city":')}),
        chunk({"content": None, **tool_delta(0, arguments=' "Paris"}')}),
        chunk({"content": None}, "tool_calls", usage=USAGE),
        "[DONE]",
    )
    assert frames == []
    (call,) = conv.end_stream()
    assert (call.id, call.name, call.input) == ("call_1", "bmcp_weather", {"city": "Paris"})


def test_nonzero_index_injected_call_after_text() -> None:
    """Text, then the injected call at index 1: the text goes out, the call is compacted."""
    conv = conversation()
    frames = feed(
        conv,
        chunk({"content": "Now", "role": "assistant"}),
        chunk({"content": " listing"}),
        chunk({"content": None, **tool_delta(1, "bmcp_weather", None, "call_9")}),
        chunk({"content": None, **tool_delta(1, arguments="")}),
        chunk({"content": None}, "tool_calls", usage=USAGE),
        "[DONE]",
    )
    assert deltas(frames) == [{"content": "Now", "role": "assistant"}, {"content": " listing"}]
    (call,) = conv.end_stream()
    assert (call.id, call.input) == ("call_9", {})
    conv.add_results([call], [ToolOutcome("sunny")])
    messages = conv.upstream_body()["messages"]
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "Now listing",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "bmcp_weather", "arguments": ""},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]


def test_second_iteration_keeps_the_first_id_and_sums_usage() -> None:
    conv = conversation()
    feed(
        conv,
        chunk(tool_delta(0, "bmcp_weather", "{}", "call_1"), id="first"),
        chunk({}, "tool_calls", id="first", usage=USAGE),
        "[DONE]",
    )
    conv.add_results(conv.end_stream(), [ToolOutcome("boom", is_error=True)])
    assert conv.upstream_body()["messages"][-1]["content"] == "error: boom"
    frames = feed(
        conv,
        chunk({"role": "assistant", "content": "Sunny."}, id="second"),
        chunk({}, "stop", id="second"),
        (None, {"id": "second", "choices": [], "usage": USAGE}),
        "[DONE]",
    )
    assert {f["id"] for f in frames} == {"first"}
    assert frames[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 14,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    assert conv.end_stream() == []


def test_separate_usage_chunk_of_an_intermediate_iteration_is_swallowed() -> None:
    conv = conversation()
    frames = feed(
        conv,
        chunk(tool_delta(0, "bmcp_weather", "{}", "c")),
        chunk({}, "tool_calls"),
        (None, {"id": "x", "choices": [], "usage": USAGE}),
        "[DONE]",
    )
    assert frames == []
    assert conv.usage["completion_tokens"] == 7


def test_client_call_keeps_its_deltas_under_a_client_index() -> None:
    conv = conversation()
    frames = feed(
        conv,
        chunk(tool_delta(2, "read_file", "", "call_c")),
        chunk(tool_delta(2, arguments='{"path": "x"}')),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    assert [d["tool_calls"][0]["index"] for d in deltas(frames)[:2]] == [0, 0]
    assert frames[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "read_file"
    assert frames[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert conv.end_stream() == []  # the client runs its own call


def test_mixed_injected_and_client_calls_end_the_loop_without_the_injected_one() -> None:
    conv = conversation()
    frames = feed(
        conv,
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "bmcp_weather", "arguments": "{}"},
                    },
                    {
                        "index": 1,
                        "id": "b",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": "{}"},
                    },
                ]
            }
        ),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    visible = frames[0]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["id"]) for c in visible] == [(0, "b")]
    assert conv.end_stream() == []


def test_client_defined_tool_of_the_same_name_is_not_injected() -> None:
    conv = conversation(tools=[{"type": "function", "function": {"name": "bmcp_weather"}}])
    assert [t["function"]["name"] for t in conv.upstream_body()["tools"]] == ["bmcp_weather"]
    frames = feed(
        conv, chunk(tool_delta(0, "bmcp_weather", "{}", "c")), chunk({}, "tool_calls"), "[DONE]"
    )
    assert len(frames) == 2
    assert conv.end_stream() == []


def test_upstream_error_chunk_is_relayed_and_ends_the_stream() -> None:
    conv = conversation()
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    assert feed(conv, chunk({"content": "x"}), (None, error)) == [chunk({"content": "x"})[1], error]
    assert conv.failed
    assert conv.end_stream() == []


def test_stream_cut_before_finish_is_broken() -> None:
    conv = conversation()
    feed(conv, chunk({"content": "x"}))
    with pytest.raises(UpstreamBroken):
        conv.end_stream()


def test_chunk_that_is_not_json_is_broken() -> None:
    with pytest.raises(UpstreamBroken):
        conversation().on_event(event("{nope"))


def test_injected_call_with_bad_arguments_is_broken() -> None:
    conv = conversation()
    with pytest.raises(UpstreamBroken, match="not valid JSON"):
        feed(conv, chunk(tool_delta(0, "bmcp_weather", "{oops", "c")), chunk({}, "tool_calls"))


def test_blocking_tool_turn_then_answer() -> None:
    conv = conversation()
    call_part = {
        "id": "c1",
        "type": "function",
        "function": {"name": "bmcp_weather", "arguments": "{}"},
    }
    first = {
        "id": "one",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking. ",
                    "tool_calls": [call_part],
                },
            }
        ],
        "usage": USAGE,
    }
    (call,) = conv.on_body(first)
    conv.add_results([call], [ToolOutcome("sunny")])
    second = {
        "id": "two",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Sunny."},
            }
        ],
        "usage": USAGE,
    }
    assert conv.on_body(second) == []
    body = conv.client_body()
    assert body["id"] == "one"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Sunny."}
    assert body["usage"]["completion_tokens"] == 14


def test_error_frame_is_a_data_frame_holding_an_error_object() -> None:
    api = OpenAIChat()
    frame = api.error_frame(api.error_body("rate_limit", "slow down"))
    assert frame.startswith(b"data: ")
    assert json.loads(frame[len(b"data: ") :])["error"]["type"] == "rate_limit_error"


def test_injected_call_ending_in_stop_still_runs() -> None:
    """Some OpenAI-compatible providers end a tool turn with ``stop``."""
    conv = conversation()
    frames = feed(
        conv, chunk(tool_delta(0, "bmcp_weather", "{}", "c")), chunk({}, "stop"), "[DONE]"
    )
    assert frames == []
    assert [call.id for call in conv.end_stream()] == ["c"]


def test_injected_call_cut_by_length_goes_to_the_client_as_is() -> None:
    conv = conversation()
    frames = feed(
        conv, chunk(tool_delta(0, "bmcp_weather", "{", "c")), chunk({}, "length"), "[DONE]"
    )
    assert [f["choices"][0]["finish_reason"] for f in frames] == ["length"]
    assert conv.end_stream() == []
