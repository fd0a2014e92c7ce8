"""Claude Code (print mode) through ``aibridge serve`` with a tool injected from an MCP server:
the scripted upstream calls it, the stdio weather server answers, Claude Code prints the
answer built on it. Skips where Claude Code or node is absent."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from aibridge_cli.fakes.anthropic_replies import (
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest

from .cli_process import start_cli, stop_cli
from .conftest import start_server
from .mcp_util import calls, stdio_entry, write_tools

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / ".clients" / "node_modules" / ".bin" / "claude"
CLAUDE = str(LOCAL) if LOCAL.exists() else shutil.which("claude")
pytestmark = pytest.mark.skipif(
    CLAUDE is None or shutil.which("node") is None,
    reason="Claude Code or node not installed (.ci/run installs Claude Code with npm)",
)


def _tool_result(body: Any) -> str | None:
    """The text of the MCP tool's result in a Messages request, if it has one."""
    for message in body.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return str(block.get("content"))
    return None


def _play(seen: SeenRequest, index: int) -> Reply:
    """Every Messages request: call the MCP tool when offered, then answer with its result."""
    if not seen.path.startswith("/v1/messages") or "count_tokens" in seen.path:
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


async def test_claude_code_answers_with_an_mcp_injected_tool(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    assert CLAUDE is not None
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    upstream = ScriptedUpstream(script=_play)
    _, upstream_url = await start_server(nursery, upstream)
    home = tmp_path / "home"
    home.mkdir()
    # onboarding done: a first run would otherwise call the vendor
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    proc, proxy = await start_cli(
        "serve", "--port", "0", "--anthropic-base-url", upstream_url, "--tools", str(tools)
    )
    try:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM", "TMPDIR")}
        env |= {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": proxy + "/anthropic",
            "ANTHROPIC_API_KEY": "sk-ant-claude-code-mcp-test-0000",
            # no traffic but the proxy: no telemetry, error reports or update checks
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        with trio.fail_after(120):
            done = await trio.run_process(
                [CLAUDE, "-p", "What is the weather in Paris?"],
                env=env,
                cwd=str(tmp_path),
                stdin=b"",
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        await stop_cli(proc)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "The MCP server says: sunny, 21 C in Paris." in done.stdout.decode()
    assert calls(log) == [{"tool": "forecast", "input": {"city": "Paris"}}]
