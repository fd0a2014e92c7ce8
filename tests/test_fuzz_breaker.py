"""The fuzzer's breaker scenarios: loads through a proxy with ``--breaker``, judged by the
``breaker`` oracle; a breaker bug planted in the proxy is found, its control is clean."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from aibridge_cli.config import BreakerConfig
from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz import plan as plan_module
from aibridge_cli.fuzz.campaign import Settings, load_repro, run_campaign, write_repro
from aibridge_cli.fuzz.catalog import builtin, builtin_scenarios
from aibridge_cli.fuzz.plan import HEAD_LATENESS, HeadDelay, Plan, draw_plan
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


def stale_reports_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plant (bench/mutants.py's breaker-stale-report): an answer counts in the state
    it arrives in, not the one its request was admitted in."""
    original = Breaker.report

    def report(self: Breaker, ticket: Ticket, status: int, now: float) -> None:
        self._tick(now)
        original(self, replace(ticket, generation=self.generation), status, now)

    monkeypatch.setattr(Breaker, "report", report)


def burst_campaign_oracles() -> set[str]:
    settings = Settings(tuple(builtin("loads/breaker-burst")), 1, 40)
    return {
        v.oracle for o in run_campaign(settings, investigate=False).failures for v in o.violations
    }


def test_answers_slow_to_start_show_a_report_counted_in_the_wrong_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert burst_campaign_oracles() == set()
    stale_reports_count(monkeypatch)
    assert burst_campaign_oracles() == {"breaker"}
    # what shows it is a status line later than open_time: without one the burst passes
    monkeypatch.setattr(plan_module, "HEAD_LATENESS", (0.0,))
    assert burst_campaign_oracles() == set()


def test_only_a_breaker_load_draws_answers_slow_to_start() -> None:
    (burst,) = builtin("loads/breaker-burst")
    assert burst.breaker is not None
    heads = [draw_plan(random.Random(i), burst).heads for i in range(100)]
    assert 30 < sum(bool(h) for h in heads) < 70
    quick = {i for i, x in enumerate(burst.exchanges) if x.status in (401, 403, 429)}
    for head in (h for drawn in heads for h in drawn):
        assert head.exchange not in quick
        assert head.seconds in {round(k * burst.breaker.open_time, 6) for k in HEAD_LATENESS}
    assert not any(
        draw_plan(random.Random(i), s).heads
        for i, s in enumerate(builtin_scenarios())
        if s.breaker is None
    )
    # a repro file keeps them, and only when there are some
    plan = Plan(heads=(HeadDelay(3, 0.3),))
    assert Plan.from_json(plan.to_json()) == plan
    assert "heads" not in Plan().to_json()
