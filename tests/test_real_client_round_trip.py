"""The loop the tool exists for, with the real clients: record a session, then serve it a
day later, in a new session, with no upstream and no key.

Each test records one command through ``aibridge record`` against a scripted upstream:
``claude -p`` plain and with an injected tool, and ``codex exec`` with its built-in
provider over its WebSocket transport. Then, with the clock moved a day on (Claude Code
writes today's date into its system prompt; libfaketime moves node's clock), a fresh HOME
and the upstream gone, the same command against ``aibridge mock FILE`` must succeed with
the recorded answer, and ``aibridge replay FILE`` must match.

The clients come from ``.clients`` (``.ci/run`` installs the pinned versions) or PATH, and
the sentinel of ``test_real_clients`` fails a test whose client tries the internet. Each
test skips with its reason where its client, node or libfaketime is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import IO

import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.sessions.recording import load_fixture

from .cli_process import CLI, start_cli, stop_cli
from .conftest import start_server
from .faketime import A_DAY_ON, FAKETIME
from .test_real_clients import (
    CLAUDE,
    CLIENT_KEY,
    CODEX,
    QUIET_CLAUDE,
    QUIET_CODEX,
    REPO,
    TOOLS_TOML,
    Sentinel,
    anthropic_script,
    base_env,
    claude_home,
    needs_claude,
    needs_codex,
    responses_script,
    run_client,
)

pytest_plugins = ("tests.real_client_fixtures",)  # the sentinel fixture

needs_faketime = pytest.mark.skipif(
    FAKETIME is None, reason="libfaketime not installed (apt-get install faketime)"
)
PROMPT = "What is the weather in Paris?"
POOL_KEY = "sk-round-trip-pool-key-0123456789"


async def record(
    nursery: trio.Nursery,
    upstream: ScriptedUpstream,
    project: Path,
    env: dict[str, str],
    options: list[str],
    command: list[str],
) -> Path:
    """``aibridge record`` of ``command`` run in ``project``, in front of ``upstream``;
    the fixture's path."""
    server, upstream_url = await start_server(nursery, upstream)
    fixture = project.parent / "session.jsonl"
    bases = ["--anthropic-base-url", upstream_url, "--openai-base-url", upstream_url + "/v1"]
    argv = [*CLI, "record", "-o", str(fixture), *bases, *options, "--", *command]
    try:
        done = await run_client(argv, env | {"PYTHONPATH": str(REPO)}, project)
    finally:
        server.shutdown()  # from here on, nothing answers but the mock
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[-3000:]
    assert load_fixture(fixture).interceptions
    return fixture


def mock_log(tmp_path: Path) -> IO[bytes]:
    """Where the mock's log lines go, to be read once it has stopped."""
    return (tmp_path / "mock.log").open("wb")


def assert_every_request_matched(tmp_path: Path) -> None:
    """No request of the second day missed the recording: a client that retries or gives
    up after a 400 must not pass for one answered from the file."""
    log = (tmp_path / "mock.log").read_text()
    assert "does not match the fixture" not in log, log[-3000:]


async def replay_matches(fixture: Path, env: dict[str, str], cwd: Path) -> None:
    done = await run_client([*CLI, "replay", str(fixture)], env | {"PYTHONPATH": str(REPO)}, cwd)
    out = done.stdout.decode()
    assert done.returncode == 0, out[-4000:]
    assert "1/1 fixtures match" in out, out[-4000:]


def fresh_dir(tmp_path: Path, name: str) -> Path:
    """An empty directory ``tmp_path/name``, emptied if it was there: the second day's
    session starts from nothing, in the same place (the prompts name HOME's paths)."""
    path = tmp_path / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


@needs_claude
@needs_faketime
@pytest.mark.parametrize("tool_turn", [False, True], ids=["plain", "injected-tool"])
async def test_claude_code_recorded_today_is_mocked_and_replayed_tomorrow(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tool_turn: bool
) -> None:
    assert CLAUDE is not None
    tools = tmp_path / "tools.toml"
    tools.write_text(TOOLS_TOML)
    options = ["--tools", str(tools)] if tool_turn else []
    project = fresh_dir(tmp_path, "project")  # both days: the prompt names the directory
    env = base_env(sentinel) | claude_home(fresh_dir(tmp_path, "user")) | QUIET_CLAUDE
    env["ANTHROPIC_API_KEY"] = CLIENT_KEY
    upstream = anthropic_script(tool_turn)
    fixture = await record(nursery, upstream, project, env, options, [CLAUDE, "-p", PROMPT])
    if tool_turn:
        assert any(r.tool_calls for r in load_fixture(fixture).interceptions)

    with mock_log(tmp_path) as log:
        proc, mock_url = await start_cli("mock", str(fixture), "--timing", "fast", stderr=log)
        try:
            day_two = claude_home(fresh_dir(tmp_path, "user"))
            env = base_env(sentinel) | day_two | QUIET_CLAUDE | A_DAY_ON
            env |= {"ANTHROPIC_BASE_URL": mock_url + "/anthropic", "ANTHROPIC_API_KEY": "sk-none"}
            done = await run_client([CLAUDE, "-p", PROMPT], env, project)
        finally:
            await stop_cli(proc)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[-3000:]
    assert_every_request_matched(tmp_path)
    assert "Sunny in Paris." in done.stdout.decode()
    await replay_matches(fixture, base_env(sentinel), project)


@needs_codex
@needs_faketime
async def test_codex_recorded_today_is_mocked_and_replayed_tomorrow(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    """Codex's built-in provider, WebSocket transport, pointed at the mock by its own
    ``openai_base_url`` setting (record adds it itself)."""
    assert CODEX is not None
    argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, PROMPT]

    def codex_env() -> dict[str, str]:
        home = fresh_dir(tmp_path, "user")
        codex_home = fresh_dir(home, "codex-home")
        return base_env(sentinel) | claude_home(home) | {"CODEX_HOME": str(codex_home)}

    project = fresh_dir(tmp_path, "project")  # both days: the prompt names the directory
    env = codex_env() | {"OPENAI_API_KEY": "sk-codex-client-key-0000"}
    fixture = await record(
        nursery, responses_script(False), project, env, ["--openai-key", POOL_KEY], argv
    )
    assert {r.transport for r in load_fixture(fixture).interceptions} == {"websocket"}

    with mock_log(tmp_path) as log:
        proc, mock_url = await start_cli("mock", str(fixture), "--timing", "fast", stderr=log)
        try:
            env = codex_env() | A_DAY_ON | {"OPENAI_API_KEY": "sk-none"}
            override = ["-c", f'openai_base_url="{mock_url}/openai/v1"']
            done = await run_client([argv[0], *override, *argv[1:]], env, project)
        finally:
            await stop_cli(proc)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output[-3000:]
    assert_every_request_matched(tmp_path)
    assert "Sunny in Paris." in done.stdout.decode()
    assert "Falling back from WebSockets" not in output, output[-3000:]
    await replay_matches(fixture, base_env(sentinel), project)


def test_the_clock_really_moves_for_node() -> None:
    """The control for ``tomorrow``: node's Date under it is a day ahead."""
    node = shutil.which("node")
    if FAKETIME is None or node is None:
        pytest.skip("libfaketime or node not installed")
    script = "console.log(Date.now())"
    plain = subprocess.run([node, "-e", script], capture_output=True, check=True, text=True)
    moved = subprocess.run(
        [node, "-e", script],
        capture_output=True,
        check=True,
        text=True,
        env={**os.environ, **A_DAY_ON},
    )
    ahead = (int(moved.stdout) - int(plain.stdout)) / 1000
    assert 86_000 < ahead < 86_800, ahead
