"""Running iterations: one seed, one scenario, one plan, one judged run.

An iteration's scenario and plan come from ``iteration_seed(seed, i)`` alone, so any
process can run any iteration: workers split the indexes, shards take every N-th one, and
the results, put back in index order, are the same as one process would give.
The canonical run of each (scenario, faults) pair is computed once per process.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..config import StreamInitiation
from ..sim.world import WorldResult, session, simulate
from .oracles import Violation, client_response, judge, shape_of
from .plan import Plan, draw_plan, iteration_seed, world_spec
from .scenario import Scenario


@dataclass(frozen=True)
class Outcome:
    """One iteration's verdict; the plan travels only when something failed."""

    iteration: int
    seed: int
    scenario: str
    violations: tuple[Violation, ...]
    plan: Plan | None = None

    @property
    def failed(self) -> bool:
        return bool(self.violations)

    @property
    def oracle(self) -> str | None:
        return self.violations[0].oracle if self.violations else None


@dataclass
class Judge:
    """Runs and judges plans; keeps the canonical runs it has computed.

    The ``async`` methods run inside a simulation ``session``; the others start one.
    """

    stream_initiation: StreamInitiation
    canonical: dict[tuple[str, Plan], Any] = field(default_factory=dict)
    # The world runner; a test passes one that counts the runs.
    simulate: Callable[..., Awaitable[WorldResult]] = field(default=simulate, repr=False)

    async def canonical_shape_of(self, scenario: Scenario, plan: Plan) -> Any:
        base = plan.essential_canonical()
        key = (scenario.name, base)
        if key not in self.canonical:
            world = await self.simulate(world_spec(scenario, base, self.stream_initiation))
            self.canonical[key] = shape_of(scenario, client_response(world, base), world)
        return self.canonical[key]

    async def judge_plan(
        self, scenario: Scenario, plan: Plan, *, timeline: bool = False
    ) -> tuple[list[Violation], WorldResult]:
        world = await self.simulate(
            world_spec(scenario, plan, self.stream_initiation), timeline=timeline
        )
        # A client that hangs up sees a prefix: no canonical run to compare it with.
        compare = plan != plan.canonical() and not plan.disconnects
        canonical = None
        if compare:
            key = (scenario.name, plan.essential_canonical())
            if (
                key not in self.canonical
                and world.deviations == 0
                and plan.perturbs_only_the_schedule
            ):
                # The scheduler never deviated from FIFO and nothing else was perturbed: this
                # was the canonical run, byte for byte.
                self.canonical[key] = shape_of(scenario, client_response(world, plan), world)
            canonical = await self.canonical_shape_of(scenario, plan)
        return judge(scenario, plan, world, canonical), world

    async def judge_iteration(
        self, scenarios: Sequence[Scenario], seed: int, index: int
    ) -> Outcome:
        scenario, plan, this_seed = draw_iteration(scenarios, seed, index)
        violations, _ = await self.judge_plan(scenario, plan)
        return Outcome(
            index, this_seed, scenario.name, tuple(violations), plan if violations else None
        )

    async def judge_iterations(
        self, scenarios: Sequence[Scenario], seed: int, indexes: Sequence[int]
    ) -> list[Outcome]:
        return [await self.judge_iteration(scenarios, seed, i) for i in indexes]

    def canonical_shape(self, scenario: Scenario, plan: Plan) -> Any:
        return session(partial(self.canonical_shape_of, scenario, plan))

    def evaluate(
        self, scenario: Scenario, plan: Plan, *, timeline: bool = False
    ) -> tuple[list[Violation], WorldResult]:
        return session(partial(self.judge_plan, scenario, plan, timeline=timeline))

    def iteration(self, scenarios: Sequence[Scenario], seed: int, index: int) -> Outcome:
        return session(partial(self.judge_iteration, scenarios, seed, index))

    def iterations(
        self, scenarios: Sequence[Scenario], seed: int, indexes: Sequence[int]
    ) -> list[Outcome]:
        """Iterations ``indexes`` in one session."""
        return session(partial(self.judge_iterations, scenarios, seed, indexes))


def draw_iteration(
    scenarios: Sequence[Scenario], seed: int, index: int
) -> tuple[Scenario, Plan, int]:
    """The scenario and plan of iteration ``index`` of a run seeded with ``seed``."""
    this_seed = iteration_seed(seed, index)
    rng = random.Random(this_seed)
    scenario = scenarios[rng.randrange(len(scenarios))]
    return scenario, draw_plan(rng, scenario), this_seed
