"""``aibridge serve``: the typer command over ``run``; the proxy is imported when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_ANTHROPIC_URL, DEFAULT_OPENAI_URL, ServerConfig, UpstreamTimeouts
from ..console import setup_logging
from ..options import (
    AllowedHostOpt,
    AllowOriginOpt,
    AnthropicKeyOpt,
    AnthropicURLOpt,
    AuthTokenOpt,
    HostOpt,
    InitiationOpt,
    InsecureOpenOpt,
    LogFormatOpt,
    LogLevelOpt,
    MaxIterationsOpt,
    OpenAIKeyOpt,
    OpenAIURLOpt,
    PortOpt,
    ToolsOpt,
    Upstreams,
    format_size,
    guard_config,
    parse_grace,
    parse_size,
    parse_timeout,
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
    max_iterations: MaxIterationsOpt = 10,
    max_body_size: Annotated[
        int,
        typer.Option(
            metavar="SIZE",
            parser=parse_size,
            show_default=False,
            help="Largest request body accepted (larger: 413): bytes, or 64KiB, 32MiB, 1GB; "
            f"default {format_size(ServerConfig.max_body_size)}.",
        ),
    ] = ServerConfig.max_body_size,
    connect_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", parser=parse_timeout, help="Upstream connect timeout."),
    ] = UpstreamTimeouts.connect,
    read_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=parse_timeout,
            help="Upstream idle-read timeout (no byte for this long).",
        ),
    ] = UpstreamTimeouts.read,
    grace_period: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=parse_grace,
            help="How long in-flight requests may finish after Ctrl-C/SIGTERM.",
        ),
    ] = ServerConfig.grace_period,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "text",
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FIXTURE",
            help="Append each interception to this fixture (a new file, or one this proxy "
            "recorded with the same settings).",
        ),
    ] = None,
    redact: Annotated[
        list[str] | None,
        typer.Option(
            "--redact", metavar="HEADER", help="Another header kept out of recordings; repeat."
        ),
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
    """Run the proxy. Prints 'listening on http://HOST:PORT' when ready.

    Example: aibridge serve --port 8080 --anthropic-key "$ANTHROPIC_API_KEY" --record s.jsonl
    """
    from functools import partial

    import trio

    from ..sessions.recording import open_recorder
    from .run import build_app, proxy_guard, serve_proxy

    setup_logging(log_level, log_format)
    options = serve_options(
        host=host,
        port=port,
        upstreams=Upstreams(anthropic_base_url, openai_base_url, anthropic_key, openai_key),
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
    try:
        bridge = build_app(
            options, recorder=recorder, settle=recorder.settled if recorder else None
        )
        trio.run(partial(serve_proxy, bridge, options, guard=guard))
    finally:
        if recorder is not None:
            recorder.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
