"""What one interception did, as plain data: the record that fixtures are made of.

The bridge fills an ``Interception`` while it works (the client's request, every upstream
exchange with its chunks and their timing, every injected tool call, the client-facing
response) and hands it to the recorder when the request is over. Secrets never get in:
headers are redacted on the way in and keys are kept masked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .headers import Headers

Transport = Literal["http", "websocket"]
"""How the client spoke: an HTTP request, or one ``response.create`` on a WebSocket."""

SECRET_HEADERS = frozenset(
    {"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie", "api-key"}
)
REDACTED = "[redacted]"


def credentials(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The key-like values among a client's headers (a bearer token without ``Bearer``).

    Without a key pool the client's own key goes upstream, and an upstream may echo it
    back in an error body: a recorder scrubs these from what it writes.
    """
    found = []
    for name, value in headers:
        if name.lower() in ("x-api-key", "api-key", "authorization", "proxy-authorization"):
            token = value.split(None, 1)[-1].strip() if value.strip() else ""
            found += [v for v in {value.strip(), token} if len(v) >= 8]
    return found


def redact_headers(headers: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> Headers:
    """Headers with every secret value replaced; names compare case-insensitively."""
    secret = SECRET_HEADERS | {name.lower() for name in extra}
    return [(k, REDACTED if k.lower() in secret else v) for k, v in headers]


@dataclass
class Chunk:
    """Bytes as they went over the wire, ``offset_ms`` after the client's request arrived."""

    offset_ms: float
    data: bytes


@dataclass
class ResponseLog:
    """A response as sent or received: status, headers and timed chunks."""

    clock: Callable[[], float] = field(repr=False, default=lambda: 0.0)
    status: int | None = None
    headers: Headers = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    keep_chunks: bool = True  # False when nothing will read them: a stream is not buffered

    def started(self, status: int, headers: Headers) -> None:
        if self.status is None:
            self.status = status
            self.headers = list(headers)

    def wrote(self, data: bytes) -> None:
        if self.keep_chunks:
            now = self.clock()
            # an upstream body part keeps the chunks it joined (httpcore_fence.BodyPart)
            for chunk in getattr(data, "chunks", None) or (data,):
                self.chunks.append(Chunk(now, chunk))

    @property
    def body(self) -> bytes:
        return b"".join(chunk.data for chunk in self.chunks)


@dataclass
class UpstreamExchange:
    """One upstream attempt: what was sent, with which (masked) key, and what came back."""

    method: str
    path: str
    request_body: Any
    key: str | None
    response: ResponseLog
    error: str | None = None
    chaos: dict[str, Any] | None = None  # the serve --chaos rule that struck this answer


@dataclass
class ToolCallRecord:
    """One injected tool run by the loop."""

    name: str
    input: Any
    result: str
    is_error: bool
    # An MCP tool's server and its name there, and how long the call took (ms).
    server: str | None = None
    server_tool: str | None = None
    duration_ms: float | None = None
    images: list[dict[str, str]] = field(default_factory=list)  # media_type, base64 data
    chaos: dict[str, Any] | None = None  # the serve --chaos rule that struck this call


@dataclass
class ClientRequest:
    method: str
    path: str
    headers: Headers
    body: Any


@dataclass
class Interception:
    """Everything one intercepted request did, in the order it happened."""

    api: str
    request: ClientRequest
    started_at: float
    clock: Callable[[], float] = field(repr=False, default=lambda: 0.0)
    upstream: list[UpstreamExchange] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    response: ResponseLog = field(default_factory=ResponseLog)
    tools: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "ok"
    # the status of the error the client got, also when it went out as an in-stream event
    # (for the log line's level; not recorded)
    error_status: int | None = None
    # the client has its whole answer (its final event, or a whole JSON body): a client
    # that leaves after it cuts nothing short (not recorded)
    delivered: bool = False
    keep_chunks: bool = True  # False: responses keep status and headers only
    # websocket: the request is the upgrade's method, path and headers with one message as
    # its body; the response and every upstream exchange hold one message per chunk
    transport: Transport = "http"
    # who sent it (``attribution.py``): the client's short name and its session id; kept
    # beside the request, not in it, so matching a recording never compares them
    client: str = "unknown"
    session: str | None = None
    # the client's own credentials, never written anywhere (see ``credentials``)
    client_secrets: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.response.clock = self.clock
        self.response.keep_chunks = self.keep_chunks

    def new_exchange(self, method: str, path: str, body: Any, key: str | None) -> UpstreamExchange:
        # A snapshot when recording: the conversation's message list keeps growing.
        snapshot = copy.deepcopy(body) if self.keep_chunks else body
        log = ResponseLog(self.clock, keep_chunks=self.keep_chunks)
        exchange = UpstreamExchange(method, path, snapshot, key, log)
        self.upstream.append(exchange)
        return exchange

    @property
    def keys_used(self) -> list[str]:
        return [exchange.key for exchange in self.upstream if exchange.key is not None]


Recorder = Callable[[Interception], None]
