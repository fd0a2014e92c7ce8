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

from ..config import StreamInitiation
from ..sim.world import CommandResults, WorldResult, session, simulate
from .oracles import ALL_ORACLES, CanonicalRun, Run, Violation
from .plan import ALL_FAULTS, FaultKind, Plan, draw_plan, iteration_seed
from .scenario import Scenario
from .session import canonical_of, judged, world_spec_of
from .signature import Signature, first_signatures


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

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return first_signatures(self.scenario, self.violations)


@dataclass
class Judge:
    """Runs and judges plans; keeps the canonical runs it has computed.

    The ``async`` methods run inside a simulation ``session``; the others start one.
    ``commands`` holds the outputs of command tools, run once per distinct input.
    """

    stream_initiation: StreamInitiation
    oracles: frozenset[str] = ALL_ORACLES
    canonical: dict[tuple[str, Plan], CanonicalRun] = field(default_factory=dict)
    commands: CommandResults = field(default_factory=CommandResults)
    # The world runner; a test passes one that counts the runs.
    simulate: Callable[..., Awaitable[WorldResult]] = field(default=simulate, repr=False)

    async def _run(self, scenario: Scenario, plan: Plan, *, timeline: bool = False) -> Run:
        spec = world_spec_of(scenario, plan, self.stream_initiation)
        world = await self.simulate(spec, timeline=timeline, commands=self.commands)
        served = spec.replies[: len(world.attempts)]
        return Run(scenario, plan, world, served, self.stream_initiation)

    async def canonical_of(self, scenario: Scenario, plan: Plan) -> CanonicalRun:
        return await self._canonical(scenario, plan.essential_canonical(scenario))

    async def _canonical(self, scenario: Scenario, base: Plan) -> CanonicalRun:
        """The canonical run of ``base`` (an essential canonical plan), run once."""
        key = (scenario.name, base)
        if key not in self.canonical:
            self.canonical[key] = canonical_of(await self._run(scenario, base))
        return self.canonical[key]

    async def judge_plan(
        self, scenario: Scenario, plan: Plan, *, timeline: bool = False
    ) -> tuple[list[Violation], WorldResult]:
        run = await self._run(scenario, plan, timeline=timeline)
        # A client that hangs up sees a prefix: no canonical run to compare it with.
        compare = (
            "schedule-dependence" in self.oracles
            and plan != plan.canonical()
            and not plan.disconnects
            # a load's answers are shared as the schedule says; a session's are each request's
            and (scenario.requests == 1 or bool(scenario.parts))
        )
        canonical = None
        if compare:
            base = plan.essential_canonical(scenario)
            key = (scenario.name, base)
            if (
                key not in self.canonical
                and run.world.deviations == 0
                and plan.perturbs_only_the_schedule
            ):
                # The scheduler never deviated from FIFO and nothing else was perturbed: this
                # was the canonical run, byte for byte.
                self.canonical[key] = canonical_of(run)
            canonical = await self._canonical(scenario, base)
        return judged(run, canonical, self.oracles), run.world

    async def judge_iteration(self, draw: Draw, index: int) -> Outcome:
        scenario, plan, this_seed = draw_iteration(draw, index)
        violations, _ = await self.judge_plan(scenario, plan)
        return Outcome(
            index, this_seed, scenario.name, tuple(violations), plan if violations else None
        )

    async def judge_iterations(self, draw: Draw, indexes: Sequence[int]) -> list[Outcome]:
        return [await self.judge_iteration(draw, i) for i in indexes]

    def canonical_shape(self, scenario: Scenario, plan: Plan) -> CanonicalRun:
        return session(partial(self.canonical_of, scenario, plan))

    def evaluate(
        self, scenario: Scenario, plan: Plan, *, timeline: bool = False
    ) -> tuple[list[Violation], WorldResult]:
        return session(partial(self.judge_plan, scenario, plan, timeline=timeline))

    def iteration(self, draw: Draw, index: int) -> Outcome:
        return session(partial(self.judge_iteration, draw, index))

    def iterations(self, draw: Draw, indexes: Sequence[int]) -> list[Outcome]:
        """Iterations ``indexes`` in one session."""
        return session(partial(self.judge_iterations, draw, indexes))


@dataclass(frozen=True)
class Draw:
    """What an iteration is drawn from: the scenarios, the seed, the fault kinds allowed."""

    scenarios: Sequence[Scenario]
    seed: int
    faults: frozenset[FaultKind] = ALL_FAULTS


def draw_iteration(draw: Draw, index: int) -> tuple[Scenario, Plan, int]:
    """The scenario and plan of iteration ``index`` of a run seeded with ``draw.seed``."""
    this_seed = iteration_seed(draw.seed, index)
    rng = random.Random(this_seed)
    scenario = draw.scenarios[rng.randrange(len(draw.scenarios))]
    return scenario, draw_plan(rng, scenario, draw.faults), this_seed
