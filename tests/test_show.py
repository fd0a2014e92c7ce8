"""``aibridge show``: the facts read from a recording, the terminal table, the session page."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from aibridge_cli.interception import ClientRequest, Interception
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture, dump_fixture
from aibridge_cli.sessions.summary import summarize
from aibridge_cli.views.session import BINS, MARKS_PER_LANE, session_page

from .cli_process import run_cli

HOSTILE = '</script><img src=x onerror="alert(1)">&amp;'


def test_summary_of_the_rate_limit_after_a_tool_turn() -> None:
    (fixture,) = load_builtin("anthropic/rate-limit-after-tool-turn")
    s = summarize(fixture.interceptions[0], fixture.labels[0])
    assert (s.api, s.model, s.stream, s.status) == ("anthropic", "claude-sonnet-4-5", True, 200)
    assert s.outcome == "error: all configured keys are rate-limited"
    assert [a.verdict for a in s.attempts] == [
        "200",
        "429 rate_limit_error",
        "429 rate_limit_error",
    ]
    assert [a.key for a in s.attempts] == ["sk-a…aaaa", "sk-a…aaaa", "sk-a…bbbb"]
    assert s.injected == ("bmcp_weather",)
    assert [(t.after, t.calls) for t in s.tool_turns] == [(0, ("bmcp_weather",))]
    # message_start says 12 in and 1 out, message_delta 9 out; the 429s spent nothing
    assert (s.usage.input_tokens, s.usage.output_tokens) == (12, 9)
    # the client saw message_start, then (after the tool turn and two 429s) an SSE error
    assert [e.name for e in s.client.events][-1] == "error"
    last_429 = s.attempts[2].facts.last_ms
    assert last_429 is not None
    assert s.client.events[-1].ms >= last_429
    assert s.client.first_event_ms == s.client.events[0].ms
    assert s.duration_ms == max(s.client.last_ms or 0, last_429)


def test_tokens_are_summed_over_exchanges_for_every_api() -> None:
    expected = {"anthropic": (25, 16), "openai-chat": (24, 14), "openai-responses": (24, 14)}
    for fixture in load_builtin("injected-tool"):
        for record, label in zip(fixture.interceptions, fixture.labels, strict=True):
            s = summarize(record, label)
            usage = (s.usage.input_tokens, s.usage.output_tokens)
            assert usage == expected[s.api], (fixture.path, label)
            per_exchange = [a.facts.usage for a in s.attempts]
            assert sum(u.input_tokens for u in per_exchange) == usage[0]
            assert all(u.input_tokens > 0 for u in per_exchange)


def test_a_blocking_answer_is_one_event_at_its_last_chunk() -> None:
    (fixture,) = load_builtin("anthropic/simple")
    blocking = summarize(fixture.interceptions[1], fixture.labels[1])
    assert not blocking.stream
    assert [e.name for e in blocking.client.events] == ["body"]
    assert blocking.client.first_event_ms == blocking.client.last_ms


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def hostile_fixture() -> Fixture:
    """An interception whose every field came off the wire with markup in it."""
    record = Interception(
        api="anthropic",
        request=ClientRequest(
            "POST",
            f"/anthropic/v1/messages?{HOSTILE}",
            [("x-note", HOSTILE)],
            {"model": HOSTILE, "stream": True},
        ),
        started_at=0.0,
        outcome=f"error: {HOSTILE}",
    )
    exchange = record.new_exchange("POST", "/v1/messages", {"model": HOSTILE}, HOSTILE)
    exchange.response.started(200, [("content-type", "text/event-stream"), ("x-h", HOSTILE)])
    data = json.dumps({"type": "content_block_start", "content_block": {"name": HOSTILE}})
    exchange.response.wrote(f"event: {HOSTILE}\ndata: {data}\n\n".encode())
    record.response.started(500, [("content-type", "application/json")])
    record.response.wrote(HOSTILE.encode())
    return Fixture(HOSTILE, [record], [HOSTILE], proxy={HOSTILE: HOSTILE})


def test_the_page_escapes_everything_that_came_off_the_wire() -> None:
    fixture = hostile_fixture()
    page = session_page(fixture, [summarize(fixture.interceptions[0], fixture.labels[0])])
    parser = _Tags()
    parser.feed(page)
    assert "img" not in parser.tags
    assert parser.tags.count("script") == 1  # the page's own
    assert parser.handlers == []
    assert "&lt;/script&gt;&lt;img" in page


def test_the_page_has_no_link_to_anywhere() -> None:
    (fixture,) = load_builtin("anthropic/injected-tool")
    summaries = [
        summarize(r, label) for r, label in zip(fixture.interceptions, fixture.labels, strict=True)
    ]
    page = session_page(fixture, summaries)
    for needle in ("http://", "https://", "//cdn", "src=", "@import", "url("):
        hits = [page[max(0, i - 40) : i + 40] for i in _find_all(page, needle)]
        # the only URLs are the SVG namespace, and recorded data (escaped text, never loaded)
        assert all(
            "w3.org/2000/svg" in hit or "&quot;" in hit or "127.0.0.1" in hit for hit in hits
        )
    assert 'href="#i1"' in page


def _find_all(text: str, needle: str) -> list[int]:
    out, start = [], text.find(needle)
    while start >= 0:
        out.append(start)
        start = text.find(needle, start + 1)
    return out


def large_fixture(events: int = 10_000) -> Fixture:
    """One streaming interception of ``events`` events, two a chunk, 1.5 ms apart."""
    now = [0.0]
    record = Interception(
        api="anthropic",
        request=ClientRequest("POST", "/anthropic/v1/messages", [], {"model": "m", "stream": True}),
        started_at=0.0,
        clock=lambda: now[0],
    )
    exchange = record.new_exchange("POST", "/v1/messages", {}, "sk-a…aaaa")
    headers = [("content-type", "text/event-stream")]
    exchange.response.started(200, headers)
    record.response.started(200, headers)
    frame = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0}\n\n'
    for i in range(events // 2):
        now[0] = i * 1.5
        exchange.response.wrote(frame * 2)
        record.response.wrote(frame * 2)
    return Fixture("large.jsonl", [record], ["large"])


def test_a_large_session_draws_bins_not_a_mark_per_chunk() -> None:
    fixture = large_fixture()
    summary = summarize(fixture.interceptions[0], "large")
    assert len(summary.client.events) == len(summary.attempts[0].facts.events) == 10_000
    assert summary.client.chunks == 5_000 > MARKS_PER_LANE
    page = session_page(fixture, [summary])
    assert page.count('class="mark ') <= 2 * BINS
    assert 'data-events="10000"' in page
    assert len(page.encode()) < 1_000_000  # the fixture itself is about 1.6 MB


def test_show_prints_a_table_and_writes_a_page(tmp_path: Path) -> None:
    fixture = tmp_path / "session.jsonl"
    (builtin,) = load_builtin("anthropic/rate-limit-after-tool-turn")
    fixture.write_text(dump_fixture(builtin), encoding="utf-8")
    page = tmp_path / "session.html"
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "show", str(fixture), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "TERM": "dumb"},
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "streaming" in line)
    for cell in ("anthropic", "claude-sonnet-4-5", "200", "12 / 9", "bmcp_weather", "sk-a…aaaa"):
        assert cell in row, row
    assert "429 rate_limit_error" in done.stdout
    assert "#1 streaming: error: all configured keys are rate-limited" in done.stdout
    assert f"wrote {page}" in done.stderr
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


async def test_show_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    done = await run_cli("show", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2
    assert b"cannot read" in done.stderr
    assert b"Traceback" not in done.stderr
    done = await run_cli("show", "--builtin", "simple", "--html", str(tmp_path / "x.html"))
    assert done.returncode == 2
    assert b"--html writes one page" in done.stderr
