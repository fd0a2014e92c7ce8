"""Presenting a campaign: rich renderables, JSON and JUnit. Nothing here runs anything.

The report (stdout) holds only what the seed determines: no wall-clock figures, so two
runs of one seed print it byte for byte. Speed goes to stderr with the progress bar.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .campaign import Campaign, Finding
from .oracles import ORACLES
from .plan import FaultKind, Plan


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
    return lines


def summary_table(campaign: Campaign) -> Table:
    table = Table(title="fuzz summary", title_justify="left")
    table.add_column("scenario")
    table.add_column("iterations", justify="right")
    for oracle in ORACLES:
        table.add_column(oracle, justify="right")
    runs = Counter(o.scenario for o in campaign.outcomes)
    failed = Counter((o.scenario, o.oracle) for o in campaign.failures)
    for scenario in sorted(runs):
        cells = [str(failed[(scenario, oracle)] or "-") for oracle in ORACLES]
        table.add_row(scenario, str(runs[scenario]), *cells)
    return table


def finding_renderable(finding: Finding, repro: Path | None) -> RenderableType:
    if not finding.violations:
        return Text(f"PASS: {finding.scenario.name}: the plan no longer fails", style="bold green")
    head = Text(f"FAIL {finding.oracle}: {finding.scenario.name}", style="bold red")
    lines = [
        f"seed {finding.seed}, iteration {finding.iteration} "
        f"(iteration seed {finding.iteration_seed}), "
        f"stream initiation {finding.stream_initiation}",
        f"violated {finding.oracle}: {finding.violation.message}",
    ]
    others = sorted({v.oracle for v in finding.violations} - {finding.oracle})
    if others:
        lines.append(f"also violated: {', '.join(others)}")
    lines.append(
        f"minimal plan (shrunk in {finding.shrink_runs} runs):" if finding.shrink_runs else "plan:"
    )
    lines += [f"  {line}" for line in describe_plan(finding.plan)]
    lines.append(f"timeline ({len(finding.timeline)} lines: virtual time, task, action):")
    lines += [f"  {line}" for line in finding.timeline]
    if repro is not None:
        lines.append(f"repro: {repro}  (aibridge fuzz --repro {repro})")
    return Group(head, Text("\n".join(lines)))


def campaign_renderable(campaign: Campaign, repros: Sequence[Path | None]) -> RenderableType:
    s = campaign.settings
    k, n = s.shard
    head = Text(
        f"aibridge fuzz: seed {s.seed}, {len(campaign.outcomes)} of {s.iterations} iterations"
        f"{f' (shard {k}/{n})' if n > 1 else ''}, stream initiation {s.stream_initiation}"
    )
    parts: list[RenderableType] = [head, summary_table(campaign)]
    for finding, repro in zip(campaign.findings, repros, strict=True):
        parts.append(finding_renderable(finding, repro))
    failures = campaign.failures
    if failures:
        first = failures[0]
        parts.append(
            Text(
                f"{len(failures)} failing iteration(s); first at iteration {first.iteration} "
                f"({first.scenario}, {first.oracle})",
                style="bold red",
            )
        )
    else:
        parts.append(Text("no failures", style="bold green"))
    if campaign.stopped_early:
        parts.append(Text("stopped early: the time budget ran out", style="yellow"))
    return Group(*parts)


def campaign_json(campaign: Campaign, repros: Sequence[Path | None]) -> dict[str, Any]:
    s = campaign.settings
    return {
        "seed": s.seed,
        "iterations": s.iterations,
        "ran": len(campaign.outcomes),
        "shard": f"{s.shard[0]}/{s.shard[1]}",
        "stream_initiation": s.stream_initiation,
        "scenarios": [sc.name for sc in s.scenarios],
        "stopped_early": campaign.stopped_early,
        "failures": [
            {
                "iteration": o.iteration,
                "iteration_seed": o.seed,
                "scenario": o.scenario,
                "oracle": o.oracle,
                "message": o.violations[0].message,
            }
            for o in campaign.failures
        ],
        "findings": [finding_json(f, r) for f, r in zip(campaign.findings, repros, strict=True)],
    }


def finding_json(finding: Finding, repro: Path | None) -> dict[str, Any]:
    return {
        "scenario": finding.scenario.name,
        "oracle": finding.oracle,
        "message": finding.violation.message,
        "seed": finding.seed,
        "iteration": finding.iteration,
        "iteration_seed": finding.iteration_seed,
        "plan": finding.plan.to_json(),
        "violations": [{"oracle": v.oracle, "message": v.message} for v in finding.violations],
        "timeline": list(finding.timeline),
        "repro": str(repro) if repro else None,
    }


def write_junit(campaign: Campaign, path: Path) -> None:
    """One test case per scenario and oracle; a failure element when it failed."""
    failed: dict[tuple[str, str], list[Any]] = {}
    for o in campaign.failures:
        failed.setdefault((o.scenario, o.oracle or ""), []).append(o)
    scenarios = sorted({o.scenario for o in campaign.outcomes})
    suite = ET.Element(
        "testsuite",
        name="aibridge-fuzz",
        tests=str(len(scenarios) * len(ORACLES)),
        failures=str(len(failed)),
    )
    for scenario in scenarios:
        for oracle in ORACLES:
            case = ET.SubElement(suite, "testcase", classname=scenario, name=oracle)
            hits = failed.get((scenario, oracle))
            if hits:
                first = hits[0]
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{len(hits)} failing iteration(s); "
                    f"first: {first.violations[0].message}",
                )
                failure.text = (
                    f"seed {campaign.settings.seed} iteration {first.iteration} "
                    f"(iteration seed {first.seed})"
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def listing(scenarios: Sequence[str]) -> RenderableType:
    table = Table(title="scenarios", title_justify="left")
    table.add_column("name")
    for name in scenarios:
        table.add_row(name)
    kinds = Table(title="fault kinds", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("what it does")
    for kind in FaultKind:
        kinds.add_row(kind, kind.description)
    oracles = Table(title="oracles", title_justify="left")
    oracles.add_column("oracle")
    oracles.add_column("what must hold")
    for oracle, text in ORACLES.items():
        oracles.add_row(oracle, text)
    return Group(table, kinds, oracles)
