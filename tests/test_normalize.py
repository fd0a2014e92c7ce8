"""Semantic normalization of client-visible responses, per API."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from aibridge_cli.sessions.normalize import diff_normalized, normalize_response
from aibridge_cli.sse import encode_event

SSE = [("content-type", "text/event-stream")]
JSON = [("content-type", "application/json")]


def sse(*events: tuple[str | None, object]) -> bytes:
    return b"".join(
        encode_event(name, data if isinstance(data, str) else json.dumps(data))
        for name, data in events
    )


def anthropic_stream(text: str, msg_id: str = "msg_1") -> bytes:
    return sse(
        (
            "message_start",
            {"type": "message_start", "message": {"id": msg_id, "usage": {"input_tokens": 3}}},
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_x", "name": "read", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"p": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"a"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )


def test_anthropic_stream_facts_and_ids_ignored() -> None:
    one = normalize_response("anthropic", 200, SSE, anthropic_stream("Hi"))
    assert one["shape"] == "sse"
    assert one["text"] == "Hi"
    assert one["tool_calls"] == [{"name": "read", "input": {"p": "a"}}]
    assert one["usage"] == {"input_tokens": 3, "output_tokens": 9}
    assert one["stop_reason"] == "tool_use"
    assert all(e["event"] != "ping" for e in one["events"])
    other = normalize_response("anthropic", 200, SSE, anthropic_stream("Hi", msg_id="msg_2"))
    assert diff_normalized(one, other) == []


def test_a_changed_delta_is_named_by_its_event() -> None:
    one = normalize_response("anthropic", 200, SSE, anthropic_stream("Hi"))
    other = normalize_response("anthropic", 200, SSE, anthropic_stream("Ho"))
    diff = diff_normalized(one, other)
    assert "events[2] (content_block_delta).data.delta.text: expected 'Hi', got 'Ho'" in diff
    assert "text: expected 'Hi', got 'Ho'" in diff


def test_anthropic_errors_as_json_and_in_stream() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}'
    assert normalize_response("anthropic", 429, JSON, body)["error_type"] == "rate_limit_error"
    stream = sse(
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    )
    assert normalize_response("anthropic", 200, SSE, stream)["error_type"] == "overloaded_error"


def test_json_followed_by_sse_is_its_own_shape() -> None:
    body = (
        b'{"type":"error","error":{"type":"rate_limit_error","message":"m"}}event: message_start\n'
    )
    out = normalize_response("anthropic", 429, JSON, body)
    assert out["shape"] == "json+trailing"
    assert out["trailing"].startswith("event: message_start")


def test_openai_chat_stream_and_body() -> None:
    stream = sse(
        (None, {"id": "c1", "created": 1, "choices": [{"index": 0, "delta": {"content": "He"}}]}),
        (
            None,
            {
                "id": "c1",
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "function": {"name": "f", "arguments": '{"a"'},
                                }
                            ]
                        },
                    }
                ],
            },
        ),
        (
            None,
            {
                "id": "c1",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                        "finish_reason": "tool_calls",
                    }
                ],
            },
        ),
        (None, {"id": "c1", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}),
        (None, "[DONE]"),
    )
    out = normalize_response("openai-chat", 200, SSE, stream)
    assert (out["text"], out["stop_reason"]) == ("He", "tool_calls")
    assert out["tool_calls"] == [{"name": "f", "input": {"a": 1}}]
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 3}
    assert out["events"][-1] == {"event": None, "data": "[DONE]"}
    body = {
        "id": "x",
        "choices": [{"message": {"content": "Yo"}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 4},
    }
    out = normalize_response("openai-chat", 200, JSON, json.dumps(body).encode())
    assert (out["text"], out["stop_reason"], out["usage"]) == ("Yo", "stop", {"total_tokens": 4})
    err = b'{"error": {"message": "m", "type": "invalid_request_error", "code": null}}'
    assert (
        normalize_response("openai-chat", 400, JSON, err)["error_type"] == "invalid_request_error"
    )


def test_openai_responses_stream() -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "f",
        "arguments": "{}",
    }
    stream = sse(
        (
            "response.created",
            {"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
        ),
        (
            "response.output_text.delta",
            {"type": "response.output_text.delta", "item_id": "m", "delta": "Hey"},
        ),
        (
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": 1, "item": item},
        ),
        (
            "response.completed",
            {
                "type": "response.completed",
                "response": {"id": "r", "status": "completed", "usage": {"input_tokens": 1}},
            },
        ),
    )
    out = normalize_response("openai-responses", 200, SSE, stream)
    assert (out["text"], out["stop_reason"]) == ("Hey", "completed")
    assert out["tool_calls"] == [{"name": "f", "input": {}}]
    assert out["usage"] == {"input_tokens": 1}
    failed = sse(("error", {"type": "error", "code": "server_error", "message": "m"}))
    out = normalize_response("openai-responses", 200, SSE, failed)
    assert (out["events"][0]["event"], out["error_type"]) == ("error", "server_error")


def test_list_length_difference_is_reported() -> None:
    assert diff_normalized({"events": [1, 2]}, {"events": [1]}) == [
        "events: 2 expected, 1 got; missing: 2"
    ]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "content",
                    "choices",
                    "message",
                    "usage",
                    "delta",
                    "tool_calls",
                    "function",
                    "output",
                    "item",
                    "response",
                    "error",
                    "content_block",
                    "index",
                    "type",
                    "text",
                    "arguments",
                    "status",
                    "output_index",
                    "partial_json",
                    "name",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_EVENTS = st.sampled_from(
    [
        None,
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "error",
        "response.output_text.delta",
        "response.output_item.done",
        "response.completed",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    api=st.sampled_from(["anthropic", "openai-chat", "openai-responses"]),
    data=_JSON,
    event=_EVENTS,
    as_sse=st.booleans(),
)
def test_malformed_responses_are_normalized_never_raised(
    api: str, data: object, event: str | None, as_sse: bool
) -> None:
    if as_sse:
        out = normalize_response(api, 200, SSE, sse((event, data)))
        assert out["shape"] == "sse"
    else:
        out = normalize_response(api, 200, JSON, json.dumps(data).encode())
        assert out["shape"] == "json"
    assert diff_normalized(out, out) == []
