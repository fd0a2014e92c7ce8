"""Seeded, deterministic trio scheduling: the one module that touches trio's private hook.

trio keeps a hook for Hypothesis: when ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``
is true, each batch of runnable tasks is sorted by task creation order and handed to
``trio._core._run._r.shuffle``. We install a ``Scheduler`` as ``_r``, so one seed gives one
schedule. Its shuffle leaves a batch in FIFO order (oldest task first) unless it spends
one of its ``budget`` deviations, each drawn with probability ``rate``: a budget of 0 is
the canonical schedule, and shrinking a failure lowers the budget.

Many worlds share one trio run (starting trio costs about a tenth of a world), so each
world starts from the same state: ``settle`` closes the async generators the previous
world abandoned (what trio does at the end of a run) and waits for the system tasks, and
``rewind`` puts the virtual clock back to 0.

``check_hook`` fails loudly when a trio release moves these names
(``tests/test_sim_sched.py`` runs it). ``MockClock`` and ``wait_all_tasks_blocked`` are
taken from ``trio._core``'s modules too, not ``trio.testing``: that package imports
pytest when it is installed: 0.35 billion instructions of every fuzz process's start.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from typing import Any

import trio
from trio._core import _run as _trio_run

try:  # where trio defines them; trio.testing re-exports them but imports pytest when installed
    from trio._core._generated_run import wait_all_tasks_blocked
    from trio._core._mock_clock import MockClock
except ImportError:  # a trio that moved them: the public path, a tenth of a second dearer
    from trio.testing import MockClock, wait_all_tasks_blocked

__all__ = ["MockClock", "Scheduler", "check_hook", "deterministic", "rewind", "settle"]

_FLAG = "_ALLOW_DETERMINISTIC_SCHEDULING"
_RANDOM = "_r"


class HookMissing(RuntimeError):
    """trio no longer has the deterministic-scheduling hook this module relies on."""


class Scheduler(random.Random):
    """Stands in for trio's ``_r``: decides the order of every batch of runnable tasks."""

    def __init__(self) -> None:
        super().__init__(0)
        self.budget = 0
        self.rate = 0.0
        self.deviations = 0

    def configure(self, seed: int, budget: int, rate: float) -> None:
        self.seed(seed)
        self.budget = budget
        self.rate = rate
        self.deviations = 0

    def shuffle(self, x: MutableSequence[Any]) -> None:
        # trio pops tasks from the end of the batch: reversed creation order is FIFO.
        if len(x) > 1 and self.deviations < self.budget and self.random() < self.rate:
            self.deviations += 1
            super().shuffle(x)
        else:
            x.reverse()


def check_hook() -> None:
    """Raise ``HookMissing`` unless trio still has the hook, with the expected shape."""
    if not isinstance(getattr(_trio_run, _FLAG, None), bool):
        raise HookMissing(f"trio._core._run.{_FLAG} is gone: the simulation cannot be seeded")
    current = getattr(_trio_run, _RANDOM, None)
    if not isinstance(current, random.Random):
        raise HookMissing(f"trio._core._run.{_RANDOM} is not a random.Random any more")
    if not isinstance(getattr(MockClock(), "_virtual_base", None), float):
        raise HookMissing("trio's MockClock has no _virtual_base: cannot rewind it")
    if not hasattr(_trio_run.Runner, "asyncgens"):
        raise HookMissing("trio's Runner keeps no asyncgens: cannot close abandoned ones")


def rewind(clock: MockClock) -> None:
    """Put a clock that is not running ahead (``rate`` 0) back to virtual time 0."""
    clock._virtual_base = 0.0


async def settle() -> None:
    """Close the async generators left suspended so far, then wait for every other task.

    trio closes them when a run ends; between two worlds of one run this does it, so no
    finalizer of one world's leftovers runs inside the next.
    """
    generators = _trio_run.GLOBAL_RUN_CONTEXT.runner.asyncgens
    while generators.alive:
        batch, generators.alive = generators.alive, type(generators.alive)()
        for agen in batch:
            with trio.CancelScope(shield=True) as scope:
                scope.cancel()
                try:
                    await agen.aclose()
                except Exception:
                    pass  # trio only logs these too: the world that left it is judged
    await wait_all_tasks_blocked()


@contextmanager
def deterministic(scheduler: Scheduler) -> Iterator[Scheduler]:
    """Make trio runs started inside this block use ``scheduler`` (restored on exit)."""
    check_hook()
    saved = getattr(_trio_run, _FLAG), getattr(_trio_run, _RANDOM)
    setattr(_trio_run, _FLAG, True)
    setattr(_trio_run, _RANDOM, scheduler)
    try:
        yield scheduler
    finally:
        setattr(_trio_run, _FLAG, saved[0])
        setattr(_trio_run, _RANDOM, saved[1])
