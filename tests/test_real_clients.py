"""Real clients through ``aibridge serve``: Claude Code (print mode) and Codex CLI (a custom
provider on the Responses wire API), against a scripted upstream on loopback.

The clients come from ``<repo>/.clients/node_modules/.bin`` (``.ci/run`` installs pinned
versions there) or PATH; each test skips with the reason when its client is missing.
Neither may reach the internet: telemetry, error reporting and update checks are turned
off, and every proxy variable points at a sentinel listener that fails the test if
anything connects to it (loopback is exempt through ``NO_PROXY``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from aibridge_cli.config import GuardConfig
from aibridge_cli.fakes.anthropic_replies import (
    message,
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.sessions.recording import load_fixture

from .cli_process import CLI, start_cli, stop_cli
from .conftest import WATCH, StackFactory, start_server
from .openai_scripts import function_item, message_item, responses_stream

REPO = Path(__file__).resolve().parents[1]
CLIENT_KEY = "sk-ant-real-client-key-0000"  # fake: the upstream is scripted
TOOLS_TOML = """
[[tool]]
name = "bmcp_weather"
description = "Current weather for a city"
input_schema = { type = "object", properties = { city = { type = "string" } } }
result = "sunny, 21 C"
"""
# What keeps each client off the network (checked by the sentinel below).
QUIET_CLAUDE = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
}
QUIET_CODEX = [
    "-c",
    "check_for_update_on_startup=false",
    "-c",
    "analytics.enabled=false",
    "-c",
    "feedback.enabled=false",
    "--disable",
    "plugins",
    "--disable",
    "apps",
]
# ``serve --auth-token`` with a key pool: each client sends the token as its own key.
GUARD_TOKEN = "aibridge-real-clients-token-0123456789-WXYZ"
POOL_KEY = "sk-real-clients-pool-key-0123456789-ABCD"
RUN_LIMIT = 120  # seconds for one client run (a cold start of either takes a few)


def find_client(name: str) -> str | None:
    local = REPO / ".clients" / "node_modules" / ".bin" / name
    return str(local) if local.exists() else shutil.which(name)


CLAUDE = find_client("claude")
CODEX = find_client("codex")
needs_claude = pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code not installed (.ci/run installs it with npm)"
)
needs_codex = pytest.mark.skipif(
    CODEX is None or shutil.which("node") is None,
    reason="Codex CLI or node not installed (.ci/run installs it with npm)",
)


@dataclass
class Sentinel:
    """A listener every proxy variable points at: a client trying the internet lands here."""

    url: str = ""
    attempts: list[bytes] = field(default_factory=list)

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        task_status.started()
        await trio.serve_listeners(self._answer, listeners)

    async def _answer(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(5):
                self.attempts.append(bytes(await stream.receive_some(200)).split(b"\r\n")[0])

    def env(self) -> dict[str, str]:
        proxies = {name: self.url for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")}
        proxies |= {name.lower(): value for name, value in proxies.items()}
        return {**proxies, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture
async def sentinel(nursery: trio.Nursery) -> AsyncIterator[Sentinel]:
    watch = Sentinel()
    await nursery.start(watch.serve)
    yield watch
    assert watch.attempts == [], f"a client tried to reach the internet: {watch.attempts}"


def claude_home(tmp_path: Path) -> dict[str, str]:
    """A fresh HOME whose ``~/.claude.json`` marks onboarding done: the interactive first
    run would otherwise call the vendor directly."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def base_env(sentinel: Sentinel) -> dict[str, str]:
    keep = ("PATH", "LANG", "TERM", "SYSTEMROOT", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | sentinel.env()


async def run_client(
    argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(
            argv,
            env=env,
            cwd=str(cwd),
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return done


# -- scripted upstreams --------------------------------------------------------------------
def _anthropic_has_tool_result(body: Any) -> bool:
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return True
    return False


def anthropic_script(tool_turn: bool) -> ScriptedUpstream:
    """Answers every Messages request: a call to the injected tool first when asked to,
    then (or at once) a plain answer."""

    def play(seen: SeenRequest, index: int) -> Reply:
        if seen.path != "/v1/messages":
            return Reply.json({"type": "error", "error": {"type": "not_found_error"}}, 404)
        body = seen.json()
        calling = tool_turn and not _anthropic_has_tool_result(body)
        model = body.get("model", "claude-test")
        if not body.get("stream"):
            if calling:
                use = {"type": "tool_use", "id": "toolu_1", "name": "bmcp_weather"}
                return message([{**use, "input": {"city": "Paris"}}], "tool_use", 9, model=model)
            return message(
                [{"type": "text", "text": "Sunny in Paris."}], "end_turn", 4, model=model
            )
        if calling:
            return stream(
                message_start("msg_1", model=model),
                tool_block(0, "bmcp_weather", {"city": "Paris"}),
                message_end("tool_use", 9),
            )
        return stream(
            message_start("msg_2", model=model),
            text_block(0, "Sunny", " in Paris."),
            message_end("end_turn", 4),
        )

    return ScriptedUpstream(script=play)


def responses_script(tool_turn: bool) -> ScriptedUpstream:
    def play(seen: SeenRequest, index: int) -> Reply:
        body = seen.json()
        items = body.get("input") if isinstance(body.get("input"), list) else []
        answered = any(i.get("type") == "function_call_output" for i in items)
        if tool_turn and not answered:
            return responses_stream(f"resp_{index}", [function_item("bmcp_weather")])
        return responses_stream(f"resp_{index}", [message_item("msg_1", "Sunny in Paris.")])

    return ScriptedUpstream(script=play)


@asynccontextmanager
async def aibridge_serve(
    nursery: trio.Nursery,
    upstream: ScriptedUpstream,
    url_option: str,
    suffix: str,
    tools: Path,
    *options: str,
) -> AsyncIterator[str]:
    """``aibridge serve`` (a subprocess) in front of ``upstream``, with more ``options``;
    yields the proxy's URL."""
    _, upstream_url = await start_server(nursery, upstream)
    proc, proxy = await start_cli(
        "serve", "--port", "0", url_option, upstream_url + suffix, "--tools", str(tools), *options
    )
    try:
        yield proxy
    finally:
        await stop_cli(proc)


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "tools.toml"
    path.write_text(TOOLS_TOML)
    return path


# -- Claude Code ---------------------------------------------------------------------------
async def claude_through_serve(
    nursery: trio.Nursery,
    sentinel: Sentinel,
    tmp_path: Path,
    upstream: ScriptedUpstream,
    tools: Path,
) -> subprocess.CompletedProcess[bytes]:
    """Claude Code, asked for the weather in Paris, through ``aibridge serve`` with
    ``tools`` in front of ``upstream``; asserts it exited cleanly."""
    assert CLAUDE is not None
    async with aibridge_serve(nursery, upstream, "--anthropic-base-url", "", tools) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path) | QUIET_CLAUDE
        env |= {"ANTHROPIC_BASE_URL": proxy + "/anthropic", "ANTHROPIC_API_KEY": CLIENT_KEY}
        done = await run_client([CLAUDE, "-p", "What is the weather in Paris?"], env, tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done


@needs_claude
@pytest.mark.parametrize("tool_turn", [False, True], ids=["plain", "injected-tool"])
async def test_claude_code_through_aibridge_serve(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path, tool_turn: bool
) -> None:
    upstream = anthropic_script(tool_turn)
    done = await claude_through_serve(nursery, sentinel, tmp_path, upstream, tools_file)
    assert "Sunny in Paris." in done.stdout.decode()
    messages = [s for s in upstream.seen if s.path == "/v1/messages"]
    assert all(s.target == "/v1/messages?beta=true" for s in messages)  # the query is kept
    assert messages[0].header("x-api-key") == CLIENT_KEY
    offered = [t.get("name") for t in messages[0].json().get("tools", [])]
    assert "bmcp_weather" in offered
    if tool_turn:
        assert len(messages) == 2
        assert _anthropic_has_tool_result(messages[1].json())
        assert "sunny, 21 C" in messages[1].body.decode()
    else:
        assert len(messages) == 1


@needs_claude
async def test_claude_code_recorded_then_replayed_matches(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    """``aibridge record -- claude -p`` then ``aibridge replay``: a match, ``?beta=true`` kept."""
    assert CLAUDE is not None
    upstream = anthropic_script(tool_turn=False)
    _, upstream_url = await start_server(nursery, upstream)
    fixture = tmp_path / "s.jsonl"
    env = base_env(sentinel) | claude_home(tmp_path) | QUIET_CLAUDE
    env |= {"ANTHROPIC_API_KEY": CLIENT_KEY, "PYTHONPATH": str(REPO)}
    argv = [*CLI, "record", "-o", str(fixture), "--anthropic-base-url", upstream_url]
    recorded = await run_client([*argv, "--", CLAUDE, "-p", "Say hello."], env, tmp_path)
    assert recorded.returncode == 0, recorded.stderr.decode()[-2000:]
    loaded = load_fixture(fixture)
    targets = [(r.request.path, r.upstream[0].path) for r in loaded.interceptions]
    assert ("/anthropic/v1/messages?beta=true", "/v1/messages?beta=true") in targets
    assert CLIENT_KEY not in fixture.read_text()
    replayed = await run_client([*CLI, "replay", str(fixture)], env, tmp_path)
    assert replayed.returncode == 0, replayed.stdout.decode()[-3000:]
    assert "1/1 fixtures match" in replayed.stdout.decode()


@asynccontextmanager
async def guarded_serve(
    nursery: trio.Nursery, upstream: ScriptedUpstream, provider: str, tools: Path
) -> AsyncIterator[str]:
    """``aibridge serve --auth-token GUARD_TOKEN`` with POOL_KEY as ``provider``'s pool."""
    WATCH.note([GUARD_TOKEN])
    url_option, suffix = f"--{provider}-base-url", "/v1" if provider == "openai" else ""
    guard = ("--auth-token", GUARD_TOKEN, f"--{provider}-key", POOL_KEY)
    async with aibridge_serve(nursery, upstream, url_option, suffix, tools, *guard) as proxy:
        yield proxy


def assert_pool_key_went_up_and_token_did_not(
    seen: list[SeenRequest], credential: str, key: str
) -> None:
    assert seen, "no request reached the upstream"
    for request in seen:
        assert request.header(credential) in (key, f"Bearer {key}"), request.path
        assert GUARD_TOKEN not in repr(request)


@needs_claude
async def test_claude_code_sends_the_token_as_its_key_through_a_guarded_serve(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """``serve --auth-token T --anthropic-key K``: ANTHROPIC_API_KEY=T passes the guard as
    ``x-api-key``; K goes upstream, T goes no further."""
    assert CLAUDE is not None
    upstream = anthropic_script(tool_turn=False)
    async with guarded_serve(nursery, upstream, "anthropic", tools_file) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path) | QUIET_CLAUDE
        env |= {"ANTHROPIC_BASE_URL": proxy + "/anthropic", "ANTHROPIC_API_KEY": GUARD_TOKEN}
        done = await run_client([CLAUDE, "-p", "What is the weather in Paris?"], env, tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "Sunny in Paris." in done.stdout.decode()
    assert_pool_key_went_up_and_token_did_not(upstream.seen, "x-api-key", POOL_KEY)


@needs_claude
async def test_claude_code_gives_up_at_once_on_a_wrong_token(
    stack: StackFactory, sentinel: Sentinel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The guard's 401 carries ``x-should-retry: false``: Claude Code reports the bad key
    after its one request (without the header it retried the 401 ten times, with backoff)."""
    assert CLAUDE is not None
    caplog.set_level(logging.WARNING, logger="aibridge")
    WATCH.note([GUARD_TOKEN])
    s = await stack([], keys=[POOL_KEY], guard=GuardConfig(auth_token=GUARD_TOKEN))
    env = base_env(sentinel) | claude_home(tmp_path) | QUIET_CLAUDE
    env |= {"ANTHROPIC_BASE_URL": s.proxy_url + "/anthropic", "ANTHROPIC_API_KEY": "sk-wrong-0000"}
    done = await run_client([CLAUDE, "-p", "Say hello."], env, tmp_path)
    assert done.returncode != 0
    assert "Invalid API key" in (done.stdout + done.stderr).decode()
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refused) == 1, refused
    assert s.upstream.seen == []


# -- Codex CLI -----------------------------------------------------------------------------
def codex_home(tmp_path: Path, proxy: str, retries: int = 0) -> dict[str, str]:
    """Codex with a custom provider on the Responses API; ``retries`` of each kind."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-test"\n'
        'model_provider = "aibridge"\n'
        "[model_providers.aibridge]\n"
        'name = "aibridge"\n'
        f'base_url = "{proxy}/openai/v1"\n'
        'env_key = "AIBRIDGE_TEST_OPENAI_KEY"\n'
        'wire_api = "responses"\n'
        f"request_max_retries = {retries}\n"
        f"stream_max_retries = {retries}\n"
    )
    return {"CODEX_HOME": str(home), "AIBRIDGE_TEST_OPENAI_KEY": "sk-codex-client-key-0000"}


@needs_codex
@pytest.mark.parametrize("tool_turn", [False, True], ids=["plain", "injected-tool"])
async def test_codex_cli_through_aibridge_serve(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path, tool_turn: bool
) -> None:
    assert CODEX is not None
    upstream = responses_script(tool_turn)
    async with aibridge_serve(nursery, upstream, "--openai-base-url", "/v1", tools_file) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path) | codex_home(tmp_path, proxy)
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "What is the weather?"]
        done = await run_client(argv, env, tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "Sunny in Paris." in done.stdout.decode()
    requests = [s for s in upstream.seen if s.path == "/v1/responses"]
    assert requests[0].header("authorization") == "Bearer sk-codex-client-key-0000"
    offered = [t.get("name") for t in requests[0].json().get("tools", [])]
    assert "bmcp_weather" in offered
    if tool_turn:
        assert len(requests) == 2
        outputs = [
            i for i in requests[1].json()["input"] if i.get("type") == "function_call_output"
        ]
        assert [o["output"] for o in outputs] == ["sunny, 21 C"]
    else:
        assert len(requests) == 1


@needs_codex
async def test_codex_cli_sends_the_token_as_its_key_through_a_guarded_serve(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """``serve --auth-token T --openai-key K``: Codex's ``env_key`` holding T passes the
    guard as a bearer token; K goes upstream, T goes no further."""
    assert CODEX is not None
    upstream = responses_script(tool_turn=False)
    async with guarded_serve(nursery, upstream, "openai", tools_file) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path) | codex_home(tmp_path, proxy)
        env["AIBRIDGE_TEST_OPENAI_KEY"] = GUARD_TOKEN
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "What is the weather?"]
        done = await run_client(argv, env, tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "Sunny in Paris." in done.stdout.decode()
    assert_pool_key_went_up_and_token_did_not(upstream.seen, "authorization", POOL_KEY)
