"""Codex CLI through ``aibridge serve`` when a tool turn shows something first: the model
says a sentence, then calls an injected tool, and the upstream echoes every tool it was
sent, as OpenAI's does. Since #27 the sentence streams as it comes and the client keeps
that first response's id to the end; Codex (a strict Rust client) must take the stream,
and never see the injected tool. Skipped without Codex CLI and node, like the other
real-client tests whose helpers it uses.
"""

from __future__ import annotations

from pathlib import Path

import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest

from .openai_scripts import function_item, message_item, responses_stream
from .test_real_clients import (
    CODEX,
    QUIET_CODEX,
    Sentinel,
    aibridge_serve,
    base_env,
    claude_home,
    codex_home,
    needs_codex,
    run_client,
    sentinel,  # noqa: F401 (a fixture)
    tools_file,  # noqa: F401 (a fixture)
)


def preamble_then_tool() -> ScriptedUpstream:
    def play(seen: SeenRequest, index: int) -> Reply:
        body = seen.json()
        items = body.get("input") if isinstance(body.get("input"), list) else []
        tools = body.get("tools") or []
        if not any(i.get("type") == "function_call_output" for i in items):
            turn = [message_item("msg_0", "Let me check."), function_item("bmcp_weather")]
            return responses_stream(f"resp_{index}", turn, tools)
        return responses_stream(f"resp_{index}", [message_item("msg_1", "Sunny in Paris.")], tools)

    return ScriptedUpstream(script=play)


@needs_codex
async def test_codex_takes_a_tool_turn_streamed_after_a_preamble(
    nursery: trio.Nursery,
    sentinel: Sentinel,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    tools_file: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    assert CODEX is not None
    upstream = preamble_then_tool()
    async with aibridge_serve(nursery, upstream, "--openai-base-url", "/v1", tools_file) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path) | codex_home(tmp_path, proxy)
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "What is the weather?"]
        done = await run_client(argv, env, tmp_path)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output[-2000:]
    assert "Sunny in Paris." in done.stdout.decode()
    assert "bmcp_weather" not in output
    requests = [s for s in upstream.seen if s.path == "/v1/responses"]
    assert len(requests) == 2  # the tool turn, then the answer: the proxy ran the call
    echoed = [t.get("name") for t in requests[0].json()["tools"]]
    assert "bmcp_weather" in echoed  # so the upstream's echo did name it
