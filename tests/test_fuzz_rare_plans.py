"""The rare paths come up in every 1,000-iteration campaign: checked by drawing the
plans of whole campaigns (every built-in scenario, all fault kinds), not by running them."""

from __future__ import annotations

import email.utils
import math

import pytest

from aibridge_cli.fuzz.catalog import builtin_scenarios
from aibridge_cli.fuzz.plan import ALL_FAULTS, FaultKind, Plan, draw_plan, upstream_replies
from aibridge_cli.fuzz.runner import Draw, draw_iteration
from aibridge_cli.fuzz.scenario import Scenario

SEEDS = range(1, 13)


def _retry_form(value: str) -> str:
    if value.isdigit():
        return "seconds"
    if value.replace(".", "", 1).isdigit():
        return "fraction"
    try:
        email.utils.parsedate_to_datetime(value)
    except ValueError:
        return "unreadable"
    return "date"


def rare_paths(scenario: Scenario, plan: Plan) -> set[str]:
    """The rare paths one iteration reaches."""
    found = set()
    replies = upstream_replies(scenario, plan)
    streams = [r for r in replies if r.status < 400 and r.chunks and scenario.streaming]
    if plan.line_ending == "\r" and streams:
        found.add("CR")
    if plan.line_ending == "\r\n" and streams:
        found.add("CRLF")
        # a chunk that ends between the CR and the LF of a line end
        if any(
            a.endswith(b"\r") and b.startswith(b"\n")
            for r in streams
            for a, b in zip(r.chunks, r.chunks[1:], strict=False)
        ):
            found.add("CR|LF split")
    if any(f.kind is FaultKind.EARLY_END for f in plan.faults):
        found.add(f"early end {scenario.api}")
    fractional_clock = plan.start_after != math.floor(plan.start_after)
    for reply in replies:
        retry = next((v for k, v in reply.headers if k == "retry-after"), None)
        if reply.status == 429 and retry is not None and fractional_clock:
            found.add(f"Retry-After {_retry_form(retry)}, fractional clock")
    return found


WANTED = {
    "CR",
    "CRLF",
    "CR|LF split",
    "early end anthropic",
    "early end openai-chat",
    "early end openai-responses",
    "Retry-After seconds, fractional clock",
    "Retry-After fraction, fractional clock",
    "Retry-After date, fractional clock",
}


@pytest.mark.parametrize("seed", SEEDS)
def test_every_rare_path_in_every_1000_iteration_campaign(seed: int) -> None:
    draw = Draw(builtin_scenarios(), seed)
    reached: set[str] = set()
    for i in range(1000):
        scenario, plan, _ = draw_iteration(draw, i)
        reached |= rare_paths(scenario, plan)
    assert WANTED <= reached, f"seed {seed}: never {sorted(WANTED - reached)}"


def test_the_rare_paths_leave_the_rest_of_a_plan_as_it_was() -> None:
    # Drawn last, they change no other choice: a seed's faults and perturbations before
    # them are what they were, and a campaign without early-end draws the same faults.
    import random

    scenario = builtin_scenarios()[0]
    for seed in range(200):
        with_all = draw_plan(random.Random(seed), scenario)
        without = draw_plan(random.Random(seed), scenario, ALL_FAULTS - {FaultKind.EARLY_END})
        kept = tuple(f for f in with_all.faults if f.kind is not FaultKind.EARLY_END)
        assert without.faults == kept
        assert without.cuts == with_all.cuts
        assert without.delays == with_all.delays
