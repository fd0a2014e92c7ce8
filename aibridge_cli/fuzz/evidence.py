"""The runs a reproducer's page shows: the failing run, and the run it should have been.

A finding keeps its plan, not its runs; the simulation is deterministic, so running the
plan once more with a timeline gives the very run that failed, with its marks
(``sim.marks``). For a schedule-dependence finding the canonical run (same faults, FIFO
schedule, no perturbation) is run too, so the page can set the two side by side. Only
findings get here, never campaign iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sim.world import WorldResult
from .campaign import Finding
from .runner import Judge


@dataclass(frozen=True)
class Evidence:
    finding: Finding
    run: WorldResult
    canonical: WorldResult | None  # for schedule-dependence: the run it should equal
    target: str | None = None  # a black-box finding's target: the run is what we saw of it


def gather(finding: Finding) -> Evidence:
    """Run the finding's plan (and its canonical plan, when that is the question) again."""
    judge = Judge(finding.stream_initiation, finding.oracles)
    _, run = judge.evaluate(finding.scenario, finding.plan, timeline=True)
    canonical = None
    if finding.oracle == "schedule-dependence":
        base = finding.plan.essential_canonical(finding.scenario)
        _, canonical = judge.evaluate(finding.scenario, base, timeline=True)
    return Evidence(finding, run, canonical)
