"""A session with MCP tools is recorded with every MCP call, and replays to a match with no
MCP server running: the fixture answers the calls."""

from __future__ import annotations

import base64
from pathlib import Path

import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.sessions.recording import load_fixture, open_recorder
from aibridge_cli.sessions.replay import replay_fixture

from .mcp_util import calls, mcp_stack, stdio_entry, write_tools
from .test_mcp_e2e import FINAL, ask, tool_turn


async def test_a_recorded_mcp_session_replays_to_a_match_without_the_server(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    path = tmp_path / "session.jsonl"
    replies = [
        tool_turn("bmcp_wx_forecast"),
        tool_turn("bmcp_wx_radar", "Lyon"),
        tool_turn("bmcp_wx_broken", "Nowhere"),
        FINAL,
    ]
    async with trio.open_nursery() as servers:
        writer = open_recorder(path, ServeOptions())
        s = await mcp_stack(servers, replies, tools, recorder=writer)
        await ask(s)
        servers.cancel_scope.cancel()  # the MCP server stops here
    writer.close()  # the record is written by the writer's thread: all of it by now
    assert [c["tool"] for c in calls(log)] == ["forecast", "radar", "broken"]

    fixture = load_fixture(path)
    (record,) = fixture.interceptions
    forecast, radar, broken = record.tool_calls
    assert (forecast.server, forecast.server_tool, forecast.input) == (
        "wx",
        "forecast",
        {"city": "Paris"},
    )
    assert forecast.result == "sunny, 21 C in Paris"
    assert forecast.duration_ms is not None
    assert forecast.duration_ms > 0
    assert radar.images == [
        {"media_type": "image/png", "data": base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()}
    ]
    assert broken.is_error
    assert broken.result == "Error executing tool broken: no station near Nowhere"
    offered = {t["name"]: t for t in record.tools}
    assert offered["bmcp_wx_forecast"]["mcp"] == {"server": "wx", "tool": "forecast"}

    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [("match", [])]
    assert len(calls(log)) == 3  # the replay called no MCP server
