"""Codex CLI with its built-in OpenAI provider, pointed at ``aibridge serve``: it speaks
the Responses API's WebSocket mode first, and must get it (no 405, no fall back to HTTP).

The upstream is the scripted one on loopback, in WebSocket mode; ``aibridge serve`` runs
as a subprocess, as a user runs it. Skipped where Codex CLI is not installed
(``.clients/node_modules/.bin/codex``, as ``.ci/run`` installs it, or on PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest

from .cli_process import start_cli, stop_cli
from .conftest import start_server
from .openai_scripts import message_item, responses_stream

ROOT = Path(__file__).resolve().parent.parent


def find_codex() -> str | None:
    local = ROOT / ".clients" / "node_modules" / ".bin" / "codex"
    return str(local) if local.exists() else shutil.which("codex")


CODEX = find_codex()
pytestmark = pytest.mark.skipif(CODEX is None, reason="Codex CLI is not installed")


def codex_env(tmp_path: Path) -> dict[str, str]:
    """Codex's environment: a fresh HOME, a client key, and no OPENAI_BASE_URL of ours."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "OPENAI_API_KEY": "sk-codex-client-5678"}
    env.pop("OPENAI_BASE_URL", None)
    return env


def answer(seen: SeenRequest, index: int) -> Reply:
    return responses_stream(f"resp_{index}", [message_item(f"msg_{index}", "Hi from aibridge.")])


async def test_codex_speaks_websocket_through_the_proxy(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    assert CODEX is not None
    upstream = ScriptedUpstream(script=answer)
    upstream_server, upstream_url = await start_server(nursery, upstream)
    proc, proxy_url = await start_cli(
        "serve",
        "--port",
        "0",
        "--openai-base-url",
        upstream_url + "/v1",
        "--openai-key",
        "sk-pool-key-1234abcd",
        "--log-level",
        "info",
    )
    env = codex_env(tmp_path)
    try:
        started = trio.current_time()
        with trio.fail_after(60):
            done = await trio.run_process(
                [
                    CODEX,
                    "exec",
                    "--skip-git-repo-check",
                    "-c",
                    f'openai_base_url="{proxy_url}/openai/v1"',
                    "say hi",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=str(tmp_path),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        elapsed = trio.current_time() - started
    finally:
        await stop_cli(proc)
        upstream_server.shutdown()
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "Hi from aibridge." in output
    assert "Falling back from WebSockets" not in output, output
    assert "failed to connect to Responses WebSocket" not in output, output
    # every request reached the upstream as a response.create over a socket, none over HTTP
    assert upstream.seen, output
    assert {r.method for r in upstream.seen} == {"WEBSOCKET"}
    assert all(r.json()["type"] == "response.create" for r in upstream.seen)
    assert all(r.header("authorization") == "Bearer sk-pool-key-1234abcd" for r in upstream.seen)
    print(f"codex exec answered in {elapsed:.2f} s")  # the figure bench/README.md quotes
