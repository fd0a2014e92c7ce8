"""What OpenAI's Chat Completions and Responses APIs share, sans-io: the error shape,
tool definitions and the parsing of one streamed event."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ErrorKind, UpstreamBroken
from ..sse import SSEEvent
from ..tools import InjectedTool, ToolOutcome

ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "overloaded": "server_error",
    "timeout": "timeout_error",
}

ERROR_CODES: dict[ErrorKind, str] = {
    "authentication": "invalid_api_key",
    "not_found": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_exceeded",
    "timeout": "upstream_timeout",
}

# An SSE comment: every SSE parser skips it, so an idle stream stays open harmlessly.
PING_FRAME = b": ping\n\n"


def openai_error(kind: ErrorKind, message: str) -> dict[str, Any]:
    """``{"error": {...}}``, the body OpenAI answers an error status with."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES[kind],
            "param": None,
            "code": ERROR_CODES.get(kind),
        }
    }


class OpenAIAPI:
    """What both OpenAI routes are alike in: the key pool they draw on, the keep-alive
    frame and the error body; each route adds its path, grammar and error frame."""

    provider = "openai"
    ping_frame = PING_FRAME

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]:
        return openai_error(kind, message)


def error_object(payload: Any) -> dict[str, Any]:
    """The inner ``error`` object of an error body (or the payload itself if it has none)."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return dict(payload["error"])
    if isinstance(payload, dict):
        return dict(payload)
    return {"message": str(payload), "type": "api_error", "param": None, "code": None}


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: upstream JSON is untrusted."""
    return value if isinstance(value, dict) else {}


def hashable(value: Any) -> Any:
    """A value from upstream JSON as a dict key or set member (a list there must not crash
    the relay)."""
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


def function_parameters(tool: InjectedTool) -> dict[str, Any]:
    return dict(tool.input_schema) or {"type": "object", "properties": {}}


def result_text(outcome: ToolOutcome) -> str:
    """A tool's text as OpenAI's tool results carry it: no error flag, so a prefix says it."""
    return f"error: {outcome.text}" if outcome.is_error else outcome.text


def parse_arguments(text: Any) -> Any:
    """A function call's JSON arguments; empty means no arguments."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise UpstreamBroken(f"tool arguments are not valid JSON: {text[:80]!r}") from None


def event_json(event: SSEEvent) -> dict[str, Any] | None:
    """An event's data as a JSON object, or None when it is not one (relayed as it came)."""
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
