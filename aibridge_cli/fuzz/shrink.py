"""Shrinking a failing plan: fewest faults, smallest delays, fewest schedule deviations.

Greedy and deterministic: try each simplification of the current plan in a fixed order,
keep the first that still violates the same oracle, start over; stop when none does or
the run budget is spent. Faults go first, then whole perturbation groups, then single
entries, then smaller values, and the schedule budget last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from .plan import Fault, Plan

Fails = Callable[[Plan], bool]
_SMALLER_DELAYS = (0.0, 0.001, 0.01, 0.1, 1.0)


def _without(items: tuple, i: int) -> tuple:  # type: ignore[type-arg]
    return items[:i] + items[i + 1 :]


def candidates(plan: Plan) -> Iterator[Plan]:
    """Simpler plans than ``plan``, most aggressive first."""
    for i in range(len(plan.faults)):
        yield replace(plan, faults=_without(plan.faults, i))
    if plan.schedule_budget:
        yield replace(plan, schedule_budget=0)
    groups = ("checkpoints", "delays", "read_delays", "tool_latency", "cuts")
    fields: dict[str, Any]
    for name in groups:
        if getattr(plan, name):
            fields = {name: ()}
            yield replace(plan, **fields)
    if plan.read_size != 65536:
        yield replace(plan, read_size=65536)
    for name in groups:
        items = getattr(plan, name)
        for i in range(len(items)):
            fields = {name: _without(items, i)}
            yield replace(plan, **fields)
    for i, (e, offsets) in enumerate(plan.cuts):
        for j in range(len(offsets)):
            fewer = (e, offsets[:j] + offsets[j + 1 :])
            yield replace(plan, cuts=(*plan.cuts[:i], fewer, *plan.cuts[i + 1 :]))
    for i, (e, c, d) in enumerate(plan.delays):
        for smaller in _SMALLER_DELAYS:
            if smaller < d:
                yield replace(
                    plan, delays=(*plan.delays[:i], (e, c, smaller), *plan.delays[i + 1 :])
                )
    for i, (r, d) in enumerate(plan.read_delays):
        for smaller in _SMALLER_DELAYS:
            if smaller < d:
                yield replace(
                    plan,
                    read_delays=(*plan.read_delays[:i], (r, smaller), *plan.read_delays[i + 1 :]),
                )
    for i, (p, op, n) in enumerate(plan.checkpoints):
        if n > 1:
            yield replace(
                plan,
                checkpoints=(*plan.checkpoints[:i], (p, op, n // 2), *plan.checkpoints[i + 1 :]),
            )
            yield replace(
                plan,
                checkpoints=(*plan.checkpoints[:i], (p, op, n - 1), *plan.checkpoints[i + 1 :]),
            )
    for i, fault in enumerate(plan.faults):
        for simpler in _simpler_faults(fault):
            yield replace(plan, faults=(*plan.faults[:i], simpler, *plan.faults[i + 1 :]))
    if plan.schedule_budget > 1:
        yield replace(plan, schedule_budget=plan.schedule_budget // 2)
        yield replace(plan, schedule_budget=plan.schedule_budget - 1)


def _simpler_faults(fault: Fault) -> Iterator[Fault]:
    if fault.at > 0:
        yield replace(fault, at=0)
        yield replace(fault, at=fault.at // 2)
    if fault.kind == "429-all":
        yield replace(fault, kind="429-one")
    if fault.retry_after not in (None, "1") and fault.kind.startswith("429"):
        yield replace(fault, retry_after="1")


def shrink(plan: Plan, fails: Fails, *, budget: int = 300) -> tuple[Plan, int]:
    """The simplest plan reachable from ``plan`` that still fails; and the runs it took."""
    runs = 0
    improved = True
    while improved and runs < budget:
        improved = False
        for candidate in candidates(plan):
            if runs >= budget:
                break
            runs += 1
            if fails(candidate):
                plan = candidate
                improved = True
                break
    return plan, runs
