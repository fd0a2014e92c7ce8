"""The oracles: what must hold for every run, whatever the faults and the schedule.

* ``malformed-body``: the client got a JSON error with its status or a well-formed event
  stream, never a mix; the provider grammar holds; no injected tool is visible.
* ``schedule-dependence``: the normalized response equals the canonical run's (same
  scenario and faults, no perturbation, FIFO scheduling).
* ``key-consistency``: across requests, the pool's own timeline (``pool_timeline.py``).
* ``recording``: a load's every interception recorded once, whole (``recording_oracle.py``).
* ``key-pool``: replaying the upstream's log through the documented key rules predicts
  each attempt's key, the client's status and Retry-After, and the pool afterwards.
* ``liveness``: the client was done within the virtual-time bound.
* ``release``: every upstream answer closed soon after the client left (``release.py``).
* ``hygiene``: no task left behind, no unhandled exception, every connection closed.
* ``differential``, ``usage``, ``continuation-sse``: the client's answer against what the
  upstream sent and aibridge's documented changes to it (see ``differential.py``).
* ``framing``: every frame in its API's wire format, line by line (``framing.py``).
* ``tool-results``: the upstream request after an injected tool ran carries its result.
* ``ws-isolation``: on a socket with several responses, each one's events are its own
  (``ws_isolation.py``); the other oracles judge each response alone, as a one-response
  socket, except those of the whole socket (key rules, tool results, the schedule).

The key-pool model here is written from the rules in BEHAVIOR.md, not from ``keypool.py``,
so a bug planted there shows as a disagreement.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..config import StreamInitiation
from ..errors import ConfigError
from ..fakes.scripted_upstream import Reply
from ..headers import header, media_type
from ..sessions.normalize import diff_normalized
from ..sim.world import Attempt, WorldResult
from ..sse import SSEDecoder
from . import parses
from .breaker_oracle import breaker_problems
from .differential import (
    Exchange,
    body_problems,
    broken,
    continued,
    played,
    stream_problems,
    usage_problems,
)
from .framing import framing_problems
from .grammar import Response
from .plan import Plan
from .pool_timeline import cooldown as _cooldown
from .pool_timeline import key_consistency_problems, retry_after_problems
from .recording_oracle import recording_problems
from .release import RELEASE, release_problems
from .release import SHAPE as RELEASE_SHAPE
from .scenario import Scenario
from .signature import masked, problem_kind
from .ws_isolation import isolation_problems
from .ws_view import as_event_stream


class Profile(StrEnum):
    """Which rules a campaign holds the proxy to."""

    GENERIC = "generic"  # what any correct proxy must hold
    AIBRIDGE = "aibridge"  # generic, plus aibridge's own documented rules


@dataclass(frozen=True)
class Oracle:
    name: str
    holds: str
    profile: Profile
    simulation_only: bool = False
    black_box_only: bool = False  # judged from what only a black-box campaign observes


_ORACLE_LIST = (
    Oracle(
        "hygiene",
        "no task left behind, no unhandled exception, every connection closed",
        Profile.GENERIC,
    ),
    Oracle("liveness", "the client is done within the time bound", Profile.GENERIC),
    Oracle(
        "release",
        f"every upstream answer is closed within {RELEASE:g} s (virtual) of its client leaving",
        Profile.GENERIC,
        simulation_only=True,  # black-box mode's after-hang-up probes its target's
    ),
    Oracle(
        "malformed-body",
        "a JSON body or a well-formed event stream of the client's API, "
        "never a mix; no injected tool visible",
        Profile.GENERIC,
    ),
    Oracle(
        "content",
        "no text lost, duplicated or reordered against what the upstream sent",
        Profile.GENERIC,
    ),
    Oracle(
        "error-surfaced",
        "a failed upstream answer reaches the client as an error, never "
        "as a clean end or a 2xx with a cut body",
        Profile.GENERIC,
    ),
    Oracle(
        "differential",
        "the client's events are the upstream's, less and plus what the proxy documents "
        "(hidden injected calls, renumbering, [DONE], one error for a failed answer)",
        Profile.GENERIC,
    ),
    Oracle(
        "framing",
        "every frame in its API's wire format: event: lines named by the data's type "
        "where required and absent where not, one data: line, blank-line ends, [DONE]; "
        "one JSON event per WebSocket message",
        Profile.GENERIC,
    ),
    Oracle(
        "ws-isolation",
        "on a socket with several responses, each response's events are its own: begun by "
        "its response.created, nothing after its end, no event of another's upstream answer",
        Profile.GENERIC,
        simulation_only=True,  # black-box mode drives no socket
    ),
    Oracle(
        "schedule-dependence",
        "the normalized response equals the canonical run's",
        Profile.GENERIC,
        simulation_only=True,
    ),
    Oracle(
        "error-shape",
        "errors in the API's own shape; a malformed upstream event is never relayed",
        Profile.AIBRIDGE,
    ),
    Oracle(
        "key-pool",
        "keys tried in order, cooldowns from Retry-After, status and Retry-After right",
        Profile.AIBRIDGE,
    ),
    Oracle(
        "key-consistency",
        "across requests, no key used while cooling or disabled in the pool's own "
        "timeline; a cooldown never shortened by a later, shorter Retry-After",
        Profile.AIBRIDGE,
        simulation_only=True,  # reads the proxy's pool
    ),
    Oracle(
        "recording",
        "across a load's requests, every interception served is recorded exactly once, "
        "whole: the recording parses back through the fixture format",
        Profile.AIBRIDGE,
        simulation_only=True,  # reads the recorder the world gives the proxy
    ),
    Oracle(
        "usage",
        "usage summed over every iteration, every numeric field",
        Profile.AIBRIDGE,
    ),
    Oracle(
        "continuation-sse",
        "eager: once an agentic continuation began, the answer is a 200 event stream",
        Profile.AIBRIDGE,
    ),
    Oracle(
        "tool-results",
        "every injected tool's result is in the next upstream request",
        Profile.AIBRIDGE,
        simulation_only=True,  # a black-box target runs its own tools, unseen
    ),
    Oracle(
        "upstream-reached",
        "the target called the upstream for the client's request",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "retry",
        "a repeated upstream attempt only before the first byte reached the client",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "request-fidelity",
        "the upstream got the client's request: body, model (or its documented mapping), "
        "the client's headers",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "status-mapping",
        "an upstream error status reaches the client in its class, with its error type",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "after-hang-up",
        "no upstream request sent, and no answer read on, after the client left",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "relayed",
        "the upstream's usage and response headers (request ids, Retry-After) reach the client",
        Profile.GENERIC,
        black_box_only=True,
    ),
    Oracle(
        "breaker",
        "the circuit breaker opens only after threshold failures in a row, rejects only "
        "while open, admits at most the probes half-open (TOML scenarios with a breaker table)",
        Profile.AIBRIDGE,
        simulation_only=True,  # the decisions are read from the proxy's breakers
    ),
)
# The tool-results signature: which tool and result vary, the failure does not.
_LOST_RESULT = "a tool's result missing from the next upstream request"
ORACLES: dict[str, Oracle] = {oracle.name: oracle for oracle in _ORACLE_LIST}


SWITCHING_PROTOCOLS = 101


def profile_oracles(
    profile: Profile, skip: Collection[str] = (), *, black_box: bool = False
) -> frozenset[str]:
    """The oracles a ``profile`` campaign judges, less ``skip``: a simulated campaign's
    (``black_box``: a campaign against a running target's)."""
    unknown = sorted(set(skip) - set(ORACLES))
    if unknown:
        raise ConfigError(
            f"--skip-oracle {unknown[0]!r}: no such oracle (one of {', '.join(ORACLES)})"
        )
    wanted = {Profile.GENERIC} if profile is Profile.GENERIC else set(Profile)
    mode = [o for o in _ORACLE_LIST if (o.simulation_only if black_box else o.black_box_only)]
    chosen = {o.name for o in _ORACLE_LIST if o.profile in wanted} - {o.name for o in mode}
    return frozenset(chosen) - set(skip)


ALL_ORACLES = profile_oracles(Profile.AIBRIDGE)
GENERIC_ORACLES = profile_oracles(Profile.GENERIC)
# aibridge's own rules: judging any of them holds the relay to aibridge's exact one
_AIBRIDGE_RULES = frozenset(o.name for o in _ORACLE_LIST if o.profile is Profile.AIBRIDGE)


@dataclass(frozen=True)
class Violation:
    oracle: str
    message: str
    shape: str = ""  # the failure's shape for its signature (see signature.py)


@dataclass(frozen=True)
class Run:
    """What one run gives the oracles: the scenario and plan, the world, what was served."""

    scenario: Scenario
    plan: Plan
    world: WorldResult
    served: Sequence[Reply]  # the upstream's answers, one per request it answered
    stream_initiation: StreamInitiation = "eager"
    strict: bool = False  # generic oracles hold upstream bytes equal (``--strict``)


@dataclass(frozen=True)
class CanonicalRun:
    """What schedule-dependence compares with: the canonical run's meaning and health."""

    shape: dict[str, Any]
    malformed: bool
    body: str  # its body shape


def client_response(world: WorldResult, plan: Plan) -> Response:
    c = world.client
    return Response(
        c.status, c.headers, c.body, c.complete, truncated=plan.disconnects and not c.complete
    )


# -- key pool model ----------------------------------------------------------------------


@dataclass
class _ModelKey:
    disabled: bool = False
    until: float = 0.0
    attempts: int = 0
    last: int | None = None

    def usable(self, now: float) -> bool:
        return not self.disabled and now >= self.until


def _expected_outcome(keys: list[_ModelKey], tried: set[int], now: float) -> tuple[int, int | None]:
    """(status, Retry-After) when no key is left for an attempt at ``now``."""
    waits = [
        max(0.0, key.until - now)
        for i, key in enumerate(keys)
        if not key.disabled and (i in tried or not key.usable(now))
    ]
    if waits:
        return 429, max(1, math.ceil(min(waits) - 1e-9))
    return 502, None


def key_pool_problems(scenario: Scenario, plan: Plan, world: WorldResult) -> list[str]:
    attempts: Sequence[Attempt] = world.attempts
    if scenario.keys == 0:
        return []  # bring your own key: no pool, the upstream's status is relayed as is
    keys = [_ModelKey() for _ in range(scenario.keys)]
    problems: list[str] = []
    tried: set[int] = set()
    for n, attempt in enumerate(attempts):
        if n and attempt.response != attempts[n - 1].response:
            tried = set()  # a socket's next response.create: its turn starts afresh
        due = next(
            (i for i, k in enumerate(keys) if i not in tried and k.usable(attempt.time)), None
        )
        if due is None:
            problems.append(f"attempt {n} was made although no key was usable")
            return problems
        if attempt.key != due:
            problems.append(f"attempt {n} used key {attempt.key}, key {due} was due")
            return problems
        key = keys[due]
        key.attempts += 1
        if attempt.status is not None and attempt.status != SWITCHING_PROTOCOLS:
            # the pool remembers the last answer, a success too; a WebSocket's upgrade is
            # the socket opening, whose messages may still be refused: not reported
            key.last = attempt.status
        tried.add(due)
        if attempt.status == 429:
            key.until = max(key.until, attempt.time + _cooldown(attempt.retry_after, attempt.time))
        elif attempt.status in (401, 403):
            key.disabled = True
        else:
            tried = set()  # the turn is over: the next one starts from the first key
    if plan.disconnects or not world.live:
        return problems  # a client that left may have cut the last attempt short
    responses = world.client.responses  # a socket of several: the last one's answer
    last = len(responses) - 1 if responses else 0
    if attempts and attempts[-1].status in (401, 403, 429) and attempts[-1].response == last:
        status, retry = _expected_outcome(keys, tried, attempts[-1].time)
        answered = replace(world, client=responses[-1]) if responses else world
        problems += _final_error_problems(scenario, answered, plan, status, retry)
    # An empty snapshot: a black-box target whose pool we cannot see.
    for i, (key, row) in enumerate(zip(keys, world.pool, strict=True) if world.pool else ()):
        state = "disabled" if key.disabled else "cooling" if world.end_time < key.until else "valid"
        remaining = round(key.until - world.end_time, 3) if state == "cooling" else 0
        seen = (row["state"], row["attempts"], row["last_status"], row["cooldown_remaining"])
        if seen != (state, key.attempts, key.last, remaining):
            problems.append(
                f"key {i} is {seen[0]} ({seen[3]} s left) after {seen[1]} attempts "
                f"(last {seen[2]}); the rules say {state} ({remaining} s left) after "
                f"{key.attempts} (last {key.last})"
            )
    return problems


def _final_error_problems(
    scenario: Scenario, world: WorldResult, plan: Plan, status: int, retry: int | None
) -> list[str]:
    response = client_response(world, plan)
    wanted = "rate_limit" if status == 429 else None
    if response.status == 200:
        shape = parses.normalized(scenario.api, response.status, response.headers, response.body)
        error = str(shape["error_type"] or "")
        if not error or (wanted is not None and wanted not in error):
            want = wanted or "an"
            return [
                f"all keys failed: the stream should end in {want} error, not {error or 'none'}"
            ]
        got = _event_retry_after(response.body)
        if retry is not None and got is not None and got != str(retry):
            return [f"all keys failed: the error event's Retry-After {got}, the rules say {retry}"]
        return []
    problems = []
    if response.status != status:
        problems.append(f"all keys failed: status {response.status}, the rules say {status}")
    got = header(response.headers, "retry-after")
    if retry is not None and got != str(retry):
        problems.append(f"all keys failed: Retry-After {got}, the rules say {retry}")
    return problems


# -- what the upstream sent ----------------------------------------------------------------


def _verbatim(reply: Reply, response: Response) -> bool:
    """The client got the upstream's whole message as it was: a transparent relay of an
    answer that failed on its own terms (an error event inside a JSON body)."""
    whole = reply.fault is None
    return whole and response.status == reply.status and response.body == played(reply)


def _upstream_text(scenario: Scenario, served: Sequence[Reply]) -> str:
    """The text the upstream's 2xx answers carried, in the order it sent them."""
    text = ""
    for reply in served:
        if reply.status >= 400:
            continue
        if scenario.transport == "websocket":
            reply = as_event_stream(reply)  # the SSE view the client's messages get
        shape = parses.normalized(scenario.api, reply.status, reply.headers, played(reply))
        text += str(shape["text"] or "")
    return text


def _not_from_upstream(run: Run, problems: list[str]) -> list[str]:
    if not run.served:
        return problems
    theirs = _upstream_problems(run, run.served[-1])
    return [p for p in problems if p not in theirs]


def _upstream_problems(run: Run, reply: Reply) -> set[str]:
    """The problems an upstream answer has of its own, as the upstream played it."""
    if run.scenario.transport == "websocket":
        reply = as_event_stream(reply)
    sent = Response(reply.status, reply.headers, played(reply), complete=reply.fault is None)
    api, streaming = run.scenario.api, run.scenario.streaming
    return set(parses.problems(api, sent, streaming=streaming, injected=(), strict=False))


def content_problems(run: Run, text: str, whole: bool) -> list[tuple[str, str]]:
    """(message, shape) when the client's ``text`` is not the upstream's, in order.

    ``whole``: the response ended cleanly (no error), so it must hold all of the text;
    otherwise a prefix is right.
    """
    sent = _upstream_text(run.scenario, run.served)
    if text == sent or (not whole and sent.startswith(text)):
        return []
    if sent.startswith(text):
        return [(f"the client got {len(text)} of {len(sent)} characters of text", "text lost")]
    if len(text) > len(sent):
        kind = "text duplicated"
    elif sorted(text) == sorted(sent[: len(text)]):
        kind = "text reordered"
    else:
        kind = "text differs"
    return [(f"{kind}: the client got {text[:60]!r}, the upstream sent {sent[:60]!r}", kind)]


def _event_retry_after(body: bytes) -> str | None:
    """The ``Retry-After`` a WebSocket-mode error event carries in its error's headers."""
    for event in reversed(SSEDecoder().feed(body)):
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        error = data.get("error") if isinstance(data, dict) else None
        headers = error.get("headers") if isinstance(error, dict) else None
        if isinstance(headers, dict) and "retry-after" in headers:
            return str(headers["retry-after"])
    return None


# -- all together --------------------------------------------------------------------------


def shape_of(
    scenario: Scenario,
    response: Response,
    world: WorldResult,
    normalized: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The timing-free meaning of a run, comparable across schedules (``normalized``: the
    response's ``normalize_response``, when the caller has it already).

    The keys the upstream saw are part of it: when a perturbation's delay lets a cooling
    key recover, the proxy rightly takes another path (the key-pool oracle checks that
    path), so such a run is not compared with the canonical one.
    """
    responses = world.client.responses
    if responses:  # a socket of several: each response's meaning, in order
        normalized = {
            "responses": [
                parses.normalized(scenario.api, r.status, r.headers, r.body) for r in responses
            ]
        }
    elif normalized is None:
        normalized = parses.normalized(
            scenario.api, response.status, response.headers, response.body
        )
    return {**normalized, "complete": response.complete, "keys": [a.key for a in world.attempts]}


def canonical_run(run: Run) -> CanonicalRun:
    """The canonical run of a one-request world, a load or a socket (a session's is
    ``session.canonical_of``)."""
    response = client_response(run.world, run.plan)
    malformed = bool(judge(run, None, {"malformed-body"}))
    meaning = shape_of(run.scenario, response, run.world)
    return CanonicalRun(meaning, malformed, parses.shape(response))


def judge(
    run: Run, canonical: CanonicalRun | None, oracles: Collection[str] = ALL_ORACLES
) -> list[Violation]:
    """Every violation of this run among ``oracles``, most fundamental first.

    ``canonical``: the canonical run's (None: this run is the canonical one).
    """
    scenario, world = run.scenario, run.world
    found = world_problems(run, oracles)
    if scenario.requests > 1:
        load = _load_problems(run, oracles) + _framing(run, oracles)
        return found + load + shared_problems(run, oracles)
    if world.client.responses:
        return found + _socket(run, canonical, oracles)
    return found + _one_response(run, canonical, oracles)


def world_problems(run: Run, oracles: Collection[str]) -> list[Violation]:
    """What the world as a whole broke: its hygiene, liveness, release and breakers."""
    scenario, world = run.scenario, run.world
    found: list[Violation] = []
    if "hygiene" in oracles:
        found += [Violation("hygiene", h, masked(h)) for h in world.hygiene]
    if "liveness" in oracles and not world.live:
        message = f"the client was not done after {world.end_time:g} seconds"
        found.append(Violation("liveness", message, "the client was not done"))
    if "release" in oracles:
        late = release_problems(world.answers, world.end_time)
        found += [Violation("release", p, RELEASE_SHAPE) for p in late]
    if "breaker" in oracles and scenario.breaker is not None:
        found += [
            Violation("breaker", p, masked(p))
            for p in breaker_problems(scenario.breaker, world.breaker_events)
        ]
    return found


def shared_problems(run: Run, oracles: Collection[str]) -> list[Violation]:
    """What the requests of one world share: the key pool's timeline and the recording."""
    return _key_consistency(run, oracles) + _recording(run, oracles)


# What a socket of several responses judges once, for the whole socket: the pool's and
# the tools' rules run across responses, and the schedule changes the socket as a whole.
_WHOLE_SOCKET = frozenset({"key-pool", "key-consistency", "tool-results", "schedule-dependence"})


def _socket(run: Run, canonical: CanonicalRun | None, oracles: Collection[str]) -> list[Violation]:
    """A socket with several responses: ws-isolation across them, each response judged
    alone with the upstream answers given to it, and the whole-socket oracles once."""
    world = run.world
    responses = world.client.responses
    owners = [attempt.response for attempt in world.attempts]
    found: list[Violation] = []
    if "ws-isolation" in oracles:
        split = [r.messages for r in responses]
        served = list(zip(owners, run.served, strict=True))
        found += [
            Violation("ws-isolation", message, shape)
            for message, shape in isolation_problems(split, served)
        ]
    each = set(oracles) - _WHOLE_SOCKET
    for k, response in enumerate(responses):
        if not response.messages:
            continue  # the socket ended before an answer came
        mine = [i for i, owner in enumerate(owners) if owner == k]
        alone = replace(
            world,
            client=response,
            clients=[response],
            attempts=[world.attempts[i] for i in mine],
        )
        one = replace(run, world=alone, served=[run.served[i] for i in mine])
        found += [
            replace(v, message=f"response {k}: {v.message}") for v in _one_response(one, None, each)
        ]
    if "key-pool" in oracles:
        problems = key_pool_problems(run.scenario, run.plan, world)
        found += [Violation("key-pool", p, masked(p)) for p in problems]
    found += _key_consistency(run, oracles)
    if "tool-results" in oracles:
        found += [Violation("tool-results", p, _LOST_RESULT) for p in world.lost_tool_results]
    answered = replace(world, clients=responses)  # each response.create is one interception
    found += _recording(replace(run, world=answered), oracles)
    if "schedule-dependence" in oracles and canonical is not None:
        malformed = any(v.oracle == "malformed-body" for v in found)
        found += _schedule(run, canonical, malformed, shape_of(run.scenario, _whole(run), world))
    return found


def _whole(run: Run) -> Response:
    return client_response(run.world, run.plan)


def _one_response(
    run: Run, canonical: CanonicalRun | None, oracles: Collection[str]
) -> list[Violation]:
    """The oracles of one client's response (a one-request world's, a socket's each)."""
    scenario, plan, world = run.scenario, run.plan, run.world
    found: list[Violation] = []
    response = client_response(world, plan)
    shape = parses.shape(response)
    injected = {tool.name for tool in scenario.tools}
    lenient = parses.problems(
        scenario.api, response, streaming=scenario.streaming, injected=injected, strict=False
    )
    # Generic: what the proxy added. A problem the upstream's own answer has (a malformed
    # event, a stream it cut) is relayed faithfully by a transparent proxy.
    problems = _not_from_upstream(run, lenient) if lenient else []
    if "malformed-body" in oracles:
        found += [Violation("malformed-body", p, _body_label(shape, p)) for p in problems]
    if "error-shape" in oracles and (lenient or b"error" in response.body):
        strict = parses.problems(
            scenario.api, response, streaming=scenario.streaming, injected=injected
        )
        found += [Violation("error-shape", p, problem_kind(p)) for p in strict if p not in problems]
    clean = world.live and response.complete and not response.truncated and not problems
    got = parses.normalized(scenario.api, response.status, response.headers, response.body)
    errored = (response.status or 0) >= 400 or bool(got["error_type"])
    if "error-surfaced" in oracles and run.served and broken(run.served[-1]) and clean:
        if not errored and not _verbatim(run.served[-1], response):
            message = "the upstream's answer failed, the client got a clean end"
            found.append(Violation("error-surfaced", f"{message} ({shape})", shape))
    if "content" in oracles and not plan.disconnects and world.live:
        text, whole = str(got["text"] or ""), clean and not errored
        found += [Violation("content", m, k) for m, k in content_problems(run, text, whole)]
    found += _framing(run, oracles)
    found += _differential(run, response, oracles, clean and not errored)
    if "key-pool" in oracles:
        found += [
            Violation("key-pool", p, masked(p)) for p in key_pool_problems(scenario, plan, world)
        ]
    found += _key_consistency(run, oracles)
    if "tool-results" in oracles:
        found += [Violation("tool-results", p, _LOST_RESULT) for p in world.lost_tool_results]
    if "schedule-dependence" in oracles and canonical is not None:
        found += _schedule(run, canonical, bool(problems), shape_of(scenario, response, world, got))
    return found


def _schedule(
    run: Run, canonical: CanonicalRun, malformed: bool, this: dict[str, Any]
) -> list[Violation]:
    """schedule-dependence: ``this`` (the run's ``shape_of``) against the canonical run's."""
    if run.plan.disconnects or not run.world.live:
        return []  # a client that left sees a prefix; a hung run is liveness's
    differences = diff_normalized(canonical.shape, this)
    if not differences or this["keys"] != canonical.shape["keys"]:
        return []
    shape = parses.shape(_whole(run))
    return [_schedule_dependence(differences, canonical, malformed, shape)]


def _key_consistency(run: Run, oracles: Collection[str]) -> list[Violation]:
    scenario, world = run.scenario, run.world
    if "key-consistency" not in oracles or run.plan.disconnects:
        return []  # a client that left may leave a 429 unread: the pool never learned of it
    found = []
    if scenario.keys:
        problems = key_consistency_problems(
            scenario.keys, world.attempts, world.pool, world.end_time
        )
        found = [Violation("key-consistency", p, masked(p)) for p in problems]
    told = retry_after_problems(scenario.keys, world.attempts, _told(world))
    return found + [Violation("key-consistency", message, shape) for message, shape in told]


def _told(world: WorldResult) -> list[tuple[float, float, str | None]]:
    """Each client told to come back later: its span and the Retry-After it got, from a
    429's header or (a stream already begun) its error event's."""
    told = []
    for client, span in zip(world.clients, world.spans, strict=False):
        if client.status == 429:
            told.append((*span, header(client.headers, "retry-after")))
        elif client.status == 200 and b"retry-after" in client.body:
            value = _event_retry_after(client.body)
            if value is not None:
                told.append((*span, value))
    return told


def _recording(run: Run, oracles: Collection[str]) -> list[Violation]:
    world = run.world
    if "recording" not in oracles or world.recording is None:
        return []
    answered = sum(client.status is not None for client in world.clients)
    requests = len(world.clients)  # a socket's are its responses (``_socket``)
    recording = world.recording
    found = recording_problems(world.handed, recording.lines, recording.text, answered, requests)
    return [Violation("recording", message, shape) for message, shape in found]


def _framing(run: Run, oracles: Collection[str]) -> list[Violation]:
    if "framing" not in oracles:
        return []
    clients = run.world.clients or [run.world.client]  # a black-box run has its one client
    framed = framing_problems(run.scenario.api, run.scenario.transport, run.served, clients)
    return [Violation("framing", str(p), p.kind) for p in framed]


def _load_problems(run: Run, oracles: Collection[str]) -> list[Violation]:
    """A load's clients share the upstream's answers in an order the schedule decides, so
    only what holds for each response alone is judged: its shape and the error shape."""
    scenario, plan = run.scenario, run.plan
    injected = {tool.name for tool in scenario.tools}
    # which answer a client got is the schedule's choice: any answer's own problem is one
    # a transparent proxy relays
    theirs = {p for reply in run.served for p in _upstream_problems(run, reply)}
    found: list[Violation] = []
    for client in run.world.clients:
        response = Response(
            client.status,
            client.headers,
            client.body,
            client.complete,
            truncated=plan.disconnects and not client.complete,
        )
        if response.status is None and not response.body:
            continue  # never answered: liveness says so when it matters
        strict = parses.problems(
            scenario.api, response, streaming=scenario.streaming, injected=injected
        )
        lenient = parses.problems(
            scenario.api, response, streaming=scenario.streaming, injected=injected, strict=False
        )
        lenient = [p for p in lenient if p not in theirs]
        shape = parses.shape(response)
        if "malformed-body" in oracles:
            found += [Violation("malformed-body", p, _body_label(shape, p)) for p in lenient]
        if "error-shape" in oracles:
            found += [
                Violation("error-shape", p, problem_kind(p)) for p in strict if p not in lenient
            ]
    return found


def _differential(
    run: Run, response: Response, oracles: Collection[str], whole: bool
) -> list[Violation]:
    """The oracles that compare the client's answer with what the upstream sent."""
    scenario, world, served = run.scenario, run.world, run.served
    if run.plan.disconnects or not world.live or not served:
        return []  # a client that left sees a prefix; a hung run is liveness's
    socket = scenario.transport == "websocket"
    if socket:
        # judged in the SSE view the client's messages get (``ws_view.py``)
        served = [as_event_stream(reply) for reply in served]
    found: list[Violation] = []
    api, injected = scenario.api, {tool.name for tool in scenario.tools}
    shape = parses.shape(response)
    if "differential" in oracles:
        # Any of aibridge's own rules judged: hold it to its documented relay, data equal.
        exact = run.strict or bool(set(oracles) & _AIBRIDGE_RULES)
        exchange = Exchange(api, injected, served, response)
        problems_of = stream_problems if scenario.streaming else body_problems
        problems = problems_of(exchange, exact)
        found += [Violation("differential", p, f"{shape}: {problem_kind(p)}") for p in problems]
    if "usage" in oracles and whole:
        problems = usage_problems(api, scenario.streaming, served, response.body)
        found += [Violation("usage", p, "usage not summed") for p in problems]
    if (
        "continuation-sse" in oracles
        and not socket  # its status (101) went out before the first response.create
        and run.stream_initiation == "eager"
        and scenario.streaming
        and continued(served)
        and (response.status != 200 or media_type(response.headers) != "text/event-stream")
    ):
        message = f"an agentic continuation began, then the client got {shape}"
        found.append(Violation("continuation-sse", message, shape))
    return found


def _body_label(shape: str, problem: str) -> str:
    """A mixed or cut body is its own signature; a well-framed one is named by its problem."""
    if " then " in shape or "truncated" in shape or "cut" in shape:
        return shape
    return f"{shape}: {problem_kind(problem)}"


def _schedule_dependence(
    differences: list[str], canonical: CanonicalRun, malformed: bool, shape: str
) -> Violation:
    """Name the failing run: the perturbed one, or the canonical one it was compared with."""
    detail = "; ".join(differences[:3])
    if canonical.malformed and not malformed:
        message = (
            f"the canonical run (same faults, no perturbation, FIFO) is the malformed one "
            f"({canonical.body}); this perturbed run is well-formed ({shape}): {detail}"
        )
        return Violation("schedule-dependence", message, f"canonical run: {canonical.body}")
    return Violation(
        "schedule-dependence", f"this run differs from the canonical run: {detail}", shape
    )
