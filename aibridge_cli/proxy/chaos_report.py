"""How clients reacted to ``serve --chaos``'s faults, from what the proxy saw, sans-io.

Theory of operation: each strike opens a ``FaultSeen`` (rule, kind, the client's request
digest and who sent it). When that request is over it gets its end time. Every request
that finishes later is read against the open faults: the same body from the same client
is a **retry** (its delay runs from the faulted answer's end to the retry's arrival, and
a ``Retry-After`` is honoured when the first retry waited it out); any request of the
same client shows the **session went on**, and the first one that succeeds is the
**recovery** (time from the faulted answer's end to that success's end). The proxy sees
no more than requests, so a client that gave up and told its user says so by silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A retry that waited at least this share of the Retry-After honoured it: clients round
# and timers fire early by a few milliseconds.
HONOURED_SHARE = 0.9


@dataclass(frozen=True)
class Seen:
    """A client's request, over: its body's digest, who sent it, when, and how it ended."""

    digest: str
    client: str
    arrived: float
    finished: float
    ok: bool
    struck: bool


@dataclass
class FaultSeen:
    rule: str
    kind: str
    retry_after: float | None
    digest: str
    client: str
    struck_at: float
    api: str = ""
    path: str = ""
    ended_at: float | None = None
    retries: list[tuple[float, bool]] = field(default_factory=list)  # (delay, ok)
    next_request: float | None = None  # delay of the client's next request of any kind
    recovered_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        first = self.retries[0][0] if self.retries else None
        honoured = None
        if self.retry_after is not None and first is not None:
            honoured = first >= self.retry_after * HONOURED_SHARE
        recovery = None
        if self.recovered_at is not None and self.ended_at is not None:
            recovery = _s(self.recovered_at - self.ended_at)
        return {
            "rule": self.rule,
            "kind": self.kind,
            "api": self.api,
            "path": self.path,
            "client": self.client,
            "retry_after": self.retry_after,
            "retries": len(self.retries),
            "retry_delays_s": [_s(d) for d, _ in self.retries],
            "retry_after_honoured": honoured,
            "session_went_on": self.next_request is not None,
            "next_request_s": None if self.next_request is None else _s(self.next_request),
            "recovered": self.recovered_at is not None,
            "recovery_s": recovery,
        }


def _s(seconds: float) -> float:
    return round(max(0.0, seconds), 3)


@dataclass
class Reactions:
    faults: list[FaultSeen] = field(default_factory=list)

    def struck(self, fault: FaultSeen) -> None:
        self.faults.append(fault)

    def finished(self, seen: Seen) -> None:
        for fault in self.faults:
            if fault.ended_at is None or seen.arrived < fault.ended_at:
                continue
            delay = seen.arrived - fault.ended_at
            if seen.digest == fault.digest and seen.client == fault.client:
                fault.retries.append((delay, seen.ok))
            if seen.client == fault.client:
                if fault.next_request is None:
                    fault.next_request = delay
                if seen.ok and fault.recovered_at is None:
                    fault.recovered_at = seen.finished
        if seen.struck:
            for fault in self.faults:
                if (
                    fault.ended_at is None
                    and fault.digest == seen.digest
                    and seen.arrived <= fault.struck_at <= seen.finished
                ):
                    fault.ended_at = seen.finished

    def report(self) -> dict[str, Any]:
        faults = [f.as_json() for f in self.faults]
        return {
            "faults": faults,
            "struck": len(faults),
            "retried": sum(1 for f in faults if f["retries"]),
            "recovered": sum(1 for f in faults if f["recovered"]),
        }

    def lines(self) -> list[str]:
        """The report as text, one line per fault, for the shutdown summary."""
        report = self.report()
        out = [
            f"chaos: {report['struck']} fault(s) struck, {report['retried']} retried, "
            f"{report['recovered']} recovered"
        ]
        for f in report["faults"]:
            delays = ", ".join(f"{d:g}s" for d in f["retry_delays_s"]) or "none"
            honoured = f["retry_after_honoured"]
            ra = (
                ""
                if honoured is None
                else f" Retry-After {f['retry_after']:g}s "
                + ("honoured" if honoured else "not honoured")
            )
            recovery = (
                f" recovered after {f['recovery_s']:g}s" if f["recovered"] else " not recovered"
            )
            went_on = "session went on" if f["session_went_on"] else "no further request"
            out.append(
                f"  {f['rule']} ({f['kind']}) {f['path']} [{f['client'] or '-'}]: "
                f"{f['retries']} retr{'y' if f['retries'] == 1 else 'ies'} ({delays});{ra}"
                f" {went_on};{recovery}"
            )
        return out
