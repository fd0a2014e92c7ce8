"""The fuzzer's breaker scenarios: loads through a proxy with ``--breaker``, judged by the
``breaker`` oracle; a breaker bug planted in the proxy is found, its control is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibridge_cli.config import BreakerConfig
from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz.campaign import Settings, load_repro, run_campaign, write_repro
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Scenario
from aibridge_cli.fuzz.toml_scenario import load_toml_scenario, scenario_from_toml
from aibridge_cli.proxy.breaker import Breaker, BreakerState, Ticket

SCENARIOS = Path(__file__).parent / "scenarios"
BLOCKING = "breaker-503-blocking"
NAMES = ["breaker-529-agentic", BLOCKING, "breaker-burst"]


def scenario(name: str) -> Scenario:
    return load_toml_scenario(SCENARIOS / f"{name}.toml")


def oracles_of(name: str, plan: Plan) -> set[str]:
    violations, _ = Judge("eager").evaluate(scenario(name), plan)
    return {v.oracle for v in violations}


def campaign_oracles(names: list[str], iterations: int, seed: int = 1) -> set[str]:
    settings = Settings(tuple(scenario(n) for n in names), seed, iterations)
    return {o.oracle for o in run_campaign(settings).failures if o.oracle}


def test_the_blocking_load_goes_through_every_state() -> None:
    _, world = Judge("eager").evaluate(scenario(BLOCKING), Plan())
    assert [c.status for c in world.clients] == [200, 503, 504, 503] + [503] * 7 + [200]
    moves = [(e.previous, e.state) for e in world.breaker_events if e.kind == "transition"]
    assert [(str(a), str(b)) for a, b in moves] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),  # the first probe got a 503
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    # rejected requests never reached the upstream: 12 clients, 6 upstream requests
    assert len(world.attempts) == 6


def test_the_unplanted_proxy_passes_the_breaker_scenarios() -> None:
    for name in NAMES:
        assert oracles_of(name, Plan()) == set()
    assert campaign_oracles(NAMES, 40) == set()


def test_a_probe_admitted_while_open_is_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    admit = Breaker.admit

    def leaky(self: Breaker, now: float) -> Ticket:
        # the planted bug: open is taken for half-open, so probes go while it is open
        if self.state is BreakerState.OPEN and self.probes < self.config.probes:
            self.probes += 1
            return self._ticket(now, probe=True)
        return admit(self, now)

    monkeypatch.setattr(Breaker, "admit", leaky)
    assert oracles_of(BLOCKING, Plan()) == {"breaker"}
    campaign = run_campaign(Settings(tuple(scenario(n) for n in NAMES), 1, 20))
    assert {o.oracle for o in campaign.failures} == {"breaker"}
    shapes = {f.signature.shape for f in campaign.findings}
    assert "breaker openai/openai-chat/gpt-x: admitted a request while open" in shapes
    # a finding's repro file keeps the load and the breaker, and replays to the same failure
    path = write_repro(campaign.findings[0], tmp_path)
    _, again, plan = load_repro(path)
    assert (again.requests, again.breaker) == (
        campaign.findings[0].scenario.requests,
        campaign.findings[0].scenario.breaker,
    )
    violations, _ = Judge("eager").evaluate(again, plan)
    assert {v.oracle for v in violations} == {"breaker"}


def test_a_breaker_that_opens_one_failure_early_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    init = Breaker.__init__

    def early(self: Breaker, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        config = self.config
        self.config = BreakerConfig(
            config.threshold - 1, config.interval, config.open_time, config.probes
        )

    monkeypatch.setattr(Breaker, "__init__", early)
    assert "breaker" in oracles_of(BLOCKING, Plan())


def test_a_load_scenario_survives_a_repro_file() -> None:
    original = scenario("breaker-burst")
    again = Scenario.from_json(original.to_json())
    assert again == original
    assert (again.requests, again.gap, again.breaker) == (10, 0.0, original.breaker)
    # a scenario without a load writes what it always wrote
    plain = Scenario.from_json({**original.to_json(), "requests": 1})
    assert "requests" not in Scenario(**{**plain.__dict__, "breaker": None}).to_json()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"requests": 0}, "requests must be a number of requests"),
        ({"gap": -1}, "gap must be seconds between requests"),
        ({"breaker": {"threshold": 0}}, "threshold must be a whole number of at least 1"),
        ({"breaker": {"open_time": "1s"}}, "open_time must be a positive number of seconds"),
        ({"breaker": {"probe": 2}}, "unknown key 'probe'"),
    ],
)
def test_bad_load_settings_are_one_error(extra: dict[str, object], message: str) -> None:
    data = {"api": "anthropic", "turn": [{"text": "hi"}], **extra}
    with pytest.raises(ConfigError, match=message):
        scenario_from_toml("bad", data, "bad.toml")
