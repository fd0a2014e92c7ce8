"""The key-consistency oracle, sans-io: the key pool's own timeline, across requests.

The key-pool oracle predicts one request's attempts key by key, which a load cannot have:
which client takes which key is the schedule's choice. What holds whatever the schedule
is the pool's timeline: once the proxy learned of a 429 (at the virtual instant the
upstream answered it) the key is cooling until its Retry-After has passed, and a 401 or
403 disables it for good; no later attempt, by any request, may use it meanwhile. A
request that took the key at that same instant, before the answer was read, is not
wrong, so only strictly later attempts count. A later, shorter Retry-After never
shortens a cooldown (BEHAVIOR.md: the longer one wins), which the pool's state when the
clients were done shows.

The same timeline says what the proxy must tell a client when no key is left: a 429 of its
own whose Retry-After is the smallest remaining cooldown, rounded up, at least 1
(BEHAVIOR.md). Which virtual instant it decided at is the proxy's, somewhere between the
client's request and its answer, so every value the timeline gives in that span is right
and any other is a finding. Without a pool the upstream's 429 is relayed with its own
Retry-After.
"""

from __future__ import annotations

import email.utils
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..sim.world import WALL_EPOCH, Attempt


def cooldown(value: str | None, now: float) -> float:
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
class _Key:
    since: float = 0.0  # when the cooldown in force began (the first 429 of its episode)
    until: float = 0.0
    disabled_at: float | None = None
    rate_limited: bool = False  # a 429 came: a request that tried it may count it as cooling

    def answered(self, attempt: Attempt) -> None:
        """What the upstream's answer to ``attempt`` (on this key) does to the key."""
        now = attempt.time
        if attempt.status == 429:
            until = now + cooldown(attempt.retry_after, now)
            if self.until <= now:
                self.since = now  # a new cooldown; else this one may only lengthen it
            self.until = max(self.until, until)
            self.rate_limited = True
        elif attempt.status in (401, 403) and self.disabled_at is None:
            self.disabled_at = now


def _model(keys: int, answered: Iterable[Attempt]) -> list[_Key]:
    """The pool once these answers were read, in this order."""
    model = [_Key() for _ in range(keys)]
    for attempt in answered:
        if attempt.key is not None and attempt.key < keys:
            model[attempt.key].answered(attempt)
    return model


def _pool_at(keys: int, attempts: Sequence[Attempt], now: float, inclusive: bool) -> list[_Key]:
    """The pool once the answers before ``now`` (and at it, if ``inclusive``) were read."""
    return _model(keys, (a for a in attempts if a.time < now or (inclusive and a.time == now)))


# Past this many answers at one instant, the pools of their subsets are not worked out
# (2**n of them): a world with so many is judged on the whole and the empty set only.
_SUBSETS_UP_TO = 8


def _partial_pools(keys: int, attempts: Sequence[Attempt], now: float) -> Iterator[list[_Key]]:
    """The pool once some of the answers at ``now`` were read, not all: answers given at
    one virtual instant on several connections reach the pool in whatever order the
    proxy reads them, so a client may be answered from a pool that has read only some;
    only a pool with no key free to try answers a client itself."""
    before = [a for a in attempts if a.time < now]
    at = [a for a in attempts if a.time == now]
    if len(at) > _SUBSETS_UP_TO:
        return
    for size in range(1, len(at)):
        for chosen in itertools.combinations(at, size):
            pool = _model(keys, (*before, *chosen))
            if all(k.disabled_at is not None or k.until > now for k in pool):
                yield pool


def key_consistency_problems(
    keys: int, attempts: Sequence[Attempt], pool: Sequence[Mapping[str, Any]], end: float
) -> list[str]:
    """Attempts that used a key cooling or disabled by an earlier answer, and keys whose
    cooldown at ``end`` is shorter than their longest 429 asked for."""
    model = [_Key() for _ in range(keys)]
    problems: list[str] = []
    for n, attempt in enumerate(attempts):
        if attempt.key is None or attempt.key >= keys:
            continue
        key, now = model[attempt.key], attempt.time
        if key.disabled_at is not None and now > key.disabled_at:
            problems.append(
                f"attempt {n} at {now:g} s used key {attempt.key}, "
                f"disabled at {key.disabled_at:g} s"
            )
        elif key.since < now < key.until:
            problems.append(
                f"attempt {n} at {now:g} s used key {attempt.key}, cooling from "
                f"{key.since:g} s until {key.until:g} s"
            )
        key.answered(attempt)
    for i, (key, row) in enumerate(zip(model, pool, strict=False)):
        if key.disabled_at is None and key.until > end:
            due = round(key.until - end, 3)
            left = row["cooldown_remaining"] if row["state"] == "cooling" else 0
            if left < due:
                problems.append(
                    f"key {i} has {left} s of cooldown left at {end:g} s; its longest "
                    f"Retry-After asks {due} s"
                )
    return problems


def _told(pool: Sequence[_Key], start: float, end: float) -> set[int]:
    """The Retry-After values a pool in this state gives at some instant of [start, end]."""
    cooling = [k for k in pool if k.disabled_at is None and k.until > start]
    values: set[int] = set()
    if any(k.rate_limited and k.disabled_at is None and k.until <= end for k in pool):
        values.add(1)  # a key its request tried, cooled down by then: 0 s left, told 1
    edges = sorted({start, end, *(k.until for k in cooling if k.until < end)})
    for a, b in itertools.pairwise(edges) if len(edges) > 1 else [(start, end)]:
        left = [k.until for k in cooling if k.until > a]
        if left:
            low, high = (max(1, math.ceil(min(left) - t - 1e-9)) for t in (b, a))
            values.update(range(low, high + 1))
    return values


TOLD_WRONG = "a Retry-After the pool's timeline does not give"
RELAYED_WRONG = "a relayed 429's Retry-After that no upstream 429 gave"


def _values(values: set[int]) -> str:
    """``{1, 2, 3, 7}`` as "1-3, 7"."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}-{b}" if a < b else str(a) for a, b in runs)


def retry_after_problems(
    keys: int, attempts: Sequence[Attempt], told: Sequence[tuple[float, float, str | None]]
) -> list[tuple[str, str]]:
    """Clients told a Retry-After the pool's timeline does not give (``told``: each
    client's 429 as the span from its request to its answer, and the value it got), as
    (message, shape)."""
    relayed = {a.retry_after for a in attempts if a.status == 429}
    problems: list[tuple[str, str]] = []
    for n, (start, end, value) in enumerate(told):
        span = f"{start:g} s" if start == end else f"{start:g}-{end:g} s"
        if not keys:
            if value not in relayed:
                gave = ", ".join(sorted(map(str, relayed))) or "nothing"
                message = f"client {n} was relayed Retry-After {value} at {span}"
                problems.append((f"{message}; the upstream gave {gave}", RELAYED_WRONG))
            continue
        right: set[int] = set()
        instants = sorted({start, end, *(a.time for a in attempts if start < a.time <= end)})
        for i, now in enumerate(instants):
            later = instants[i + 1] if i + 1 < len(instants) else now
            right |= _told(_pool_at(keys, attempts, now, inclusive=False), now, now)
            for partial in _partial_pools(keys, attempts, now):
                right |= _told(partial, now, now)
            right |= _told(_pool_at(keys, attempts, now, inclusive=True), now, later)
        if value is None or not value.isdigit() or int(value) not in right:
            says = _values(right) or "no key cooling"
            message = f"client {n} was told Retry-After {value} at {span}"
            problems.append((f"{message}; the pool's timeline gives {says}", TOLD_WRONG))
    return problems
