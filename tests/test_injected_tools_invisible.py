"""No injected tool's name reaches a client: every built-in scenario of every API, over
HTTP and WebSocket, with an upstream that echoes the tools it was sent.

A real Responses upstream lists the request's tools, injected ones included, in every
response object it sends (``response.created``, ``response.completed``, a blocking
body). The built-in fixtures' upstreams do not, so each Responses scenario is played
here with that echo added; the other APIs' answers name a tool only when calling it.
Each scenario runs once through the real proxy in the simulated world (the fuzzer's
``Judge``), and the test looks for each injected name in the client's status line,
headers and every body byte, and holds the run to every oracle as well.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from aibridge_cli.fuzz.catalog import builtin_scenarios
from aibridge_cli.fuzz.oracles import client_response
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Exchange, Scenario
from aibridge_cli.providers.openai_responses import ResponsesConversation
from aibridge_cli.sse import SSEDecoder, encode_event

SCENARIOS = [s for s in builtin_scenarios() if s.tools]


def _echoed(data: Any, tools: list[Any]) -> Any:
    """A Responses event or body with ``tools`` listed in its response object."""
    if isinstance(data, dict) and data.get("object") == "response":
        return {**data, "tools": tools}
    if isinstance(data, dict) and isinstance(data.get("response"), dict):
        return {**data, "response": _echoed(data["response"], tools)}
    return data


def _with_echo(exchange: Exchange, tools: list[Any], websocket: bool) -> Exchange:
    if exchange.status >= 400:
        return exchange
    if websocket:  # one message per chunk
        chunks = [json.dumps(_echoed(json.loads(c), tools)).encode() for c in exchange.chunks]
    elif exchange.streaming:
        chunks = [
            encode_event(e.event, json.dumps(_echoed(json.loads(e.data), tools)))
            for e in SSEDecoder().feed(exchange.body)
        ]
    else:
        chunks = [json.dumps(_echoed(json.loads(exchange.body), tools)).encode()]
    return replace(exchange, chunks=tuple(chunks))


def echoing(scenario: Scenario) -> Scenario:
    """``scenario`` with its Responses upstream echoing the tools the proxy sends it."""
    if scenario.api != "openai-responses":
        return scenario
    body = json.loads(scenario.body)
    sent = ResponsesConversation(body, scenario.toolset).upstream_body()["tools"]
    websocket = scenario.transport == "websocket"
    exchanges = tuple(_with_echo(e, sent, websocket) for e in scenario.exchanges)
    return replace(scenario, exchanges=exchanges)


def test_every_api_and_transport_is_covered() -> None:
    covered = {(s.api, s.transport) for s in SCENARIOS}
    assert covered == {
        ("anthropic", "http"),
        ("openai-chat", "http"),
        ("openai-responses", "http"),
        ("openai-responses", "websocket"),
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.name}@{s.transport}")
def test_no_injected_tool_name_in_any_byte_the_client_gets(scenario: Scenario) -> None:
    played = echoing(scenario)
    names = [tool.name.encode() for tool in scenario.tools]
    upstream = b"".join(e.body for e in played.exchanges)
    if scenario.api == "openai-responses":
        # the check can fail: the upstream names every injected tool
        assert all(name in upstream for name in names)
    violations, result = Judge("eager").evaluate(played, Plan())
    assert violations == []
    response = client_response(result, Plan())
    seen = b"".join(
        [str(response.status).encode()]
        + [f"{k}: {v}".encode() for k, v in response.headers]
        + [response.body]
    )
    assert response.body
    assert [name for name in names if name in seen] == []
