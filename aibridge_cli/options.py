"""Options the commands share, as typer ``Annotated`` types, and the serve options they
build. Light on purpose: importing this loads typer and the settings, no machinery."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from .config import GuardConfig, ServeOptions, ServerConfig, StreamInitiation, UpstreamTimeouts


def keys_from(option: Sequence[str], env_var: str) -> list[str]:
    """Keys from the repeated option, else from the comma-separated environment variable."""
    if option:
        return [k for k in option if k]
    return [k.strip() for k in os.environ.get(env_var, "").split(",") if k.strip()]


HostOpt = Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless you mean it.")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")]
AnthropicURLOpt = Annotated[str, typer.Option(help="Anthropic upstream base URL.")]
OpenAIURLOpt = Annotated[str, typer.Option(help="OpenAI upstream base URL (with /v1).")]
AnthropicKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--anthropic-key",
        help="Anthropic API key for the pool; repeat in failover order. "
        "Default: AIBRIDGE_ANTHROPIC_KEYS (comma-separated). None: the client's key is forwarded.",
    ),
]
OpenAIKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--openai-key",
        help="OpenAI API key for the pool; repeat in failover order. "
        "Default: AIBRIDGE_OPENAI_KEYS (comma-separated).",
    ),
]
ToolsOpt = Annotated[
    Path | None, typer.Option("--tools", help="TOML file of injected tools, one table per tool.")
]
InitiationOpt = Annotated[
    StreamInitiation,
    typer.Option(
        help="eager: initiate the stream before each agentic continuation (the fix). "
        "lazy: the pre-fix logic, kept as a fuzzing target.",
    ),
]
LogLevelOpt = Annotated[str, typer.Option(help="Log level on stderr: debug, info, warning, error.")]
AllowedHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        help="Another Host header to accept: NAME (any port) or NAME:PORT; repeat for more. "
        "Default: only the address served (127.0.0.1, localhost, [::1] with its port).",
    ),
]
AllowOriginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin",
        help="A browser origin whose pages may call this server, e.g. http://localhost:3000; "
        "repeat for more. Requests from other pages get 403. '*' admits every web page: unsafe.",
    ),
]
AuthTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        envvar="AIBRIDGE_AUTH_TOKEN",
        show_envvar=True,
        help="Token every client must send as its API key (x-api-key or bearer); others get "
        "401. Needed to serve a key pool beyond loopback. Prefer the environment variable: "
        "a command line is visible to other users.",
    ),
]
InsecureOpenOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-open",
        help="Serve a key pool beyond loopback without a token: anyone who can reach the "
        "address spends your keys.",
    ),
]


def guard_config(
    allowed_host: Sequence[str] | None,
    allow_origin: Sequence[str] | None,
    auth_token: str | None = None,
    insecure_open: bool = False,
) -> GuardConfig:
    """The guard settings from the command line; an empty token is no token."""
    return GuardConfig(
        allowed_hosts=tuple(allowed_host or ()),
        allowed_origins=tuple(allow_origin or ()),
        auth_token=auth_token or None,
        insecure_open=insecure_open,
    )


def serve_options(
    *,
    host: str,
    port: int,
    anthropic_base_url: str,
    openai_base_url: str,
    anthropic_key: list[str] | None,
    openai_key: list[str] | None,
    tools: Path | None,
    stream_initiation: StreamInitiation,
    max_iterations: int,
    max_body_size: int = ServerConfig.max_body_size,
    connect_timeout: float = UpstreamTimeouts.connect,
    read_timeout: float = UpstreamTimeouts.read,
    grace_period: float = ServerConfig.grace_period,
    redact: Sequence[str] = (),
    mcp_required: bool = False,
    guard: GuardConfig | None = None,
) -> ServeOptions:
    """The serve options from the command line, with keys from the environment; the
    limits and timeouts default to the server's and the upstream client's own."""
    return ServeOptions(
        host=host,
        port=port,
        anthropic_base_url=anthropic_base_url,
        openai_base_url=openai_base_url,
        anthropic_keys=keys_from(anthropic_key or [], "AIBRIDGE_ANTHROPIC_KEYS"),
        openai_keys=keys_from(openai_key or [], "AIBRIDGE_OPENAI_KEYS"),
        tools_path=tools,
        stream_initiation=stream_initiation,
        max_iterations=max_iterations,
        server=ServerConfig(max_body_size=max_body_size, grace_period=grace_period),
        timeouts=UpstreamTimeouts(connect=connect_timeout, read=read_timeout),
        redact=tuple(redact),
        mcp_required=mcp_required,
        guard=guard or GuardConfig(),
    )
