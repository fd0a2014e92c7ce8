"""The Responses API's WebSocket mode, sans-io: client events checked, error events made,
and the SSE view of a socket's messages.

In WebSocket mode a client sends ``response.create`` messages (a ``POST /responses`` body
plus ``"type"``; streaming is implicit) and receives the events an SSE stream would carry,
one JSON message each, many responses over one socket. The proxy therefore runs the
Responses conversation and engine unchanged and converts at the edges: an upstream
message becomes the SSE frame ``event: TYPE / data: MESSAGE`` for the conversation, and
the frames the conversation releases become messages again (``frame_messages``). The
same SSE view lets replay, mock and the fuzzer's oracles judge a WebSocket exchange with
the code that judges an HTTP stream (``sse_view``).

Errors have one shape, the SDK's ``ResponseWsError``: ``{"type": "error", "status": N,
"error": {"type", "code", "message", "param"}}``. ``status`` is there when the error
stands for an HTTP answer (a refused request, every key rate-limited); an error inside a
response that already started is the stream's own ``error`` event, as over SSE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..errors import ErrorKind, RequestError
from ..headers import Headers
from ..sse import SSEDecoder, encode_event
from .base import dumps
from .openai_common import ERROR_CODES, ERROR_TYPES, error_object
from .openai_responses import TERMINAL

CREATE = "response.create"
EXCHANGE_METHOD = "WEBSOCKET"
"""The method of an upstream request made over a socket, as recorded and as the fakes see
it: one ``response.create`` sent (or one upgrade refused), and what answered it."""
WEBSOCKET_STATUS = 101
"""The status of a socket's responses in records: 101, the upgrade's."""
UPGRADE_PATH = "/openai/v1/responses"
SSE_VIEW_HEADERS: Headers = [("content-type", "text/event-stream")]


class ClientEventError(RequestError):
    """A client message the proxy cannot act on; answered with an error event, the
    socket stays open."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def parse_client_event(text: str) -> dict[str, Any]:
    """A client message as a ``response.create`` body; ``ClientEventError`` otherwise."""
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise ClientEventError(f"message is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(event, dict):
        raise ClientEventError(
            f"message must be a JSON object, not {type(event).__name__}", "invalid_json"
        )
    kind = event.get("type")
    if kind != CREATE:
        raise ClientEventError(
            f"unknown client event type {kind!r}: this proxy takes {CREATE!r}",
            "unknown_event_type",
            "type",
        )
    return event


def error_event(status: int | None, error: dict[str, Any]) -> str:
    """An ``error`` message carrying ``error`` (an OpenAI error object)."""
    event: dict[str, Any] = {"type": "error"}
    if status is not None:
        event["status"] = status
    event["error"] = error
    return dumps(event)


def error_object_for(kind: ErrorKind, message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "type": ERROR_TYPES[kind],
        "code": code if code is not None else ERROR_CODES.get(kind),
        "message": message,
        "param": None,
    }


def client_event_error(error: ClientEventError) -> str:
    inner = error_object_for(error.kind, error.message, error.code)
    inner["param"] = error.param
    return error_event(error.status, inner)


def status_error_event(status: int, body: bytes, kind: ErrorKind, message: str) -> str:
    """The error message for an HTTP error answer ``status`` with ``body``: the upstream's
    own error object when the body is one, else one made from ``kind`` and ``message``."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return error_event(status, error_object(payload))
    return error_event(status, error_object_for(kind, message))


def message_type(text: str) -> tuple[str | None, dict[str, Any] | None]:
    """A message's ``type`` and its JSON object (None, None when it is not one)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    kind = data.get("type")
    return (kind if isinstance(kind, str) else None), data


def is_last_message(text: str) -> bool:
    """True for the message that ends a response: its terminal event or an error."""
    kind, _ = message_type(text)
    return kind == "error" or kind in TERMINAL


def opening_status(status: int, first: str | None) -> tuple[int, str | None]:
    """What an upstream answered a ``response.create`` with, read from its first message:
    an ``error`` carrying a status stands for that status (and the ``Retry-After`` among
    its error's headers); anything else, for ``status`` (101, the socket's)."""
    kind, event = message_type(first) if first is not None else (None, None)
    code = event.get("status") if event is not None and kind == "error" else None
    if event is None or not isinstance(code, int):
        return status, None
    error = event.get("error")
    headers = error.get("headers") if isinstance(error, dict) else None
    retry = headers.get("retry-after") if isinstance(headers, dict) else None
    return code, str(retry) if retry is not None else None


def message_frame(text: str) -> bytes:
    """The SSE frame that stands for one message (named by its type, when it has one)."""
    kind, _ = message_type(text)
    return encode_event(kind, text)


def frame_messages(data: bytes) -> list[str]:
    """The messages in whole SSE frames (comments such as pings carry none)."""
    return [event.data for event in SSEDecoder().feed(data)]


def sse_view(messages: Iterable[bytes | str]) -> tuple[int, Headers, bytes]:
    """A socket's messages as the 200 event stream carrying the same events."""
    frames = [
        message_frame(m if isinstance(m, str) else m.decode("utf-8", "replace")) for m in messages
    ]
    return 200, list(SSE_VIEW_HEADERS), b"".join(frames)
