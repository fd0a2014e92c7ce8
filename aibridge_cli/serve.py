"""Assembling and running the proxy: options in, a listening server out."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import trio

from .app import BridgeApp
from .bridge import BridgeConfig, Environment, StreamInitiation, Upstream
from .errors import ConfigError
from .interception import Recorder
from .keypool import KeyPool
from .server import Server, ServerConfig
from .tools import ToolSet, load_tools
from .upstream import UpstreamTimeouts, make_client

DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"


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


def keys_from(option: Sequence[str], env_var: str) -> list[str]:
    """Keys from the repeated option, else from the comma-separated environment variable."""
    if option:
        return [k for k in option if k]
    return [k.strip() for k in os.environ.get(env_var, "").split(",") if k.strip()]


def build_app(
    options: ServeOptions,
    *,
    tools: ToolSet | None = None,
    recorder: Recorder | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> BridgeApp:
    """The proxy app for these options (the upstream client is created here, once)."""
    if tools is None:
        tools = load_tools(options.tools_path) if options.tools_path else ToolSet()
    if options.max_iterations < 1:
        raise ConfigError(f"--max-iterations must be at least 1, not {options.max_iterations}")
    env = Environment(
        client=make_client(options.timeouts, network_backend),
        tools=tools,
        config=BridgeConfig(
            stream_initiation=options.stream_initiation, max_iterations=options.max_iterations
        ),
    )
    upstreams = {
        "anthropic": Upstream(
            options.anthropic_base_url, KeyPool.from_secrets(list(options.anthropic_keys))
        ),
        "openai": Upstream(
            options.openai_base_url, KeyPool.from_secrets(list(options.openai_keys)), auth="bearer"
        ),
    }
    return BridgeApp(env, upstreams, recorder=recorder)


async def serve_proxy(
    app: BridgeApp,
    options: ServeOptions,
    *,
    announce: bool = True,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the proxy until SIGINT/SIGTERM, then shut down gracefully."""
    server = Server(app, options.server)
    async with app.env.client, trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, server)
        host, port = await nursery.start(server.serve_tcp, options.host, options.port)
        if announce:
            shown = f"[{host}]" if ":" in host else host
            sys.stdout.write(f"listening on http://{shown}:{port}\n")
            sys.stdout.flush()
        task_status.started((host, port))
        await server.stopped.wait()
        nursery.cancel_scope.cancel()


async def _watch_signals(server: Server) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if server.shutting_down:
                raise KeyboardInterrupt  # a second signal: stop now
            server.shutdown()
