"""Shrinking a failing plan: fewest faults, smallest delays, fewest schedule deviations.

Greedy and deterministic: try each simplification of the current plan in a fixed order,
keep the first that still violates the same oracle, start over; stop when none does or
the run budget is spent. Faults go first, then a session's requests (``Plan.drop``), then
whole perturbation groups, then single entries, then smaller values, and the schedule
budget last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

from .plan import Fault, FaultKind, Plan

Fails = Callable[[Plan], bool]
_SMALLER_DELAYS = (0.0, 0.001, 0.01, 0.1, 1.0)


T = TypeVar("T")


def _without(items: tuple[T, ...], i: int) -> tuple[T, ...]:
    return items[:i] + items[i + 1 :]


def _with(items: tuple[T, ...], i: int, item: T) -> tuple[T, ...]:
    """``items`` with its ``i``-th entry replaced by ``item``."""
    return (*items[:i], item, *items[i + 1 :])


def candidates(plan: Plan, requests: int = 1) -> Iterator[Plan]:
    """Simpler plans than ``plan``, most aggressive first; ``requests``: a session's."""
    for i in range(len(plan.faults)):
        yield replace(plan, faults=_without(plan.faults, i))
    sent = [r for r in range(requests) if r not in plan.drop]
    for r in sent if len(sent) > 1 else ():
        yield replace(plan, drop=tuple(sorted((*plan.drop, r))))
    if plan.schedule_budget:
        yield replace(plan, schedule_budget=0)
    groups = ("checkpoints", "delays", "read_delays", "tool_latency", "cuts", "starts", "heads")
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
    for i, cut in enumerate(plan.cuts):
        for j in range(len(cut.offsets)):
            fewer = cut._replace(offsets=_without(cut.offsets, j))
            yield replace(plan, cuts=_with(plan.cuts, i, fewer))
    for i, delay in enumerate(plan.delays):
        for smaller in _SMALLER_DELAYS:
            if smaller < delay.seconds:
                yield replace(plan, delays=_with(plan.delays, i, delay._replace(seconds=smaller)))
    for i, read in enumerate(plan.read_delays):
        for smaller in _SMALLER_DELAYS:
            if smaller < read.seconds:
                shorter = read._replace(seconds=smaller)
                yield replace(plan, read_delays=_with(plan.read_delays, i, shorter))
    for i, checkpoint in enumerate(plan.checkpoints):
        if checkpoint.extra > 1:
            for extra in (checkpoint.extra // 2, checkpoint.extra - 1):
                fewer_yields = checkpoint._replace(extra=extra)
                yield replace(plan, checkpoints=_with(plan.checkpoints, i, fewer_yields))
    for i, fault in enumerate(plan.faults):
        for simpler in _simpler_faults(fault):
            yield replace(plan, faults=_with(plan.faults, i, simpler))
    if plan.schedule_budget > 1:
        yield replace(plan, schedule_budget=plan.schedule_budget // 2)
        yield replace(plan, schedule_budget=plan.schedule_budget - 1)


def _simpler_faults(fault: Fault) -> Iterator[Fault]:
    if fault.at > 0:
        yield replace(fault, at=0)
        yield replace(fault, at=fault.at // 2)
    if fault.kind is FaultKind.RATE_LIMIT_ALL:
        yield replace(fault, kind=FaultKind.RATE_LIMIT_ONE)
    if fault.retry_after not in (None, "1") and fault.kind.rate_limits:
        yield replace(fault, retry_after="1")


def shrink(plan: Plan, fails: Fails, *, budget: int = 300, requests: int = 1) -> tuple[Plan, int]:
    """The simplest plan reachable from ``plan`` that still fails, and the runs it took;
    ``requests``: a session's, which it may leave unsent."""
    runs = 0
    improved = True
    while improved and runs < budget:
        improved = False
        for candidate in candidates(plan, requests):
            if runs >= budget:
                break
            runs += 1
            if fails(candidate):
                plan = candidate
                improved = True
                break
    return plan, runs
