"""The HTML pages in a real browser: headless Chromium (Debian's) loads each one.

Each page must draw its lanes with the right number of events, log no console error,
fetch nothing but itself, and its little script must work. A page with a planted script
error is the control: it shows the console check can fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aibridge_cli.headers import media_type
from aibridge_cli.interception import ResponseLog
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture
from aibridge_cli.sessions.summary import summarize
from aibridge_cli.views.page import document, el
from aibridge_cli.views.session import BINS, session_page

from .chromium import Chromium, find_chromium
from .test_show import large_fixture

EXECUTABLE = find_chromium()
pytestmark = pytest.mark.skipif(
    EXECUTABLE is None, reason="no chromium (Debian's package: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    assert EXECUTABLE is not None
    with Chromium(EXECUTABLE) as chromium:
        yield chromium


def write_session(fixture: Fixture, path: Path) -> Path:
    summaries = [
        summarize(record, label)
        for record, label in zip(fixture.interceptions, fixture.labels, strict=True)
    ]
    path.write_text(session_page(fixture, summaries), encoding="utf-8")
    return path


def frames(log: ResponseLog) -> int:
    """Events in a body, counted without the SSE parser: blank-line ends, or one JSON body."""
    sse = media_type(log.headers) == "text/event-stream"
    return log.body.count(b"\n\n") if sse else int(bool(log.body))


def test_every_builtin_fixture_on_one_page(browser: Chromium, tmp_path: Path) -> None:
    builtins = load_builtin()
    records = [r for f in builtins for r in f.interceptions]
    labels = [f"{f.path}:{label}" for f in builtins for label in f.labels]
    page = browser.open_page(
        write_session(Fixture("builtins", records, labels), tmp_path / "b.html")
    )
    assert page.report.console_errors == []
    assert page.report.requests == [(tmp_path / "b.html").as_uri()]

    lanes = page.evaluate(
        "[...document.querySelectorAll('section.interception')].map(section =>"
        " [...section.querySelectorAll('g.lane')].map(g => [g.dataset.lane, +g.dataset.events,"
        " +g.dataset.chunks, g.querySelectorAll('rect.mark').length]))"
    )
    assert len(lanes) == len(records) == 27
    for record, drawn in zip(records, lanes, strict=True):
        expected = [["client", frames(record.response), len(record.response.chunks)]]
        for exchange in record.upstream:
            expected.append(["upstream", frames(exchange.response), len(exchange.response.chunks)])
        tool_lane = [lane for lane in drawn if lane[0] == "tool"]
        assert [lane[:3] for lane in drawn if lane[0] != "tool"] == expected
        # few chunks: a mark for each one
        assert all(lane[3] == lane[2] for lane in drawn if lane[0] != "tool")
        assert len(tool_lane) == (1 if record.tool_calls else 0)


def test_the_crosshair_follows_the_pointer(browser: Chromium, tmp_path: Path) -> None:
    (fixture,) = load_builtin("anthropic/injected-tool")
    page = browser.open_page(write_session(fixture, tmp_path / "s.html"))
    label = page.evaluate(
        "(() => { const svg = document.querySelector('svg.chart');"
        " const box = svg.getBoundingClientRect();"
        " svg.dispatchEvent(new MouseEvent('mousemove', {clientX: box.left + box.width * 0.6,"
        " clientY: box.top + box.height / 2}));"
        " const line = svg.querySelector('line.cursor');"
        " return [line.style.display, svg.querySelector('line.cursor + text').textContent]; })()"
    )
    assert label[0] == ""
    assert label[1].endswith(" ms")
    assert page.report.console_errors == []


def test_a_planted_script_error_is_caught(browser: Chromium, tmp_path: Path) -> None:
    planted = tmp_path / "planted.html"
    planted.write_text(
        document("planted", el("p", "x"), script="console.error('planted'); undefinedName();")
    )
    errors = browser.open_page(planted).report.console_errors
    assert any("planted" in e for e in errors)
    assert any("undefinedName" in e for e in errors)


def test_a_10000_event_session_stays_small_in_the_dom(browser: Chromium, tmp_path: Path) -> None:
    page = browser.open_page(write_session(large_fixture(), tmp_path / "large.html"))
    assert page.report.console_errors == []
    lanes = page.evaluate(
        "[...document.querySelectorAll('g.lane')].map(g => [g.dataset.lane, +g.dataset.events,"
        " g.querySelectorAll('rect.mark').length])"
    )
    assert [lane[:2] for lane in lanes] == [["client", 10_000], ["upstream", 10_000]]
    assert all(0 < lane[2] <= BINS for lane in lanes)
    assert page.count("*") < 5_000
