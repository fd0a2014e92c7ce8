"""The circuit breaker, sans-io: whether an upstream request may go, and what its answer
does to the breaker of its provider, endpoint and model.

Theory of operation. One ``Breaker`` per (provider, endpoint, model), made on first use.
Every upstream request of the agentic loop asks ``admit(now)`` first (monotonic seconds,
virtual time in the simulation) and gets a ``Ticket`` or a ``CircuitOpen`` (503, with
``Retry-After``); what the upstream answered then goes to ``report``, or ``release`` when
no answer came (a connection error, a timeout, the client gone).

    state       admit                          report                  becomes
    closed      every request                  429/503/504/529         after ``threshold``
                                               (a "failure")           in a row: open
                                               anything else           the run restarts
    open        none until ``open_time``       (no ticket is out)      then half-open
                has passed
    half-open   at most ``probes`` tickets     a failure               open again
                                               ``probes`` successes    closed

A run of failures starts over when its first failure is ``interval`` seconds old: the
breaker trips on a burst, not on failures scattered over an hour. Open becomes half-open
when ``now`` reaches the end of the open time, derived from the clock as the key pool's
cooldowns are (``admit`` and ``snapshot`` notice it), so nothing has to wake up.

Every change of state starts a new *generation*; a ticket answers for the generation it
was issued in, so a request admitted while closed that fails after the breaker opened, or
a probe that outlives its half-open period, does not count twice.

Key failover happens inside one admitted request: a 429 (or 401/403) the pool fails over
from is the key's answer, not the model's, and is not reported; a request whose every key
is rate-limited reports one 429. The listeners given at creation see every decision
(``BreakerEvent``): the log, the metrics and the fuzzer's oracle read them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ..config import BreakerConfig
from ..errors import AllKeysRateLimited, CircuitOpen, UpstreamStatusError

log = logging.getLogger("aibridge.breaker")

FAILURE_STATUSES = frozenset({429, 503, 504, 529})
# Clients choose model names: past this many breakers, the idle closed ones are forgotten.
MAX_BREAKERS = 1024


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerKey:
    provider: str
    endpoint: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.endpoint}/{self.model or '-'}"


EventKind = Literal["admit", "reject", "report", "release", "transition"]


@dataclass(frozen=True)
class BreakerEvent:
    """One decision of a breaker, for the listeners: ``state`` is the state it was taken
    in (for a transition, the new one; ``previous`` the old)."""

    kind: EventKind
    key: BreakerKey
    now: float
    state: BreakerState
    generation: int
    status: int | None = None  # report: the upstream's answer
    previous: BreakerState | None = None  # transition: the state left
    reason: str = ""
    ticket: int | None = None  # admit, report, release: the ticket's number


Listener = Callable[[BreakerEvent], None]


def log_transition(event: BreakerEvent) -> None:
    """The listener ``serve`` gives every breaker: one line per change of state, a warning
    when one opens."""
    if event.kind == "transition" and event.previous is not None:
        level = logging.WARNING if event.state is BreakerState.OPEN else logging.INFO
        log.log(
            level, "breaker %s: %s -> %s (%s)", event.key, event.previous, event.state, event.reason
        )


@dataclass(frozen=True)
class Ticket:
    """An admitted request: the generation it answers for."""

    generation: int
    probe: bool  # admitted half-open
    number: int  # the breaker's admissions so far: which request a report is about


@dataclass
class Breaker:
    """The breaker of one provider, endpoint and model."""

    key: BreakerKey
    config: BreakerConfig
    listeners: Sequence[Listener] = ()
    state: BreakerState = BreakerState.CLOSED
    generation: int = 0
    failures: int = 0  # closed: the current run of failures
    run_started: float = 0.0
    opened_at: float = 0.0
    probes: int = 0  # half-open: tickets out or answered in this generation
    successes: int = 0  # half-open
    trips: int = 0
    rejects: int = 0
    admitted: int = 0

    def admit(self, now: float) -> Ticket:
        """A ticket for one upstream request, or ``CircuitOpen``."""
        self._tick(now)
        if self.state is BreakerState.CLOSED:
            return self._ticket(now, probe=False)
        if self.state is BreakerState.HALF_OPEN and self.probes < self.config.probes:
            self.probes += 1
            return self._ticket(now, probe=True)
        self.rejects += 1
        self._emit("reject", now)
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.config.open_time - now
            raise CircuitOpen(
                f"{CircuitOpen.PREFIX} open for {self.key}", max(1, math.ceil(remaining - 1e-9))
            )
        raise CircuitOpen(f"{CircuitOpen.PREFIX} half-open for {self.key}, every probe is out", 1)

    def _ticket(self, now: float, *, probe: bool) -> Ticket:
        self.admitted += 1
        self._emit("admit", now, ticket=self.admitted)
        return Ticket(self.generation, probe, self.admitted)

    def report(self, ticket: Ticket, status: int, now: float) -> None:
        """What the upstream answered the request ``ticket`` admitted."""
        self._tick(now)
        self._emit("report", now, status=status, ticket=ticket.number)
        if ticket.generation != self.generation:
            return  # admitted under a state that has ended since
        failed = status in FAILURE_STATUSES
        if self.state is BreakerState.CLOSED:
            if not failed:
                self.failures = 0
                return
            if self.failures == 0 or now - self.run_started >= self.config.interval:
                self.failures, self.run_started = 0, now
            self.failures += 1
            if self.failures >= self.config.threshold:
                self._open(now, f"{self.failures} failures in a row, the last {status}")
        elif self.state is BreakerState.HALF_OPEN:
            if failed:
                self._open(now, f"a probe got {status}")
                return
            self.successes += 1
            if self.successes >= self.config.probes:
                self._move(BreakerState.CLOSED, now, f"{self.successes} probes succeeded")

    def release(self, ticket: Ticket, now: float) -> None:
        """The request ``ticket`` admitted got no answer: a half-open slot comes back."""
        self._tick(now)
        self._emit("release", now, ticket=ticket.number)
        if ticket.probe and ticket.generation == self.generation:
            self.probes -= 1

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker turns half-open (0 otherwise)."""
        self._tick(now)
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.config.open_time - now)

    def _tick(self, now: float) -> None:
        if self.state is BreakerState.OPEN and now >= self.opened_at + self.config.open_time:
            self._move(BreakerState.HALF_OPEN, now, f"open for {self.config.open_time:g} s")

    def _open(self, now: float, reason: str) -> None:
        self.trips += 1
        self.opened_at = now
        self._move(BreakerState.OPEN, now, reason)

    def _move(self, state: BreakerState, now: float, reason: str) -> None:
        previous, self.state = self.state, state
        self.generation += 1
        self.failures = self.probes = self.successes = 0
        self._emit("transition", now, previous=previous, reason=reason)

    def _emit(
        self,
        kind: EventKind,
        now: float,
        *,
        status: int | None = None,
        previous: BreakerState | None = None,
        reason: str = "",
        ticket: int | None = None,
    ) -> None:
        if self.listeners:
            event = BreakerEvent(
                kind, self.key, now, self.state, self.generation, status, previous, reason, ticket
            )
            for listener in self.listeners:
                listener(event)


@dataclass
class Breakers:
    """Every breaker of a proxy, by provider, endpoint and model; made on first use."""

    config: BreakerConfig
    listeners: Sequence[Listener] = ()
    breakers: dict[BreakerKey, Breaker] = field(default_factory=dict)

    def of(self, provider: str, endpoint: str, model: str) -> Breaker:
        key = BreakerKey(provider, endpoint, model)
        breaker = self.breakers.get(key)
        if breaker is None:
            if len(self.breakers) >= MAX_BREAKERS:
                self._forget_idle()
            breaker = Breaker(key, self.config, self.listeners)
            self.breakers[key] = breaker
        return breaker

    def _forget_idle(self) -> None:
        for key, breaker in list(self.breakers.items()):
            if breaker.state is BreakerState.CLOSED and not breaker.failures:
                del self.breakers[key]

    def snapshot(self, now: float) -> list[dict[str, object]]:
        """The breakers as ``/aibridge/status`` shows them."""
        rows: list[dict[str, object]] = []
        for breaker in self.breakers.values():
            remaining = breaker.retry_in(now)
            rows.append(
                {
                    "provider": breaker.key.provider,
                    "endpoint": breaker.key.endpoint,
                    "model": breaker.key.model,
                    "state": breaker.state.value,
                    "failures": breaker.failures,
                    "open_remaining": round(remaining, 3),
                    "probes_out": breaker.probes,
                    "trips": breaker.trips,
                    "rejects": breaker.rejects,
                }
            )
        return rows


class Gate:
    """One upstream request's passage through its breaker (``gated``); a context manager
    whose exit hands the breaker the request's answer. A class, not a generator: it runs
    on every upstream request."""

    def __init__(self, breaker: Breaker | None, clock: Callable[[], float]) -> None:
        self.breaker = breaker
        self.clock = clock
        self.ticket = breaker.admit(clock()) if breaker is not None else None

    def answered(self, status: int) -> None:
        """The answer that counts: once per request, the first one given."""
        if self.breaker is not None and self.ticket is not None:
            self.breaker.report(self.ticket, status, self.clock())
            self.ticket = None

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        self._close(error)

    def _close(self, error: BaseException | None) -> None:
        if self.breaker is None or self.ticket is None:
            return
        if isinstance(error, AllKeysRateLimited):
            self.answered(429)  # every key answered 429: the request's answer is one
        elif isinstance(error, UpstreamStatusError):
            self.answered(error.status)
        else:
            self.breaker.release(self.ticket, self.clock())
            self.ticket = None


def gated(breaker: Breaker | None, clock: Callable[[], float]) -> Gate:
    """Admit one upstream request (or raise ``CircuitOpen``); on the way out, an error
    status or a rate-limited pool is its answer, and no answer at all releases it."""
    return Gate(breaker, clock)
