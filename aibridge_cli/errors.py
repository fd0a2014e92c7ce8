"""Every exception aibridge raises on purpose, in one tree.

    AibridgeError                   what the CLI reports as one line (exit 2 unless noted)
    ├── ConfigError                 bad command-line or tools-file input
    ├── FixtureError                a fixture file that cannot be loaded or written to
    ├── McpUnavailable              an MCP server did not start under --mcp-required
    ├── ListenError                 a server cannot listen on its address
    ├── TargetUnreachable           replay's --target does not accept connections
    ├── CommandNotRunnable          ``record`` cannot start its command (exit 127)
    ├── ClientDisconnected          the client went away mid-response (nothing to answer)
    └── ClientFacingError           answered to the client in the provider's error shape
        ├── RequestError            local: the client's request is wrong (400/404/405/413)
        ├── KeyPoolExhausted        local: no configured key may be used now
        │   ├── AllKeysRateLimited  429, with the smallest remaining cooldown
        │   └── AllKeysDisabled     502
        ├── LoopLimitExceeded       502: the agentic loop did not converge
        ├── CircuitOpen             503: the breaker of this provider, endpoint and model
        │                           is open (or half-open with every probe out)
        └── UpstreamError           remote: the upstream failed us
            ├── UpstreamStatusError the upstream answered an error status (relayed as is)
            ├── UpstreamUnreachable could not connect (502)
            ├── UpstreamTimeout     connect or idle-read timeout (504)
            └── UpstreamBroken      the connection or the stream broke mid-body (502)

A ``ClientFacingError`` carries everything needed to answer: the HTTP status, a
provider-neutral error kind (mapped to each provider's own type string), a message, and
the ``Retry-After`` seconds when there is one. Every ``AibridgeError`` may carry a
``hint``, what the operator can do about it: ``failures.py`` prints
``error: <message>; <hint>``.
"""

from __future__ import annotations

import errno
from typing import Literal

from .headers import header

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "api_error",
    "overloaded",
    "timeout",
]

KIND_BY_STATUS: dict[int, ErrorKind] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    405: "invalid_request",
    413: "request_too_large",
    429: "rate_limit",
    504: "timeout",
    529: "overloaded",
}


def kind_for_status(status: int) -> ErrorKind:
    """The error kind a status stands for; unknown 4xx are invalid requests, 5xx api errors."""
    if status in KIND_BY_STATUS:
        return KIND_BY_STATUS[status]
    return "invalid_request" if 400 <= status < 500 else "api_error"


class AibridgeError(Exception):
    """Base of every error aibridge raises on purpose."""

    hint: str | None = None
    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(AibridgeError):
    """Bad configuration: an option, an environment variable or the tools file."""


class FixtureError(AibridgeError):
    """A fixture file that cannot be loaded; the message says ``file:line: reason``."""


class McpUnavailable(AibridgeError):
    """An MCP server did not answer ``initialize`` and ``--mcp-required`` was given."""


class ListenError(AibridgeError):
    """A server could not bind its address: the port is taken, the host is not ours..."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        why = cause.strerror or str(cause)
        super().__init__(f"cannot listen on {host}:{port} ({why})", hint=_listen_hint(cause))
        self.host = host
        self.port = port


def _listen_hint(cause: OSError) -> str:
    if cause.errno == errno.EADDRINUSE:
        return "another process holds that port: choose another one, or 0 for a free one"
    if cause.errno == errno.EACCES:
        return "ports below 1024 need privileges: choose a higher one"
    return "give an address of this machine, such as 127.0.0.1"


class TargetUnreachable(AibridgeError):
    """Nothing accepts connections at the address the operator pointed us at."""


class CommandNotRunnable(AibridgeError):
    """``aibridge record`` could not start its command; 127 as a shell says it."""

    exit_code = 127


class ClientDisconnected(AibridgeError):
    """The client closed its connection or stopped reading past the write timeout."""


class ClientFacingError(AibridgeError):
    """An error that is answered to the client in the provider's own error shape."""

    status: int = 502
    kind: ErrorKind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: ErrorKind | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        elif status is not None:
            self.kind = kind_for_status(status)
        self.retry_after = retry_after


class RequestError(ClientFacingError):
    """The client's request is wrong: not JSON, missing fields, too large, no such route."""

    status = 400
    kind = "invalid_request"


class KeyPoolExhausted(ClientFacingError):
    """No configured key may be used for this attempt."""


class AllKeysRateLimited(KeyPoolExhausted):
    status = 429
    kind = "rate_limit"

    def __init__(self, retry_after: int) -> None:
        super().__init__("all configured keys are rate-limited", retry_after=retry_after)


class AllKeysDisabled(KeyPoolExhausted):
    status = 502
    kind = "api_error"

    def __init__(self) -> None:
        super().__init__("all configured keys were rejected by the upstream (401/403)")


class LoopLimitExceeded(ClientFacingError):
    status = 502
    kind = "api_error"


class CircuitOpen(ClientFacingError):
    """The circuit breaker refused the upstream request without sending it."""

    PREFIX = "circuit breaker"  # every message starts so: a log line's level reads it
    status = 503
    kind = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)


class UpstreamError(ClientFacingError):
    """The upstream failed: an error status, no connection, a timeout or a broken stream."""


class UpstreamStatusError(UpstreamError):
    """The upstream answered an error status; it is relayed to the client as it came."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        retry = header(headers, "retry-after")
        retry_after = int(retry) if retry is not None and retry.isdigit() else None
        super().__init__(f"upstream answered {status}", status=status, retry_after=retry_after)
        self.headers = headers
        self.body = body


class UpstreamUnreachable(UpstreamError):
    status = 502
    kind = "api_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "timeout"


class UpstreamBroken(UpstreamError):
    status = 502
    kind = "api_error"
