"""How an interception ended, for its request's log line (HTTP and WebSocket alike)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import CircuitOpen
from ..interception import Interception


@dataclass
class Outcome:
    """How an interception ended, for its log line: a status 200 says nothing of a stream
    that broke after it, so the line names what went wrong and its cause."""

    problem: str | None = None  # "error", "cancelled", "disconnected" or "rejected"
    cause: str = ""
    status: int | None = None  # what the error stood for, in a stream too

    def of(self, recorded: str, status: int | None = None) -> None:
        """Read the interception's recorded outcome (``"ok"``, ``"error: ..."``, ...)."""
        self.status = status
        for prefix, problem in _PROBLEMS:
            if recorded.startswith(prefix):
                self.problem = problem
                self.cause = recorded.removeprefix(prefix).lstrip(":").strip()
                return

    def noting(self, record: Interception) -> _Noting:
        """Read the record's outcome once the request is over, however it ended."""
        return _Noting(self, record)

    def suffix(self) -> str:
        """What the log line adds: `` error="upstream connection lost: ..."``."""
        if self.problem is None:
            return ""
        return f' {self.problem}="{self.cause}"' if self.cause else f" {self.problem}"

    def level(self) -> int:
        """An error for a failure of the upstream or the proxy (5xx, in a stream too), a
        warning for a refusal (a 429, a 401, an open circuit breaker's 503: its opening was
        logged once already) or a cut; what the client got wrong, info."""
        if self.problem == "error" and self.cause.startswith(CircuitOpen.PREFIX):
            return logging.WARNING
        if self.problem == "error":
            return logging.ERROR if self.status is None or self.status >= 500 else logging.WARNING
        if self.problem in ("cancelled", "disconnected"):
            return logging.WARNING
        return logging.INFO


class _Noting:
    """``Outcome.noting``: a class, not a generator, since it runs on every request."""

    __slots__ = ("outcome", "record")

    def __init__(self, outcome: Outcome, record: Interception) -> None:
        self.outcome = outcome
        self.record = record

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: object) -> None:
        self.outcome.of(self.record.outcome, self.record.error_status)


_PROBLEMS = (
    ("error", "error"),
    ("cancelled", "cancelled"),
    ("client disconnected", "disconnected"),
    ("rejected", "rejected"),
)
