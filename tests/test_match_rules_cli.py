"""Matching rules on the command line (``--ignore``, ``--match-on``, ``--no-normalize``) for
``replay`` and ``mock``, and the built-in normalizers at work in the mock."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest
import trio
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture, dump_fixture
from aibridge_cli.sessions.matching import MatchRules
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.scripted_sessions import stop_servers

from .cli_process import start_cli, stop_cli

CLAUDE_UA = ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)")


def simple() -> Fixture:
    (fixture,) = load_builtin("anthropic/simple")
    return copy.deepcopy(fixture)


def with_recorded_max_tokens(tmp_path: Path, value: int) -> Path:
    """anthropic/simple, its first upstream request recorded with another max_tokens than
    the proxy will send: a replay's upstream request then differs in that field only."""
    fixture = simple()
    fixture.interceptions[0].upstream[0].request_body["max_tokens"] = value
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(fixture))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_replay_ignore_leaves_a_field_out_of_the_upstream_comparison(tmp_path: Path) -> None:
    path = with_recorded_max_tokens(tmp_path, 7)
    code, out, _ = invoke("replay", str(path))
    assert code == 1
    assert "request body max_tokens: expected 7, got" in out
    code, out, _ = invoke("replay", str(path), "--ignore", "$.max_tokens")
    assert code == 0, out
    assert "1/1 fixtures match" in out
    code, out, _ = invoke("replay", str(path), "--match-on", "method,path,query")
    assert code == 0, out


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--no-normalize", "claude-date", "unknown normalizer 'claude-date' (known: ids,"),
        ("--match-on", "bodies", "unknown field 'bodies' (known: method, path, query, body)"),
        ("--ignore", "$.", "'$.' is not a field path"),
    ],
)
@pytest.mark.parametrize("command", ["replay", "mock"])
def test_a_bad_rule_is_one_error_line_and_exit_2(
    tmp_path: Path, command: str, option: str, value: str, said: str
) -> None:
    path = with_recorded_max_tokens(tmp_path, 7)
    code, out, err = invoke(command, str(path), option, value)
    assert code == 2
    assert said in " ".join(err.split())
    assert err.startswith("error:")
    assert "Traceback" not in err + out


async def test_mock_ignore_lets_a_changed_field_match(tmp_path: Path) -> None:
    fixture = simple()
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(fixture))
    body = copy.deepcopy(fixture.interceptions[0].upstream[0].request_body)
    body["messages"][0]["content"] = "Something else entirely."
    proc, url = await start_cli(
        "mock",
        str(path),
        "--upstream-side",
        "--timing",
        "fast",
        "--ignore",
        "$.messages[*].content",
    )
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(url + "/v1/messages", json=body)
    finally:
        await stop_cli(proc)
    assert response.status_code == 200, response.text


async def test_the_mock_applies_a_client_s_normalizers_by_its_user_agent(
    nursery: trio.Nursery,
) -> None:
    """Recorded from Claude Code yesterday, asked again today: the date line differs and
    the request still takes its recorded answer; with the normalizer off, it does not."""
    fixture = simple()
    record = fixture.interceptions[0]
    record.request.headers.append(CLAUDE_UA)
    recorded = record.upstream[0].request_body
    recorded["system"] = [{"type": "text", "text": "Today's date is 2026-12-07."}]
    today = {**copy.deepcopy(recorded), "system": [{**recorded["system"][0]}]}
    today["system"][0]["text"] = "Today's date is 2026-12-08."

    async def status(rules: MatchRules, headers: list[tuple[str, str]]) -> int:
        server = Server(MockUpstream([fixture], "fast", rules).app)
        host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient() as client:
                url = f"http://{host}:{port}/v1/messages"
                return (await client.post(url, json=today, headers=headers)).status_code
        finally:
            await stop_servers(server)

    assert await status(MatchRules(), [CLAUDE_UA]) == 200
    assert await status(MatchRules(), []) == 400  # not Claude Code: the date is compared
    assert await status(MatchRules.of(no_normalize=["claude-code-date"]), [CLAUDE_UA]) == 400
