"""Canonical runs are shared where they must be equal, and never computed twice."""

from __future__ import annotations

from typing import Any

from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.sim import world

SIMPLE = "anthropic/simple#streaming"


def counting_judge() -> tuple[Judge, list[Any]]:
    """A judge whose world runner notes every run it starts."""
    runs: list[Any] = []

    async def simulate(spec: Any, **kwargs: Any) -> Any:
        runs.append(spec)
        return await world.simulate(spec, **kwargs)

    return Judge("eager", simulate=simulate), runs


def test_plans_that_differ_only_in_fields_their_faults_ignore_share_a_canonical_run() -> None:
    scenario, judge = builtin(SIMPLE)[0], Judge("eager")
    judge.evaluate(
        scenario, Plan(faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 3, "5"),), read_size=64)
    )
    judge.evaluate(
        scenario, Plan(faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 7, "5"),), read_size=512)
    )
    assert len(judge.canonical) == 1
    # Retry-After changes what a 429 means, and the frame what a reset means.
    judge.evaluate(
        scenario, Plan(faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 7, "1"),), read_size=64)
    )
    judge.evaluate(scenario, Plan(faults=(Fault(FaultKind.RESET_IN_BODY, 0, 1),), read_size=64))
    judge.evaluate(scenario, Plan(faults=(Fault(FaultKind.RESET_IN_BODY, 0, 2),), read_size=64))
    assert len(judge.canonical) == 4


def test_a_run_whose_schedule_never_left_fifo_is_its_own_canonical_run() -> None:
    scenario = builtin(SIMPLE)[0]
    judge, runs = counting_judge()
    reference = Judge("eager")
    reference.canonical_shape(scenario, Plan())
    violations, result = judge.evaluate(scenario, Plan(schedule_seed=5, schedule_budget=0))
    assert violations == []
    assert result.deviations == 0
    assert len(runs) == 1
    assert judge.canonical == reference.canonical
    # A plan that perturbs more than the schedule still gets a canonical run of its own.
    judge.evaluate(scenario, Plan(faults=(Fault(FaultKind.SERVER_ERROR, 0),), read_size=64))
    assert len(runs) == 3
