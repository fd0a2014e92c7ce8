"""``aibridge serve``: the typer command over ``run``; the proxy is imported when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_ANTHROPIC_URL, DEFAULT_OPENAI_URL, ServerConfig, UpstreamTimeouts
from ..console import print_error, setup_logging
from ..errors import AibridgeError
from ..options import (
    AllowedHostOpt,
    AllowOriginOpt,
    AnthropicKeyOpt,
    AnthropicURLOpt,
    AuthTokenOpt,
    HostOpt,
    InitiationOpt,
    InsecureOpenOpt,
    LogLevelOpt,
    OpenAIKeyOpt,
    OpenAIURLOpt,
    PortOpt,
    ToolsOpt,
    guard_config,
    serve_options,
)


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    anthropic_base_url: AnthropicURLOpt = DEFAULT_ANTHROPIC_URL,
    openai_base_url: OpenAIURLOpt = DEFAULT_OPENAI_URL,
    anthropic_key: AnthropicKeyOpt = None,
    openai_key: OpenAIKeyOpt = None,
    tools: ToolsOpt = None,
    stream_initiation: InitiationOpt = "eager",
    max_iterations: Annotated[int, typer.Option(help="Bound on agentic-loop iterations.")] = 10,
    max_body_size: Annotated[
        int, typer.Option(help="Largest request body accepted, in bytes (larger: 413).")
    ] = ServerConfig.max_body_size,
    connect_timeout: Annotated[
        float, typer.Option(help="Upstream connect timeout, seconds.")
    ] = UpstreamTimeouts.connect,
    read_timeout: Annotated[
        float, typer.Option(help="Upstream idle-read timeout, seconds (no byte for this long).")
    ] = UpstreamTimeouts.read,
    grace_period: Annotated[
        float, typer.Option(help="Seconds in-flight requests get on Ctrl-C/SIGTERM.")
    ] = ServerConfig.grace_period,
    log_level: LogLevelOpt = "info",
    record: Annotated[
        Path | None, typer.Option("--record", help="Append each interception to this fixture.")
    ] = None,
    redact: Annotated[
        list[str] | None,
        typer.Option("--redact", help="Another header kept out of recordings; repeat for more."),
    ] = None,
    mcp_required: Annotated[
        bool,
        typer.Option(help="Exit (status 2) when an MCP server of the tools file does not start."),
    ] = False,
    allowed_host: AllowedHostOpt = None,
    allow_origin: AllowOriginOpt = None,
    auth_token: AuthTokenOpt = None,
    insecure_open: InsecureOpenOpt = False,
) -> None:
    """Run the proxy. Prints 'listening on http://HOST:PORT' when ready."""
    from functools import partial

    import trio

    from ..sessions.recording import open_recorder
    from .run import build_app, proxy_guard, serve_proxy

    setup_logging(log_level)
    try:
        options = serve_options(
            host=host,
            port=port,
            anthropic_base_url=anthropic_base_url,
            openai_base_url=openai_base_url,
            anthropic_key=anthropic_key,
            openai_key=openai_key,
            tools=tools,
            stream_initiation=stream_initiation,
            max_iterations=max_iterations,
            max_body_size=max_body_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            grace_period=grace_period,
            redact=redact or (),
            mcp_required=mcp_required,
            guard=guard_config(allowed_host, allow_origin, auth_token, insecure_open),
        )
        guard = proxy_guard(options)  # before anything is opened: it may refuse the options
        recorder = open_recorder(record, options) if record else None
        bridge = build_app(options, recorder=recorder)
        trio.run(partial(serve_proxy, bridge, options, guard=guard))
    except AibridgeError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:
        print_error(f"cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command()(serve)
