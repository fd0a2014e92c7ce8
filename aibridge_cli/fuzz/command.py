"""``aibridge fuzz``: the command line over ``campaign``, ``report`` and ``blackbox``."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import StreamInitiation
from ..console import print_error, stderr
from ..console import report_out as stdout
from ..errors import AibridgeError, ConfigError

if TYPE_CHECKING:
    from .campaign import Finding, Settings


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N, not {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {text}: K must be between 1 and N")
    return k, n


def fuzz(
    fixtures: Annotated[
        list[Path] | None, typer.Argument(help="Extra scenario files (JSONL).")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Iterations to run (over all shards).")] = 1000,
    seed: Annotated[int | None, typer.Option(help="Seed of the campaign; default: random.")] = None,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Built-in scenario to fuzz; repeatable.")
    ] = None,
    stream_initiation: Annotated[
        StreamInitiation, typer.Option(help="The proxy's stream initiation mode.")
    ] = "eager",
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    shard: Annotated[str, typer.Option(help="Run shard K of N (K/N) of the iterations.")] = "1/1",
    time_budget: Annotated[
        float | None, typer.Option(help="Stop starting iterations after this many seconds.")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[Path, typer.Option(help="Directory for repro-SEED.jsonl files.")] = Path(
        "fuzz-out"
    ),
    list_: Annotated[
        bool, typer.Option("--list", help="List scenarios, fault kinds, oracles.")
    ] = False,
    repro: Annotated[
        Path | None, typer.Option(help="Replay a repro-SEED.jsonl file exactly.")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="With --repro: write the reproducer's timeline page here."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Black-box: fuzz the proxy at this URL over real sockets.")
    ] = None,
    upstream_port: Annotated[
        int | None, typer.Option(help="Black-box: port for the fault-injecting mock upstream.")
    ] = None,
) -> None:
    """Fuzz the proxy in a simulated world (or a running proxy, with --target)."""
    from . import report
    from .campaign import Settings
    from .catalog import builtin_names, select

    try:
        if list_:
            stdout.print(report.listing(builtin_names()))
            return
        if html is not None and repro is None:
            raise ConfigError(
                "--html goes with --repro (a campaign writes its pages beside the repros)"
            )
        if repro is not None:
            raise typer.Exit(_replay(repro, as_json, html))
        if iterations < 0 or jobs < 1:
            raise ConfigError("--iterations must be at least 0 and --jobs at least 1")
        if (target is None) != (upstream_port is None):
            raise ConfigError("--target and --upstream-port go together")
        chosen = select(scenario or [], fixtures or [])
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        if target is not None:
            from .blackbox import run_blackbox

            assert upstream_port is not None
            raise typer.Exit(run_blackbox(target, upstream_port, chosen, seed, iterations, as_json))
        settings = Settings(
            chosen, seed, iterations, stream_initiation, jobs, parse_shard(shard), time_budget
        )
        code = _campaign(settings, junit, as_json, out)
    except AibridgeError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _campaign(settings: Settings, junit: Path | None, as_json: bool, out: Path) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import report
    from .campaign import run_campaign, write_repro

    total = len(settings.indexes())
    with Progress(
        TextColumn("fuzz"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]} it/s"),
        TextColumn("[red]{task.fields[failures]} failing"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    ) as progress:
        task = progress.add_task("fuzz", total=total, speed="-", failures=0)

        def update(done: int, failures: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            speed = f"{done / elapsed:.0f}" if elapsed else "-"
            progress.update(task, completed=done, failures=failures, speed=speed)

        campaign = run_campaign(settings, update)
    repros = [write_repro(finding, out) for finding in campaign.findings]
    for finding, path in zip(campaign.findings, repros, strict=True):
        _write_page(finding, path.with_suffix(".html"))
    if repros:
        stderr.print(f"a timeline page beside each repro: {out}/repro-SEED.html", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(report.campaign_json(campaign, repros), indent=2) + "\n")
    else:
        stdout.print(report.campaign_renderable(campaign, repros))
    if junit is not None:
        report.write_junit(campaign, junit)
    rate = len(campaign.outcomes) / campaign.elapsed if campaign.elapsed else 0.0
    stderr.print(
        f"{len(campaign.outcomes)} iterations in {campaign.elapsed:.1f} s "
        f"({rate:.0f} it/s, {settings.jobs} job(s))",
        highlight=False,
    )
    return 1 if campaign.failures else 0


def _write_page(finding: Finding, path: Path) -> None:
    """The finding's timeline page (its runs are run again, with marks)."""
    from ..views.repro import repro_page
    from .evidence import gather

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(repro_page(gather(finding)), encoding="utf-8")


def _replay(path: Path, as_json: bool, html: Path | None = None) -> int:
    from . import report
    from .campaign import load_repro, replay
    from .runner import Judge

    header, scenario, plan = load_repro(path)
    judge = Judge(header["stream_initiation"])
    finding = replay(
        judge,
        scenario,
        plan,
        header["oracle"],
        header["seed"],
        header["iteration"],
        header["iteration_seed"],
    )
    if as_json:
        sys.stdout.write(json.dumps(report.finding_json(finding, path), indent=2) + "\n")
    else:
        stdout.print(report.finding_renderable(finding, path))
    if html is not None:
        _write_page(finding, html)
        stderr.print(f"wrote {html}", highlight=False)
    return 1 if finding.violations else 0


def register(app: typer.Typer) -> None:
    app.command("fuzz")(fuzz)
