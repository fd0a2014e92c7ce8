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
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping, Sequence
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
        if attempt.status == 429:
            until = now + cooldown(attempt.retry_after, now)
            if key.until <= now:
                key.since = now  # a new cooldown; else this one may only lengthen it
            key.until = max(key.until, until)
        elif attempt.status in (401, 403) and key.disabled_at is None:
            key.disabled_at = now
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
