"""Scenarios built in code, until the shared built-in fixtures are available.

Each is a small ``Interception`` (few frames: the fuzzer runs thousands of them) for one
behaviour of the Anthropic bridge: plain text, an injected tool turn, a client tool call,
a blocking tool turn, and the seed race (all keys rate-limited after a tool turn).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..interception import ClientRequest, Interception, ResponseLog, UpstreamExchange
from ..sse import encode_event

TOOL = {
    "name": "bmcp_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "result": "sunny, 21 C",
}
MODEL = "claude-sonnet-4-20250514"
KEYS = ["sk-sim-key-0", "sk-sim-key-1"]


def _sse(*events: dict[str, Any]) -> list[bytes]:
    return [encode_event(e["type"], json.dumps(e, separators=(",", ":"))) for e in events]


def _start(n: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {"id": f"msg_sim{n}", "type": "message", "role": "assistant", "model": MODEL,
                    "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}},
    }


def _text_turn(n: int, text: str) -> list[bytes]:
    return _sse(
        _start(n),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    )


def _tool_turn(n: int, name: str, text: str | None = None) -> list[bytes]:
    blocks: list[dict[str, Any]] = []
    index = 0
    if text is not None:
        blocks += [
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            {"type": "content_block_stop", "index": 0},
        ]
        index = 1
    blocks += [
        {"type": "content_block_start", "index": index,
         "content_block": {"type": "tool_use", "id": f"toolu_sim{n}", "name": name, "input": {}}},
        {"type": "content_block_delta", "index": index,
         "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}},
        {"type": "content_block_stop", "index": index},
    ]
    return _sse(
        _start(n),
        *blocks,
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    )


def _rate_limited(retry_after: str) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
    headers = [("content-type", "application/json"), ("retry-after", retry_after)]
    return 429, headers, [json.dumps(body).encode()]


def _record(
    body: dict[str, Any],
    replies: list[tuple[int, list[tuple[str, str]], list[bytes]]],
    keys: list[str | None],
    tools: list[dict[str, Any]],
) -> Interception:
    record = Interception(
        api="anthropic",
        request=ClientRequest("POST", "/anthropic/v1/messages", [], body),
        started_at=0.0,
        tools=tools,
    )
    for (status, headers, chunks), key in zip(replies, keys, strict=True):
        log = ResponseLog(status=status, headers=headers)
        for chunk in chunks:
            log.wrote(chunk)
        record.upstream.append(UpstreamExchange("POST", "/v1/messages", None, key, log))
    return record


SSE = [("content-type", "text/event-stream")]
JSON = [("content-type", "application/json")]


def _request(stream: bool = True, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL, "max_tokens": 256, "stream": stream,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    if tools:
        body["tools"] = tools
    return body


def simple_stream() -> Interception:
    return _record(_request(), [(200, SSE, _text_turn(1, "Hello!"))], [KEYS[0]], [TOOL])


def injected_tool() -> Interception:
    return _record(
        _request(),
        [(200, SSE, _tool_turn(1, "bmcp_weather", "Let me check.")), (200, SSE, _text_turn(2, "Sunny."))],
        [KEYS[0], KEYS[0]],
        [TOOL],
    )


def client_tool() -> Interception:
    spec = {"name": "get_time", "description": "the time", "input_schema": {"type": "object"}}
    return _record(
        _request(tools=[spec]), [(200, SSE, _tool_turn(1, "get_time"))], [KEYS[0]], [TOOL]
    )


def rate_limit_after_tool_turn() -> Interception:
    return _record(
        _request(),
        [(200, SSE, _tool_turn(1, "bmcp_weather")), _rate_limited("30"), _rate_limited("30")],
        [KEYS[0], KEYS[0], KEYS[1]],
        [TOOL],
    )


def blocking_tool() -> Interception:
    turn1 = {
        "id": "msg_sim1", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "tool_use", "id": "toolu_sim1", "name": "bmcp_weather",
                     "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 9},
    }
    turn2 = {
        "id": "msg_sim2", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "Sunny."}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 5},
    }
    return _record(
        _request(stream=False),
        [(200, JSON, [json.dumps(turn1).encode()]), (200, JSON, [json.dumps(turn2).encode()])],
        [KEYS[0], KEYS[0]],
        [TOOL],
    )


BUILTIN: dict[str, Callable[[], Interception]] = {
    "anthropic/simple-stream": simple_stream,
    "anthropic/injected-tool": injected_tool,
    "anthropic/client-tool": client_tool,
    "anthropic/rate-limit-after-tool-turn": rate_limit_after_tool_turn,
    "anthropic/blocking-injected-tool": blocking_tool,
}
