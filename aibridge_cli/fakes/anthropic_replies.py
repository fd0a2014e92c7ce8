"""Building blocks for scripted Anthropic upstream replies: Messages API events and bodies.

Tests, the built-in fixture generator and anything else that plays a fake Anthropic
upstream build their replies from these, so the event shapes live in one place.
"""

from __future__ import annotations

import json
from typing import Any

from .scripted_upstream import Reply

Event = tuple[str, dict[str, Any]]


def message_start(
    msg_id: str = "msg_1", input_tokens: int = 5, model: str = "claude-test"
) -> list[Event]:
    message: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    return [("message_start", {"type": "message_start", "message": message})]


def text_block(index: int, *parts: str) -> list[Event]:
    return [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": part},
                },
            )
            for part in parts
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def tool_block(
    index: int, name: str, arguments: dict[str, Any], tool_id: str = "toolu_1"
) -> list[Event]:
    text = json.dumps(arguments)
    half = len(text) // 2
    return [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": text[:half]},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": text[half:]},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def message_end(stop_reason: str, output_tokens: int) -> list[Event]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def stream(*parts: list[Event], **kwargs: Any) -> Reply:
    events: list[tuple[str | None, Any]] = [e for part in parts for e in part]
    return Reply.sse(events, **kwargs)


def message(
    content: list[dict[str, Any]],
    stop_reason: str,
    output_tokens: int,
    input_tokens: int = 5,
    msg_id: str = "msg_1",
    model: str = "claude-test",
) -> Reply:
    return Reply.json(
        {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    )


def error_reply(
    status: int, error_type: str, message: str = "nope", retry_after: str | None = None
) -> Reply:
    headers = [("retry-after", retry_after)] if retry_after is not None else []
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return Reply.json(body, status, headers)


def rate_limited(retry_after: str | None = "7") -> Reply:
    return error_reply(429, "rate_limit_error", "slow down", retry_after)
