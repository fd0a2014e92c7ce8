"""The oracles: what must hold for every run, whatever the faults and the schedule.

* ``malformed-body``: the client got a JSON error with its status or a well-formed event
  stream, never a mix; the provider grammar holds; no injected tool is visible.
* ``schedule-dependence``: the normalized response equals the canonical run's (same
  scenario and faults, no perturbation, FIFO scheduling).
* ``key-pool``: replaying the upstream's log through the documented key rules predicts
  each attempt's key, the client's status and Retry-After, and the pool afterwards.
* ``liveness``: the client was done within the virtual-time bound.
* ``hygiene``: no task left behind, no unhandled exception, every connection closed.
* ``tool-results``: the upstream request after an injected tool ran carries its result.

The key-pool model here is written from the rules in BEHAVIOR.md, not from ``keypool.py``,
so a bug planted there shows as a disagreement.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..headers import header
from ..sessions.normalize import diff_normalized, normalize_response
from ..sim.world import WALL_EPOCH, Attempt, WorldResult
from .grammar import Response, response_problems
from .plan import Plan
from .scenario import Scenario

ORACLES: dict[str, str] = {
    "hygiene": "no task left behind, no unhandled exception, every connection closed",
    "liveness": "the client is done within the virtual-time bound",
    "malformed-body": "a JSON error or a well-formed event stream, never a mix; grammar holds",
    "key-pool": "keys tried in order, cooldowns from Retry-After, status and Retry-After right",
    "schedule-dependence": "the normalized response equals the canonical run's",
    "tool-results": "every injected tool's result is in the next upstream request",
}


@dataclass(frozen=True)
class Violation:
    oracle: str
    message: str


def client_response(world: WorldResult, plan: Plan) -> Response:
    c = world.client
    return Response(
        c.status, c.headers, c.body, c.complete, truncated=plan.disconnects and not c.complete
    )


# -- key pool model ----------------------------------------------------------------------


def _cooldown(value: str | None, now: float) -> float:
    """Seconds a 429 cools its key for: delta-seconds, an HTTP-date, else 60."""
    if value is None:
        return 60.0
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        date = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 60.0
    return max(0.0, date.timestamp() - (WALL_EPOCH + now))


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
        if attempt.status is not None and attempt.status >= 400:
            key.last = attempt.status  # the pool remembers the last error it saw
        tried.add(due)
        if attempt.status == 429:
            key.until = max(key.until, attempt.time + _cooldown(attempt.retry_after, attempt.time))
        elif attempt.status in (401, 403):
            key.disabled = True
        else:
            tried = set()  # the turn is over: the next one starts from the first key
    if plan.disconnects or not world.live:
        return problems  # a client that left may have cut the last attempt short
    if attempts and attempts[-1].status in (401, 403, 429):
        status, retry = _expected_outcome(keys, tried, attempts[-1].time)
        problems += _final_error_problems(scenario, world, plan, status, retry)
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
        shape = normalize_response(scenario.api, response.status, response.headers, response.body)
        error = str(shape["error_type"] or "")
        if not error or (wanted is not None and wanted not in error):
            want = wanted or "an"
            return [
                f"all keys failed: the stream should end in {want} error, not {error or 'none'}"
            ]
        return []
    problems = []
    if response.status != status:
        problems.append(f"all keys failed: status {response.status}, the rules say {status}")
    got = header(response.headers, "retry-after")
    if retry is not None and got != str(retry):
        problems.append(f"all keys failed: Retry-After {got}, the rules say {retry}")
    return problems


# -- all together --------------------------------------------------------------------------


def shape_of(scenario: Scenario, response: Response, world: WorldResult) -> dict[str, Any]:
    """The timing-free meaning of a run, comparable across schedules.

    The keys the upstream saw are part of it: when a perturbation's delay lets a cooling
    key recover, the proxy rightly takes another path (the key-pool oracle checks that
    path), so such a run is not compared with the canonical one.
    """
    shape = normalize_response(scenario.api, response.status, response.headers, response.body)
    return {**shape, "complete": response.complete, "keys": [a.key for a in world.attempts]}


def judge(
    scenario: Scenario, plan: Plan, world: WorldResult, canonical: Any | None
) -> list[Violation]:
    """Every violation of this run, most fundamental first.

    ``canonical`` is the canonical run's ``shape_of`` (None: this run is the canonical one).
    """
    found: list[Violation] = [Violation("hygiene", h) for h in world.hygiene]
    if not world.live:
        found.append(
            Violation(
                "liveness", f"the client was not done after {world.end_time:g} virtual seconds"
            )
        )
    response = client_response(world, plan)
    injected = {tool.name for tool in scenario.tools}
    for problem in response_problems(
        scenario.api, response, streaming=scenario.streaming, injected=injected
    ):
        found.append(Violation("malformed-body", problem))
    for problem in key_pool_problems(scenario, plan, world):
        found.append(Violation("key-pool", problem))
    for problem in world.lost_tool_results:
        found.append(Violation("tool-results", problem))
    if canonical is not None and not plan.disconnects and world.live:
        shape = shape_of(scenario, response, world)
        differences = diff_normalized(canonical, shape)
        if differences and shape["keys"] == canonical["keys"]:
            found.append(Violation("schedule-dependence", "; ".join(differences[:3])))
    return found
