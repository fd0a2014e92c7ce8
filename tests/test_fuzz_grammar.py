"""The malformed-body oracle's rules, sans-io: what a client may and may not receive."""

from __future__ import annotations

import json
from typing import Any

from aibridge_cli.fuzz.grammar import Response, response_problems
from aibridge_cli.sse import encode_event

SSE = [("content-type", "text/event-stream")]
JSON = [("content-type", "application/json")]


def frames(*events: Any) -> bytes:
    return b"".join(encode_event(e["type"], json.dumps(e)) for e in events)


START = {"type": "message_start", "message": {"id": "msg_1", "content": []}}
BLOCK = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
]
END = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, {"type": "message_stop"}]
ERROR = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def problems(status: int, headers: list[tuple[str, str]], body: bytes, **kw: bool) -> list[str]:
    truncated = kw.get("truncated", False)
    response = Response(status, headers, body, complete=not truncated, truncated=truncated)
    return response_problems(
        "anthropic", response, streaming=kw.get("streaming", True), injected={"bmcp_weather"}
    )


def test_a_whole_stream_and_a_json_error_are_well_formed() -> None:
    assert problems(200, SSE, frames(START, *BLOCK, *END)) == []
    assert problems(200, SSE, frames(START, *BLOCK, ERROR)) == []
    assert problems(429, JSON, json.dumps(ERROR).encode()) == []


def test_json_followed_by_sse_is_malformed() -> None:
    body = json.dumps(ERROR).encode() + frames(START)
    assert any("does not parse" in p for p in problems(429, JSON, body))


def test_sse_with_a_json_error_inside_is_malformed() -> None:
    body = frames(START) + json.dumps(ERROR).encode()
    assert any("not an SSE line" in p for p in problems(200, SSE, body))


def test_a_missing_block_stop_breaks_the_grammar() -> None:
    found = problems(200, SSE, frames(START, *BLOCK[:2], *END))
    assert "message_delta while block 0 is open" in found


def test_an_injected_tool_use_is_visible() -> None:
    leak = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "name": "bmcp_weather", "input": {}},
    }
    found = problems(
        200, SSE, frames(START, leak, {"type": "content_block_stop", "index": 0}, *END)
    )
    assert "the injected tool 'bmcp_weather' is visible to the client" in found


def test_a_stream_without_its_end_is_malformed_unless_the_client_hung_up() -> None:
    cut = frames(START, *BLOCK)[:-30]
    assert problems(200, SSE, cut)
    assert problems(200, SSE, cut, truncated=True) == []


def chat(*chunks: object) -> bytes:
    return b"".join(encode_event(None, c if isinstance(c, str) else json.dumps(c)) for c in chunks)


CHUNK = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}


def test_openai_chat_streams_end_in_done_or_an_error() -> None:
    def check(body: bytes) -> list[str]:
        response = Response(200, SSE, body, complete=True)
        return response_problems("openai-chat", response, streaming=True, injected={"bmcp_weather"})

    assert check(chat(CHUNK, "[DONE]")) == []
    assert check(chat(CHUNK, {"error": {"message": "boom", "type": "server_error"}})) == []
    assert check(chat(CHUNK)) == ["the stream ended without [DONE] or an error"]
    assert check(chat(CHUNK, "[DONE]", CHUNK)) == ["a frame after the terminal [DONE]"]


def test_openai_responses_sequence_numbers_increase() -> None:
    def event(kind: str, n: int) -> bytes:
        return encode_event(kind, json.dumps({"type": kind, "sequence_number": n}))

    def check(body: bytes) -> list[str]:
        response = Response(200, SSE, body, complete=True)
        return response_problems("openai-responses", response, streaming=True, injected=())

    assert check(event("response.created", 0) + event("response.completed", 1)) == []
    assert check(event("response.created", 1) + event("response.completed", 1)) == [
        "sequence_number 1 after 1"
    ]
