"""Real clients through ``aibridge serve --record``: each interception carries its client
and session id, ``aibridge show`` groups them by session, and ``/metrics`` (read by
prometheus-client's parser) counts the tokens the client itself reports.

Two runs of each client are two sessions; the clients and the scripted upstreams are
those of ``test_real_clients.py``, kept off the network the same way.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from aibridge_cli.sessions.recording import load_fixture

from .cli_process import CLI
from .conftest import WATCH
from .test_real_clients import (
    CLAUDE,
    CODEX,
    QUIET_CLAUDE,
    QUIET_CODEX,
    REPO,
    Sentinel,
    aibridge_serve,
    anthropic_script,
    base_env,
    claude_home,
    codex_home,
    needs_claude,
    needs_codex,
    responses_script,
    run_client,
    sentinel,  # noqa: F401  # the fixture, used by name
    tools_file,  # noqa: F401
)

parser = pytest.importorskip("prometheus_client.parser", reason="the test reads with it")
POOL_KEY = "sk-ant-attribution-pool-key-0123456789-ABCD"
OPENAI_POOL_KEY = "sk-openai-attribution-pool-key-0123456789-EFGH"


async def scrape(proxy: str) -> tuple[str, dict[tuple[str, frozenset[Any]], float]]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(proxy + "/metrics")).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def tokens(samples: dict[tuple[str, frozenset[Any]], float], kind: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "aibridge_tokens_total" and ("type", kind) in labels
    )


async def show(fixture: Path, cwd: Path) -> str:
    done = await trio.run_process(
        [*CLI, "show", str(fixture)],
        env={"PYTHONPATH": str(REPO), "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        cwd=str(cwd),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def no_key_in_labels(text: str, key: str) -> None:
    assert key not in text  # whole: nowhere at all
    assert key[:4] + "…" + key[-4:] in text  # masked: as the key label


@needs_claude
async def test_claude_code_sessions_are_attributed_grouped_and_metered(
    nursery: trio.Nursery,
    sentinel: Sentinel,  # noqa: F811
    tmp_path: Path,
    tools_file: Path,  # noqa: F811
) -> None:
    assert CLAUDE is not None
    WATCH.note([POOL_KEY])
    fixture = tmp_path / "claude.jsonl"
    upstream = anthropic_script(tool_turn=True)
    runs: list[dict[str, Any]] = []
    options = ("--record", str(fixture), "--anthropic-key", POOL_KEY)
    async with aibridge_serve(
        nursery, upstream, "--anthropic-base-url", "", tools_file, *options
    ) as proxy:
        for n in range(2):
            (tmp_path / f"run{n}").mkdir()
            env = base_env(sentinel) | claude_home(tmp_path / f"run{n}") | QUIET_CLAUDE
            env |= {"ANTHROPIC_BASE_URL": proxy + "/anthropic", "ANTHROPIC_API_KEY": "sk-c"}
            argv = [CLAUDE, "-p", "--output-format", "json", "What is the weather in Paris?"]
            done: subprocess.CompletedProcess[bytes] = await run_client(argv, env, tmp_path)
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            runs.append(json.loads(done.stdout))
        text, samples = await scrape(proxy)
    # the tokens the client reports, over both runs and every model it used
    seen = {
        "input": "inputTokens",
        "output": "outputTokens",
        "cache_read": "cacheReadInputTokens",
        "cache_write": "cacheCreationInputTokens",
    }
    for kind, field in seen.items():
        told = sum(m[field] for run in runs for m in run["modelUsage"].values())
        assert tokens(samples, kind) == told, kind
    assert tokens(samples, "output") > 0
    no_key_in_labels(text, POOL_KEY)
    interceptions = [r for r in load_fixture(fixture).interceptions if r.api == "anthropic"]
    sessions = [run["session_id"] for run in runs]
    assert {r.client for r in interceptions} == {"claude-code"}
    assert {r.session for r in interceptions} == set(sessions)
    table = await show(fixture, tmp_path)
    rows = [line for line in table.splitlines() if "claude-code" in line and "│" in line]
    for session in sessions:  # a row of the sessions table each: client, session, 1
        assert any(session in row and " 1 " in row for row in rows), table


@needs_codex
async def test_codex_sessions_are_attributed_and_grouped(
    nursery: trio.Nursery,
    sentinel: Sentinel,  # noqa: F811
    tmp_path: Path,
    tools_file: Path,  # noqa: F811
) -> None:
    assert CODEX is not None
    WATCH.note([OPENAI_POOL_KEY])
    fixture = tmp_path / "codex.jsonl"
    upstream = responses_script(tool_turn=True)
    options = ("--record", str(fixture), "--openai-key", OPENAI_POOL_KEY)
    async with aibridge_serve(
        nursery, upstream, "--openai-base-url", "/v1", tools_file, *options
    ) as proxy:
        for n in range(2):
            home = tmp_path / f"run{n}"
            home.mkdir()
            env = base_env(sentinel) | claude_home(home) | codex_home(home, proxy)
            argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "Weather?"]
            done = await run_client(argv, env, tmp_path)
            assert done.returncode == 0, done.stderr.decode()[-2000:]
        text, samples = await scrape(proxy)
    no_key_in_labels(text, OPENAI_POOL_KEY)
    assert tokens(samples, "output") > 0
    interceptions = [r for r in load_fixture(fixture).interceptions if r.api == "openai-responses"]
    assert interceptions
    assert {r.client for r in interceptions} == {"codex"}
    sessions = {r.session for r in interceptions}
    assert len(sessions) == 2
    assert None not in sessions
    for r in interceptions:  # the id the client sent in its session header
        sent = dict((k.lower(), v) for k, v in r.request.headers)
        assert r.session == (sent.get("session-id") or sent.get("session_id"))
    table = await show(fixture, tmp_path)
    rows = [line for line in table.splitlines() if "codex" in line and "│" in line]
    for session in sessions:
        assert session is not None
        assert any(session in row for row in rows), table
