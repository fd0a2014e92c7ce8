"""Whole sessions as one world: a recording's interceptions, each a client request with its
own body, route and upstream answers, started at their recorded offsets, through one proxy.

A session is a ``Scenario`` whose ``parts`` are its requests (one-request scenarios) and
whose exchanges are theirs one after the other, so ``draw_plan`` draws its faults over
every request's answers, and its overlap (``Plan.starts``) as for a load, unchanged. Here:
the part of a plan that falls on one request (``part_plan``), the world it makes
(``session_spec``: the upstream answers each upstream request with its own request's
answers, ``sim/session.py``), and the judging: every one-request oracle per request, on
that request's client, attempts and answers, and the cross-request ones once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from ..config import StreamInitiation
from ..fakes.scripted_upstream import Reply
from ..interception import Interception
from ..sim.client import Pace
from ..sim.session import Session, SessionRequest
from ..sim.world import WorldResult, WorldSpec
from .memo import Memo
from .oracles import (
    CanonicalRun,
    Run,
    Violation,
    canonical_run,
    judge,
    shared_problems,
    world_problems,
)
from .plan import ChunkDelay, Cut, FaultKind, Plan, upstream_replies, world_spec
from .scenario import Scenario

# Judged once for the whole world, not per request.
CROSS_REQUEST = frozenset(
    {"hygiene", "liveness", "release", "breaker", "key-consistency", "recording"}
)
# What holds for a response alone, whichever answers it got (requests that cannot be told apart).
ALONE = frozenset({"malformed-body", "error-shape"})
_STRIKES = (401, 403, 429)


def _paced(part: Scenario, record: Interception) -> Scenario:
    """``part`` with each exchange's recorded duration (from the end of the one before)."""
    ends = [max((c.offset_ms for c in x.response.chunks), default=0.0) for x in record.upstream]
    exchanges = [
        replace(x, after=round(max(0.0, end - (ends[k - 1] if k else 0.0)) / 1000, 3))
        for k, (x, end) in enumerate(zip(part.exchanges, ends, strict=True))
    ]
    return replace(part, exchanges=tuple(exchanges))


def session_scenario(
    name: str, records: Sequence[tuple[str, Interception]], keys: int, allow_commands: bool
) -> Scenario:
    """The session of ``records`` (label, interception), started and paced as they were
    recorded; one tools set, the first request's version of each tool."""
    parts = [
        Scenario.from_interception(f"{name}#{label}", record, keys, allow_commands)
        for label, record in records
    ]
    tools = tuple({t.name: t for p in reversed(parts) for t in reversed(p.tools)}.values())[::-1]
    parts = [
        replace(_paced(p, record), tools=tools)
        for p, (_, record) in zip(parts, records, strict=True)
    ]
    first = min(record.started_at for _, record in records)
    starts = tuple(round(record.started_at - first, 3) for _, record in records)
    head = parts[0]
    return Scenario(
        name,
        head.api,
        head.path,
        head.body,
        tuple(x for p in parts for x in p.exchanges),
        tools,
        keys,
        requests=len(parts),
        starts=starts,
        parts=tuple(parts),
    )


def kept(scenario: Scenario, plan: Plan) -> list[int]:
    """The requests a plan's world sends (the shrinker drops the others)."""
    return [r for r in range(len(scenario.parts)) if r not in plan.drop]


def part_plan(plan: Plan, scenario: Scenario, r: int) -> Plan:
    """What of ``plan`` falls on request ``r``: its exchanges' faults, cuts and delays,
    renumbered from its first exchange; the rest as for the world."""
    first = sum(len(p.exchanges) for p in scenario.parts[:r])
    mine = range(first, first + len(scenario.parts[r].exchanges))
    return replace(
        plan,
        faults=tuple(
            replace(f, exchange=f.exchange - first)
            for f in plan.faults
            if f.exchange in mine and not f.kind.mcp
        ),
        cuts=tuple(Cut(e - first, c) for e, c in plan.cuts if e in mine),
        delays=tuple(
            ChunkDelay(d.exchange - first, d.chunk, d.seconds)
            for d in plan.delays
            if d.exchange in mine
        ),
        pad=plan.pad if r == 0 else 0,
        starts=(),
        drop=(),
    )


# (the scenario's id, plan) -> (the scenario, its replies): a world's spec and its judging
# both need them, with a canonical run's between; the entry holds the scenario, so its id
# is not reused while the entry lives
_replies: Memo[tuple[int, Plan], tuple[Scenario, list[list[Reply]]]] = Memo(size=8)


def session_replies(scenario: Scenario, plan: Plan) -> list[list[Reply]]:
    """Each sent request's upstream answers for this plan (shared: read them only)."""

    def make() -> tuple[Scenario, list[list[Reply]]]:
        each = [
            upstream_replies(scenario.parts[r], part_plan(plan, scenario, r))
            for r in kept(scenario, plan)
        ]
        return scenario, each

    return _replies.get((id(scenario), plan), make)[1]


def session_spec(spec: WorldSpec, scenario: Scenario, plan: Plan) -> WorldSpec:
    """``spec`` (``world_spec``'s) as a session: each sent request with its own answers and
    its own pace (a client disconnect strikes its own request)."""
    sent = kept(scenario, plan)
    requests = []
    for r, replies in zip(sent, session_replies(scenario, plan), strict=True):
        part = scenario.parts[r]
        own = part_plan(plan, scenario, r)
        leave = next((f.at for f in own.faults if f.kind is FaultKind.CLIENT_DISCONNECT), None)
        pace = replace(spec.pace, disconnect_after=leave)
        requests.append(SessionRequest(part.path, part.body, replies, pace))
    starts = [spec.starts[r] if r < len(spec.starts) else 0.0 for r in sent]
    return replace(spec, replies=(), requests=len(sent), starts=starts, session=Session(requests))


def _sub_runs(run: Run) -> list[tuple[int, Run, bool]]:
    """Each sent request's own run (its client, attempts, answers, lost tool results), and
    whether it can be told apart from the others (not a twin)."""
    scenario, plan, world = run.scenario, run.plan, run.world
    sent = kept(scenario, plan)
    twins = Session(
        [SessionRequest(scenario.parts[r].path, scenario.parts[r].body, (), Pace()) for r in sent]
    ).twins
    out = []
    for w, (r, replies) in enumerate(zip(sent, session_replies(scenario, plan), strict=True)):
        attempts = [a for a in world.attempts if a.request == w]
        client = world.clients[w] if w < len(world.clients) else world.client
        lost = [
            m for m, o in zip(world.lost_tool_results, world.lost_requests, strict=True) if o == w
        ]
        own = WorldResult(
            client, attempts, [], world.end_time, world.live, [], world.deviations,
            lost_tool_results=lost, clients=[client],
        )  # fmt: skip
        sub = Run(
            scenario.parts[r], part_plan(plan, scenario, r), own,
            replies[: len(attempts)], run.stream_initiation, run.strict,
        )  # fmt: skip
        out.append((r, sub, w not in twins))
    return out


def _alone_on_the_pool(run: Run, request: int) -> bool:
    """Only this request's attempts struck a key: the pool it saw was its own doing, so
    the key-pool rules can say which key was due at each of its attempts, and a
    perturbation cannot change what it saw by moving another request's strike."""
    return not any(a.request != request and a.status in _STRIKES for a in run.world.attempts)


def session_problems(
    run: Run, canonical: CanonicalRun | None, oracles: Collection[str]
) -> list[Violation]:
    """Every one-request oracle on each request's own run, named by its request."""
    per_request = frozenset(oracles) - CROSS_REQUEST
    theirs = canonical.shape["requests"] if canonical is not None else None
    found: list[Violation] = []
    for w, (r, sub, told_apart) in enumerate(_sub_runs(run)):
        asked = per_request if told_apart else per_request & ALONE
        if not _alone_on_the_pool(run, w):
            # another request's 429 or 401 changed the keys this one saw, in an order a
            # perturbation may change: key-consistency judges the pool across requests
            asked -= {"key-pool", "schedule-dependence"}
        own = theirs[w] if theirs is not None and w < len(theirs) else None
        for v in judge(sub, own, asked):
            found.append(replace(v, message=f"request #{r}: {v.message}"))
    return found


def session_canonical(run: Run) -> CanonicalRun:
    """The canonical run of a session: each request's, in order."""
    each = [canonical_run(sub) for _, sub, _ in _sub_runs(run)]
    body = "; ".join(c.body for c in each)
    return CanonicalRun({"requests": each}, any(c.malformed for c in each), body)


# What the runner calls for any scenario: a session's world, canonical run and judging
# are made here from the one-request ones, which know nothing of sessions.
def world_spec_of(scenario: Scenario, plan: Plan, initiation: StreamInitiation) -> WorldSpec:
    spec = world_spec(scenario, plan, initiation)
    return session_spec(spec, scenario, plan) if scenario.parts else spec


def canonical_of(run: Run) -> CanonicalRun:
    return session_canonical(run) if run.scenario.parts else canonical_run(run)


def judged(run: Run, canonical: CanonicalRun | None, oracles: Collection[str]) -> list[Violation]:
    """``oracles.judge``, or for a session: the world's problems, each request's, then
    what its requests share."""
    if not run.scenario.parts:
        return judge(run, canonical, oracles)
    each = session_problems(run, canonical, oracles)
    return world_problems(run, oracles) + each + shared_problems(run, oracles)
