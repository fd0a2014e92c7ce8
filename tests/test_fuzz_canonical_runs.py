"""Canonical runs are shared where they must be equal, and never computed twice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aibridge_cli.fuzz.catalog import builtin, builtin_scenarios
from aibridge_cli.fuzz.oracles import client_response, shape_of
from aibridge_cli.fuzz.plan import RARE_RETRY_AFTER, START_AFTER, Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Scenario
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


def _seen(judge: Judge, scenario: Scenario, plan: Plan) -> tuple[Any, ...]:
    """What the client got from ``plan``'s own run, bytes and all, and its meaning."""
    _, result = judge.evaluate(scenario, plan)
    response = client_response(result, plan)
    meaning = shape_of(scenario, response, result)
    return response.status, response.headers, response.body, meaning


def test_a_plan_and_its_essential_canonical_plan_give_the_client_the_same_bytes() -> None:
    """What the canonical key drops cannot change a run: every built-in scenario, bare and
    with faults that strike, limit and cut, on a fractional clock and every Retry-After."""
    judge, checked = Judge("eager"), 0
    fault_sets = (
        (),
        (Fault(FaultKind.FORBIDDEN, 0),),
        (Fault(FaultKind.EARLY_END, 0, 1),),
        (Fault(FaultKind.RATE_LIMIT_ONE, 0, 0, "date"),),
    )
    for n, scenario in enumerate(builtin_scenarios()):
        for i, faults in enumerate(fault_sets):
            start = START_AFTER[(n + i) % len(START_AFTER)]
            retry = RARE_RETRY_AFTER[(n + i) % len(RARE_RETRY_AFTER)]
            plan = Plan(faults=faults, start_after=start, retry_after=retry)
            essential = plan.essential_canonical(scenario)
            if essential != plan:
                assert _seen(judge, scenario, plan) == _seen(judge, scenario, essential), (
                    f"{scenario.name}: {plan} against {essential}"
                )
                checked += 1
    assert checked >= 100


def test_the_canonical_key_keeps_what_can_change_the_run() -> None:
    simple, limited = builtin(SIMPLE)[0], builtin("anthropic/rate-limit-after-tool-turn")[0]
    blocking = builtin("anthropic/simple#blocking")[0]
    moved = Plan(start_after=0.7, retry_after="date", line_ending="\r\n")
    assert moved.essential_canonical(simple) == Plan(line_ending="\r\n")
    assert moved.essential_canonical(blocking) == Plan()
    # A 429 in the scenario: its Retry-After is the plan's; a date keeps the clock's start.
    assert moved.essential_canonical(limited) == moved
    seconds = replace(moved, retry_after="2.5")
    assert seconds.essential_canonical(limited) == replace(seconds, start_after=0.0)
    # A fault that answers 429: the plan's Retry-After replaces the fault's.
    limits = replace(moved, faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 0, "5"),))
    assert limits.essential_canonical(simple) == replace(
        limits, faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 0, None),)
    )
    own = replace(limits, retry_after=None)
    assert own.essential_canonical(simple) == replace(own, start_after=0.0)
    dated = replace(own, faults=(Fault(FaultKind.RATE_LIMIT_ONE, 0, 0, "date"),))
    assert dated.essential_canonical(simple) == dated
    # A 401 disables its key for good: no cooldown, no clock.
    disables = replace(moved, faults=(Fault(FaultKind.UNAUTHORIZED, 0),))
    assert disables.essential_canonical(simple) == Plan(faults=disables.faults, line_ending="\r\n")
    judge, runs = counting_judge()
    for start in START_AFTER:
        judge.evaluate(simple, Plan(start_after=start, read_size=64))
        judge.evaluate(limited, Plan(start_after=start, retry_after="date", read_size=64))
    assert len(judge.canonical) == 1 + len(START_AFTER)
    assert len(runs) == 2 * len(START_AFTER) + len(judge.canonical)  # each computed once
