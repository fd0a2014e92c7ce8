"""Re-record ``claude-code-session.jsonl``: the real Claude Code through ``aibridge record``
with an injected tool, against a scripted upstream on loopback (no key, no internet).

    .venv/bin/python tests/sessions/record_claude_code.py [OUT]

Claude Code (``.clients/node_modules/.bin/claude``) asks for the weather in Paris in print
mode. Besides its main request it sends side requests (a title, a quota check) at once;
the upstream answers the main one a little slowly, so they overlap as on a real network.
The injected tool turns the main request into an agentic turn: a tool call, then the
answer. Every proxy variable points at a closed port, so nothing reaches the internet;
the two pool keys are fake and the recorder masks them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from aibridge_cli.fakes import anthropic_replies as replies  # noqa: E402
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest  # noqa: E402
from aibridge_cli.proxy.server import Server  # noqa: E402
from tests.test_real_clients import TOOLS_TOML  # noqa: E402  (bmcp_weather, "sunny, 21 C")

OUT = REPO / "tests" / "sessions" / "claude-code-session.jsonl"
CLAUDE = REPO / ".clients" / "node_modules" / ".bin" / "claude"
PROMPT = "What is the weather in Paris?"
POOL_KEYS = ("sk-ant-session-pool-key-0-0000000000", "sk-ant-session-pool-key-1-1111111111")
CLIENT_KEY = "sk-ant-session-client-key-0123456789"
SUBAGENT = "Find the weather in"
SLOW = 0.3  # seconds between a subagent's report events: the two subagents overlap
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
}
CLOSED = "http://127.0.0.1:9"  # discard port: a client trying the internet fails at once


def _texts(body: dict[str, Any]) -> str:
    """Every user text and tool result of the conversation, joined."""
    parts = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for block in blocks:
            if isinstance(block, dict):
                parts.append(json.dumps(block.get("text") or block.get("content") or ""))
    return "\n".join(parts)


def _results(body: dict[str, Any]) -> int:
    """How many tool results the conversation holds."""
    return sum(
        isinstance(block, dict) and block.get("type") == "tool_result"
        for msg in body.get("messages", [])
        if isinstance(msg.get("content"), list)
        for block in msg["content"]
    )


def _agents() -> list[list[tuple[str, Any]]]:
    """Two subagents at once: Claude Code runs both, each its own request."""
    return [
        replies.tool_block(
            i,
            "Agent",
            {
                "description": f"Weather in {city}",
                "prompt": f"{SUBAGENT} {city}: call bmcp_weather and report it.",
                "subagent_type": "general-purpose",
                "run_in_background": False,
            },
            f"toolu_agent_{i}",
        )
        for i, city in enumerate(("Paris", "Lyon"))
    ]


def _text(index: int, model: str, text: str) -> Reply:
    words = text.split(" ")
    parts = [word + " " for word in words[:-1]] + words[-1:]
    start = replies.message_start(f"msg_{index}", model=model)
    return replies.stream(start, replies.text_block(0, *parts), replies.message_end("end_turn", 4))


def play(seen: SeenRequest, index: int) -> Reply:
    """The main conversation: the injected tool (the proxy runs it), then two subagents,
    then the answer. Each subagent: the injected tool, then its report, slowly, so the two
    overlap. Anything else Claude Code asks (a title, a check): a short answer."""
    if not seen.path.startswith("/v1/messages"):
        return Reply.json({"type": "error", "error": {"type": "not_found_error"}}, 404)
    body = seen.json()
    model = body.get("model", "claude-test")
    texts, results = _texts(body), _results(body)
    if not body.get("stream"):
        return replies.message(
            [{"type": "text", "text": "Paris weather"}], "end_turn", 3, model=model
        )
    start = replies.message_start(f"msg_{index}", model=model)
    weather = replies.tool_block(0, "bmcp_weather", {"city": "Paris"}, f"toolu_w_{index}")
    if SUBAGENT in texts and PROMPT not in texts:
        if not results:
            return replies.stream(start, weather, replies.message_end("tool_use", 9))
        reply = _text(index, model, "Sunny, 21 C.")
        return Reply(reply.status, reply.headers, reply.chunks, [SLOW] * len(reply.chunks))
    if PROMPT in texts:
        if results == 0:
            return replies.stream(start, weather, replies.message_end("tool_use", 9))
        if results == 1:
            return replies.stream(start, *_agents(), replies.message_end("tool_use", 12))
        return _text(index, model, "It is sunny in Paris and in Lyon, 21 C.")
    return _text(index, model, "Paris weather")


async def record(out: Path) -> None:
    upstream = ScriptedUpstream(script=play)
    async with trio.open_nursery() as nursery:
        server = Server(upstream)
        host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
            tools = Path(tmp) / "tools.toml"
            tools.write_text(TOOLS_TOML)
            proxies = {n: CLOSED for n in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")}
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM")}
            env |= proxies | {k.lower(): v for k, v in proxies.items()} | QUIET
            env |= {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
            env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
            env |= {"ANTHROPIC_API_KEY": CLIENT_KEY, "PYTHONPATH": str(REPO)}
            keys = [arg for key in POOL_KEYS for arg in ("--anthropic-key", key)]
            argv = [
                sys.executable, "-m", "aibridge_cli", "record", "-o", str(out),
                "--tools", str(tools), "--anthropic-base-url", f"http://{host}:{port}", *keys,
                "--", str(CLAUDE), "-p", PROMPT,
            ]  # fmt: skip
            with trio.fail_after(180):
                done = await trio.run_process(
                    argv, env=env, cwd=tmp, stdin=b"", capture_stdout=True,
                    capture_stderr=True, check=False,
                )  # fmt: skip
        nursery.cancel_scope.cancel()
    if done.returncode != 0:
        sys.exit(f"recording failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    print(done.stdout.decode().strip())
    print(f"{len(upstream.seen)} upstream requests; wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    trio.run(record, Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
