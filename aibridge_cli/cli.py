"""The ``aibridge`` command line: thin typer commands over plain functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import trio
import typer

from . import __version__
from .bridge import StreamInitiation
from .console import print_error, setup_logging
from .errors import AibridgeError
from .recording import open_recorder
from .serve import (
    DEFAULT_ANTHROPIC_URL,
    DEFAULT_OPENAI_URL,
    ServeOptions,
    build_app,
    keys_from,
    serve_proxy,
)
from .server import ServerConfig
from .upstream import UpstreamTimeouts

app = typer.Typer(
    name="aibridge",
    help="Record, replay and fuzz AI API traffic through a local proxy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aibridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """aibridge: a local proxy for the Anthropic and OpenAI APIs that records, replays, fuzzes."""


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


def serve_options(
    host: str,
    port: int,
    anthropic_base_url: str,
    openai_base_url: str,
    anthropic_key: list[str] | None,
    openai_key: list[str] | None,
    tools: Path | None,
    stream_initiation: StreamInitiation,
    max_iterations: int,
    *,
    max_body_size: int = ServerConfig.max_body_size,
    connect_timeout: float = UpstreamTimeouts.connect,
    read_timeout: float = UpstreamTimeouts.read,
    grace_period: float = ServerConfig.grace_period,
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
    )


@app.command()
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
) -> None:
    """Run the proxy. Prints 'listening on http://HOST:PORT' when ready."""
    setup_logging(log_level)
    try:
        options = serve_options(
            host,
            port,
            anthropic_base_url,
            openai_base_url,
            anthropic_key,
            openai_key,
            tools,
            stream_initiation,
            max_iterations,
            max_body_size=max_body_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            grace_period=grace_period,
        )
        recorder = open_recorder(record, options, redact or []) if record else None
        bridge = build_app(options, recorder=recorder)
        bridge.redact = tuple(redact or [])
        trio.run(serve_proxy, bridge, options)
    except AibridgeError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:
        print_error(f"cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def main() -> None:
    app()


from . import sessions_cli  # noqa: E402, F401  (record, mock, replay, import)
from .fuzz.command import register as _register_fuzz  # noqa: E402

_register_fuzz(app)
