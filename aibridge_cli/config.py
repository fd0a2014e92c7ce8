"""Settings, as plain frozen data: every limit and timeout explicit, every object given its
settings when it is built.

Nothing here imports the engine, the server or httpx, so the command line, the fuzzer and
the sessions code can name a setting without loading the machinery that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

StreamInitiation = Literal["eager", "lazy"]
"""``eager`` initiates the stream before each agentic continuation (the fix for the seed
race); ``lazy`` keeps the pre-fix logic as a fuzzing target (docs/stream-initiation.md)."""

DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class BridgeConfig:
    """How the interception engine behaves."""

    stream_initiation: StreamInitiation = "eager"
    max_iterations: int = 10
    ping_interval: float = 10.0
    channel_size: int = 128
    # Frame bytes a stream may hold between the upstream and a client that reads slowly;
    # past it the loop stops reading the upstream (items alone do not bound memory: one
    # item is everything one upstream read brought, up to 64 KiB).
    max_queued_bytes: int = 64 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Limits and timeouts of the HTTP server, all explicit."""

    max_body_size: int = 32 * 1024 * 1024
    max_header_size: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    write_timeout: float = 60.0
    grace_period: float = 10.0


@dataclass(frozen=True)
class WebSocketConfig:
    """Limits and timers of a client's WebSocket (the Responses API's WebSocket mode)."""

    # Larger than any request body we take over HTTP is pointless; this matches it.
    max_message_size: int = 32 * 1024 * 1024
    # The proxy pings an idle client this often, and closes it (1011) when no pong came
    # back by the next ping: a peer that vanished without a FIN is found in 2 intervals.
    ping_interval: float = 20.0
    # How long a close waits for the peer's close before the TCP connection goes: bounds
    # how long an upstream socket outlives a client that went away (goal: under 1 s).
    close_timeout: float = 0.5


@dataclass(frozen=True)
class UpstreamTimeouts:
    """Every upstream timeout, explicit. ``read`` is the idle time allowed between bytes."""

    connect: float = 10.0
    read: float = 300.0
    write: float = 30.0
    pool: float = 10.0


@dataclass(frozen=True)
class GuardConfig:
    """Who may use a listening server besides the loopback clients (proxy/guard.py).

    ``allowed_hosts`` are Host values accepted besides the address served (a name alone
    matches any port, ``name:port`` that port only); ``allowed_origins`` are browser origins
    whose requests and CORS preflights are accepted (``*``: any page, unsafe);
    ``auth_token`` is what every client must present as its key; ``insecure_open`` lets
    a key pool be served beyond loopback without one.
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    auth_token: str | None = field(default=None, repr=False)  # a secret: never in a repr
    insecure_open: bool = False


@dataclass(frozen=True)
class BreakerConfig:
    """The circuit breaker's rules (proxy/breaker.py); the defaults are coder's gateway's.

    ``threshold`` consecutive overload answers (429, 503, 504, 529) open a breaker, a run
    starting over once its first failure is ``interval`` seconds old; it stays open
    ``open_time`` seconds, then admits at most ``probes`` requests half-open, and closes
    when that many succeed.
    """

    threshold: int = 5
    interval: float = 10.0
    open_time: float = 30.0
    probes: int = 3


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``aibridge serve`` takes, as plain data."""

    host: str = "127.0.0.1"
    port: int = 8080
    anthropic_base_url: str = DEFAULT_ANTHROPIC_URL
    openai_base_url: str = DEFAULT_OPENAI_URL
    anthropic_keys: Sequence[str] = ()
    openai_keys: Sequence[str] = ()
    tools_path: Path | None = None
    stream_initiation: StreamInitiation = "eager"
    max_iterations: int = 10
    server: ServerConfig = field(default_factory=ServerConfig)
    timeouts: UpstreamTimeouts = field(default_factory=UpstreamTimeouts)
    redact: Sequence[str] = ()
    mcp_required: bool = False  # an MCP server that does not start stops serve
    guard: GuardConfig = field(default_factory=GuardConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    breaker: BreakerConfig | None = None  # None: no circuit breaker (the default)
