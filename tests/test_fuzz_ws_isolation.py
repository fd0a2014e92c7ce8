"""Sockets with several responses in the simulated world, and the ws-isolation oracle:
each response's events are its own (docs/fuzzing.md, "WebSocket mode")."""

from __future__ import annotations

from pathlib import Path

from aibridge_cli.fuzz.catalog import from_file
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Scenario
from aibridge_cli.providers.openai_responses_ws import message_type

SCENARIOS = Path(__file__).parent / "scenarios"
SESSION = SCENARIOS / "codex-session-socket.toml"


def scenario(path: Path) -> Scenario:
    return from_file(path)[0]


def test_an_upstream_that_goes_on_after_its_error_does_not_reach_the_next_response() -> None:
    # The upstream answers response 0 with two error events; the proxy relays the first
    # and ends the response. Reusing the socket handed the second to response 1, and each
    # later response the answer before its own; the socket is closed after a failed answer.
    twice = Plan(faults=(Fault(FaultKind.ERROR_EVENT, 0, 0), Fault(FaultKind.ERROR_EVENT, 0, 1)))
    violations, world = Judge("eager").evaluate(scenario(SESSION), twice)
    assert violations == []
    assert [a.response for a in world.attempts] == [0, 1, 1, 2, 3]
    last = [message_type(r.messages[-1])[0] for r in world.client.responses]
    # mid-stream-error's own error event ends response 2
    assert last == ["error", "response.completed", "error", "response.completed"]
