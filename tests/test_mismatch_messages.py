"""A mismatch late in a long prompt is shown where it is, with both values' windows, in
``replay``'s report, ``mock``'s 400 and log line, and the pytest plugin's failure."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import httpx
import pytest
import trio
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture, dump_fixture
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.normalize import diff_normalized
from aibridge_cli.sessions.scripted_sessions import stop_servers

from .test_pytest_plugin import Upstream, gone, run, user_module

pytest_plugins = ("pytester", "tests.plugin_upstream")

TAIL = " Today's date is {day}. Answer in one line."


def long_prompt(day: str) -> str:
    """2,000 characters whose only difference from one day to the next is near the end."""
    rules = " ".join(f"Rule {i}: be brief, be kind, cite the tool." for i in range(60))
    tail = TAIL.format(day=day)
    return rules[: 2000 - len(tail)] + tail


RECORDED, TODAY = long_prompt("2026-12-07"), long_prompt("2026-12-08")
AT = RECORDED.index("07.") + 2  # 1-based position of the first differing character


def assert_both_windows(text: str) -> None:
    flat = " ".join(text.split())  # a report may wrap its long lines
    assert f"first difference at character {AT} (2000 expected, 2000 got)" in flat, text
    assert "date is 2026-12-07. Answer in one line." in flat, text
    assert "date is 2026-12-08. Answer in one line." in flat, text
    # not the common start, which both share
    assert "Rule 0:" not in flat


def test_the_difference_is_shown_at_its_place() -> None:
    assert len(RECORDED) == len(TODAY) == 2000
    (line,) = diff_normalized({"prompt": RECORDED}, {"prompt": TODAY})
    assert line.startswith("prompt: first difference at character")
    assert_both_windows(line)
    # the shown windows start and end with an ellipsis where they cut the value
    assert 'expected …"' in line or "expected …'" in line


def recorded_fixture() -> Fixture:
    """anthropic/simple, its first request recorded with yesterday's prompt."""
    (fixture,) = load_builtin("anthropic/simple")
    fixture = copy.deepcopy(fixture)
    record = fixture.interceptions[0]
    record.upstream[0].request_body["messages"][0]["content"] = RECORDED
    return fixture


def test_replay_shows_both_windows(tmp_path: Path) -> None:
    fixture = recorded_fixture()
    fixture.interceptions[0].request.body["messages"][0]["content"] = TODAY
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(fixture))
    result = CliRunner().invoke(app, ["replay", str(path)])
    assert result.exit_code == 1
    assert "upstream[0]: request body messages[0].content: first difference" in " ".join(
        result.stdout.split()
    )
    assert_both_windows(result.stdout)


async def test_mock_shows_both_windows_in_its_400_and_its_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    fixture = recorded_fixture()
    body = copy.deepcopy(fixture.interceptions[0].upstream[0].request_body)
    body["messages"][0]["content"] = TODAY
    server = Server(MockUpstream([fixture], "fast").app)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    with caplog.at_level(logging.WARNING, logger="aibridge.mock"):
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://{host}:{port}/v1/messages", json=body)
    await stop_servers(server)
    assert response.status_code == 400
    assert_both_windows(response.json()["error"]["message"])
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "aibridge.mock"]
    assert_both_windows(logged)


def test_the_plugin_failure_shows_both_windows(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=user_module(RECORDED))
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=3)
    gone(upstream, monkeypatch)
    pytester.makepyfile(test_agent=user_module(TODAY))
    result = run(pytester, "-k", "weather")
    result.assert_outcomes(failed=1, deselected=2)
    assert_both_windows(result.stdout.str())
