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
    AnthropicKeyFileOpt,
    AnthropicKeyOpt,
    AnthropicURLOpt,
    AuthTokenOpt,
    BreakerIntervalOpt,
    BreakerOpenTimeOpt,
    BreakerOpt,
    BreakerProbesOpt,
    BreakerThresholdOpt,
    HostOpt,
    InitiationOpt,
    InsecureOpenOpt,
    LogFormatOpt,
    LogLevelOpt,
    MaxIterationsOpt,
    OpenAIKeyFileOpt,
    OpenAIKeyOpt,
    OpenAIURLOpt,
    PortOpt,
    ToolsOpt,
    Upstreams,
    breaker_config,
    format_size,
    guard_config,
    parse_grace,
    parse_size,
    parse_timeout,
    serve_options,
)
from .chaos_command import (
    ChaosFileOpt,
    ChaosOpt,
    ChaosReportOpt,
    ChaosSeedOpt,
    load_chaos,
    report_on_shutdown,
)


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    anthropic_base_url: AnthropicURLOpt = DEFAULT_ANTHROPIC_URL,
    openai_base_url: OpenAIURLOpt = DEFAULT_OPENAI_URL,
    anthropic_key: AnthropicKeyOpt = None,
    openai_key: OpenAIKeyOpt = None,
    anthropic_key_file: AnthropicKeyFileOpt = None,
    openai_key_file: OpenAIKeyFileOpt = None,
    tools: ToolsOpt = None,
    stream_initiation: InitiationOpt = "eager",
    max_iterations: MaxIterationsOpt = 10,
    max_body_size: Annotated[
        int,
        typer.Option(
            metavar="SIZE",
            parser=parse_size,
            show_default=False,
            help="Largest request body on an intercepted route (larger: 413): bytes, or "
            f"64KiB, 32MiB, 1GB; default {format_size(ServerConfig.max_body_size)}. "
            "Pass-through bodies stream through at any size.",
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
    chaos: ChaosOpt = None,
    chaos_file: ChaosFileOpt = None,
    chaos_seed: ChaosSeedOpt = None,
    chaos_report: ChaosReportOpt = None,
    breaker: BreakerOpt = False,
    breaker_threshold: BreakerThresholdOpt = None,
    breaker_interval: BreakerIntervalOpt = None,
    breaker_open_time: BreakerOpenTimeOpt = None,
    breaker_probes: BreakerProbesOpt = None,
) -> None:
    """Run the proxy. Prints 'listening on http://HOST:PORT' when ready.

    Example: aibridge serve --port 8080 --anthropic-key-file ~/.anthropic.keys --record s.jsonl
    """
    from functools import partial

    import trio

    from ..sessions.recording import open_recorder
    from .run import build_app, proxy_guard, serve_proxy

    setup_logging(log_level, log_format)
    options = serve_options(
        host=host,
        port=port,
        upstreams=Upstreams(
            anthropic_base_url,
            openai_base_url,
            anthropic_key,
            openai_key,
            anthropic_key_file,
            openai_key_file,
        ),
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
        breaker=breaker_config(
            breaker, breaker_threshold, breaker_interval, breaker_open_time, breaker_probes
        ),
    )
    guard = proxy_guard(options)  # before anything is opened: it may refuse the options
    rules = load_chaos(chaos or [], chaos_file, tools, chaos_seed)
    recorder = open_recorder(record, options) if record else None
    try:
        bridge = build_app(
            options,
            recorder=recorder,
            chaos=rules,
            settle=recorder.settled if recorder else None,
        )
        trio.run(partial(serve_proxy, bridge, options, guard=guard))
        report_on_shutdown(bridge.env.chaos, chaos_report)
    finally:
        if recorder is not None:
            recorder.close()
