"""Options the commands share, as typer ``Annotated`` types, and the serve options they
build. Light on purpose: importing this loads typer and the settings, no machinery."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

import typer

from .config import (
    BreakerConfig,
    GuardConfig,
    ServeOptions,
    ServerConfig,
    StreamInitiation,
    UpstreamTimeouts,
)
from .console import LogFormat, LogLevel
from .pool_keys import pool_keys

# -- values checked when parsed -------------------------------------------------------------
# Each parser takes the text of an option (or its default, already typed) and returns the
# value or raises ``typer.BadParameter``: a bad value stops the command before anything
# starts, as one line naming the option (``cli.AibridgeGroup``).
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_port(value: str | int) -> int:
    """A TCP port: 0 to 65535 (0: the system picks a free one)."""
    try:
        port = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a port number (0 to 65535)") from None
    if not 0 <= port <= 65535:
        raise typer.BadParameter(f"{port} is not a port (ports are 0 to 65535; 0 picks a free one)")
    return port


def parse_size(value: str | int) -> int:
    """A positive size in bytes, with an optional unit: 1024, 64KiB, 32MiB, 1.5MB."""
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        match = _SIZE.fullmatch(value)
        if match is None or match.group(2).lower() not in _SIZE_UNITS:
            raise typer.BadParameter(
                f"{value!r} is not a size (a number of bytes, or with a unit: 64KiB, 32MiB, 1GB)"
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _SIZE_UNITS[unit])
    if size <= 0:
        raise typer.BadParameter(f"{value!r} is not a positive size")
    return size


def format_size(size: int) -> str:
    """A byte count the way ``parse_size`` reads it back: 32MiB, 1500B."""
    for unit in ("GiB", "MiB", "KiB"):
        scale = _SIZE_UNITS[unit.lower()]
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def _number(value: str | float, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number of {what}") from None
    if math.isnan(number) or math.isinf(number):
        raise typer.BadParameter(f"{value!r} is not a finite number of {what}")
    return number


def parse_timeout(value: str | float) -> float:
    """A positive number of seconds."""
    seconds = _number(value, "seconds")
    if seconds <= 0:
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return seconds


def parse_grace(value: str | float) -> float:
    """Zero or more seconds (0: cut in-flight requests at once)."""
    seconds = _number(value, "seconds")
    if seconds < 0:
        raise typer.BadParameter(f"{value} is negative (0 or more seconds)")
    return seconds


def parse_count(value: str | int) -> int:
    """A whole number of at least 1."""
    try:
        count = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a whole number") from None
    if count < 1:
        raise typer.BadParameter(f"{count} is less than 1")
    return count


def parse_base_url(value: str) -> str:
    """An http(s) URL with a host, such as https://api.anthropic.com."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"{value!r} is not an http(s) URL with a host (such as https://api.anthropic.com)"
        )
    try:
        parts.port  # noqa: B018  # a bad port raises here
    except ValueError:
        raise typer.BadParameter(f"{value!r} has a port that is not 0 to 65535") from None
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        # request paths are appended to it: a query would end up inside the path
        raise typer.BadParameter(
            f"{value!r} has a query or a fragment; a base URL is scheme, host and path"
        )
    return value


HostOpt = Annotated[
    str,
    typer.Option(metavar="ADDRESS", help="Address to bind; keep 127.0.0.1 unless you mean it."),
]
PortOpt = Annotated[
    int,
    typer.Option(metavar="PORT", parser=parse_port, help="Port to listen on; 0 picks a free one."),
]
AnthropicURLOpt = Annotated[
    str, typer.Option(metavar="URL", parser=parse_base_url, help="Anthropic upstream base URL.")
]
OpenAIURLOpt = Annotated[
    str,
    typer.Option(metavar="URL", parser=parse_base_url, help="OpenAI upstream base URL (with /v1)."),
]
AnthropicKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--anthropic-key",
        metavar="KEY",
        help="Anthropic API key for the pool; repeat in failover order. "
        "Default: AIBRIDGE_ANTHROPIC_KEYS (comma-separated). None: the client's key is forwarded. "
        "Prefer --anthropic-key-file or the variable: a command line is visible to other users.",
    ),
]
OpenAIKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--openai-key",
        metavar="KEY",
        help="OpenAI API key for the pool; repeat in failover order. "
        "Default: AIBRIDGE_OPENAI_KEYS (comma-separated). "
        "Prefer --openai-key-file or the variable: a command line is visible to other users.",
    ),
]
AnthropicKeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--anthropic-key-file",
        metavar="FILE",
        help="Anthropic pool keys, one a line (blank lines and # comments skipped), after "
        "any --anthropic-key; the file must be not readable by other users (chmod 600).",
    ),
]
OpenAIKeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--openai-key-file",
        metavar="FILE",
        help="OpenAI pool keys, one a line (blank lines and # comments skipped), after "
        "any --openai-key; the file must be not readable by other users (chmod 600).",
    ),
]
ToolsOpt = Annotated[
    Path | None,
    typer.Option(
        "--tools",
        metavar="FILE",
        help="TOML file of injected tools, one tool table each (see the README).",
    ),
]
InitiationOpt = Annotated[
    StreamInitiation,
    typer.Option(
        help="eager: initiate the stream before each agentic continuation (the fix). "
        "lazy: the pre-fix logic, kept as a fuzzing target.",
    ),
]
MaxIterationsOpt = Annotated[
    int,
    typer.Option(metavar="N", parser=parse_count, help="Bound on agentic-loop iterations."),
]
LogLevelOpt = Annotated[
    LogLevel, typer.Option(case_sensitive=False, help="Log level of the lines on stderr.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(help="text: one readable line per record; json: one JSON object per line."),
]
AllowedHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        metavar="HOST",
        help="Another Host header to accept: NAME (any port) or NAME:PORT; repeat for more. "
        "Default: only the address served (127.0.0.1, localhost, [::1] with its port).",
    ),
]
AllowOriginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin",
        metavar="ORIGIN",
        help="A browser origin whose pages may call this server, e.g. http://localhost:3000; "
        "repeat for more. Requests from other pages get 403. '*' admits every web page: unsafe.",
    ),
]
AuthTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        metavar="TOKEN",
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
    """The guard settings from the command line (an empty token is kept, for the guard
    to refuse: it guards nothing)."""
    return GuardConfig(
        allowed_hosts=tuple(allowed_host or ()),
        allowed_origins=tuple(allow_origin or ()),
        auth_token=auth_token,
        insecure_open=insecure_open,
    )


class Upstreams(NamedTuple):
    """Where each provider is and the keys of its pool, as the command line gave them (keys
    not given there come from the environment when the options are built)."""

    anthropic_base_url: str
    openai_base_url: str
    anthropic_key: list[str] | None
    openai_key: list[str] | None
    anthropic_key_file: Path | None = None
    openai_key_file: Path | None = None


def serve_options(
    *,
    host: str,
    port: int,
    upstreams: Upstreams,
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
    breaker: BreakerConfig | None = None,
) -> ServeOptions:
    """The serve options from the command line, with keys from the environment; the
    limits and timeouts default to the server's and the upstream client's own."""
    return ServeOptions(
        host=host,
        port=port,
        anthropic_base_url=upstreams.anthropic_base_url,
        openai_base_url=upstreams.openai_base_url,
        anthropic_keys=pool_keys(
            upstreams.anthropic_key or [],
            upstreams.anthropic_key_file,
            "--anthropic-key",
            "AIBRIDGE_ANTHROPIC_KEYS",
        ),
        openai_keys=pool_keys(
            upstreams.openai_key or [],
            upstreams.openai_key_file,
            "--openai-key",
            "AIBRIDGE_OPENAI_KEYS",
        ),
        tools_path=tools,
        stream_initiation=stream_initiation,
        max_iterations=max_iterations,
        server=ServerConfig(max_body_size=max_body_size, grace_period=grace_period),
        timeouts=UpstreamTimeouts(connect=connect_timeout, read=read_timeout),
        redact=tuple(redact),
        mcp_required=mcp_required,
        guard=guard or GuardConfig(),
        breaker=breaker,
    )


BreakerOpt = Annotated[
    bool,
    typer.Option(
        "--breaker",
        help="Circuit breaker per provider, endpoint and model: after a run of 429/503/504/529 "
        "answers, answer 503 without calling the upstream for a while (docs/breaker.md).",
    ),
]


def _breaker_setting(metavar: str, parser: Callable[[str], Any], help: str) -> Any:
    """A ``--breaker-*`` option: no default shown (None means the default in ``help``)."""
    return typer.Option(metavar=metavar, parser=parser, show_default=False, help=help)


BreakerThresholdOpt = Annotated[
    int | None,
    _breaker_setting(
        "N",
        parse_count,
        f"Failures in a row that open a breaker; default {BreakerConfig.threshold}.",
    ),
]
BreakerIntervalOpt = Annotated[
    float | None,
    _breaker_setting(
        "SECONDS",
        parse_timeout,
        "A run of failures starts over once its first is this old; "
        f"default {BreakerConfig.interval:g}.",
    ),
]
BreakerOpenTimeOpt = Annotated[
    float | None,
    _breaker_setting(
        "SECONDS",
        parse_timeout,
        f"How long a breaker stays open; default {BreakerConfig.open_time:g}.",
    ),
]
BreakerProbesOpt = Annotated[
    int | None,
    _breaker_setting(
        "N",
        parse_count,
        "Requests a half-open breaker lets through, and successes that close it; "
        f"default {BreakerConfig.probes}.",
    ),
]


def breaker_config(
    on: bool,
    threshold: int | None = None,
    interval: float | None = None,
    open_time: float | None = None,
    probes: int | None = None,
) -> BreakerConfig | None:
    """The breaker's settings from the command line; a setting without ``--breaker`` is a
    mistake, not a silent no-op."""
    given = {
        "--breaker-threshold": threshold,
        "--breaker-interval": interval,
        "--breaker-open-time": open_time,
        "--breaker-probes": probes,
    }
    if not on:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise typer.BadParameter(f"{named[0]} needs --breaker")
        return None
    default = BreakerConfig()
    return BreakerConfig(
        threshold=default.threshold if threshold is None else threshold,
        interval=default.interval if interval is None else interval,
        open_time=default.open_time if open_time is None else open_time,
        probes=default.probes if probes is None else probes,
    )
