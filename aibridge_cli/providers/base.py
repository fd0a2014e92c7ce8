"""What a provider API must say for the bridge to intercept it.

The bridge (``aibridge_cli.proxy.bridge``) owns the I/O: the upstream attempts with key
failover, the relay and loop tasks, the tools. An ``API`` owns everything specific to one
provider's wire format, with no I/O: how a request is validated, how upstream events map
to client events across agentic iterations, what its errors look like.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ErrorKind, RequestError
from ..sse import SSEEvent
from ..tools import InjectedTool, ToolOutcome, ToolSet


@dataclass(frozen=True)
class ToolCall:
    """An injected tool call the model asked for."""

    id: str
    name: str
    input: Any


class Conversation(Protocol):
    """The per-request state of one intercepted exchange, across agentic iterations."""

    failed: bool
    """True once an upstream error event was relayed: the stream ends there."""
    complete: bool
    """Streaming: True once the frames handed out end the client's response with its final
    event (``message_stop``, ``response.completed``, Chat's ``[DONE]``): a client that
    leaves after reading them has its whole answer."""
    client_calls: list[str]
    """The names of the client's own tools the model called, as the client saw them (the
    metrics' client tool selections)."""

    def client_usage(self) -> dict[str, Any]:
        """The usage the client was told, summed over the loop (empty when none came)."""
        ...

    failure: str
    """What that error event said (``error_cause``), for the request's log line."""

    def upstream_body(self) -> dict[str, Any]:
        """The JSON body of the next upstream request (injected tools included)."""
        ...

    def on_event(self, event: SSEEvent) -> list[bytes]:
        """Streaming: one upstream event in, the SSE frames for the client out."""
        ...

    def end_stream(self) -> list[ToolCall]:
        """Streaming: the upstream stream ended; the injected calls to run, if any.

        Raises ``UpstreamBroken`` when the stream ended before its terminal event.
        """
        ...

    def on_body(self, body: Any) -> list[ToolCall]:
        """Blocking: one upstream response body in; the injected calls to run, if any."""
        ...

    def add_results(self, calls: list[ToolCall], outcomes: list[ToolOutcome]) -> None:
        """Append the assistant turn and the tools' results for the next iteration."""
        ...

    def closing_frames(self) -> list[bytes]:
        """Streaming: frames sent after the last iteration (e.g. ``data: [DONE]``)."""
        ...

    def client_body(self) -> dict[str, Any]:
        """Blocking: the one response the client gets."""
        ...


class API(Protocol):
    """One intercepted provider API (Anthropic Messages, OpenAI Chat, OpenAI Responses)."""

    name: str
    """Short name used in routes, fixtures and logs (``anthropic``, ``openai-chat``...)."""
    provider: str
    """The key pool and base URL it uses (``anthropic`` or ``openai``)."""
    upstream_path: str
    """Path appended to the provider's base URL."""
    ping_frame: bytes
    """What the relay sends after 10 s without a write."""

    def validate(self, raw: bytes) -> dict[str, Any]:
        """The request body, checked; raises ``RequestError`` saying what is wrong."""
        ...

    def conversation(self, body: dict[str, Any], tools: ToolSet) -> Conversation: ...

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]: ...

    def error_frame(self, payload: Any) -> bytes:
        """An in-stream error carrying ``payload`` (an error body of this provider)."""
        ...


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a ``RequestError`` saying what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, not {type(data).__name__}")
    return data


def offered_tools(
    client_tools: list[Any],
    client_names: set[Any],
    tools: ToolSet,
    spec: Callable[[InjectedTool], dict[str, Any]],
) -> tuple[set[str], list[Any]]:
    """The injected tools in play and the tool list sent upstream.

    A tool the client defined itself wins over an injected one of the same name; the list
    is the client's tools, then the injected ones in the provider's ``spec`` shape.
    """
    injected = {t.name for t in tools if t.name not in client_names}
    return injected, [*client_tools, *(spec(t) for t in tools if t.name in injected)]


def next_body(
    body: dict[str, Any], field: str, value: Any, tool_specs: list[Any]
) -> dict[str, Any]:
    """The client's body for the next upstream request: ``field`` (the conversation so
    far) replaced by ``value``, and the tools with the injected ones added."""
    out = dict(body)
    out[field] = value
    if tool_specs:
        out["tools"] = tool_specs
    return out


def parse_request(raw: bytes, required: dict[str, tuple[Any, str]]) -> dict[str, Any]:
    """The request body as a JSON object holding each required field with the right type.

    ``required`` maps a field to its type (what ``isinstance`` takes) and how to name it.
    """
    body = parse_json_object(raw)
    for name, (kind, what) in required.items():
        if not isinstance(body.get(name), kind):
            raise RequestError(f"{name}: field required ({what})")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        # else "yes" would be read as a blocking request and fail on the SSE that comes back
        raise RequestError(f"stream: must be true or false, not {stream!r}")
    return body


def error_cause(data: dict[str, Any]) -> str:
    """What an upstream error event says went wrong, as ``type: message``: its ``error``
    object's (Anthropic, Chat Completions) or its own fields (a Responses ``error``)."""
    inner = data.get("error")
    error = inner if isinstance(inner, dict) else data
    kind = error.get("code") or error.get("type") if error is data else error.get("type")
    message = error.get("message")
    return ": ".join(str(part) for part in (kind or "error", message) if part)


def is_streaming(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


# json.dumps with any setting builds an encoder per call; the proxy writes JSON per request.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(data: Any) -> str:
    """Compact JSON, the way the providers write it."""
    return _COMPACT.encode(data)
