"""The built-in normalizers against the real clients: the same command recorded twice —
a new session, another directory and home, and for Claude Code the clock a day on — is
one request to matching, and not without the client's normalizers.

This is the test that fails when a client update adds a field that changes on every run:
the difference it prints is the next normalizer to write (sessions/volatile.py).
The clients come from ``.clients`` or PATH (skipped with the reason when missing); the
day shift needs libfaketime (Debian's ``faketime``; Claude Code is a dynamically linked
binary, Codex a static one, which no preload can shift), and is left out without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from aibridge_cli.interception import Interception
from aibridge_cli.sessions.matching import (
    MatchRules,
    RequestShape,
    differences,
    matches,
    request_shape,
)
from aibridge_cli.sessions.recording import load_fixture
from aibridge_cli.sessions.volatile import NORMALIZERS

from .cli_process import CLI, start_cli, stop_cli
from .conftest import start_server
from .faketime import A_DAY_ON
from .test_real_clients import (
    CLAUDE,
    CLIENT_KEY,
    CODEX,
    QUIET_CLAUDE,
    QUIET_CODEX,
    REPO,
    Sentinel,
    anthropic_script,
    base_env,
    claude_home,
    needs_claude,
    needs_codex,
    responses_script,
    run_client,
)

pytest_plugins = ("tests.real_client_fixtures",)


def client_shape(record: Interception, rules: MatchRules) -> RequestShape:
    request = record.request
    body = json.dumps(request.body).encode()
    return request_shape(request.method, request.path, body, rules, request.headers)


def same_requests(first: Path, second: Path) -> None:
    """Every client request of ``second`` matches its counterpart in ``first``, and with
    the client's own normalizers off at least one does not."""
    runs = [load_fixture(path).interceptions for path in (first, second)]
    assert len(runs[0]) == len(runs[1]) > 0
    rules = MatchRules()
    strict = MatchRules.of(no_normalize=[n.name for n in NORMALIZERS if n.client is not None])
    sensitive = False
    for a, b in zip(*runs, strict=True):
        recorded, seen = client_shape(a, rules), client_shape(b, rules)
        assert matches(recorded, seen, rules), differences(recorded, seen, rules)
        sensitive |= not matches(client_shape(a, strict), client_shape(b, strict), strict)
    assert sensitive, "the two runs match even without the client's normalizers"


@needs_claude
async def test_claude_code_twice_is_one_request(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    assert CLAUDE is not None
    _, upstream_url = await start_server(nursery, anthropic_script(tool_turn=False))
    fixtures = []
    for run, shift in enumerate([{}, A_DAY_ON]):
        where = tmp_path / f"run{run}"
        where.mkdir()
        fixture = where / "s.jsonl"
        env = base_env(sentinel) | claude_home(where) | QUIET_CLAUDE
        env |= {"ANTHROPIC_API_KEY": CLIENT_KEY, "PYTHONPATH": str(REPO)}
        argv = [*CLI, "record", "-o", str(fixture), "--anthropic-base-url", upstream_url, "--"]
        done = await run_client(
            [*argv, "env", *_assignments(shift), CLAUDE, "-p", "Hi."], env, where
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        fixtures.append(fixture)
    if A_DAY_ON:  # the shift took: the two prompts carry two dates
        dates = [re.findall(r"Today's date is [0-9-]+", f.read_text())[:1] for f in fixtures]
        assert all(dates), dates
        assert dates[0] != dates[1], dates
    same_requests(*fixtures)


@needs_codex
async def test_codex_twice_is_one_request(
    nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path
) -> None:
    assert CODEX is not None
    _, upstream_url = await start_server(nursery, responses_script(tool_turn=False))
    fixtures = []
    for run in range(2):
        where = tmp_path / f"run{run}"
        (where / "codex-home").mkdir(parents=True)
        fixture = where / "s.jsonl"
        proc, proxy = await start_cli(
            "serve",
            "--port",
            "0",
            "--openai-base-url",
            upstream_url + "/v1",
            "--record",
            str(fixture),
        )
        env = base_env(sentinel) | claude_home(where)
        env |= {"CODEX_HOME": str(where / "codex-home"), "OPENAI_API_KEY": "sk-codex-client-0000"}
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX]
        argv += ["-c", f'openai_base_url="{proxy}/openai/v1"', "Hi."]
        try:
            done = await run_client(argv, env, where)
        finally:
            await stop_cli(proc)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        fixtures.append(fixture)
    same_requests(*fixtures)


def _assignments(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]
