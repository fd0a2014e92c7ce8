"""The upstream key pool, sans-io: which key an attempt uses and what an answer does to it.

Theory of operation: keys keep the order they were configured in. ``acquire(now)`` hands
out the first key that is usable at ``now`` (monotonic seconds; virtual time in the
simulation). ``report`` takes the upstream's status for that attempt and moves the key:

    status      key becomes                       the caller then
    2xx/other   unchanged                         relays (no failover)
    429         cooling until now + Retry-After   tries the next usable key
    401, 403    disabled for good                 tries the next usable key

A cooling key is usable again as soon as ``now`` reaches the end of its cooldown: that
state is derived from the clock, never stored, so nothing has to wake up to clear it.
When no key is usable, ``acquire`` raises ``AllKeysRateLimited`` (with the smallest
remaining cooldown, rounded up to whole seconds) if any key is cooling, otherwise
``AllKeysDisabled``.
"""

from __future__ import annotations

import email.utils
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import AllKeysDisabled, AllKeysRateLimited
from ..headers import Headers

DEFAULT_COOLDOWN = 60.0
FAILOVER_STATUSES = frozenset({401, 403, 429})


class KeyState(StrEnum):
    VALID = "valid"
    COOLING = "cooling"
    DISABLED = "disabled"


def mask_key(key: str, ellipsis: str = "…") -> str:
    """The key as it may appear in logs: its first 4 and last 4 characters.

    ``ellipsis="..."`` where only ASCII may go (a header value).
    """
    if len(key) <= 12:
        return "*" * len(key) if len(key) <= 8 else key[:2] + ellipsis + key[-2:]
    return f"{key[:4]}{ellipsis}{key[-4:]}"


def mask_secrets(text: str, secrets: Sequence[str], ellipsis: str = "…") -> str:
    """``text`` with each of ``secrets`` replaced by its masked form, longest first (so a
    key that is the start of another cannot leave the other's tail behind)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, mask_key(secret, ellipsis))
    return text


def parse_retry_after(value: str | None, wall_now: float) -> float:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A missing or unreadable value means the documented default of 60 s.
    """
    if value is None:
        return DEFAULT_COOLDOWN
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_COOLDOWN
        if when is None:
            return DEFAULT_COOLDOWN
        return max(0.0, when.timestamp() - wall_now)
    if math.isnan(seconds) or seconds < 0:
        return DEFAULT_COOLDOWN
    return seconds


@dataclass
class PoolKey:
    """One configured key and what the pool knows of it."""

    secret: str
    index: int
    disabled: bool = False
    cooling_until: float = 0.0
    attempts: int = 0
    last_status: int | None = None

    @functools.cached_property
    def masked(self) -> str:
        """Read for every request (its record, the metrics): worked out once."""
        return mask_key(self.secret)

    def state(self, now: float) -> KeyState:
        if self.disabled:
            return KeyState.DISABLED
        if now < self.cooling_until:
            return KeyState.COOLING
        return KeyState.VALID


@dataclass
class KeyPool:
    """Ordered keys with cooldown and disable rules; one per provider, shared by requests."""

    keys: list[PoolKey] = field(default_factory=list)

    @classmethod
    def from_secrets(cls, secrets: list[str]) -> KeyPool:
        return cls([PoolKey(secret, i) for i, secret in enumerate(secrets)])

    def __bool__(self) -> bool:
        return bool(self.keys)

    def acquire(self, now: float, tried: frozenset[int] = frozenset()) -> PoolKey:
        """The first usable key not in ``tried`` (indexes this attempt already used).

        ``tried`` keeps one attempt from taking the same key twice when a 429 came with
        ``Retry-After: 0``; such a key counts as cooling. Raises when no key is usable.
        """
        cooling: list[float] = []
        for key in self.keys:
            state = key.state(now)
            if key.index in tried and state is not KeyState.DISABLED:
                cooling.append(max(0.0, key.cooling_until - now))
                continue
            if state is KeyState.VALID:
                key.attempts += 1
                return key
            if state is KeyState.COOLING:
                cooling.append(key.cooling_until - now)
        if cooling:
            return self._raise_rate_limited(min(cooling))
        raise AllKeysDisabled()

    @staticmethod
    def _raise_rate_limited(remaining: float) -> PoolKey:
        raise AllKeysRateLimited(retry_after=max(1, math.ceil(remaining - 1e-9)))

    def report(
        self, key: PoolKey, status: int, retry_after: str | None, now: float, wall_now: float
    ) -> bool:
        """Record the upstream's answer for ``key``; True when the caller should fail over."""
        key.last_status = status
        if status == 429:
            key.cooling_until = max(
                key.cooling_until, now + parse_retry_after(retry_after, wall_now)
            )
            return True
        if status in (401, 403):
            key.disabled = True
            return True
        return False

    # An upstream may echo the key it was sent (in an error message, a header): whatever
    # of its answer reaches a client goes through these first.
    def masked_text(self, text: str, ellipsis: str = "…") -> str:
        """``text`` with every key of the pool masked."""
        if not self.keys:
            return text
        return mask_secrets(text, [key.secret for key in self.keys], ellipsis)

    def masked_bytes(self, data: bytes) -> bytes:
        """The same for a body (decoded losslessly, whatever its bytes)."""
        if not self.keys:
            return data
        text = data.decode("utf-8", "surrogateescape")
        return self.masked_text(text).encode("utf-8", "surrogateescape")

    def masked_headers(self, headers: Headers) -> Headers:
        if not self.keys:
            return headers
        secrets = [key.secret for key in self.keys]
        # once per response, so the common case (no key in any value) stays one scan
        return [
            (k, mask_secrets(v, secrets, "...") if any(s in v for s in secrets) else v)
            for k, v in headers
        ]

    def snapshot(self, now: float) -> list[dict[str, object]]:
        """The pool as ``/aibridge/status`` shows it: masked keys only."""
        rows: list[dict[str, object]] = []
        for key in self.keys:
            state = key.state(now)
            rows.append(
                {
                    "key": key.masked,
                    "state": state.value,
                    "cooldown_remaining": round(key.cooling_until - now, 3)
                    if state is KeyState.COOLING
                    else 0,
                    "attempts": key.attempts,
                    "last_status": key.last_status,
                }
            )
        return rows
