"""The planted cross-request bugs (#28), each beside the load scenario that shows it.

Each plant patches the real proxy through pytest's ``monkeypatch`` (undone after the
test); the tests of each oracle and the reproducer pages' tests plant the same bugs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from aibridge_cli.errors import AllKeysRateLimited
from aibridge_cli.fuzz.campaign import Campaign, Settings, run_campaign
from aibridge_cli.fuzz.toml_scenario import load_toml_scenario
from aibridge_cli.interception import Interception, Recorder
from aibridge_cli.proxy import bridge, keypool, routes, ws_server
from aibridge_cli.sim.recorder import MemoryRecorder

SCENARIOS = Path(__file__).parent / "scenarios"


def cooling_key_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key's state ignores its cooldown; one request still never takes a key twice
    (``tried``), so only the next request shows it."""

    def state(self: keypool.PoolKey, now: float) -> keypool.KeyState:
        return keypool.KeyState.DISABLED if self.disabled else keypool.KeyState.VALID

    monkeypatch.setattr(keypool.PoolKey, "state", state)


def shorter_cooldown_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last 429 sets the cooldown, not the longest."""
    original = keypool.KeyPool.report

    def report(
        self: keypool.KeyPool,
        key: keypool.PoolKey,
        status: int,
        retry_after: str | None,
        now: float,
        wall_now: float,
    ) -> bool:
        if status == 429:
            key.cooling_until = 0.0
        return original(self, key, status, retry_after, now, wall_now)

    monkeypatch.setattr(keypool.KeyPool, "report", report)


def recording_line_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorder wrapper with one shared "pending" slot, written out once the handing
    task yields; a second interception handed before that overwrites the first."""
    pending: list[Interception] = []

    def flush(recorder: MemoryRecorder) -> None:
        if pending:
            recorder.write(pending.pop())

    def handed(self: MemoryRecorder, record: Interception) -> None:
        pending[:] = [record]
        trio.lowlevel.current_trio_token().run_sync_soon(flush, self)

    monkeypatch.setattr(MemoryRecorder, "__call__", handed)


def interrupted_recorded_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``record-interrupted-twice`` mutant: an interception that ends in an exception
    (its client left, it was cancelled) is handed over by an added ``except`` clause and
    again by the ``finally`` that already did."""
    original = bridge.recorded

    @contextmanager
    def recorded(record: Interception, recorder: Recorder | None) -> Iterator[Interception]:
        with original(record, recorder):
            try:
                yield record
            except BaseException:
                if recorder is not None:
                    recorder(record)
                raise

    monkeypatch.setattr(routes, "recorded", recorded)
    monkeypatch.setattr(ws_server, "recorded", recorded)


def retry_after_from_the_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every key cooling, the proxy's 429 tells the longest remaining cooldown."""
    original = keypool.KeyPool.acquire

    def acquire(
        self: keypool.KeyPool, now: float, tried: frozenset[int] = frozenset()
    ) -> keypool.PoolKey:
        try:
            return original(self, now, tried)
        except AllKeysRateLimited:
            longest = max(k.cooling_until - now for k in self.keys if not k.disabled)
            raise AllKeysRateLimited(max(1, math.ceil(longest))) from None

    monkeypatch.setattr(keypool.KeyPool, "acquire", acquire)


Plant = Callable[[pytest.MonkeyPatch], None]
# name: (the plant, the scenario that shows it, the oracle that finds it)
PLANTS: dict[str, tuple[Plant, Path, str]] = {
    "cooling key used": (
        cooling_key_used,
        SCENARIOS / "cooling-key-two-clients.toml",
        "key-consistency",
    ),
    "shorter cooldown wins": (
        shorter_cooldown_wins,
        SCENARIOS / "shorter-cooldown-two-clients.toml",
        "key-consistency",
    ),
    "recording line lost": (
        recording_line_lost,
        SCENARIOS / "two-clients-end-together.toml",
        "recording",
    ),
    "Retry-After from the longest cooldown": (
        retry_after_from_the_longest,
        SCENARIOS / "all-keys-cooling-two-clients.toml",
        "key-consistency",
    ),
}


def planted_campaign(name: str, monkeypatch: pytest.MonkeyPatch, iterations: int = 30) -> Campaign:
    """Plant ``name`` (it stays planted for the test) and run a campaign over its scenario,
    shrinking what failed."""
    plant, path, _ = PLANTS[name]
    plant(monkeypatch)
    return run_campaign(Settings((load_toml_scenario(path),), 1, iterations))
