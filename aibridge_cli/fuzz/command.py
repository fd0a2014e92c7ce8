"""``aibridge fuzz``: the command line over ``campaign``, ``report`` and ``blackbox``."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from ..config import StreamInitiation
from ..console import print_error, stderr
from ..console import report_out as stdout
from ..errors import AibridgeError, ConfigError
from . import FORK_WORKERS

if TYPE_CHECKING:
    from .blackbox import BlackBoxRun, BlackBoxSettings
    from .campaign import Finding, Settings, Shard
    from .evidence import Evidence
    from .plan import FaultKind, Plan
    from .scenario import Scenario
    from .target import ClientConfig

# The profiles by name (oracles.Profile): typer needs the choices without importing the fuzzer.
ProfileName = Literal["generic", "aibridge"]


def parse_shard(text: str) -> Shard:
    from .campaign import Shard

    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N, not {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {text}: K must be between 1 and N")
    return Shard(k, n)


def parse_faults(only: Sequence[str], without: Sequence[str]) -> frozenset[FaultKind]:
    """The fault kinds a campaign draws: ``--fault`` (default: all) less ``--no-fault``."""
    from .plan import ALL_FAULTS, FaultKind

    def kind(name: str, flag: str) -> FaultKind:
        try:
            return FaultKind(name)
        except ValueError:
            known = ", ".join(FaultKind)
            raise ConfigError(f"{flag} {name!r}: no such fault kind (one of {known})") from None

    chosen = frozenset(kind(n, "--fault") for n in only) or ALL_FAULTS
    return chosen - {kind(n, "--no-fault") for n in without}


def fuzz(
    fixtures: Annotated[
        list[Path] | None,
        typer.Argument(help="Extra scenario files: fixtures (JSONL), TOML scenarios, repros."),
    ] = None,
    iterations: Annotated[int, typer.Option(help="Iterations to run (over all shards).")] = 1000,
    seed: Annotated[int | None, typer.Option(help="Seed of the campaign; default: random.")] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="Built-in scenario or scenario file; repeatable."),
    ] = None,
    stream_initiation: Annotated[
        StreamInitiation, typer.Option(help="The proxy's stream initiation mode.")
    ] = "eager",
    oracles: Annotated[
        ProfileName | None,
        typer.Option(
            "--oracles", help="Oracle profile; default aibridge (simulation), generic (--target)."
        ),
    ] = None,
    skip_oracle: Annotated[
        list[str] | None, typer.Option("--skip-oracle", help="Do not judge this oracle.")
    ] = None,
    fault: Annotated[
        list[str] | None, typer.Option("--fault", help="Draw only these fault kinds.")
    ] = None,
    no_fault: Annotated[
        list[str] | None, typer.Option("--no-fault", help="Never draw this fault kind.")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    shard: Annotated[str, typer.Option(help="Run shard K of N (K/N) of the iterations.")] = "1/1",
    time_budget: Annotated[
        float | None, typer.Option(help="Stop starting iterations after this many seconds.")
    ] = None,
    max_findings: Annotated[
        int, typer.Option(help="Distinct failures to shrink and write as repro files.")
    ] = 20,
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
    show_body: Annotated[
        bool, typer.Option("--show-body", help="With --repro: print the client's whole body.")
    ] = False,
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
    allow_commands: Annotated[
        bool,
        typer.Option(
            "--allow-commands",
            help="Run the commands of tools in scenario and repro files (fixtures' tools "
            "otherwise answer with their recorded results; TOML and repro files are refused).",
        ),
    ] = False,
    target_tools: Annotated[
        str | None,
        typer.Option(
            help="Black-box: the tools file the target runs with, or 'none'; scenarios "
            "follow it (default: the target is configured like each scenario)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Black-box: upstream error bodies must come back byte for byte.")
    ] = False,
    stall_past: Annotated[
        float | None,
        typer.Option(
            help="Black-box: the target's upstream read timeout in seconds (at most 15); "
            "draw stalls past it."
        ),
    ] = None,
    client_path: Annotated[
        list[str] | None,
        typer.Option(help="Black-box: [API=]PATH, the target's route for an API; repeatable."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Black-box: the model the client asks the target for.")
    ] = None,
    client_header: Annotated[
        list[str] | None,
        typer.Option(help="Black-box: 'Name: value' sent with every request; repeatable."),
    ] = None,
    show_scenario: Annotated[
        str | None,
        typer.Option(help="Print a scenario's request and its upstream exchanges' bytes."),
    ] = None,
    each: Annotated[
        bool,
        typer.Option(
            "--each",
            help="A fixture's interceptions one by one, each its own world (default: the "
            "file is one session, its requests at their recorded offsets in one world; "
            "black-box mode always goes one by one).",
        ),
    ] = False,
) -> None:
    """Fuzz the proxy in a simulated world (or a running proxy, with --target).

    Exit status: 0 no failure, 1 a failure found, 2 a usage or setup error.

    Example: aibridge fuzz --iterations 10000 --jobs 2 --seed 7 (aibridge fuzz --list: what)
    """
    if jobs > 1 and target is None and repro is None and not list_ and not FORK_WORKERS:
        _start_workers_server()
    from . import report
    from .campaign import Settings
    from .catalog import builtin_scenarios, select
    from .oracles import Profile, profile_oracles

    try:
        if list_:
            listed = (
                select(scenario or [], fixtures or [], each=each) if scenario or fixtures else None
            )
            stdout.print(report.listing(listed or builtin_scenarios()))
            return
        if show_scenario is not None:
            sys.stdout.write(report.scenario_bytes(select([show_scenario], [])))
            return
        if html is not None and repro is None:
            raise ConfigError(
                "--html goes with --repro (a campaign writes its pages beside the repros)"
            )
        if repro is not None:
            from .target import client_config

            client = client_config(client_path or (), model, client_header or ())
            where = (target, upstream_port)
            raise typer.Exit(
                _replay(repro, as_json, show_body, html, client, where, allow_commands)
            )
        if iterations < 1:
            raise ConfigError(f"--iterations must be at least 1, not {iterations}")
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, not {jobs}")
        if time_budget is not None and time_budget <= 0:
            raise ConfigError(
                f"--time-budget must be a positive number of seconds, not {time_budget:g}"
            )
        if max_findings < 1:
            raise ConfigError(f"--max-findings must be at least 1, not {max_findings}")
        if (target is None) != (upstream_port is None):
            raise ConfigError("--target and --upstream-port go together")
        if upstream_port is not None and not 0 < upstream_port < 65536:
            raise ConfigError(f"--upstream-port {upstream_port}: not a TCP port")
        profile = Profile(oracles or ("generic" if target is not None else "aibridge"))
        judged = profile_oracles(profile, skip_oracle or (), black_box=target is not None)
        kinds = parse_faults(fault or (), no_fault or ())
        # black-box mode drives one request at a time
        chosen = select(scenario or [], fixtures or [], allow_commands, each or target is not None)
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        if target is not None:
            from .target import BlackBoxSettings, client_config, declared_tools
            from .target import stall_past as parse_stall

            assert upstream_port is not None
            black_box = BlackBoxSettings(
                target,
                upstream_port,
                chosen,
                seed,
                iterations,
                judged,
                kinds,
                client=client_config(client_path or (), model, client_header or ()),
                target_tools=declared_tools(target_tools),
                strict=strict,
                stall_past=parse_stall(stall_past),
            )
            raise typer.Exit(_blackbox(black_box, as_json, out))
        settings = Settings(
            scenarios=chosen,
            seed=seed,
            iterations=iterations,
            stream_initiation=stream_initiation,
            jobs=jobs,
            shard=parse_shard(shard),
            time_budget=time_budget,
            oracles=judged,
            faults=kinds,
            max_findings=max_findings,
        )
        code = _campaign(settings, junit, as_json, out)
    except AibridgeError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    raise typer.Exit(code)


WORKER_MODULE = "aibridge_cli.fuzz.campaign"
"""What the workers' fork server imports before it forks them."""


def _start_workers_server() -> None:
    """Start the fork server the campaign's workers come from now, so that it imports the
    fuzzer while this process does the same and loads the scenarios (on two cores, in
    parallel); the pool waited for it after both, about a second of a 1,000-iteration
    campaign's five."""
    import multiprocessing.forkserver

    multiprocessing.forkserver.set_forkserver_preload([WORKER_MODULE])
    multiprocessing.forkserver.ensure_running()


def _campaign(settings: Settings, junit: Path | None, as_json: bool, out: Path) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import report
    from .campaign import run_campaign, write_repro

    total = len(settings.indexes())
    # Redrawn after each batch, not by a thread of its own: workers may be forked from
    # this process, which is only safe with no other thread running.
    with Progress(
        TextColumn("fuzz"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]} it/s"),
        TextColumn("[red]{task.fields[failures]} failing"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        auto_refresh=False,
        disable=not stderr.is_terminal,
    ) as progress:
        task = progress.add_task("fuzz", total=total, speed="-", failures=0)

        def update(done: int, failures: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            speed = f"{done / elapsed:.0f}" if elapsed else "-"
            progress.update(task, completed=done, failures=failures, speed=speed, refresh=True)

        campaign = run_campaign(settings, update)
    taken: set[Path] = set()
    repros = [write_repro(finding, out, taken) for finding in campaign.findings]
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


def _blackbox(settings: BlackBoxSettings, as_json: bool, out: Path) -> int:
    """Fuzz the proxy at ``settings.url``; 1 when anything failed. The first iteration of
    each distinct failure is written as a repro file with its page."""
    import time

    import trio

    from . import report
    from .blackbox import run_campaign

    started = time.monotonic()
    run = trio.run(run_campaign, settings)
    elapsed = time.monotonic() - started
    repros = _blackbox_repros(run, out)
    if repros:
        stderr.print(f"a repro file and page for each distinct failure in {out}/", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(report.blackbox_json(run), indent=2) + "\n")
    else:
        stdout.print(report.blackbox_renderable(run))
    stderr.print(f"{len(run.outcomes)} black-box iterations in {elapsed:.1f} s", highlight=False)
    return 1 if any(o.violations for o in run.outcomes) else 0


def _blackbox_repros(run: BlackBoxRun, out: Path) -> list[Path]:
    from .blackbox import blackbox_scenario
    from .blackbox_findings import finding, repro_header
    from .campaign import write_repro
    from .evidence import Evidence
    from .report import first_outcomes
    from .signature import signature_counts

    failing = [o for o in run.outcomes if o.violations]
    counts = signature_counts(failing)
    scenarios = {s.name: s for s in run.settings.scenarios}
    taken: set[Path] = set()
    paths = []
    for sig, o in first_outcomes(failing).items():
        assert o.world is not None  # a failing outcome keeps its world
        scenario = blackbox_scenario(scenarios[o.scenario])
        found = finding(
            run.settings, o.iteration, o.seed, scenario, o.plan, o.violations, o.world,
            counts[sig][0], sig.oracle,
        )  # fmt: skip
        header = repro_header(run.settings, o.leak_probe, o.framing, o.request_pad)
        path = write_repro(found, out, taken, header)
        _write_page(Evidence(found, o.world, None, run.settings.url), path.with_suffix(".html"))
        paths.append(path)
    return paths


def _write_page(finding: Finding | Evidence, path: Path, inputs: Sequence[Path] = ()) -> None:
    """The finding's timeline page (a simulated finding's runs are run again, with marks;
    a black-box one's evidence is what the campaign saw); never over an input or a fixture."""
    from ..files import write_private
    from ..views.repro import repro_page
    from .evidence import Evidence, gather

    evidence = finding if isinstance(finding, Evidence) else gather(finding)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, repro_page(evidence), inputs=inputs, spare_data=True)


def _replay(
    path: Path,
    as_json: bool,
    show_body: bool,
    html: Path | None,
    client: ClientConfig,
    where: tuple[str | None, int | None],
    allow_commands: bool = False,
) -> int:
    from . import report
    from .blackbox_findings import MODE
    from .campaign import Case, Origin, load_repro, replay
    from .oracles import ALL_ORACLES
    from .runner import Judge
    from .signature import Signature

    if html is not None:
        from ..files import refuse_overwrite

        refuse_overwrite(html, [path])  # before the run, not after it
    header, scenario, plan = load_repro(path, allow_commands)
    if header.get("mode") == MODE:
        return _rerun(header, scenario, plan, as_json, html, client, where)
    oracles = frozenset(header.get("oracles", ALL_ORACLES))
    judge = Judge(header["stream_initiation"], oracles)
    origin = Origin(header["seed"], header["iteration"], header["iteration_seed"])
    signature = Signature(scenario.name, header["oracle"], header.get("shape", ""))
    finding = replay(judge, Case(scenario, plan, signature), origin)
    if as_json:
        sys.stdout.write(json.dumps(report.finding_json(finding, path), indent=2) + "\n")
    else:
        stdout.print(report.finding_renderable(finding, path, show_body=show_body))
    if html is not None:
        _write_page(finding, html, [path])
        stderr.print(f"wrote {html}", highlight=False)
    return 1 if finding.violations else 0


def _rerun(
    header: dict[str, Any],
    scenario: Scenario,
    plan: Plan,
    as_json: bool,
    html: Path | None,
    client: ClientConfig,
    where: tuple[str | None, int | None],
) -> int:
    """A black-box repro file: its iteration against the target once more, judged."""
    from dataclasses import replace

    import trio

    from ..errors import FixtureError
    from . import report
    from .blackbox import BlackBoxPlan, Rerun, rerun
    from .blackbox_findings import finding, settings_from_header
    from .blackbox_upstream import Framing
    from .evidence import Evidence

    settings = settings_from_header(header, scenario, client)
    target, upstream_port = where
    settings = replace(
        settings,
        url=target or settings.url,
        upstream_port=upstream_port or settings.upstream_port,
    )
    framing = header.get("framing", "chunked")
    if framing not in get_args(Framing):
        raise FixtureError(f"a black-box repro's framing must be one of {get_args(Framing)}")
    drawn = BlackBoxPlan(
        plan, bool(header["leak_probe"]), framing, int(header.get("request_pad", 0))
    )
    case = Rerun(header["iteration"], header["iteration_seed"], scenario, drawn)
    run = trio.run(rerun, settings, case)
    outcome = run.outcomes[0]
    if as_json:
        sys.stdout.write(json.dumps(report.blackbox_json(run), indent=2) + "\n")
    else:
        stdout.print(report.blackbox_renderable(run))
    if html is not None and outcome.world is not None:
        found = finding(
            settings, outcome.iteration, outcome.seed, scenario, plan, outcome.violations,
            outcome.world, 1, header.get("oracle"),
        )  # fmt: skip
        _write_page(Evidence(found, outcome.world, None, settings.url), html)
        stderr.print(f"wrote {html}", highlight=False)
    return 1 if outcome.violations else 0
