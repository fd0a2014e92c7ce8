"""``aibridge record``, ``mock``, ``replay`` and ``import``: thin commands over sessions code.

Exit codes: replay 0 when everything matches, 1 on a mismatch or an interception it could
not check (unless --allow-skips), 2 on usage or fixture errors; record exits with its
command's status.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..config import DEFAULT_ANTHROPIC_URL, DEFAULT_OPENAI_URL, GuardConfig, ServeOptions
from ..console import print_error, report_out, setup_logging, stderr, stdout
from ..errors import CommandNotRunnable, FixtureError
from ..options import (
    AllowedHostOpt,
    AllowOriginOpt,
    AnthropicKeyFileOpt,
    AnthropicKeyOpt,
    AnthropicURLOpt,
    HostOpt,
    InitiationOpt,
    LogFormatOpt,
    LogLevelOpt,
    MaxIterationsOpt,
    OpenAIKeyFileOpt,
    OpenAIKeyOpt,
    OpenAIURLOpt,
    PortOpt,
    ToolsOpt,
    Upstreams,
    guard_config,
    parse_base_url,
    parse_port,
    parse_size,
    serve_options,
)

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from .fixture import Fixture
    from .matching import MatchRules
    from .mock import MockUpstream
    from .recording import FixtureWriter
    from .replay import FixtureResult
    from .summary import SessionGroup, Summary

RedactOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--redact",
        metavar="HEADER",
        help="Another header whose value never reaches the fixture (x-api-key, authorization "
        "and cookie always are); repeat for more.",
    ),
]
# the same values as ``mock.Timing``, spelled here so the help loads no sessions code
TimingOpt = Annotated[
    Literal["recorded", "fast"],
    typer.Option(help="recorded: reproduce the recorded gaps between chunks; fast: none."),
]

# Request matching for mock and replay (sessions/matching.py); names are checked there.
MatchOnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--match-on",
        metavar="FIELDS",
        help="What a request must share with a recorded one: method, path, query, body "
        "(comma-separated or repeated; default: all four).",
    ),
]
IgnoreOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="JSONPATH",
        help="A request body field left out of matching ($.metadata, "
        "$.messages[*].cache_control, $..cache_control at any depth, max_tokens); repeat "
        "for more.",
    ),
]
NoNormalizeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--no-normalize",
        metavar="NAME",
        help="Switch a built-in normalizer off (ids, claude-code-date, codex-client-metadata, "
        "...: see docs/fixture-format.md); repeat for more.",
    ),
]


def match_rules(
    match_on: list[str] | None, ignore: list[str] | None, no_normalize: list[str] | None
) -> MatchRules:
    """The matching rules the options give; a bad name or path is a ``ConfigError``."""
    from .matching import MatchRules

    return MatchRules.of(match_on or None, ignore or (), no_normalize or ())


BodyLimitOpt = Annotated[
    int | None,
    typer.Option(
        "--max-body-size",
        metavar="SIZE",
        parser=parse_size,
        show_default=False,
        help="Largest request body accepted (larger: 413): bytes, or 64KiB, 32MiB, 1GB; "
        "default: the largest body the fixtures hold, with a quarter more, at least 32MiB.",
    ),
]


# -- record --------------------------------------------------------------------------------
async def record_command(options: ServeOptions, writer: FixtureWriter, argv: list[str]) -> int:
    """Serve on a free port, run ``argv`` pointed at it, stop when it exits; its status."""
    from functools import partial

    import trio

    from ..child_env import agent_environment
    from ..proxy.run import build_app, serve_proxy
    from .clients import pointed_at

    bridge = build_app(options, recorder=writer, settle=writer.settled)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(partial(serve_proxy, bridge, options, announce=False))
        base = f"http://{host}:{port}"
        stderr.print(f"recording to {writer.path} through {base}", highlight=False, soft_wrap=True)
        pools = {"anthropic": options.anthropic_keys, "openai": options.openai_keys}
        env = agent_environment(
            {"ANTHROPIC_BASE_URL": f"{base}/anthropic", "OPENAI_BASE_URL": f"{base}/openai/v1"},
            pooled=[provider for provider, keys in pools.items() if keys],
            secrets=[*options.anthropic_keys, *options.openai_keys, options.guard.auth_token or ""],
        )
        try:
            code = await run_child(pointed_at(argv, f"{base}/openai/v1"), env)
        except OSError as exc:
            raise CommandNotRunnable(
                f"cannot run {argv[0]} ({exc.strerror or exc})",
                hint="check the command after -- and your PATH",
            ) from None
        finally:
            nursery.cancel_scope.cancel()
    return 128 - code if code < 0 else code


async def run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv`` to its end and return its status. A SIGTERM to ``record`` is passed
    on, so the child ends as it chooses and its status is still ``record``'s (its proxy
    serves until then); SIGINT is the terminal's, which sends it to both."""
    from functools import partial

    import trio

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            run = partial(trio.run_process, argv, check=False, env=env, stdin=None)
            process: trio.Process = await nursery.start(run)

            async def forward() -> None:
                async for signum in signals:
                    process.send_signal(signum)

            nursery.start_soon(forward)
            code = await process.wait()
            nursery.cancel_scope.cancel()
    return code


def record(
    command: Annotated[
        list[str], typer.Argument(metavar="COMMAND", help="The command to run, after --.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FIXTURE",
            help="Fixture to record to: a new file, or one recorded with the same settings.",
        ),
    ],
    anthropic_key: AnthropicKeyOpt = None,
    openai_key: OpenAIKeyOpt = None,
    anthropic_key_file: AnthropicKeyFileOpt = None,
    openai_key_file: OpenAIKeyFileOpt = None,
    tools: ToolsOpt = None,
    redact: RedactOpt = None,
    anthropic_base_url: AnthropicURLOpt = DEFAULT_ANTHROPIC_URL,
    openai_base_url: OpenAIURLOpt = DEFAULT_OPENAI_URL,
    port: PortOpt = 0,
    stream_initiation: InitiationOpt = "eager",
    max_iterations: MaxIterationsOpt = 10,
    log_level: LogLevelOpt = "warning",
    log_format: LogFormatOpt = "text",
) -> None:
    """Run COMMAND with ANTHROPIC_BASE_URL and OPENAI_BASE_URL pointing at a recording proxy
    (Codex CLI, which reads neither, gets -c openai_base_url=... first among its arguments).

    Exits with COMMAND's status (127 when it cannot start).

    Example: aibridge record -o session.jsonl -- claude -p "hello"
    """
    import trio

    from .recording import open_recorder

    setup_logging(log_level, log_format)
    if shutil.which(command[0]) is None:
        # before a proxy starts and a fixture is created for a session that cannot happen
        raise CommandNotRunnable(
            f"cannot run {command[0]} (not found)", hint="check the command after -- and your PATH"
        )
    options = serve_options(
        host="127.0.0.1",
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
        redact=redact or (),
    )
    writer = open_recorder(output, options)
    try:
        code = trio.run(record_command, options, writer, command)
    finally:
        writer.close()
    done = (
        f"recorded {writer.written} interceptions to {output}"
        if writer.written or not writer.created
        else f"recorded nothing: {output} not created"
    )
    if writer.dropped:  # the disk refused them: logged when it happened
        done += f"; {writer.dropped} not recorded (the disk refused them)"
    stderr.print(done, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# -- mock ----------------------------------------------------------------------------------
async def serve_mock(
    mock: MockUpstream, host: str, port: int, guard: GuardConfig, max_body_size: int
) -> None:
    """Serve the mock until SIGINT/SIGTERM, announcing its address like ``serve``; the
    guard's Host, Origin and JSON checks apply as they do to ``serve`` (no token: the mock
    holds no keys)."""
    from ..config import ServerConfig
    from ..proxy.guard import Guard
    from ..proxy.run import serve_until_signalled
    from ..proxy.server import Server

    server = Server(
        mock.app,
        ServerConfig(max_body_size=max_body_size),
        guard=Guard(guard, json_routes=mock.json_routes),
    )
    await serve_until_signalled(server, host, port)


def mock(
    fixtures: Annotated[
        list[Path], typer.Argument(metavar="FIXTURE", help="Fixture files to serve, in order.")
    ],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 0,
    timing: TimingOpt = "recorded",
    upstream_side: Annotated[
        bool,
        typer.Option(
            "--upstream-side",
            help="Serve what the upstream answered the recording proxy, on the provider's "
            "own routes (/v1/messages, /v1/responses...), to put a proxy in front: "
            "serve --anthropic-base-url http://127.0.0.1:PORT --openai-base-url "
            "http://127.0.0.1:PORT/v1.",
        ),
    ] = False,
    max_body_size: BodyLimitOpt = None,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "text",
    allowed_host: AllowedHostOpt = None,
    allow_origin: AllowOriginOpt = None,
    match_on: MatchOnOpt = None,
    ignore: IgnoreOpt = None,
    no_normalize: NoNormalizeOpt = None,
) -> None:
    """Answer clients as the recording proxy did: each request gets what its client got.

    On serve's routes, with no upstream, key, tools file or MCP server.

    Example: aibridge mock session.jsonl --port 9000, then
    ANTHROPIC_BASE_URL=http://127.0.0.1:9000/anthropic claude -p "hello"
    (OpenAI clients: http://127.0.0.1:9000/openai/v1)
    """
    import trio

    from ..config import ServerConfig
    from .fixture import body_limit
    from .mock import MockUpstream, Side, unserved
    from .recording import load_fixture

    setup_logging(log_level, log_format)
    rules = match_rules(match_on, ignore, no_normalize)
    loaded = [load_fixture(path) for path in fixtures]
    for fixture in loaded:
        for warning in [*fixture.warnings, *unserved(fixture)]:
            stderr.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    side: Side = "upstream" if upstream_side else "client"
    upstream = MockUpstream(loaded, timing, rules, side=side)
    guard = guard_config(allowed_host, allow_origin)
    limit = max_body_size or body_limit(loaded, ServerConfig.max_body_size)
    trio.run(serve_mock, upstream, host, port, guard, limit)


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
        if item.status == "skipped":
            parts.append(Text(f"{item.label}: {'; '.join(item.problems)}", style="yellow"))
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
    fixtures: list[Fixture],
    target: str | None,
    upstream_port: int,
    timing: Literal["recorded", "fast"],
    replayed: Callable[[], None],
    rules: MatchRules,
    allow_skips: bool = False,
    max_body_size: int | None = None,
) -> list[FixtureResult]:
    from ..proxy.run import check_target
    from .replay import replay_fixture

    if target is not None:
        await check_target(target)
    return [
        await replay_fixture(
            f,
            target=target,
            upstream_port=upstream_port,
            timing=timing,
            replayed=replayed,
            rules=rules,
            allow_skips=allow_skips,
            max_body_size=max_body_size,
        )
        for f in fixtures
    ]


def replay_verdict(results: list[FixtureResult]) -> str:
    """The last line: fixtures that match, and every interception not checked."""
    matched = sum(1 for r in results if r.ok)
    line = f"{matched}/{len(results)} fixtures match"
    skipped = [(r, item) for r in results for item in r.skipped]
    if skipped:
        names = ", ".join(f"{r.path} {item.label}" for r, item in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        allowed = all(r.allow_skips for r, _ in skipped)
        line += f"; {len(skipped)} interception(s) not checked: {names}{more}" + (
            " (allowed by --allow-skips)" if allowed else " (--allow-skips to accept)"
        )
    return line


def replay(
    fixtures: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FIXTURE",
            help="Fixture files; with --builtin, built-in names (none: all).",
        ),
    ] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="Replay built-in fixtures.")] = False,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            parser=parse_base_url,
            help="Replay against this proxy (base URL) instead of an in-process one.",
        ),
    ] = None,
    upstream_port: Annotated[
        int,
        typer.Option(
            metavar="PORT",
            parser=parse_port,
            help="Port for the mock upstream (point --target's upstream at it).",
        ),
    ] = 0,
    timing: TimingOpt = "fast",
    match_on: MatchOnOpt = None,
    ignore: IgnoreOpt = None,
    no_normalize: NoNormalizeOpt = None,
    max_body_size: BodyLimitOpt = None,
    allow_skips: Annotated[
        bool,
        typer.Option(
            "--allow-skips",
            help="Exit 0 although some interceptions were not checked (the client cut them "
            "short when recorded); they are still listed.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    # the replayed proxy's own lines repeat the recorded failures: shown on demand
    log_level: LogLevelOpt = "error",
    log_format: LogFormatOpt = "text",
) -> None:
    """Replay fixtures through a proxy and compare what the client gets with the recording.

    Exits 0 when everything matches, 1 on a mismatch or an interception not checked
    (unless --allow-skips), 2 on a usage or fixture error.

    Example: aibridge replay session.jsonl (or: aibridge replay --builtin simple --json)
    """
    from functools import partial

    import trio

    from .builtin import load_builtin
    from .recording import load_fixture
    from .replay import check_replayable, exit_code

    setup_logging(log_level, log_format)
    rules = match_rules(match_on, ignore, no_normalize)
    if target is not None and not upstream_port:
        raise FixtureError(
            "--target needs --upstream-port",
            hint="start the proxy with its upstream at http://127.0.0.1:PORT and pass that PORT",
        )
    if builtin:
        names: list[str | None] = list(fixtures) if fixtures else [None]
        loaded = [f for name in names for f in load_builtin(name)]
    elif not fixtures:
        raise FixtureError("nothing to replay", hint="give fixture files, or --builtin")
    else:
        loaded = [load_fixture(path) for path in fixtures]
    for fixture in loaded:
        check_replayable(fixture)
    with replay_progress(sum(len(f.interceptions) for f in loaded)) as replayed:
        run = partial(replay_all, allow_skips=allow_skips, max_body_size=max_body_size)
        results = trio.run(run, loaded, target, upstream_port, timing, replayed, rules)
    if as_json:
        sys.stdout.write(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    else:
        for result in results:
            stdout.print(format_result(result))
        stdout.print(replay_verdict(results), highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code(results))


@contextmanager
def replay_progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr while interceptions replay, on a terminal only (a pipe or
    a CI log gets the report alone); yields the function that counts one done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    ) as progress:
        task = progress.add_task("replay", total=total)
        yield lambda: progress.advance(task)


# -- import --------------------------------------------------------------------------------
async def import_all(paths: list[Path], out: Path) -> tuple[list[Path], list[str]]:
    from ..files import write_private
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
        write_private(target, dump_fixture(fixture), inputs=paths)
        written.append(target)
    return written, failed


def import_(
    txtars: Annotated[
        list[Path], typer.Argument(metavar="TXTAR", help="The Go gateway's .txtar fixtures.")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="DIR", help="Directory for the fixtures."),
    ],
) -> None:
    """Convert txtar fixtures to JSONL ones (client side produced by aibridge's proxy).

    Exits 2 when any file could not be converted (each is named on stderr).

    Example: aibridge import ../reference/aibridge-fixtures/anthropic/*.txtar -o imported/
    """
    import trio

    setup_logging("warning")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FixtureError(
            f"{output}: cannot create the output directory ({exc.strerror})",
            hint="choose another --output",
        ) from None
    written, failed = trio.run(import_all, txtars, output)
    for path in written:
        stdout.print(f"wrote {path}")
    for message in failed:
        print_error(message)
    raise typer.Exit(2 if failed else 0)


# -- show ----------------------------------------------------------------------------------
def format_summary(fixture: Fixture, summaries: list[Summary]) -> RenderableType:
    """One row per interception, grouped by client session when the recording knows them,
    then one row per session."""
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
    from .summary import group_by_session

    groups = group_by_session(summaries)
    grouped = any(g.client != "unknown" or g.session for g in groups)
    for g in groups:
        if grouped:
            table.add_row("", Text(g.title, style="bold"), end_section=False)
        for index in g.indexes:
            _summary_row(table, index + 1, summaries[index])
        if grouped:
            table.add_section()
    # An outcome other than ok is a sentence: a note under the table, not a narrow column.
    notes = [
        Text.assemble(f"#{i} {s.label}: ", (s.outcome, "yellow"))
        for i, s in enumerate(summaries, start=1)
        if s.outcome != "ok"
    ]
    if not grouped:
        return Group(table, *notes)
    return Group(table, _sessions_table(groups), *notes)


def _sessions_table(groups: list[SessionGroup]) -> RenderableType:
    """One row per client session: how many interceptions, what they cost."""
    from rich.table import Table

    table = Table(title="sessions", title_justify="left")
    for column in ("client", "session", "interceptions", "tokens in/out", "injected calls"):
        table.add_column(column, justify="left" if column in ("client", "session") else "right")
    for g in groups:
        table.add_row(
            g.client,
            g.session or "-",
            str(len(g.indexes)),
            f"{g.usage.input_tokens} / {g.usage.output_tokens}",
            str(g.injected),
        )
    return table


def _summary_row(table: Table, i: int, s: Summary) -> None:
    """One interception's row: what it asked, what it cost, how it went and how fast."""
    from rich.text import Text

    from ..views.page import fmt_ms

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


def show(
    fixtures: Annotated[
        list[str],
        typer.Argument(metavar="FIXTURE", help="Fixture files; with --builtin, built-in names."),
    ],
    builtin: Annotated[bool, typer.Option("--builtin", help="Show built-in fixtures.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write a self-contained HTML page here (one fixture).",
        ),
    ] = None,
) -> None:
    """Summarise recorded sessions: per interception its API, model, status, tokens, tool
    calls, keys tried, duration and time to first event; --html writes a timeline page.

    Example: aibridge show session.jsonl --html session.html
    """
    from ..files import refuse_overwrite, write_private
    from .builtin import load_builtin
    from .recording import load_fixture
    from .summary import summarize

    inputs: list[Path] = []
    if html is not None and not builtin:
        inputs = [] if builtin else [Path(name) for name in fixtures]
        refuse_overwrite(html, inputs)  # before any work: the page would replace it
    if builtin:
        loaded = [f for name in fixtures for f in load_builtin(name)]
    else:
        loaded = [load_fixture(path) for path in fixtures]
    if html is not None and len(loaded) != 1:
        raise FixtureError(
            f"--html writes one page: give one fixture, not {len(loaded)}",
            hint="run show once per fixture",
        )
    for fixture in loaded:
        for warning in fixture.warnings:
            stderr.print(f"warning: {warning}", highlight=False)
        summaries = [
            summarize(record, label)
            for record, label in zip(fixture.interceptions, fixture.labels, strict=True)
        ]
        if html is not None:  # first: a page that cannot be written is the one error line
            from ..views.session import session_page

            page = session_page(fixture, summaries)
            write_private(html, page, inputs=inputs, spare_data=True)
        report_out.print(format_summary(fixture, summaries))
        if html is not None:
            stderr.print(f"wrote {html}", highlight=False, soft_wrap=True)
