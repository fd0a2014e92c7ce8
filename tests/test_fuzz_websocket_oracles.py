"""The differential and usage oracles judge WebSocket scenarios too (in the SSE view the
client's messages get); bugs planted in the socket relay that only they see are found."""

from __future__ import annotations

import json

import pytest

from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.providers.openai_responses_ws import frame_messages as messages_of
from aibridge_cli.proxy import ws_bridge

from .test_fuzz_catches_planted_bugs import campaign_oracles

SIMPLE = "openai-responses-ws/simple"
TOOL = "openai-responses-ws/injected-tool"


def violations(name: str) -> list[tuple[str, str]]:
    found, _ = Judge("eager").evaluate(builtin(name)[0], Plan())
    return [(v.oracle, v.message) for v in found]


def test_the_unplanted_socket_relay_passes() -> None:
    assert violations(SIMPLE) == []
    assert violations(TOOL) == []
    assert campaign_oracles([SIMPLE, TOOL], 30) == set()


def test_a_lost_message_is_a_differential_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plant: the relay loses each output_item.added; the grammar does not require it.
    def frame_messages(data: bytes) -> list[str]:
        return [m for m in messages_of(data) if '"response.output_item.added"' not in m]

    monkeypatch.setattr(ws_bridge, "frame_messages", frame_messages)
    found = violations(SIMPLE)
    assert [oracle for oracle, _ in found] == ["differential"]
    assert found[0][1].startswith("an event differs (#1)")


def test_usage_not_summed_over_a_socket_is_a_usage_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plant: the terminal message's input tokens are one too many.
    def frame_messages(data: bytes) -> list[str]:
        out = []
        for message in messages_of(data):
            event = json.loads(message)
            if event.get("type") == "response.completed":
                event["response"]["usage"]["input_tokens"] += 1
                message = json.dumps(event)
            out.append(message)
        return out

    monkeypatch.setattr(ws_bridge, "frame_messages", frame_messages)
    assert violations(TOOL) == [
        ("usage", "usage not summed over the iterations: input_tokens 25 (sum 24)")
    ]
