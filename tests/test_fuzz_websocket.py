"""The fuzzer over the Responses API's WebSocket mode: the built-in openai-responses-ws
scenarios run clean, bugs planted in the WebSocket path are caught by the oracles, and lazy
initiation races there as over HTTP, except in the seed race's shape (docs/fuzzing.md)."""

from __future__ import annotations

import pytest

from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan, ReadDelay
from aibridge_cli.providers.openai_responses_ws import frame_messages as messages_of
from aibridge_cli.proxy import ws_bridge
from aibridge_cli.proxy.ws_bridge import UpstreamSession, WebSocketInterceptor

from .test_fuzz_catches_planted_bugs import campaign_oracles, oracles_of

SIMPLE = "openai-responses-ws/simple"
TOOL = "openai-responses-ws/injected-tool"
SEED_CASE = "openai-responses-ws/rate-limit-after-tool-turn"


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_every_websocket_scenario_runs_clean(mode: str) -> None:
    for scenario in builtin("openai-responses-ws"):
        assert oracles_of(scenario.name, Plan(), mode) == set(), scenario.name
    assert campaign_oracles([SIMPLE, TOOL, SEED_CASE], 60) == set()


def test_the_seed_case_fails_over_on_the_socket_then_on_the_handshake() -> None:
    from aibridge_cli.fuzz.runner import Judge

    _, world = Judge("eager").evaluate(builtin(SEED_CASE)[0], Plan())
    # the tool turn and its continuation on key 0's socket (refused in its first
    # message), then key 1's upgrade refused
    assert [(a.key, a.status) for a in world.attempts] == [(0, 101), (0, 429), (1, 429)]
    assert b'"rate_limit_exceeded"' in world.client.body
    assert world.client.complete


def test_ignoring_the_mid_connection_rule_breaks_the_key_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(WebSocketInterceptor, "_fail_over", lambda self, key, text: False)
    assert "key-pool" in oracles_of(SEED_CASE, Plan())
    assert "key-pool" in campaign_oracles([SEED_CASE], 10)


def test_a_dropped_terminal_message_is_a_malformed_body(monkeypatch: pytest.MonkeyPatch) -> None:
    def frame_messages(data: bytes) -> list[str]:
        return [m for m in messages_of(data) if '"response.completed"' not in m]

    monkeypatch.setattr(ws_bridge, "frame_messages", frame_messages)
    assert "malformed-body" in oracles_of(SIMPLE, Plan())


def test_an_upstream_socket_left_open_is_a_hygiene_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def close(self: UpstreamSession, code: int = 1000) -> None:
        self.socket, self.key = None, None  # forgets the socket without closing it

    monkeypatch.setattr(UpstreamSession, "close", close)
    assert "hygiene" in oracles_of(SIMPLE, Plan())


def test_lazy_initiation_races_over_websocket_too() -> None:
    # The stream breaks while the relay holds events it has not written: the lazy loop
    # sees nothing initiated and nothing queued and sends its error at once; the relay's
    # events follow it on the socket (the client closes after the error and still gets them).
    plan = Plan(faults=(Fault(FaultKind.RESET_IN_BODY, 0, 1),))
    assert "malformed-body" in oracles_of(SIMPLE, plan, "lazy")
    assert "malformed-body" not in oracles_of(SIMPLE, plan, "eager")


def test_the_seed_race_shape_cannot_race_over_websocket() -> None:
    # The HTTP seed case's racing plan (a slow first read) and a lazy campaign over the
    # WebSocket seed case: a tool turn releases no event, so after it nothing can race.
    plan = Plan(
        read_delays=(ReadDelay(0, 5.0),),
        faults=(Fault(FaultKind.RATE_LIMIT_ALL, 1, retry_after="30"),),
    )
    assert oracles_of(SEED_CASE, plan, "lazy") == set()
    settings = Settings(tuple(builtin(SEED_CASE)), 7, 60, stream_initiation="lazy")
    assert [o.oracle for o in run_campaign(settings).failures] == []
