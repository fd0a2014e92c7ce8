"""The fault vocabulary: how AI traffic fails, as the fuzzer plans it and ``serve --chaos``
injects it on live traffic. One list of kinds for both, and the wire shape of each failure
in each API (sans-io: bodies and events out, nothing sent).

The shapes follow what the providers send: Anthropic's ``{"type": "error", "error": {...}}``
with an ``overloaded_error`` 529 and an ``error`` event mid-stream; OpenAI's
``{"error": {"message", "type", "param", "code"}}``, a ``data:`` frame holding an ``error``
object mid-stream on Chat Completions and an ``error`` event on Responses. The fuzzer's
messages (``simulated ...``) are the defaults: its reports must stay byte-identical.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from .sse import encode_event


class FaultKind(StrEnum):
    """What a fault does; the value is the name users type and repro files hold."""

    RATE_LIMIT_ONE = "429-one"
    RATE_LIMIT_ALL = "429-all"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    SERVER_ERROR = "500"
    OVERLOADED = "529"
    RESET_BEFORE_BODY = "reset-before-body"
    RESET_IN_BODY = "reset-in-body"
    ERROR_EVENT = "error-event"
    STALL = "stall"
    MALFORMED_SSE = "malformed-sse"
    CLIENT_DISCONNECT = "client-disconnect"
    EARLY_END = "early-end"
    MCP_ERROR = "mcp-error"
    MCP_SLOW = "mcp-slow"
    MCP_DIES = "mcp-dies"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def rate_limits(self) -> bool:
        """A 429: it carries a Retry-After."""
        return self in (FaultKind.RATE_LIMIT_ONE, FaultKind.RATE_LIMIT_ALL)

    @property
    def strikes_key(self) -> bool:
        """An error answer for the key in use, before the exchange's own answer."""
        return self.rate_limits or self in (FaultKind.UNAUTHORIZED, FaultKind.FORBIDDEN)

    @property
    def replaces_answer(self) -> bool:
        """An error status instead of the exchange's answer (relayed, no failover)."""
        return self in (FaultKind.SERVER_ERROR, FaultKind.OVERLOADED)

    @property
    def in_body(self) -> bool:
        """Strikes inside a 2xx answer's body, at frame ``at``."""
        return self in (
            FaultKind.RESET_IN_BODY,
            FaultKind.ERROR_EVENT,
            FaultKind.STALL,
            FaultKind.MALFORMED_SSE,
            FaultKind.EARLY_END,
        )

    @property
    def rare(self) -> bool:
        """Drawn on its own, after every other choice of a plan (see ``draw_rare``)."""
        return self is FaultKind.EARLY_END

    @property
    def mcp(self) -> bool:
        """Strikes an MCP tool call (the ``at``-th), not the upstream: drawn only for a
        scenario with MCP tools."""
        return self in (FaultKind.MCP_ERROR, FaultKind.MCP_SLOW, FaultKind.MCP_DIES)

    @property
    def uses_at(self) -> bool:
        """``Fault.at`` means something: a frame, the client's byte count, a tool call."""
        return self.in_body or self.mcp or self is FaultKind.CLIENT_DISCONNECT

    @property
    def black_box(self) -> bool:
        """A running proxy can take it without it carrying over to later iterations: not a
        stall (the target's read timeout is its own), a 401/403 (a disabled key stays
        disabled) nor an MCP fault (the target runs its own tools)."""
        if self.mcp:
            return False
        return self not in (FaultKind.STALL, FaultKind.UNAUTHORIZED, FaultKind.FORBIDDEN)

    @property
    def status(self) -> int | None:
        """The status of the error answer this fault sends, if it sends one."""
        return _STATUSES.get(self)


_DESCRIPTIONS: dict[FaultKind, str] = {
    FaultKind.RATE_LIMIT_ONE: "the key in use answers 429 (Retry-After drawn); it fails over",
    FaultKind.RATE_LIMIT_ALL: "every key answers 429 (Retry-After drawn)",
    FaultKind.UNAUTHORIZED: "the key in use answers 401 and is disabled",
    FaultKind.FORBIDDEN: "the key in use answers 403 and is disabled",
    FaultKind.SERVER_ERROR: "the exchange answers 500 (relayed, no failover)",
    FaultKind.OVERLOADED: "the exchange answers 529 overloaded (relayed, no failover)",
    FaultKind.RESET_BEFORE_BODY: "the upstream drops the connection before the status line",
    FaultKind.RESET_IN_BODY: "the upstream drops the connection after frame AT",
    FaultKind.ERROR_EVENT: "the upstream sends an SSE error event after frame AT",
    FaultKind.STALL: "the upstream goes silent after frame AT, past the read timeout",
    FaultKind.MALFORMED_SSE: "frame AT is replaced by an event whose data is not JSON",
    FaultKind.CLIENT_DISCONNECT: "the client hangs up after AT body bytes (0: before reading)",
    FaultKind.EARLY_END: "the upstream ends its body cleanly before frame AT (no terminal event)",
    FaultKind.MCP_ERROR: "MCP tool call AT answers isError",
    FaultKind.MCP_SLOW: "MCP tool call AT takes past the tool's timeout",
    FaultKind.MCP_DIES: "the MCP server dies during tool call AT",
}
_STATUSES: dict[FaultKind, int] = {
    FaultKind.RATE_LIMIT_ONE: 429,
    FaultKind.RATE_LIMIT_ALL: 429,
    FaultKind.UNAUTHORIZED: 401,
    FaultKind.FORBIDDEN: 403,
    FaultKind.SERVER_ERROR: 500,
    FaultKind.OVERLOADED: 529,
}
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    429: "requests",
    500: "server_error",
    529: "server_error",
}
# OpenAI has no 529: an overloaded OpenAI answers 503 (the fuzzer keeps 529 for both APIs,
# so its runs stay what they were; ``serve --chaos`` sends each provider's own).
_OPENAI_CODES = {429: "rate_limit_exceeded", 401: "invalid_api_key"}


def provider_status(api: str, kind: FaultKind) -> int | None:
    """The status ``kind`` answers with on ``api`` as that provider sends it."""
    status = kind.status
    if status == 529 and api != "anthropic":
        return 503
    return status


def error_body(api: str, status: int, message: str, *, code: bool = False) -> dict[str, Any]:
    """An upstream error body in ``api``'s own shape; ``code``: OpenAI's ``code`` filled in
    as OpenAI fills it (the fuzzer's bodies leave it null)."""
    if api == "anthropic":
        return {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "server_error"),
            "param": None,
            "code": _OPENAI_CODES.get(status) if code else None,
        }
    }


def error_event(api: str, sequence: int, message: str | None = None) -> bytes:
    """A mid-stream error as ``api``'s upstream sends it: Anthropic's overload, OpenAI's
    server error."""
    if api == "anthropic":
        text = message or "simulated overload"
        return encode_event("error", json.dumps(error_body(api, 529, text)))
    text = message or "simulated server error"
    if api == "openai-chat":
        return encode_event(None, json.dumps(error_body(api, 500, text)))
    event = {
        "type": "error",
        "sequence_number": sequence,
        "code": "server_error",
        "message": text,
        "param": None,
    }
    return encode_event("error", json.dumps(event))


MALFORMED_DATA = "{not json"  # the data of a malformed-sse fault's event


def malformed_event(api: str) -> bytes:
    """An event whose data is not JSON, named as ``api``'s events are."""
    name = "content_block_delta" if api == "anthropic" else None
    return encode_event(name, MALFORMED_DATA)
