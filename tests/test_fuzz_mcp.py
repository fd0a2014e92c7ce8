"""MCP tools in the simulation: served from the fixture's records, with the server's latency,
failure and death mid-call as plan faults; a planted bug that drops an MCP result from the
next upstream turn is found by the ``tool-results`` oracle."""

from __future__ import annotations

import pytest

from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.providers.base import ToolCall
from aibridge_cli.proxy.bridge import Interceptor
from aibridge_cli.tools import ToolOutcome

MCP_FAULTS = [kind for kind in FaultKind if kind.mcp]
MCP_SCENARIOS = [
    f"{api}/mcp-tool"
    for api in ("anthropic", "openai-chat", "openai-responses", "openai-responses-ws")
]


def judged(name: str, plan: Plan) -> tuple[set[str], float]:
    violations, world = Judge("eager").evaluate(builtin(name)[0], plan)
    return {v.oracle for v in violations}, world.end_time


def campaign_oracles(names: list[str], iterations: int, seed: int = 1) -> set[str]:
    settings = Settings(tuple(s for n in names for s in builtin(n)), seed, iterations)
    return {o.oracle for o in run_campaign(settings).failures if o.oracle}


def test_an_mcp_scenario_serves_its_tool_from_the_records() -> None:
    (scenario,) = builtin("anthropic/mcp-tool")
    (tool,) = scenario.tools
    assert tool.name == "bmcp_weather_forecast"
    assert tool.mcp is not None
    assert (tool.mcp.server, tool.mcp.tool) == ("weather", "forecast")
    assert tool.result == "sunny, 21 C in Paris"  # the recorded answer


@pytest.mark.parametrize("name", MCP_SCENARIOS)
@pytest.mark.parametrize("kind", MCP_FAULTS)
def test_every_mcp_fault_leaves_every_oracle_clean(name: str, kind: FaultKind) -> None:
    oracles, end = judged(name, Plan(faults=(Fault(kind, 0, 0),)))
    assert oracles == set()  # tool-results among them: the error reached the next turn
    if kind is FaultKind.MCP_SLOW:
        assert end >= 30.0  # the call ran into the tool's 30 s timeout, in virtual time


def test_the_unplanted_proxy_passes_an_mcp_campaign() -> None:
    assert campaign_oracles(MCP_SCENARIOS, 60) == set()


@pytest.mark.parametrize("name", MCP_SCENARIOS)
def test_a_dropped_mcp_result_is_found(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Interceptor._run_tools

    async def run_tools(self: Interceptor, calls: list[ToolCall]) -> list[ToolOutcome]:
        outcomes = await original(self, calls)
        # The plant: an MCP tool's result does not make it into the next upstream turn.
        return [
            ToolOutcome("") if (tool := self.tools.get(c.name)) and tool.mcp else o
            for c, o in zip(calls, outcomes, strict=True)
        ]

    monkeypatch.setattr(Interceptor, "_run_tools", run_tools)
    assert judged(name, Plan())[0] == {"tool-results"}
    assert "tool-results" in campaign_oracles([name], 5)
