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
class UpstreamTimeouts:
    """Every upstream timeout, explicit. ``read`` is the idle time allowed between bytes."""

    connect: float = 10.0
    read: float = 300.0
    write: float = 30.0
    pool: float = 10.0


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
