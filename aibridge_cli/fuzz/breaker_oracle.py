"""The ``breaker`` oracle: the breakers' decisions against the documented rules.

The proxy's breakers tell their listeners every decision (``BreakerEvent``: admit, reject,
report, release, transition). This model is written from ``docs/breaker.md``, not from
``proxy/breaker.py``: it replays the admissions and answers of each breaker in order and
says what the rules allow at each decision, so a bug planted in the breaker shows as a
disagreement. What must hold:

* it never opens before ``threshold`` failures in a row (a run younger than ``interval``);
* it rejects only while open, or half-open with every probe out;
* half-open, it admits at most ``probes`` requests per period;
* every change of state is the one the rules make at that moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import BreakerConfig
from ..proxy.breaker import BreakerEvent, BreakerKey

OVERLOAD = frozenset({429, 503, 504, 529})  # from the docs' list, kept apart from the code's


@dataclass
class _Model:
    config: BreakerConfig
    state: str = "closed"
    period: int = 0  # bumped at every change of state
    run: int = 0
    run_started: float = 0.0
    opened_at: float = 0.0
    out: int = 0  # half-open: probes admitted and not given back
    successes: int = 0
    tickets: dict[int, tuple[int, bool]] = field(default_factory=dict)  # -> (period, probe)

    def _become(self, state: str, now: float) -> None:
        self.state, self.period = state, self.period + 1
        self.run = self.out = self.successes = 0
        if state == "open":
            self.opened_at = now

    def clock(self, now: float) -> None:
        if self.state == "open" and now >= self.opened_at + self.config.open_time:
            self._become("half-open", now)

    def why(self) -> str:
        if self.state == "closed":
            return f"{self.run} failure(s) in a row, threshold {self.config.threshold}"
        if self.state == "half-open":
            return f"{self.out} of {self.config.probes} probes out"
        return "open"

    def step(self, event: BreakerEvent) -> str | None:
        """Apply one decision; a problem when the rules did not allow it."""
        self.clock(event.now)
        if event.kind == "admit":
            return self._admit(event)
        if event.kind == "reject":
            if self.state == "closed" or (
                self.state == "half-open" and self.out < self.config.probes
            ):
                return f"rejected a request while {self.state} ({self.why()})"
            return None
        if event.kind == "release":
            period, probe = self.tickets.get(event.ticket or 0, (-1, False))
            if probe and period == self.period:
                self.out -= 1
            return None
        if event.kind == "report":
            self._report(event)
            return None
        if event.state.value != self.state:
            return (
                f"went {event.previous} -> {event.state} at {event.now:g} s; "
                f"the rules say {self.state} ({self.why()})"
            )
        return None

    def _admit(self, event: BreakerEvent) -> str | None:
        if self.state == "open":
            problem = "admitted a request while open"
        elif self.state == "half-open" and self.out >= self.config.probes:
            problem = f"admitted probe {self.out + 1} of {self.config.probes} half-open"
        else:
            problem = None
        probe = self.state != "closed"
        self.out += probe
        self.tickets[event.ticket or 0] = (self.period, probe)
        return problem

    def _report(self, event: BreakerEvent) -> None:
        period, _ = self.tickets.get(event.ticket or 0, (-1, False))
        if period != self.period:
            return
        failed = event.status in OVERLOAD
        if self.state == "closed":
            if not failed:
                self.run = 0
                return
            if self.run == 0 or event.now - self.run_started >= self.config.interval:
                self.run, self.run_started = 0, event.now
            self.run += 1
            if self.run >= self.config.threshold:
                self._become("open", event.now)
        elif self.state == "half-open":
            if failed:
                self._become("open", event.now)
                return
            self.successes += 1
            if self.successes >= self.config.probes:
                self._become("closed", event.now)


def breaker_problems(config: BreakerConfig, events: Sequence[BreakerEvent]) -> list[str]:
    """Every decision of ``events`` the rules did not allow, one line each, per breaker."""
    models: dict[BreakerKey, _Model] = {}
    problems: list[str] = []
    for event in events:
        model = models.setdefault(event.key, _Model(config))
        problem = model.step(event)
        if problem is not None:
            problems.append(f"breaker {event.key}: {problem}")
    return problems
