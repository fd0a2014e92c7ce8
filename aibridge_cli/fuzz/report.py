"""Presenting a campaign: rich renderables, JSON and JUnit. Nothing here runs anything.

The report (stdout) holds only what the seed determines: no wall-clock figures, so two
runs of one seed print it byte for byte. Speed goes to stderr with the progress bar.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..files import write_private
from ..sim.client import ClientResult
from .campaign import Campaign, Finding
from .oracles import ORACLES
from .plan import FaultKind, Plan
from .scenario import Scenario
from .signature import Signature, signature_counts

if TYPE_CHECKING:  # a simulated campaign's report loads no black-box machinery
    from .blackbox import BlackBoxOutcome, BlackBoxRun


def describe_plan(plan: Plan) -> list[str]:
    lines = [f"fault: {fault.describe()}" for fault in plan.faults] or ["no faults"]
    if plan.schedule_budget:
        lines.append(
            f"schedule: seed {plan.schedule_seed}, up to {plan.schedule_budget} "
            f"reordered batch(es) at rate {plan.schedule_rate:g}"
        )
    else:
        lines.append("schedule: FIFO")
    for e, offsets in plan.cuts:
        cut = f"cut at bytes {', '.join(map(str, offsets))}" if offsets else "sent in one chunk"
        lines.append(f"exchange {e} {cut}")
    for delay in plan.delays:
        lines.append(f"exchange {delay.exchange} chunk {delay.chunk} delayed {delay.seconds:g} s")
    for read in plan.read_delays:
        lines.append(f"client waits {read.seconds:g} s before read {read.read}")
    if plan.read_size != 65536:
        lines.append(f"client reads at most {plan.read_size} bytes at a time")
    for call, seconds in enumerate(plan.tool_latency):
        if seconds:
            lines.append(f"tool call {call} takes {seconds:g} s")
    if plan.pad:
        lines.append(f"the first event of exchange 0 padded by {plan.pad} bytes")
    for c in plan.checkpoints:
        lines.append(f"{c.extra} extra checkpoint(s) before {c.point} #{c.operation}")
    lines += [f"request {i} starts {late:g} s later" for i, late in enumerate(plan.starts) if late]
    lines += [f"request {i} not sent" for i in plan.drop]
    return lines


def _oracle_columns(oracles: Collection[str]) -> list[str]:
    return [name for name in ORACLES if name in oracles]


def summary_table(
    runs: Counter[str], failed: Counter[tuple[str, str]], oracles: Collection[str]
) -> Table:
    """Iterations per scenario, and how many of them broke each oracle.

    One cell names the oracles that broke: a column per oracle (eleven of them) left no
    room for the scenario's name in a terminal.
    """
    table = Table(title="fuzz summary", title_justify="left")
    table.add_column("scenario", no_wrap=True)
    table.add_column("iterations", justify="right")
    table.add_column(f"failures (of {len(oracles)} oracles judged)")
    columns = _oracle_columns(oracles)
    for scenario in sorted(runs):
        broke = [f"{o} {failed[(scenario, o)]}" for o in columns if failed[(scenario, o)]]
        table.add_row(scenario, str(runs[scenario]), ", ".join(broke) or "-")
    return table


def _per_oracle(signed: Sequence[tuple[str, Sequence[Signature]]]) -> Counter[tuple[str, str]]:
    return Counter((scenario, s.oracle) for scenario, signatures in signed for s in signatures)


def signatures_table(counts: dict[Signature, tuple[int, int]]) -> Table:
    """Every distinct failure: oracle, scenario, the body's shape, how often, since when."""
    table = Table(title="distinct failures", title_justify="left")
    for column in ("oracle", "scenario", "shape"):
        table.add_column(column)
    table.add_column("iterations", justify="right")
    table.add_column("first", justify="right")
    for signature, (count, first) in sorted(counts.items(), key=lambda i: (i[1][1], i[0])):
        table.add_row(signature.oracle, signature.scenario, signature.shape, str(count), str(first))
    return table


def body_lines(client: ClientResult) -> list[str]:
    """The client's whole response, as it came (bytes that are not UTF-8 escaped)."""
    head = f"client response: status {client.status}, {len(client.body)} body bytes"
    head += "" if client.complete else " (the HTTP message did not end)"
    lines = [head, *(f"  {k}: {v}" for k, v in client.headers), "  --"]
    text = client.body.decode("utf-8", errors="backslashreplace")
    return lines + [f"  {line}" for line in text.split("\n")]


def finding_renderable(
    finding: Finding, repro: Path | None, *, show_body: bool = False
) -> RenderableType:
    if not finding.violations:
        return Text(f"PASS: {finding.scenario.name}: the plan no longer fails", style="bold green")
    head = Text(f"FAIL {finding.signature.label()}: {finding.scenario.name}", style="bold red")
    lines = [
        f"seed {finding.seed}, iteration {finding.iteration} "
        f"(iteration seed {finding.iteration_seed}), "
        f"stream initiation {finding.stream_initiation}",
        f"{finding.count} failing iteration(s) with this signature",
        f"violated {finding.oracle}: {finding.violation.message}",
    ]
    others = sorted({v.oracle for v in finding.violations} - {finding.oracle})
    if others:
        lines.append(f"also violated: {', '.join(others)}")
    lines.append(
        f"minimal plan (shrunk in {finding.shrink_runs} runs):" if finding.shrink_runs else "plan:"
    )
    lines += [f"  {line}" for line in describe_plan(finding.plan)]
    if show_body:
        lines += body_lines(finding.client)
    lines.append(f"timeline ({len(finding.timeline)} lines: virtual time, task, action):")
    lines += [f"  {line}" for line in finding.timeline]
    if repro is not None:
        lines.append(f"repro: {repro}  (aibridge fuzz --repro {repro} --show-body)")
    return Group(head, Text("\n".join(lines)))


def campaign_renderable(campaign: Campaign, repros: Sequence[Path | None]) -> RenderableType:
    s = campaign.settings
    k, n = s.shard
    head = Text(
        f"aibridge fuzz: seed {s.seed}, {len(campaign.outcomes)} of {s.iterations} iterations"
        f"{f' (shard {k}/{n})' if n > 1 else ''}, stream initiation {s.stream_initiation}"
    )
    runs = Counter(o.scenario for o in campaign.outcomes)
    failed = _per_oracle([(o.scenario, o.signatures) for o in campaign.failures])
    parts: list[RenderableType] = [head, summary_table(runs, failed, s.oracles)]
    counts = signature_counts(campaign.failures)
    if counts:
        parts.append(signatures_table(counts))
    for finding, repro in zip(campaign.findings, repros, strict=True):
        parts.append(finding_renderable(finding, repro))
    if len(counts) > len(campaign.findings):
        parts.append(
            Text(
                f"{len(counts) - len(campaign.findings)} more signature(s) not shrunk "
                f"(--max-findings {s.max_findings})",
                style="yellow",
            )
        )
    failures = campaign.failures
    if failures:
        parts.append(
            Text(
                f"{len(failures)} failing iteration(s), {len(counts)} distinct failure(s); "
                f"first at iteration {failures[0].iteration}",
                style="bold red",
            )
        )
    else:
        parts.append(Text("no failures", style="bold green"))
    if campaign.stopped_early:
        parts.append(Text("stopped early: the time budget ran out", style="yellow"))
    return Group(*parts)


def _signatures_json(counts: dict[Signature, tuple[int, int]]) -> list[dict[str, Any]]:
    return [
        {**signature.to_json(), "iterations": count, "first_iteration": first}
        for signature, (count, first) in sorted(counts.items(), key=lambda i: (i[1][1], i[0]))
    ]


def campaign_json(campaign: Campaign, repros: Sequence[Path | None]) -> dict[str, Any]:
    s = campaign.settings
    return {
        "seed": s.seed,
        "iterations": s.iterations,
        "ran": len(campaign.outcomes),
        "shard": f"{s.shard[0]}/{s.shard[1]}",
        "stream_initiation": s.stream_initiation,
        "oracles": _oracle_columns(s.oracles),
        "scenarios": [sc.name for sc in s.scenarios],
        "stopped_early": campaign.stopped_early,
        "signatures": _signatures_json(signature_counts(campaign.failures)),
        "failures": [
            {
                "iteration": o.iteration,
                "iteration_seed": o.seed,
                "scenario": o.scenario,
                "oracle": o.oracle,
                "message": o.violations[0].message,
                "signatures": [sig.to_json() for sig in o.signatures],
            }
            for o in campaign.failures
        ],
        "findings": [finding_json(f, r) for f, r in zip(campaign.findings, repros, strict=True)],
    }


def finding_json(finding: Finding, repro: Path | None) -> dict[str, Any]:
    client = finding.client
    return {
        "scenario": finding.scenario.name,
        "oracle": finding.oracle,
        "signature": finding.signature.to_json(),
        "count": finding.count,
        "message": finding.violation.message,
        "seed": finding.seed,
        "iteration": finding.iteration,
        "iteration_seed": finding.iteration_seed,
        "plan": finding.plan.to_json(),
        "violations": [
            {"oracle": v.oracle, "message": v.message, "shape": v.shape} for v in finding.violations
        ],
        "client": {
            "status": client.status,
            "headers": [list(h) for h in client.headers],
            "body": client.body.decode("utf-8", errors="backslashreplace"),
            "complete": client.complete,
        },
        "timeline": list(finding.timeline),
        "repro": str(repro) if repro else None,
    }


def write_junit(campaign: Campaign, path: Path) -> None:
    """One test case per scenario and oracle; a failure element listing its signatures."""
    counts = signature_counts(campaign.failures)
    scenarios = sorted({o.scenario for o in campaign.outcomes})
    columns = _oracle_columns(campaign.settings.oracles)
    failed = {(sig.scenario, sig.oracle) for sig in counts}
    suite = ET.Element(
        "testsuite",
        name="aibridge-fuzz",
        tests=str(len(scenarios) * len(columns)),
        failures=str(len(failed)),
    )
    for scenario in scenarios:
        for oracle in columns:
            case = ET.SubElement(suite, "testcase", classname=scenario, name=oracle)
            hits = sorted(
                (
                    (first, count, sig)
                    for sig, (count, first) in counts.items()
                    if (sig.scenario, sig.oracle) == (scenario, oracle)
                ),
            )
            if hits:
                total = sum(count for _, count, _ in hits)
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{total} failing iteration(s), {len(hits)} signature(s); "
                    f"first: {hits[0][2].shape}",
                )
                failure.text = "\n".join(
                    f"{sig.shape}: {count} iteration(s), first {first} "
                    f"(seed {campaign.settings.seed})"
                    for first, count, sig in hits
                )
    xml = ET.tostring(suite, encoding="unicode", xml_declaration=True)
    write_private(path, xml, spare_data=True)


def blackbox_renderable(run: BlackBoxRun) -> RenderableType:
    s = run.settings
    runs = Counter(o.scenario for o in run.outcomes)
    failing = [o for o in run.outcomes if o.violations]
    failed = _per_oracle([(o.scenario, o.signatures) for o in failing])
    oracles = s.oracles - {"schedule-dependence"}
    parts: list[RenderableType] = [
        Text(f"aibridge fuzz --target {s.url}: seed {s.seed}, {len(run.outcomes)} iterations"),
        summary_table(runs, failed, oracles),
    ]
    if run.skipped:
        skipped = Table(title="scenarios skipped", title_justify="left")
        skipped.add_column("scenario", no_wrap=True)
        skipped.add_column("why it does not apply to the target")
        for name, why in run.skipped:
            skipped.add_row(name, why)
        parts.append(skipped)
    counts = signature_counts(failing)
    firsts = first_outcomes(failing)
    if counts:
        parts.append(behaviours_table(counts, failing))
    for sig, o in firsts.items():
        violation = next(v for v in o.violations if v.oracle == sig.oracle)
        lines = [
            f"{counts[sig][0]} failing iteration(s); first: iteration {o.iteration} "
            f"(iteration seed {o.seed}), {o.scenario}",
            f"violated {sig.oracle}: {violation.message}",
            "plan:",
            *(f"  {line}" for line in describe_plan(o.plan)),
            *body_lines(o.client),
        ]
        parts += [
            Text(f"FAIL {sig.label()}", style="bold red"),
            Text("\n".join(lines)),
        ]
    if run.late or run.unmarked:
        parts.append(
            Text(
                f"not judged: {len(run.late)} late request(s) from earlier iterations "
                f"({_late_summary(run)}), {run.unmarked} request(s) without this run's marker",
                style="yellow",
            )
        )
    parts.append(
        Text(
            f"{len(failing)} failing iteration(s), {len(counts)} distinct failure(s). "
            "Black-box reproduction is statistical: the seed fixes the plans, not the "
            "target's interleavings; rerun to retry.",
            style="bold red" if failing else "bold green",
        )
    )
    return Group(*parts)


def first_outcomes(failing: Sequence[BlackBoxOutcome]) -> dict[Signature, BlackBoxOutcome]:
    """The first failing iteration of each black-box behaviour."""
    firsts: dict[Signature, BlackBoxOutcome] = {}
    for o in failing:
        for sig in o.signatures:
            firsts.setdefault(sig, o)
    return firsts


def behaviours_table(
    counts: dict[Signature, tuple[int, int]], failing: Sequence[BlackBoxOutcome]
) -> Table:
    """Every distinct black-box failure: one per behaviour (oracle and shape), with the
    scenarios it showed in counted."""
    table = Table(title="distinct failures", title_justify="left")
    for column in ("oracle", "shape"):
        table.add_column(column)
    table.add_column("iterations", justify="right")
    table.add_column("first", justify="right")
    table.add_column("scenarios")
    for signature, (count, first) in sorted(counts.items(), key=lambda i: (i[1][1], i[0])):
        where = Counter(o.scenario for o in failing if signature in o.signatures)
        shown = ", ".join(f"{name} {n}" for name, n in sorted(where.items()))
        table.add_row(signature.oracle, signature.shape, str(count), str(first), shown)
    return table


def _late_summary(run: BlackBoxRun) -> str:
    shown = ", ".join(f"iteration {r.marked} during {r.during}" for r in run.late[:5])
    return shown + (", ..." if len(run.late) > 5 else "")


def blackbox_json(run: BlackBoxRun) -> dict[str, Any]:
    s = run.settings
    return {
        "mode": "black-box",
        "target": s.url,
        "seed": s.seed,
        "ran": len(run.outcomes),
        "oracles": _oracle_columns(s.oracles - {"schedule-dependence"}),
        "reproduction": "statistical",
        "late_requests": [r._asdict() for r in run.late],
        "unmarked_requests": run.unmarked,
        "skipped": [{"scenario": name, "why": why} for name, why in run.skipped],
        "failures": [
            {
                "iteration": o.iteration,
                "iteration_seed": o.seed,
                "scenario": o.scenario,
                "signatures": [sig.to_json() for sig in o.signatures],
                "violations": [{"oracle": v.oracle, "message": v.message} for v in o.violations],
                "plan": o.plan.to_json(),
            }
            for o in run.outcomes
            if o.violations
        ],
    }


def listing(scenarios: Sequence[Scenario]) -> RenderableType:
    table = Table(title="scenarios", title_justify="left")
    table.add_column("name")
    table.add_column("what it is")
    for scenario in scenarios:
        table.add_row(scenario.name, scenario.describe())
    kinds = Table(title="fault kinds", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("what it does")
    kinds.add_column("black-box")
    for kind in FaultKind:
        kinds.add_row(kind, kind.description, "yes" if kind.black_box else "no")
    oracles = Table(title="oracles", title_justify="left")
    oracles.add_column("oracle")
    oracles.add_column("profile")
    oracles.add_column("what must hold")
    for oracle in ORACLES.values():
        where = f"{oracle.profile}{' (simulation only)' if oracle.simulation_only else ''}"
        oracles.add_row(oracle.name, where, oracle.holds)
    return Group(table, kinds, oracles)


def scenario_bytes(scenarios: Sequence[Scenario]) -> str:
    """``--show-scenario``: each scenario's request and its upstream exchanges, as the
    bytes a black-box campaign plays before any fault (Retry-After 0 included)."""
    from .blackbox import blackbox_scenario

    out: list[str] = []
    for scenario in scenarios:
        played = blackbox_scenario(scenario)
        out += [f"# {scenario.name}: {scenario.describe()}", f"POST {scenario.path}", ""]
        out += [scenario.body.decode("utf-8", "backslashreplace"), ""]
        for n, exchange in enumerate(played.exchanges):
            out.append(f"## exchange {n}: {exchange.status}")
            out += [f"{name}: {value}" for name, value in exchange.headers]
            out.append("")
            out.append(exchange.body.decode("utf-8", "backslashreplace"))
            if exchange.fault is not None:
                out.append(f"({exchange.fault} after {exchange.fault_after} body bytes)")
            out.append("")
    return "\n".join(out)
