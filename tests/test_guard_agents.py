"""Claude Code and Codex CLI, unchanged, through a guarded proxy on 127.0.0.1.

Each agent gets the proxy's token as its ordinary API key (Claude Code as ``x-api-key``,
Codex as a bearer token), a throwaway HOME, and a scripted upstream behind the proxy. The
agents are found in ``<repo>/.clients/node_modules/.bin`` (where CI installs pinned
versions), then on PATH; a test skips where its agent is absent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from aibridge_cli.config import GuardConfig, ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, Script, ScriptedUpstream, SeenRequest
from aibridge_cli.proxy.routes import BridgeApp
from aibridge_cli.proxy.run import build_app, proxy_guard

from .anthropic_script import message, message_end, message_start, stream, text_block
from .conftest import WATCH, start_server
from .openai_scripts import message_item, responses_stream

REPO = Path(__file__).resolve().parent.parent
TOKEN = "aibridge-agents-token-0123456789-WXYZ"
ANTHROPIC_POOL_KEY = "sk-ant-agents-pool-key-0123456789-ABCD"
OPENAI_POOL_KEY = "sk-openai-agents-pool-key-0123456789-EFGH"
ANSWER = "PONG-FROM-THE-SCRIPTED-UPSTREAM"
AGENT_TIMEOUT = 120.0  # seconds: a cold node start and the agent's own set-up


def agent(name: str) -> str:
    """The agent's executable, or a skip saying where it was looked for."""
    local = REPO / ".clients" / "node_modules" / ".bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (looked in {local.parent} and on PATH)")
    return found


@dataclass
class GuardedProxy:
    url: str
    upstream: ScriptedUpstream


StartProxy = Callable[[Script], Awaitable[GuardedProxy]]


@pytest.fixture
async def guarded_proxy(nursery: trio.Nursery) -> AsyncIterator[StartProxy]:
    """Start a scripted upstream and, in front of it, the proxy guarded as ``serve`` is
    with ``--auth-token``."""
    WATCH.note([TOKEN])
    opened: list[BridgeApp] = []

    async def start(script: Script) -> GuardedProxy:
        upstream = ScriptedUpstream(script=script)
        _, upstream_url = await start_server(nursery, upstream)
        options = ServeOptions(
            anthropic_base_url=upstream_url,
            openai_base_url=upstream_url + "/v1",
            anthropic_keys=[ANTHROPIC_POOL_KEY],
            openai_keys=[OPENAI_POOL_KEY],
            guard=GuardConfig(auth_token=TOKEN),
        )
        app = build_app(options)
        opened.append(app)
        _, url = await start_server(nursery, app, proxy_guard(options))
        return GuardedProxy(url, upstream)

    yield start
    for app in opened:
        await app.env.client.aclose()


async def run_agent(argv: list[str], env: dict[str, str], home: Path) -> tuple[int, str, str]:
    with trio.fail_after(AGENT_TIMEOUT):
        done = await trio.run_process(
            argv,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), **env},
            cwd=home,
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return (
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )


def assert_the_pool_key_went_up_and_the_token_did_not(
    seen: list[SeenRequest], credential: str, key: str
) -> None:
    assert seen, "the agent's requests never reached the upstream"
    for request in seen:
        assert request.header(credential) in (key, f"Bearer {key}"), request.path
        assert TOKEN not in repr(request)


def anthropic_script(seen: SeenRequest, index: int) -> Reply:
    if seen.path.startswith("/v1/messages/count_tokens"):
        return Reply.json({"input_tokens": 5})
    if seen.body and seen.json().get("stream"):
        return stream(message_start(), text_block(0, ANSWER), message_end("end_turn", 3))
    return message([{"type": "text", "text": ANSWER}], "end_turn", 3)


async def test_claude_code_works_through_the_guard_with_the_token_as_its_key(
    guarded_proxy: StartProxy, tmp_path: Path
) -> None:
    claude = agent("claude")
    proxy = await guarded_proxy(anthropic_script)
    code, out, err = await run_agent(
        [claude, "-p", "say pong", "--model", "claude-sonnet-4-5"],
        {
            "ANTHROPIC_BASE_URL": proxy.url + "/anthropic",
            "ANTHROPIC_API_KEY": TOKEN,
            # Nothing but the proxy: no telemetry, update checks or other hosts.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        },
        tmp_path,
    )
    assert code == 0, err
    assert ANSWER in out
    assert_the_pool_key_went_up_and_the_token_did_not(
        proxy.upstream.seen, "x-api-key", ANTHROPIC_POOL_KEY
    )


async def test_codex_works_through_the_guard_with_the_token_as_its_key(
    guarded_proxy: StartProxy, tmp_path: Path
) -> None:
    codex = agent("codex")
    proxy = await guarded_proxy(
        lambda seen, index: responses_stream("resp_1", [message_item("msg_1", ANSWER)])
    )
    provider = (
        f'{{name="aibridge", base_url="{proxy.url}/openai/v1", '
        'env_key="AIBRIDGE_TOKEN", wire_api="responses"}'
    )
    code, out, err = await run_agent(
        [
            codex,
            "exec",
            "--skip-git-repo-check",
            "-c",
            "model_provider=aibridge",
            "-c",
            f"model_providers.aibridge={provider}",
            "-m",
            "gpt-test",
            "say pong",
        ],
        {"CODEX_HOME": str(tmp_path), "AIBRIDGE_TOKEN": TOKEN},
        tmp_path,
    )
    assert code == 0, err
    assert ANSWER in out
    assert_the_pool_key_went_up_and_the_token_did_not(
        proxy.upstream.seen, "authorization", OPENAI_POOL_KEY
    )
