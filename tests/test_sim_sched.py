"""The seeded scheduler: trio's private hook is still there, and one seed is one schedule."""

from __future__ import annotations

import trio
import trio.testing

from aibridge_cli.sim import sched
from aibridge_cli.sim.sched import Scheduler, check_hook, deterministic


def test_trio_still_has_the_deterministic_scheduling_hook() -> None:
    # If this fails after a trio upgrade, the simulation can no longer be seeded:
    # find the new names and update aibridge_cli/sim/sched.py.
    check_hook()


def _race(seed: int, budget: int) -> list[int]:
    order: list[int] = []

    async def worker(n: int) -> None:
        for _ in range(3):
            order.append(n)
            await trio.lowlevel.checkpoint()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(worker, n)

    scheduler = Scheduler()
    with deterministic(scheduler):
        scheduler.configure(seed, budget, 1.0)
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return order


def test_one_seed_gives_one_schedule() -> None:
    assert _race(7, 100) == _race(7, 100)
    assert len({tuple(_race(seed, 100)) for seed in range(12)}) > 1


def test_a_zero_budget_is_fifo_whatever_the_seed() -> None:
    assert _race(1, 0) == _race(2, 0) == [0, 1, 2, 3] * 3


def test_the_hook_is_restored_after_the_block() -> None:
    from trio._core import _run

    before = _run._r
    with deterministic(Scheduler()):
        assert _run._r is not before
    assert _run._r is before


def test_the_clock_is_trios_mock_clock() -> None:
    # taken from trio._core (trio.testing imports pytest): the same class
    assert sched.MockClock is trio.testing.MockClock
