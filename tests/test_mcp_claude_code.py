"""Claude Code (print mode) through ``aibridge serve`` with a tool injected from an MCP server:
the scripted upstream calls it, the stdio weather server answers, Claude Code prints the
answer built on it. The client set-up (no network but loopback, a fresh home) is
``test_real_clients``'s; skips where Claude Code is absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from aibridge_cli.fakes.anthropic_replies import (
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest

from .mcp_util import calls, stdio_entry, write_tools
from .test_real_clients import Sentinel, claude_through_serve, needs_claude, sentinel

__all__ = ["sentinel"]


def _tool_result(body: Any) -> str | None:
    """The text of the tool result in a Messages request, if it has one."""
    for message in body.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return str(block.get("content"))
    return None


def _play(seen: SeenRequest, index: int) -> Reply:
    """Every Messages request: call the MCP tool when offered, then answer with its result."""
    if seen.path != "/v1/messages":
        return Reply.json({"type": "error", "error": {"type": "not_found_error"}}, 404)
    body = seen.json()
    model = body.get("model", "claude-test")
    offered = {t.get("name") for t in body.get("tools", [])}
    result = _tool_result(body)
    if "bmcp_wx_forecast" in offered and result is None:
        return stream(
            message_start(f"msg_{index}", model=model),
            tool_block(0, "bmcp_wx_forecast", {"city": "Paris"}),
            message_end("tool_use", 9),
        )
    return stream(
        message_start(f"msg_{index}", model=model),
        text_block(0, f"The MCP server says: {result}."),
        message_end("end_turn", 6),
    )


@needs_claude
async def test_claude_code_answers_with_an_mcp_injected_tool(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    upstream = ScriptedUpstream(script=_play)
    done = await claude_through_serve(nursery, sentinel, tmp_path, upstream, tools)
    assert "The MCP server says: sunny, 21 C in Paris." in done.stdout.decode()
    assert calls(log) == [{"tool": "forecast", "input": {"city": "Paris"}}]
