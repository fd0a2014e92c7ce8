"""A fuzz campaign: many iterations (in worker processes if asked), then the findings.

Iteration ``i`` depends only on the seed and ``i``. ``--shard K/N`` runs the indexes
``i`` with ``i % N == K - 1``, so N shards together run exactly the iterations one
unsharded run would. Workers live for the whole campaign and keep their canonical runs;
on Linux they are forked from the campaign's process, which has imported the fuzzer.
For every (scenario, oracle) that failed, the first failing iteration is shrunk and run
once more with a timeline: that is a finding, written as ``repro-SEED.jsonl``.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from ..config import StreamInitiation
from ..errors import FixtureError
from ..files import write_private
from ..sim.client import ClientResult
from . import FORK_WORKERS
from .oracles import ALL_ORACLES, Violation
from .plan import ALL_FAULTS, FaultKind, Plan
from .runner import Draw, Judge, Outcome, draw_iteration
from .scenario import Scenario, refuse_commands, with_outcomes
from .shrink import shrink
from .signature import Signature, signature_counts

BATCH = 25
REPRO_VERSION = 1


class Shard(NamedTuple):
    """Shard ``part`` (from 1) of ``parts``: iterations ``i`` with ``i % parts == part - 1``."""

    part: int
    parts: int


ONE_SHARD = Shard(1, 1)


@dataclass(frozen=True)
class Settings:
    scenarios: tuple[Scenario, ...]
    seed: int
    iterations: int
    stream_initiation: StreamInitiation = "eager"
    jobs: int = 1
    shard: Shard = ONE_SHARD
    time_budget: float | None = None
    oracles: frozenset[str] = ALL_ORACLES
    faults: frozenset[FaultKind] = ALL_FAULTS
    max_findings: int = 20  # signatures shrunk and written as repro files

    @property
    def draw(self) -> Draw:
        return Draw(self.scenarios, self.seed, self.faults)

    def judge(self) -> Judge:
        return Judge(self.stream_initiation, self.oracles)

    def indexes(self) -> list[int]:
        k, n = self.shard
        return [i for i in range(self.iterations) if i % n == k - 1]


@dataclass(frozen=True)
class Origin:
    """Where a plan came from: the campaign's seed and the iteration that drew it."""

    seed: int
    iteration: int
    iteration_seed: int


@dataclass(frozen=True)
class Finding:
    """A shrunk failure, ready to print and to replay."""

    origin: Origin
    scenario: Scenario
    stream_initiation: StreamInitiation
    oracles: frozenset[str]
    original: Plan
    plan: Plan
    violation: Violation
    violations: tuple[Violation, ...]
    timeline: tuple[str, ...]
    shrink_runs: int
    client: ClientResult
    count: int = 1  # failing iterations with this signature

    @property
    def signature(self) -> Signature:
        return Signature(self.scenario.name, self.violation.oracle, self.violation.shape)

    @property
    def seed(self) -> int:
        return self.origin.seed

    @property
    def iteration(self) -> int:
        return self.origin.iteration

    @property
    def iteration_seed(self) -> int:
        return self.origin.iteration_seed

    @property
    def oracle(self) -> str:
        return self.violation.oracle

    def repro_lines(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": "fuzz-repro",
                "version": REPRO_VERSION,
                "seed": self.seed,
                "iteration": self.iteration,
                "iteration_seed": self.iteration_seed,
                "stream_initiation": self.stream_initiation,
                "oracle": self.violation.oracle,
                "shape": self.violation.shape,
                "message": self.violation.message,
                "oracles": sorted(self.oracles),
            },
            {"kind": "scenario", **self.scenario.to_json()},
            {"kind": "plan", **self.plan.to_json()},
        ]


@dataclass
class Campaign:
    settings: Settings
    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    elapsed: float = 0.0
    stopped_early: bool = False

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]


Progress = Callable[[int, int], None]  # (iterations done, failures so far)

# -- workers -----------------------------------------------------------------------------------

_worker: tuple[Judge, Draw] | None = None


def _init_worker(settings: Settings) -> None:
    global _worker
    _worker = (settings.judge(), settings.draw)


def _run_batch(indexes: Sequence[int]) -> list[Outcome]:
    assert _worker is not None
    judge, draw = _worker
    return judge.iterations(draw, indexes)


def workers_context() -> multiprocessing.context.BaseContext:
    """Where the workers come from: forked from this process (``FORK_WORKERS``: the fuzzer
    is imported once, not again by a fork server, half a second of CPU on a campaign's two
    cores; ``ProcessPoolExecutor`` forks them all before its own threads start, and the
    command's progress bar runs none), or from a fork server that imports this module
    (started early by the command)."""
    if FORK_WORKERS:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _batches(indexes: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(indexes), BATCH):
        yield indexes[start : start + BATCH]


def run_campaign(
    settings: Settings, progress: Progress | None = None, *, investigate: bool = True
) -> Campaign:
    """Run every iteration of ``settings`` and (unless told not to) shrink what failed."""
    campaign = Campaign(settings)
    started = time.monotonic()
    deadline = started + settings.time_budget if settings.time_budget else None
    indexes = settings.indexes()
    failures = 0

    def collect(batch: list[Outcome]) -> None:
        nonlocal failures
        campaign.outcomes.extend(batch)
        failures += sum(o.failed for o in batch)
        if progress is not None:
            progress(len(campaign.outcomes), failures)

    if settings.jobs <= 1:
        _init_worker(settings)
        for batch in _batches(indexes):
            if deadline is not None and time.monotonic() > deadline:
                campaign.stopped_early = True
                break
            collect(_run_batch(batch))
    else:
        with ProcessPoolExecutor(
            settings.jobs,
            mp_context=workers_context(),
            initializer=_init_worker,
            initargs=(settings,),
        ) as pool:
            pending: set[Future[list[Outcome]]] = set()
            batches = _batches(indexes)
            for batch in batches:
                pending.add(pool.submit(_run_batch, batch))
                if len(pending) >= settings.jobs * 2:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=id):
                    collect(future.result())
                if deadline is not None and time.monotonic() > deadline:
                    campaign.stopped_early = True
                    for future in pending:
                        future.cancel()
                    break
                for batch in batches:
                    pending.add(pool.submit(_run_batch, batch))
                    if len(pending) >= settings.jobs * 2:
                        break
    campaign.outcomes.sort(key=lambda o: o.iteration)
    campaign.elapsed = time.monotonic() - started
    if investigate:
        campaign.findings = find(settings, campaign.failures)
    return campaign


# -- findings ----------------------------------------------------------------------------------


def find(settings: Settings, failures: Sequence[Outcome]) -> list[Finding]:
    """Shrink the first failure of every distinct signature (the first ``max_findings``)."""
    counts = signature_counts(failures)
    firsts = {o.iteration: o for o in failures}
    judge = settings.judge()
    chosen = sorted(counts.items(), key=lambda item: (item[1][1], item[0]))
    return [
        replace(investigate(judge, settings, firsts[first], signature), count=count)
        for signature, (count, first) in chosen[: settings.max_findings]
    ]


def investigate(
    judge: Judge, settings: Settings, outcome: Outcome, signature: Signature
) -> Finding:
    scenario, plan, this_seed = draw_iteration(settings.draw, outcome.iteration)
    origin = Origin(settings.seed, outcome.iteration, this_seed)
    return minimize(judge, Case(scenario, plan, signature), origin)


@dataclass(frozen=True)
class Case:
    """A plan and the failure it shows, to shrink or replay."""

    scenario: Scenario
    plan: Plan
    signature: Signature

    def matches(self, violation: Violation) -> bool:
        return (violation.oracle, violation.shape) == (self.signature.oracle, self.signature.shape)

    def shows(self, violations: Sequence[Violation]) -> bool:
        return any(self.matches(v) for v in violations)


def minimize(judge: Judge, case: Case, origin: Origin) -> Finding:
    """Shrink the plan while it still shows the signature; rerun the result with a timeline."""
    scenario, plan = case.scenario, case.plan
    _, world = judge.evaluate(scenario, plan)
    plan = replace(plan, schedule_budget=min(plan.schedule_budget, world.deviations))

    def fails(candidate: Plan) -> bool:
        return case.shows(judge.evaluate(scenario, candidate)[0])

    original = plan
    sent = len(scenario.parts)  # a session's requests: the shrinker may leave some unsent
    small, runs = shrink(plan, fails, requests=sent) if fails(plan) else (plan, 0)
    return replay(judge, replace(case, plan=small), origin, original=original, shrink_runs=runs)


def replay(
    judge: Judge,
    case: Case,
    origin: Origin,
    *,
    original: Plan | None = None,
    shrink_runs: int = 0,
) -> Finding:
    """Run the case's plan once with a timeline and describe what it violates."""
    violations, world = judge.evaluate(case.scenario, case.plan, timeline=True)
    same_oracle = [v for v in violations if v.oracle == case.signature.oracle]
    chosen = next(
        (v for v in violations if case.matches(v)),
        (same_oracle or violations or [Violation("none", "the plan no longer fails")])[0],
    )
    return Finding(
        origin=origin,
        # a command's answer, not the command: the repro file never runs anything
        scenario=with_outcomes(case.scenario, judge.commands.only_outcome),
        stream_initiation=judge.stream_initiation,
        oracles=judge.oracles,
        original=original or case.plan,
        plan=case.plan,
        violation=chosen,
        violations=tuple(violations),
        timeline=tuple(world.timeline or ()),
        shrink_runs=shrink_runs,
        client=world.client,
    )


def write_repro(
    finding: Finding,
    directory: Path,
    taken: set[Path] | None = None,
    header: dict[str, Any] | None = None,
) -> Path:
    """Write ``repro-<iteration seed>.jsonl`` (``-2``, ``-3``... when one iteration shows
    several signatures: ``taken`` holds the paths written so far); ``header``: more fields
    for its first line (a black-box finding's target and client)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"repro-{finding.iteration_seed}.jsonl"
    n = 1
    while taken is not None and path in taken:
        n += 1
        path = directory / f"repro-{finding.iteration_seed}-{n}.jsonl"
    if taken is not None:
        taken.add(path)
    lines = finding.repro_lines()
    lines[0].update(header or {})
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    write_private(path, text)  # whole or absent, 0600: it holds the run's bodies
    return path


def load_repro(path: Path, allow_commands: bool = False) -> tuple[dict[str, Any], Scenario, Plan]:
    """The header, scenario and plan of a repro file; ``FixtureError`` when it is not one,
    ``ConfigError`` when a tool would run a command and ``allow_commands`` is not given."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise FixtureError(f"{path}: not JSON lines: {exc}") from None
    by_kind = {line.get("kind"): line for line in lines if isinstance(line, dict)}
    missing = [k for k in ("fuzz-repro", "scenario", "plan") if k not in by_kind]
    if missing:
        raise FixtureError(f"{path}: not a fuzz repro file (missing {', '.join(missing)} line)")
    header = by_kind["fuzz-repro"]
    if header.get("version") != REPRO_VERSION:
        raise FixtureError(
            f"{path}: repro version {header.get('version')}, expected {REPRO_VERSION}"
        )
    try:
        scenario = Scenario.from_json({k: v for k, v in by_kind["scenario"].items() if k != "kind"})
        plan = Plan.from_json({k: v for k, v in by_kind["plan"].items() if k != "kind"})
    except (KeyError, TypeError, ValueError) as exc:
        raise FixtureError(f"{path}: malformed scenario or plan: {exc}") from None
    if not allow_commands:
        refuse_commands(scenario.every_tool, str(path))
    return header, scenario, plan
