"""Many worlds share one trio run, and each is the run it would be alone."""

from __future__ import annotations

from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import world_spec
from aibridge_cli.fuzz.runner import Draw, draw_iteration
from aibridge_cli.sim.world import WorldResult, WorldSpec, run_world, session, simulate

SEED_CASE = "anthropic/rate-limit-after-tool-turn"


def specs() -> list[WorldSpec]:
    scenarios = (*builtin(SEED_CASE), *builtin("openai-chat/injected-tool#streaming"))
    return [
        world_spec(scenario, plan, "lazy")
        for scenario, plan, _ in (draw_iteration(Draw(scenarios, 3), i) for i in range(12))
    ]


def test_a_world_in_a_shared_session_is_the_run_it_is_alone() -> None:
    async def all_in_one() -> list[WorldResult]:
        return [await simulate(spec, timeline=True) for spec in specs()]

    together = session(all_in_one)
    alone = [run_world(spec, timeline=True) for spec in specs()]
    assert together == alone
    # The worlds differ (so the comparison means something), and time starts at 0 in each.
    assert len({result.client.body for result in alone}) > 1
    assert all(result.timeline and result.timeline[0].startswith("  0.000000") for result in alone)
