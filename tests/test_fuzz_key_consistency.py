"""Several clients in one world: the key-consistency oracle (the pool's own timeline across
requests) and the overlap a plan draws for them."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

from aibridge_cli import headers
from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.pool_timeline import (
    RELAYED_WRONG,
    TOLD_WRONG,
    key_consistency_problems,
    retry_after_problems,
)
from aibridge_cli.fuzz.runner import Judge, draw_iteration
from aibridge_cli.fuzz.scenario import Scenario
from aibridge_cli.fuzz.toml_scenario import load_toml_scenario, scenario_from_toml
from aibridge_cli.headers import Headers, header
from aibridge_cli.proxy import bridge
from aibridge_cli.sim.world import Attempt

from .cross_request_plants import (
    cooling_key_used,
    retry_after_from_the_longest,
    shorter_cooldown_wins,
)

TWO_CLIENTS = Path(__file__).parent / "scenarios" / "cooling-key-two-clients.toml"


def cooling(until: float) -> dict[str, object]:
    return {"state": "cooling", "cooldown_remaining": until}


def test_a_key_is_not_used_after_its_429_until_the_cooldown_passed() -> None:
    rate_limited = Attempt(0.0, 0, 429, "30")
    # the same instant: that request took the key before the 429 was read
    assert key_consistency_problems(2, [rate_limited, Attempt(0.0, 0, 200, None)], [], 1) == []
    assert key_consistency_problems(2, [rate_limited, Attempt(1.0, 0, 200, None)], [], 1) == [
        "attempt 1 at 1 s used key 0, cooling from 0 s until 30 s"
    ]
    assert key_consistency_problems(2, [rate_limited, Attempt(30.0, 0, 200, None)], [], 31) == []
    disabled = [Attempt(0.0, 1, 401, None), Attempt(5.0, 1, 200, None)]
    assert key_consistency_problems(2, disabled, [], 6) == [
        "attempt 1 at 5 s used key 1, disabled at 0 s"
    ]


def test_a_later_shorter_retry_after_must_not_shorten_the_cooldown() -> None:
    both = [Attempt(0.0, 0, 429, "30"), Attempt(0.0, 0, 429, "2")]
    valid = {"state": "valid", "cooldown_remaining": 0}
    assert key_consistency_problems(2, both, [cooling(29.0), valid], 1.0) == []
    assert key_consistency_problems(2, both, [cooling(1.0), valid], 1.0) == [
        "key 0 has 1.0 s of cooldown left at 1 s; its longest Retry-After asks 29.0 s"
    ]


def judged() -> tuple[set[str], list[int | None]]:
    violations, world = Judge("eager").evaluate(load_toml_scenario(TWO_CLIENTS), Plan())
    return {v.oracle for v in violations}, [a.key for a in world.attempts]


def campaign() -> set[str]:
    found = run_campaign(Settings((load_toml_scenario(TWO_CLIENTS),), 1, 20), investigate=False)
    return {v.oracle for outcome in found.failures for v in outcome.violations}


def test_two_clients_share_the_pool_and_the_second_skips_the_cooling_key() -> None:
    assert judged() == (set(), [0, 1, 1])
    assert campaign() == set()


def test_a_cooling_key_used_by_the_next_request_is_a_key_consistency_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only this oracle sees it (a load is not judged by the key-pool oracle, which
    # predicts one request's keys).
    cooling_key_used(monkeypatch)
    oracles, keys = judged()
    assert keys == [0, 1, 0]
    assert oracles == {"key-consistency"}
    assert "key-consistency" in campaign()


SHORTER = Path(__file__).parent / "scenarios" / "shorter-cooldown-two-clients.toml"


def shorter() -> tuple[set[str], set[str]]:
    """The oracles a plain run of SHORTER fails, and those a small campaign fails."""
    scenario = load_toml_scenario(SHORTER)
    violations, _ = Judge("eager").evaluate(scenario, Plan())
    found = run_campaign(Settings((scenario,), 1, 20), investigate=False)
    return {v.oracle for v in violations}, {
        v.oracle for outcome in found.failures for v in outcome.violations
    }


def test_two_429s_at_once_keep_the_longer_cooldown() -> None:
    assert shorter() == (set(), set())


def test_a_cooldown_overwritten_by_a_shorter_one_is_a_key_consistency_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shorter_cooldown_wins(monkeypatch)
    plain, campaign_found = shorter()
    assert plain == {"key-consistency"}
    assert "key-consistency" in campaign_found


def test_a_plan_may_start_a_load_s_clients_later() -> None:
    # 31 s later than its turn (1 s), the second client finds key 0 cooled down.
    plan = Plan(starts=(0.0, 31.0))
    violations, world = Judge("eager").evaluate(load_toml_scenario(TWO_CLIENTS), plan)
    assert violations == []
    assert [(a.time, a.key) for a in world.attempts] == [(0.0, 0), (0.0, 1), (32.0, 0)]
    assert Plan.from_json(plan.to_json()) == plan
    assert "starts" not in Plan().to_json()  # one-request repro files keep their bytes


def test_loads_draw_their_overlap_and_other_scenarios_do_not() -> None:
    settings = Settings((load_toml_scenario(TWO_CLIENTS),), 1, 20)
    drawn = [draw_iteration(settings.draw, i)[1].starts for i in range(20)]
    assert any(drawn)
    assert not all(drawn)
    assert all(len(starts) in (0, 2) for starts in drawn)
    one = Settings(tuple(builtin("anthropic/simple#streaming")), 1, 20)
    assert not any(draw_iteration(one.draw, i)[1].starts for i in range(20))


def with_starts(starts: str, gap: float = 0.0) -> Scenario:
    text = TWO_CLIENTS.read_text().replace("gap = 1", f"gap = {gap:g}\nstarts = {starts}")
    return scenario_from_toml("starts", tomllib.loads(text), "starts.toml")


def test_a_scenario_gives_each_client_its_start_time() -> None:
    scenario = with_starts("[0, 31]")
    assert scenario.describe().startswith("2 requests at 0, 31 s, ")
    assert Scenario.from_json(scenario.to_json()) == scenario
    # the plan's lateness adds to the scenario's own start time
    violations, world = Judge("eager").evaluate(scenario, Plan(starts=(0.0, 0.5)))
    assert violations == []
    assert [(a.time, a.key) for a in world.attempts] == [(0.0, 0), (0.0, 1), (31.5, 0)]


@pytest.mark.parametrize(
    ("starts", "gap", "error"),
    [
        ("[0]", 0.0, "starts must give each of the 2 requests its start time"),
        ("[0, -1]", 0.0, "starts must give each of the 2 requests its start time"),
        ("[0, 1]", 1.0, "give either starts or gap, not both"),
    ],
)
def test_start_times_are_checked(starts: str, gap: float, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        with_starts(starts, gap)


ALL_COOLING = Path(__file__).parent / "scenarios" / "all-keys-cooling-two-clients.toml"


def told(keys: int, attempts: list[Attempt], *spans: tuple[float, float, str | None]) -> list[str]:
    return [message for message, _ in retry_after_problems(keys, attempts, spans)]


def test_a_pool_s_own_429_tells_the_smallest_remaining_cooldown_at_its_instant() -> None:
    both = [Attempt(0.0, 0, 429, "30"), Attempt(0.0, 1, 429, "10")]
    assert told(2, both, (0.0, 0.0, "10"), (1.0, 1.0, "9")) == []
    assert told(2, both, (1.0, 1.0, "29")) == [
        "client 0 was told Retry-After 29 at 1 s; the pool's timeline gives 9"
    ]
    # rounded up, at least 1: 0.5 s left is 1, and so is a key its request just tried
    assert told(1, [Attempt(0.0, 0, 429, "2.5")], (2.0, 2.0, "1"), (0.5, 0.5, "2")) == []
    assert told(1, [Attempt(0.0, 0, 429, "0")], (0.0, 0.0, "1")) == []
    # the proxy decided somewhere between the request and the answer: any value of the span
    assert told(2, both, (1.0, 4.5, "6"), (1.0, 4.5, "9")) == []
    assert told(2, both, (1.0, 4.5, "5")) == [
        "client 0 was told Retry-After 5 at 1-4.5 s; the pool's timeline gives 6-9"
    ]
    assert told(2, [], (0.0, 0.0, "1")) == [
        "client 0 was told Retry-After 1 at 0 s; the pool's timeline gives no key cooling"
    ]
    assert told(2, both, (0.0, 0.0, None)) == [
        "client 0 was told Retry-After None at 0 s; the pool's timeline gives 10"
    ]


def test_answers_of_one_instant_may_reach_the_pool_in_any_order() -> None:
    # loads/revoked-while-cooling, seed 1: key 0 answered 429 and 401 at one instant, key
    # 1 a 403; the proxy read the 429 and the 403 first and told its client key 0's 2 s
    revoked = [Attempt(0.0, 0, 429, "2"), Attempt(0.0, 0, 401, None), Attempt(0.0, 1, 403, None)]
    assert told(2, revoked, (0.0, 0.0, "2")) == []
    assert told(2, revoked, (0.0, 0.0, "5")) == [
        "client 0 was told Retry-After 5 at 0 s; the pool's timeline gives 2"
    ]
    # a pool with a key free to try answers no client itself: key 0's 30 alone is no answer
    both = [Attempt(0.0, 0, 429, "30"), Attempt(0.0, 1, 429, "10")]
    assert told(2, both, (0.0, 0.0, "30")) != []


def test_a_relayed_429_keeps_the_upstream_s_retry_after() -> None:
    upstream = [Attempt(0.0, None, 429, "7")]
    assert told(0, upstream, (0.0, 0.0, "7")) == []
    assert retry_after_problems(0, upstream, [(0.0, 0.0, "60")]) == [
        ("client 0 was relayed Retry-After 60 at 0 s; the upstream gave 7", RELAYED_WRONG)
    ]


def all_cooling() -> tuple[list[tuple[str, str | None]], set[str]]:
    """Each client's status and Retry-After in a plain run, and the shapes of its
    violations and of a small campaign's."""
    scenario = load_toml_scenario(ALL_COOLING)
    violations, world = Judge("eager").evaluate(scenario, Plan())
    answers = [(str(c.status), header(c.headers, "retry-after")) for c in world.clients]
    found = run_campaign(Settings((scenario,), 1, 20), investigate=False)
    shapes = {v.shape for v in violations} | {
        f"campaign: {v.shape}" for outcome in found.failures for v in outcome.violations
    }
    return answers, shapes


def test_every_client_of_an_all_cooling_pool_is_told_what_the_pool_says() -> None:
    assert all_cooling() == ([("429", "10"), ("429", "9")], set())


def test_a_retry_after_from_the_longest_cooldown_is_a_key_consistency_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retry_after_from_the_longest(monkeypatch)
    assert all_cooling() == (
        [("429", "30"), ("429", "29")],
        {TOLD_WRONG, f"campaign: {TOLD_WRONG}"},
    )


RELAYED = Path(__file__).parent / "scenarios" / "relayed-429-two-clients.toml"


def relayed() -> tuple[list[str | None], set[str]]:
    """Each client's Retry-After in a plain run, and the violations' shapes."""
    violations, world = Judge("eager").evaluate(load_toml_scenario(RELAYED), Plan())
    return [header(c.headers, "retry-after") for c in world.clients], {v.shape for v in violations}


def test_without_a_pool_each_client_gets_the_upstream_s_own_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert relayed() == (["7", "3"], set())
    # the plant: a relayed answer loses its Retry-After
    original = headers.forwarded_response_headers

    def forwarded(received: Iterable[tuple[str, str]], *, head: bool = False) -> Headers:
        return [(k, v) for k, v in original(received, head=head) if k.lower() != "retry-after"]

    monkeypatch.setattr(bridge, "forwarded_response_headers", forwarded)
    assert relayed() == ([None, None], {RELAYED_WRONG})
