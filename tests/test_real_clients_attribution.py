"""Real clients through ``aibridge serve --record``: each interception carries its client
and session id, ``aibridge show`` groups them by session, and ``/metrics`` (read by
prometheus-client's parser) counts the tokens the client itself reports.

Two runs of each client are two sessions; the clients and the scripted upstreams are
those of ``test_real_clients.py``, kept off the network the same way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
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
POOL_KEYS = {
    "anthropic": "sk-ant-attribution-pool-key-0123456789-ABCD",
    "openai": "sk-openai-attribution-pool-key-0123456789-EFGH",
}
Samples = dict[tuple[str, frozenset[Any]], float]


async def scrape(proxy: str) -> tuple[str, Samples]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(proxy + "/metrics")).text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def tokens(samples: Samples, kind: str) -> float:
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


Run = Callable[[str, Path], Awaitable[bytes]]  # (proxy URL, a fresh home) -> its stdout


async def two_sessions_through_serve(
    nursery: trio.Nursery, upstream: ScriptedUpstream, provider: str, tools: Path, run: Run
) -> tuple[Path, list[bytes], str, Samples]:
    """``serve --record`` with a pool key for ``provider`` in front of ``upstream``; the
    client run twice (two sessions), then one scrape of ``/metrics``. Returns the
    recording, the runs' stdout, the scraped text and its samples."""
    key = POOL_KEYS[provider]
    WATCH.note([key])
    home = tools.parent
    fixture = home / f"{provider}.jsonl"
    url_option, suffix = f"--{provider}-base-url", "/v1" if provider == "openai" else ""
    options = ("--record", str(fixture), f"--{provider}-key", key)
    outputs = []
    async with aibridge_serve(nursery, upstream, url_option, suffix, tools, *options) as proxy:
        for n in range(2):
            (home / f"run{n}").mkdir()
            outputs.append(await run(proxy, home / f"run{n}"))
        text, samples = await scrape(proxy)
    no_key_in_labels(text, key)
    assert tokens(samples, "output") > 0
    return fixture, outputs, text, samples


async def stdout_of(argv: list[str], env: dict[str, str], home: Path) -> bytes:
    """A client run that must succeed; what it printed."""
    done = await run_client(argv, env, home)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout


async def sessions_shown(fixture: Path, client: str, sessions: set[str]) -> None:
    """``aibridge show`` has a row of its sessions table for each session."""
    table = await show(fixture, fixture.parent)
    rows = [line for line in table.splitlines() if client in line and "│" in line]
    for session in sessions:
        assert any(session in row and " 1 " in row for row in rows), table


@needs_claude
async def test_claude_code_sessions_are_attributed_grouped_and_metered(
    nursery: trio.Nursery,
    sentinel: Sentinel,  # noqa: F811
    tools_file: Path,  # noqa: F811
) -> None:
    assert CLAUDE is not None

    async def claude(proxy: str, home: Path) -> bytes:
        env = base_env(sentinel) | claude_home(home) | QUIET_CLAUDE
        env |= {"ANTHROPIC_BASE_URL": proxy + "/anthropic", "ANTHROPIC_API_KEY": "sk-c"}
        return await stdout_of([CLAUDE, "-p", "--output-format", "json", "Weather?"], env, home)

    fixture, outputs, _, samples = await two_sessions_through_serve(
        nursery, anthropic_script(tool_turn=True), "anthropic", tools_file, claude
    )
    runs = [json.loads(out) for out in outputs]
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
    interceptions = [r for r in load_fixture(fixture).interceptions if r.api == "anthropic"]
    sessions = {run["session_id"] for run in runs}
    assert {r.client for r in interceptions} == {"claude-code"}
    assert {r.session for r in interceptions} == sessions
    await sessions_shown(fixture, "claude-code", sessions)


@needs_codex
async def test_codex_sessions_are_attributed_and_grouped(
    nursery: trio.Nursery,
    sentinel: Sentinel,  # noqa: F811
    tools_file: Path,  # noqa: F811
) -> None:
    assert CODEX is not None

    async def codex(proxy: str, home: Path) -> bytes:
        env = base_env(sentinel) | claude_home(home) | codex_home(home, proxy)
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "Weather?"]
        return await stdout_of(argv, env, home)

    fixture, _, _, _ = await two_sessions_through_serve(
        nursery, responses_script(tool_turn=True), "openai", tools_file, codex
    )
    interceptions = [r for r in load_fixture(fixture).interceptions if r.api == "openai-responses"]
    assert {r.client for r in interceptions} == {"codex"}
    for r in interceptions:  # the id the client sent in its session header
        sent = {k.lower(): v for k, v in r.request.headers}
        assert r.session == (sent.get("session-id") or sent.get("session_id"))
    sessions = {r.session for r in interceptions if r.session is not None}
    assert len(sessions) == 2
    await sessions_shown(fixture, "codex", sessions)
