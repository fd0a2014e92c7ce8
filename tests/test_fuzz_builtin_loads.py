"""The loads shipped as built-in scenarios: the default campaign draws them, so what
concurrent requests share (key pool, recorder, breaker) is judged without a file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from aibridge_cli.fuzz.catalog import builtin, builtin_loads, builtin_scenarios
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.target import skip_reason
from aibridge_cli.proxy import keypool

TEST_SCENARIOS = Path(__file__).parent / "scenarios"
REVOKED = "loads/revoked-while-cooling"


def test_the_loads_are_built_in_and_one_request_scenarios_keep_most_draws() -> None:
    loads = builtin("loads")
    assert [s.name for s in loads] == [s.name for s in builtin_loads()]
    assert {s.name for s in loads} == {
        "loads/breaker-529-agentic",
        "loads/breaker-burst",
        "loads/codex-session-socket",
        REVOKED,
        "loads/shorter-cooldown-two-clients",
        "loads/socket-turns",
    }
    assert all(s.requests > 1 or len(s.creates) > 1 for s in loads)
    every = builtin_scenarios()
    assert every[-len(loads) :] == tuple(loads)
    # the campaign draws a scenario uniformly: a load costs one-request scenarios a draw
    # (41 of 47 scenarios, 87%)
    assert sum(s.requests == 1 and not s.creates for s in every) / len(every) >= 0.85


def test_a_shipped_load_is_the_same_file_as_the_test_scenario_of_its_name() -> None:
    folder = resources.files("aibridge_cli") / "fixtures" / "loads"
    shared = 0
    for entry in folder.iterdir():
        twin = TEST_SCENARIOS / entry.name
        if twin.exists():
            assert entry.read_text(encoding="utf-8") == twin.read_text(), entry.name
            shared += 1
    assert shared == 5


@pytest.mark.parametrize("name", [s.name for s in builtin_loads()])
def test_each_load_is_clean_on_the_unplanted_proxy(name: str) -> None:
    (scenario,) = builtin(name)
    violations, world = Judge("eager").evaluate(scenario, Plan())
    assert violations == []
    assert len(world.clients) == scenario.requests
    assert all(client.status is not None for client in world.clients)


def test_black_box_mode_skips_a_load() -> None:
    (scenario,) = builtin("loads/shorter-cooldown-two-clients")
    reason = skip_reason(scenario, None)
    assert reason is not None
    assert "a load" in reason


def test_black_box_mode_skips_a_shipped_socket() -> None:
    (scenario,) = builtin("loads/socket-turns")
    reason = skip_reason(scenario, None)
    assert reason is not None
    assert "WebSocket" in reason


def test_a_401_dropped_for_a_cooling_key_is_found_in_the_revoked_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (scenario,) = builtin(REVOKED)
    _, world = Judge("eager").evaluate(scenario, Plan())
    assert [(a.key, a.status) for a in world.attempts] == [
        (0, 429),
        (0, 401),
        (1, 200),
        (1, 200),
        (1, 200),
    ]
    # The plant: a key already cooling is out of rotation anyway, so its 401 is dropped;
    # the third client comes after the cooldown and takes the revoked key.
    report = keypool.KeyPool.report

    def planted(self: keypool.KeyPool, key: keypool.PoolKey, status: int, *rest: Any) -> bool:
        now = rest[1]  # after retry_after
        if status in (401, 403) and key.state(now) is keypool.KeyState.COOLING:
            return True
        return report(self, key, status, *rest)

    monkeypatch.setattr(keypool.KeyPool, "report", planted)
    violations, world = Judge("eager").evaluate(scenario, Plan())
    assert [(a.key, a.status) for a in world.attempts][-1] == (0, 200)
    assert {(v.oracle, v.message) for v in violations} == {
        ("key-consistency", "attempt 4 at 5 s used key 0, disabled at 0 s")
    }
