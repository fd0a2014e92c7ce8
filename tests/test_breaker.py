"""The circuit breaker's state machine, sans-io: admissions, answers and the clock."""

from __future__ import annotations

import logging

import pytest

from aibridge_cli.config import BreakerConfig
from aibridge_cli.errors import AllKeysRateLimited, CircuitOpen, UpstreamStatusError
from aibridge_cli.proxy.breaker import (
    Breaker,
    BreakerEvent,
    BreakerKey,
    Breakers,
    BreakerState,
    gated,
    log_transition,
)

CONFIG = BreakerConfig(threshold=3, interval=10.0, open_time=30.0, probes=2)
KEY = BreakerKey("anthropic", "anthropic", "claude-x")


def state(breaker: Breaker) -> BreakerState:
    """Read afresh: mypy would narrow ``breaker.state`` from one assert to the next."""
    return breaker.state


def fail(breaker: Breaker, now: float, status: int = 529) -> None:
    breaker.report(breaker.admit(now), status, now)


def tripped(now: float = 0.0) -> Breaker:
    breaker = Breaker(KEY, CONFIG)
    for _ in range(CONFIG.threshold):
        fail(breaker, now)
    assert state(breaker) is BreakerState.OPEN
    return breaker


@pytest.mark.parametrize("status", [429, 503, 504, 529])
def test_it_opens_after_the_threshold_and_not_before(status: int) -> None:
    breaker = Breaker(KEY, CONFIG)
    for i in range(CONFIG.threshold - 1):
        fail(breaker, float(i), status)
        assert state(breaker) is BreakerState.CLOSED
    fail(breaker, 2.0, status)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.trips == 1


@pytest.mark.parametrize("status", [200, 400, 401, 500, 502])
def test_other_answers_end_a_run_of_failures(status: int) -> None:
    breaker = Breaker(KEY, CONFIG)
    fail(breaker, 0.0)
    fail(breaker, 0.0)
    breaker.report(breaker.admit(0.0), status, 0.0)
    fail(breaker, 0.0)
    fail(breaker, 0.0)
    assert state(breaker) is BreakerState.CLOSED
    fail(breaker, 0.0)
    assert state(breaker) is BreakerState.OPEN


def test_a_run_starts_over_once_its_first_failure_is_interval_old() -> None:
    breaker = Breaker(KEY, CONFIG)
    fail(breaker, 0.0)
    fail(breaker, 5.0)
    fail(breaker, 10.0)  # the run began at 0: this one starts a new run
    assert (breaker.state, breaker.failures) == (BreakerState.CLOSED, 1)
    fail(breaker, 11.0)
    fail(breaker, 19.9)
    assert state(breaker) is BreakerState.OPEN


def test_open_rejects_with_the_remaining_open_time_until_it_turns_half_open() -> None:
    breaker = tripped(now=100.0)
    with pytest.raises(CircuitOpen) as rejected:
        breaker.admit(100.5)
    assert (rejected.value.status, rejected.value.retry_after) == (503, 30)
    assert rejected.value.kind == "overloaded"
    with pytest.raises(CircuitOpen) as rejected:
        breaker.admit(129.2)
    assert rejected.value.retry_after == 1
    assert breaker.rejects == 2
    ticket = breaker.admit(130.0)
    assert ticket.probe
    assert state(breaker) is BreakerState.HALF_OPEN


def test_half_open_admits_at_most_the_probes_and_closes_when_they_succeed() -> None:
    breaker = tripped()
    first, second = breaker.admit(30.0), breaker.admit(30.0)
    with pytest.raises(CircuitOpen) as rejected:
        breaker.admit(30.0)
    assert rejected.value.retry_after == 1
    breaker.report(first, 200, 31.0)
    assert state(breaker) is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        breaker.admit(31.0)  # an answered probe still counts: two per half-open period
    breaker.report(second, 200, 31.0)
    assert state(breaker) is BreakerState.CLOSED
    assert not breaker.admit(31.0).probe


def test_a_failed_probe_opens_it_again_for_a_whole_open_time() -> None:
    breaker = tripped()
    probe, other = breaker.admit(30.0), breaker.admit(30.0)
    breaker.report(probe, 503, 31.0)
    assert (breaker.state, breaker.trips) == (BreakerState.OPEN, 2)
    breaker.report(other, 200, 31.5)  # a probe of the period that ended: not counted
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as rejected:
        breaker.admit(40.0)
    assert rejected.value.retry_after == 21


def test_a_probe_without_an_answer_gives_its_slot_back() -> None:
    breaker = tripped()
    first, _ = breaker.admit(30.0), breaker.admit(30.0)
    breaker.release(first, 30.5)
    assert breaker.admit(30.5).probe


def test_an_answer_from_before_a_change_of_state_does_not_count() -> None:
    breaker = Breaker(KEY, CONFIG)
    slow = breaker.admit(0.0)  # admitted closed, answers after the breaker opened
    for _ in range(CONFIG.threshold):
        fail(breaker, 1.0)
    breaker.report(slow, 529, 2.0)
    assert breaker.trips == 1
    breaker.admit(31.0)
    breaker.report(slow, 200, 31.0)
    assert breaker.successes == 0


def test_breakers_are_per_provider_endpoint_and_model() -> None:
    breakers = Breakers(CONFIG)
    a = breakers.of("anthropic", "anthropic", "claude-a")
    for _ in range(CONFIG.threshold):
        fail(a, 0.0)
    assert breakers.of("anthropic", "anthropic", "claude-a") is a
    assert breakers.of("anthropic", "anthropic", "claude-b").state is BreakerState.CLOSED
    assert breakers.of("openai", "openai-chat", "claude-a").state is BreakerState.CLOSED
    rows = {(row["provider"], row["model"]): row for row in breakers.snapshot(10.0)}
    assert rows["anthropic", "claude-a"]["state"] == "open"
    assert rows["anthropic", "claude-a"]["open_remaining"] == 20.0
    assert rows["anthropic", "claude-b"]["state"] == "closed"


def test_every_decision_reaches_the_listeners_in_order() -> None:
    seen: list[BreakerEvent] = []
    breaker = Breakers(BreakerConfig(threshold=1, probes=1), [seen.append]).of("p", "e", "m")
    fail(breaker, 0.0)
    with pytest.raises(CircuitOpen):
        breaker.admit(1.0)
    breaker.admit(30.0)
    kinds = [(e.kind, e.state.value) for e in seen]
    assert kinds == [
        ("admit", "closed"),
        ("report", "closed"),
        ("transition", "open"),
        ("reject", "open"),
        ("transition", "half-open"),
        ("admit", "half-open"),
    ]
    assert seen[2].previous is BreakerState.CLOSED
    assert seen[2].reason == "1 failures in a row, the last 529"


def test_a_gate_reports_error_statuses_and_a_rate_limited_pool_and_releases_the_rest() -> None:
    breaker = Breaker(KEY, BreakerConfig(threshold=2, probes=1))
    clock = iter([0.0] * 10).__next__
    with pytest.raises(UpstreamStatusError), gated(breaker, clock):
        raise UpstreamStatusError(503, [], b"")
    assert breaker.failures == 1
    with pytest.raises(AllKeysRateLimited), gated(breaker, clock):
        raise AllKeysRateLimited(retry_after=5)
    assert state(breaker) is BreakerState.OPEN


def test_a_gate_with_no_answer_releases_its_probe() -> None:
    breaker = tripped()
    now = iter([30.0, 30.0, 30.0]).__next__
    with pytest.raises(OSError, match="reset"), gated(breaker, now):
        raise OSError("connection reset")
    assert breaker.probes == 0
    with gated(None, now) as gate:  # no breaker: nothing to admit or tell
        gate.answered(529)


def test_transitions_are_logged_an_opening_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "aibridge.breaker")
    breaker = Breakers(BreakerConfig(threshold=1, probes=1), [log_transition]).of("p", "e", "m")
    fail(breaker, 0.0, 503)
    breaker.report(breaker.admit(30.0), 200, 30.0)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "breaker p/e/m: closed -> open (1 failures in a row, the last 503)"),
        ("INFO", "breaker p/e/m: open -> half-open (open for 30 s)"),
        ("INFO", "breaker p/e/m: half-open -> closed (1 probes succeeded)"),
    ]
