"""``aibridge record -- codex ...`` records Codex CLI, which ignores ``OPENAI_BASE_URL``:
record adds Codex's own ``-c openai_base_url=...`` override to the command line.

The real-client test runs the pinned Codex CLI (``.clients``; skipped where it is absent)
with its built-in provider, in its WebSocket mode, against a scripted upstream.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.sessions.clients import pointed_at
from aibridge_cli.sessions.recording import load_fixture

from .conftest import start_server
from .test_codex_websocket import CODEX, answer, codex_env
from .test_real_clients import QUIET_CODEX, Sentinel, run_client

pytest_plugins = ("tests.real_client_fixtures",)  # the sentinel fixture

URL = "http://127.0.0.1:4321/openai/v1"


@pytest.mark.parametrize("program", ["codex", "/opt/bin/codex", "./node_modules/.bin/codex"])
def test_codex_gets_its_base_url_setting_first_on_its_command_line(program: str) -> None:
    argv = [program, "exec", "-c", 'model="o3"', "say hi"]
    assert pointed_at(argv, URL) == [
        program,
        "-c",
        f'openai_base_url="{URL}"',
        "exec",
        "-c",
        'model="o3"',
        "say hi",
    ]


def test_other_commands_run_as_given() -> None:
    for argv in (["claude", "-p", "hi"], ["python", "codex"], ["codexify"]):
        assert pointed_at(argv, URL) == argv


@pytest.mark.skipif(CODEX is None, reason="Codex CLI is not installed")
async def test_record_runs_codex_through_the_proxy_and_records_its_websocket(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    assert CODEX is not None
    upstream = ScriptedUpstream(script=answer)
    _, upstream_url = await start_server(nursery, upstream)
    env = codex_env(tmp_path) | sentinel.env()
    fixture = tmp_path / "codex.jsonl"
    argv = [
        *(sys.executable, "-m", "aibridge_cli", "record", "-o", str(fixture)),
        *("--openai-base-url", upstream_url + "/v1", "--openai-key", "sk-pool-9876wxyz"),
        *("--", CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "say hi"),
    ]
    done = await run_client(argv, env, tmp_path)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "Hi from aibridge." in output
    assert upstream.seen, output  # it went to the proxy's upstream, not to the vendor
    loaded = load_fixture(fixture)
    assert loaded.interceptions, output
    assert {(r.api, r.transport, r.outcome) for r in loaded.interceptions} == {
        ("openai-responses", "websocket", "ok")
    }
    assert b"Hi from aibridge." in loaded.interceptions[-1].response.body
