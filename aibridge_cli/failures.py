"""Expected failures, for the operator: what went wrong as one line, and the exit code.

Every command runs inside ``cli.AibridgeGroup``, which hands what escapes a command to
``explain``. An expected failure (an ``AibridgeError``, or an ``OSError`` on a named
file) becomes ``error: <what> (<why>); <what to do>`` on stderr and exit 2 (127 when
``record`` cannot start its command); anything else is a bug and keeps its traceback.
Failures raised inside a nursery arrive wrapped in exception groups, nested as deep as
the nurseries were: the leaves are looked at, never the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import AibridgeError


@dataclass(frozen=True)
class Failure:
    """One expected failure as the operator sees it."""

    message: str
    hint: str | None = None
    exit_code: int = 2

    def line(self) -> str:
        """The one line after ``error:``."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside ``exc``, however deep its groups nest."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def explain(exc: BaseException) -> Failure | None:
    """The expected failure ``exc`` stands for, or None when it is a bug.

    In a group, cancellations are the echo of the failure that caused them; any other
    leaf that is not expected makes the whole a bug, so its traceback is not hidden.
    """
    import trio  # here, not at the top: ``aibridge --help`` loads no trio

    found: Failure | None = None
    for leaf in leaves(exc):
        if isinstance(leaf, trio.Cancelled):
            continue
        failure = _expected(leaf)
        if failure is None:
            return None
        found = found or failure
    return found


def interrupted(exc: BaseException) -> bool:
    """True for Ctrl-C (or a second SIGTERM), also when it comes wrapped in groups."""
    import trio

    found = [leaf for leaf in leaves(exc) if not isinstance(leaf, trio.Cancelled)]
    return bool(found) and all(isinstance(leaf, KeyboardInterrupt) for leaf in found)


def _expected(exc: BaseException) -> Failure | None:
    if isinstance(exc, AibridgeError):
        return Failure(str(exc), exc.hint, exc.exit_code)
    if isinstance(exc, OSError) and exc.filename is not None:
        # A file a layer below did not translate: still the operator's to fix.
        return Failure(
            f"{exc.filename}: {exc.strerror or exc}", "check the path and its permissions"
        )
    return None
