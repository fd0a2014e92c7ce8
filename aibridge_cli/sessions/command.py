"""``aibridge record``, ``mock``, ``replay`` and ``import``: thin commands over sessions code.

Exit codes: replay 0 when everything matches, 1 on a mismatch, 2 on usage or fixture
errors; record exits with its command's status.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import DEFAULT_ANTHROPIC_URL, DEFAULT_OPENAI_URL, GuardConfig, ServeOptions
from ..console import print_error, report_out, setup_logging, stderr, stdout
from ..errors import AibridgeError, FixtureError
from ..options import (
    AllowedHostOpt,
    AllowOriginOpt,
    AnthropicKeyOpt,
    AnthropicURLOpt,
    InitiationOpt,
    LogLevelOpt,
    OpenAIKeyOpt,
    OpenAIURLOpt,
    ToolsOpt,
    guard_config,
    serve_options,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .fixture import Fixture
    from .mock import MockUpstream, Timing
    from .recording import FixtureWriter
    from .replay import FixtureResult
    from .summary import Summary

RedactOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--redact",
        help="Another header whose value never reaches the fixture (x-api-key, authorization "
        "and cookie always are); repeat for more.",
    ),
]
TimingOpt = Annotated[
    str, typer.Option(help="recorded: reproduce the recorded gaps between chunks; fast: none.")
]


@contextmanager
def exits_on_errors(os_error: str, os_code: int = 2) -> Iterator[None]:
    """Domain errors become one red line and exit 2; ``os_error`` says what an OSError meant."""
    try:
        yield
    except (AibridgeError, OSError, BaseExceptionGroup) as exc:
        # An error raised in a nursery's body arrives wrapped in a group of one.
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, AibridgeError):
            print_error(str(leaf))
            raise typer.Exit(2) from None
        if isinstance(leaf, OSError):
            print_error(f"{os_error}: {leaf.strerror}")
            raise typer.Exit(os_code) from None
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _timing(value: str) -> Timing:
    if value not in ("recorded", "fast"):
        raise FixtureError(f"--timing must be recorded or fast, not {value!r}")
    return "recorded" if value == "recorded" else "fast"


# -- record --------------------------------------------------------------------------------
async def record_command(options: ServeOptions, writer: FixtureWriter, argv: list[str]) -> int:
    """Serve on a free port, run ``argv`` pointed at it, stop when it exits; its status."""
    from functools import partial

    import trio

    from ..proxy.run import build_app, serve_proxy

    bridge = build_app(options, recorder=writer)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(partial(serve_proxy, bridge, options, announce=False))
        base = f"http://{host}:{port}"
        stderr.print(f"recording to {writer.path} through {base}", highlight=False)
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": f"{base}/anthropic",
            "OPENAI_BASE_URL": f"{base}/openai/v1",
        }
        try:
            done = await trio.run_process(argv, check=False, env=env, stdin=None)
        finally:
            nursery.cancel_scope.cancel()
    code = done.returncode
    return 128 - code if code < 0 else code


def record(
    command: Annotated[list[str], typer.Argument(help="The command to run, after --.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Fixture file to append to.")],
    anthropic_key: AnthropicKeyOpt = None,
    openai_key: OpenAIKeyOpt = None,
    tools: ToolsOpt = None,
    redact: RedactOpt = None,
    anthropic_base_url: AnthropicURLOpt = DEFAULT_ANTHROPIC_URL,
    openai_base_url: OpenAIURLOpt = DEFAULT_OPENAI_URL,
    port: Annotated[int, typer.Option(help="Port for the proxy; 0 picks a free one.")] = 0,
    stream_initiation: InitiationOpt = "eager",
    max_iterations: Annotated[int, typer.Option(help="Bound on agentic-loop iterations.")] = 10,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Run COMMAND with ANTHROPIC_BASE_URL and OPENAI_BASE_URL pointing at a recording proxy."""
    import trio

    from .recording import open_recorder

    setup_logging(log_level)
    with exits_on_errors(f"cannot run {command[0]}", 127):
        options = serve_options(
            host="127.0.0.1",
            port=port,
            anthropic_base_url=anthropic_base_url,
            openai_base_url=openai_base_url,
            anthropic_key=anthropic_key,
            openai_key=openai_key,
            tools=tools,
            stream_initiation=stream_initiation,
            max_iterations=max_iterations,
            redact=redact or (),
        )
        writer = open_recorder(output, options)
        try:
            code = trio.run(record_command, options, writer, command)
        finally:
            writer.close()
    stderr.print(f"recorded {writer.written} interceptions to {output}", highlight=False)
    raise typer.Exit(code)


# -- mock ----------------------------------------------------------------------------------
async def serve_mock(mock: MockUpstream, host: str, port: int, guard: GuardConfig) -> None:
    """Serve the mock until SIGINT/SIGTERM, announcing its address like ``serve``; the
    guard's Host, Origin and JSON checks apply as they do to ``serve`` (no token: the mock
    holds no keys)."""
    from ..proxy.guard import Guard
    from ..proxy.run import serve_until_signalled
    from ..proxy.server import Server

    server = Server(mock.app, guard=Guard(guard, json_routes=mock.json_routes))
    await serve_until_signalled(server, host, port)


def mock(
    fixtures: Annotated[list[Path], typer.Argument(help="Fixture files to serve, in order.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 0,
    timing: TimingOpt = "recorded",
    log_level: LogLevelOpt = "info",
    allowed_host: AllowedHostOpt = None,
    allow_origin: AllowOriginOpt = None,
) -> None:
    """Serve the recorded upstream exchanges as a fake Anthropic/OpenAI server."""
    import trio

    from .mock import MockUpstream
    from .recording import load_fixture

    setup_logging(log_level)
    with exits_on_errors(f"cannot listen on {host}:{port}"):
        loaded = [load_fixture(path) for path in fixtures]
        for fixture in loaded:
            for warning in fixture.warnings:
                stderr.print(f"warning: {warning}", highlight=False)
        upstream = MockUpstream(loaded, _timing(timing))
        guard = guard_config(allowed_host, allow_origin)
        trio.run(serve_mock, upstream, host, port, guard)


# -- replay --------------------------------------------------------------------------------
def format_result(result: FixtureResult, max_lines: int = 20) -> RenderableType:
    """A table of one fixture's interceptions, then the differences of each mismatch."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=result.path, title_justify="left", expand=False)
    for column in ("#", "label", "api", "path", "result"):
        table.add_column(column)
    parts: list[RenderableType] = [table]
    styles = {"match": "green", "mismatch": "bold red", "skipped": "yellow"}
    for i, item in enumerate(result.results, start=1):
        table.add_row(
            str(i), item.label, item.api, item.path, Text(item.status, style=styles[item.status])
        )
        if item.status == "mismatch":
            lines = item.problems[:max_lines]
            more = len(item.problems) - len(lines)
            text = Text(f"{item.label}: {len(item.problems)} differences\n", style="bold")
            for line in lines:
                text.append(f"  {line}\n")
            if more:
                text.append(f"  ... and {more} more\n")
            parts.append(text)
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


async def replay_all(
    fixtures: list[Fixture], target: str | None, upstream_port: int, timing: Timing
) -> list[FixtureResult]:
    from .replay import replay_fixture

    return [
        await replay_fixture(f, target=target, upstream_port=upstream_port, timing=timing)
        for f in fixtures
    ]


def replay(
    fixtures: Annotated[
        list[str] | None,
        typer.Argument(help="Fixture files; with --builtin, built-in names (none: all)."),
    ] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="Replay built-in fixtures.")] = False,
    target: Annotated[
        str | None,
        typer.Option(help="Replay against this proxy (base URL) instead of an in-process one."),
    ] = None,
    upstream_port: Annotated[
        int, typer.Option(help="Port for the mock upstream (point --target's upstream at it).")
    ] = 0,
    timing: TimingOpt = "fast",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Replay fixtures through a proxy and compare what the client gets with the recording."""
    import trio

    from .builtin import load_builtin
    from .recording import load_fixture
    from .replay import exit_code

    setup_logging(log_level)
    with exits_on_errors(f"cannot start the mock upstream on port {upstream_port}"):
        if target is not None and not upstream_port:
            raise FixtureError("--target needs --upstream-port, where its upstream points")
        if builtin:
            names: list[str | None] = list(fixtures) if fixtures else [None]
            loaded = [f for name in names for f in load_builtin(name)]
        elif not fixtures:
            raise FixtureError("give fixture files, or --builtin")
        else:
            loaded = [load_fixture(path) for path in fixtures]
        results = trio.run(replay_all, loaded, target, upstream_port, _timing(timing))
    if as_json:
        sys.stdout.write(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    else:
        for result in results:
            stdout.print(format_result(result))
        matched = sum(1 for r in results if r.ok)
        stdout.print(f"{matched}/{len(results)} fixtures match")
    raise typer.Exit(exit_code(results))


# -- import --------------------------------------------------------------------------------
async def import_all(paths: list[Path], out: Path) -> tuple[list[Path], list[str]]:
    from .fixture import dump_fixture
    from .importer import import_txtar, output_name

    written: list[Path] = []
    failed: list[str] = []
    for path in paths:
        try:
            fixture = await import_txtar(path)
        except FixtureError as exc:
            failed.append(str(exc))
            continue
        target = out / output_name(path)
        target.write_text(dump_fixture(fixture), encoding="utf-8")
        written.append(target)
    return written, failed


def import_(
    txtars: Annotated[list[Path], typer.Argument(help="The Go gateway's .txtar fixtures.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the fixtures.")],
) -> None:
    """Convert txtar fixtures to JSONL ones (client side produced by aibridge's proxy)."""
    import trio

    setup_logging("warning")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print_error(f"{output}: cannot create: {exc.strerror}")
        raise typer.Exit(2) from None
    written, failed = trio.run(import_all, txtars, output)
    for path in written:
        stdout.print(f"wrote {path}")
    for message in failed:
        print_error(message)
    raise typer.Exit(2 if failed else 0)


# -- show ----------------------------------------------------------------------------------
def format_summary(fixture: Fixture, summaries: list[Summary]) -> RenderableType:
    """One row per interception: what it asked, what it cost, how it went and how fast."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    settings = "".join(f", {k} {v}" for k, v in sorted(fixture.proxy.items()))
    table = Table(
        title=f"{fixture.path} ({len(summaries)} interception(s){settings})",
        title_justify="left",
    )
    for column in ("#", "label", "api", "model", "status", "tokens in/out", "tool calls"):
        table.add_column(column, justify="right" if column in ("#", "tokens in/out") else "left")
    for column in ("keys tried", "duration", "first event"):
        table.add_column(
            column, justify="left" if column == "keys tried" else "right", no_wrap=True
        )
    from ..views.page import fmt_ms

    for i, s in enumerate(summaries, start=1):
        status = Text(str(s.status) if s.status is not None else "none")
        status.stylize("green" if s.status is not None and s.status < 400 else "bold red")
        keys = Text()
        for n, attempt in enumerate(s.attempts):
            good = attempt.facts.status is not None and attempt.facts.status < 400
            keys.append("\n" if n else "")
            keys.append(attempt.key or "client key")
            keys.append(f" {attempt.verdict}", style="green" if good else "red")
        table.add_row(
            str(i),
            s.label,
            s.api,
            s.model or "-",
            status,
            f"{s.usage.input_tokens} / {s.usage.output_tokens}",
            ", ".join(s.injected) or "-",
            keys if s.attempts else "-",
            fmt_ms(s.duration_ms),
            fmt_ms(s.client.first_event_ms),
        )
    # An outcome other than ok is a sentence: a note under the table, not a narrow column.
    notes = [
        Text.assemble(f"#{i} {s.label}: ", (s.outcome, "yellow"))
        for i, s in enumerate(summaries, start=1)
        if s.outcome != "ok"
    ]
    return Group(table, *notes)


def show(
    fixtures: Annotated[
        list[str], typer.Argument(help="Fixture files; with --builtin, built-in names.")
    ],
    builtin: Annotated[bool, typer.Option("--builtin", help="Show built-in fixtures.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML page here (one fixture)."),
    ] = None,
) -> None:
    """Summarise recorded sessions: per interception its API, model, status, tokens, tool
    calls, keys tried, duration and time to first event; --html writes a timeline page."""
    from .builtin import load_builtin
    from .recording import load_fixture
    from .summary import summarize

    with exits_on_errors(f"cannot write {html}"):
        if builtin:
            loaded = [f for name in fixtures for f in load_builtin(name)]
        else:
            loaded = [load_fixture(path) for path in fixtures]
        if html is not None and len(loaded) != 1:
            raise FixtureError(f"--html writes one page: give one fixture, not {len(loaded)}")
        for fixture in loaded:
            for warning in fixture.warnings:
                stderr.print(f"warning: {warning}", highlight=False)
            summaries = [
                summarize(record, label)
                for record, label in zip(fixture.interceptions, fixture.labels, strict=True)
            ]
            report_out.print(format_summary(fixture, summaries))
            if html is not None:
                from ..views.session import session_page

                html.write_text(session_page(fixture, summaries), encoding="utf-8")
                stderr.print(f"wrote {html}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(record)
    app.command()(mock)
    app.command()(replay)
    app.command("import")(import_)
    app.command()(show)
