"""The HTML pages in a real browser: headless Chromium (Debian's) loads each one.

Each page must draw its lanes with the right number of events, log no console error,
fetch nothing but itself, and its little script must work. A page with a planted script
error is the control: it shows the console check can fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aibridge_cli.fuzz.evidence import gather
from aibridge_cli.headers import media_type
from aibridge_cli.interception import ResponseLog
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture
from aibridge_cli.sessions.summary import summarize
from aibridge_cli.views.page import document, el
from aibridge_cli.views.repro import repro_page
from aibridge_cli.views.session import BINS, session_page

from .chromium import Chromium, find_chromium
from .cross_request_plants import PLANTS, planted_campaign
from .test_repro_page import BAD_FRAME, finding, seed_race
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
    """Events in a body, counted without the SSE parser: blank-line ends, or one JSON body;
    on a WebSocket (status 101), one per message."""
    if log.status == 101:
        return len(log.chunks)
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
    assert len(lanes) == len(records) == 41  # 32 over HTTP, 9 over WebSocket
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


def test_the_seed_race_page_shows_the_json_error_above_the_relays_first_frame(
    browser: Chromium, tmp_path: Path
) -> None:
    evidence = seed_race()
    path = tmp_path / "seed-race.html"
    path.write_text(repro_page(evidence), encoding="utf-8")
    page = browser.open_page(path)
    assert page.report.console_errors == []
    assert page.report.requests == [path.as_uri()]
    marks = evidence.run.marks or []
    lanes = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('g.lane')].map(g =>"
        " [g.dataset.lane, [+g.dataset.marks, document.querySelectorAll("
        "`g.mark[data-lane=${g.dataset.lane}]`).length]]))"
    )
    assert lanes == {
        lane: [sum(1 for m in marks if m.lane == lane)] * 2
        for lane in ("client", "relay", "loop", "upstream", "tool")
    }
    # Drawn, not written: where the arrows are and what colour, where the strip's parts are.
    writes = page.evaluate(
        "[...document.querySelectorAll('g.mark[data-kind=write]')].map(g => {"
        " const line = g.querySelector('line'); const box = line.getBoundingClientRect();"
        " return [g.dataset.lane, box.top, getComputedStyle(line).stroke]; })"
    )
    (loop, loop_y, loop_colour), (relay, relay_y, relay_colour) = writes[:2]
    assert (loop, relay) == ("loop", "relay")
    assert loop_y < relay_y
    assert loop_colour == "rgb(220, 38, 38)"  # --error
    assert relay_colour == "rgb(124, 58, 237)"  # --relay
    strip = page.evaluate(
        "[...document.querySelectorAll('svg.strip rect.segment')].map(r =>"
        " [r.dataset.lane, r.getBoundingClientRect().left, getComputedStyle(r).fill])"
    )
    assert [lane for lane, _, _ in strip] == ["loop", "relay"]
    assert strip[0][1] < strip[1][1]
    assert strip[0][2] == "rgb(220, 38, 38)"
    assert page.count("pre.client-body mark.offending") >= 1


def test_a_schedule_dependence_page_has_both_runs(browser: Chromium, tmp_path: Path) -> None:
    path = tmp_path / "schedule.html"
    path.write_text(repro_page(gather(finding(BAD_FRAME, "schedule-dependence"))))
    page = browser.open_page(path)
    assert page.report.console_errors == []
    assert page.count("section.run") == 2
    assert page.count("section.run svg.sequence") == 2


def test_the_pages_read_the_same_without_javascript(browser: Chromium, tmp_path: Path) -> None:
    (fixture,) = load_builtin("anthropic/injected-tool")
    session = write_session(fixture, tmp_path / "session.html")
    repro = tmp_path / "repro.html"
    repro.write_text(repro_page(seed_race()), encoding="utf-8")
    shapes = "g.lane, rect.mark, g.mark, rect.segment, table tr, mark.offending"
    for path in (session, repro):
        with_js = browser.open_page(path)
        without = browser.open_page(path, javascript=False)
        assert without.count(shapes) == with_js.count(shapes) > 10
        # the script only adds the crosshair
        assert without.count("line.cursor") == 0
        assert with_js.count("line.cursor") == with_js.count("svg.chart[data-t1]")


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_a_planted_cross_request_bug_s_page_draws_each_request_s_lanes(
    browser: Chromium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    campaign = planted_campaign(name, monkeypatch)
    (finding,) = [f for f in campaign.findings if f.oracle == PLANTS[name][2]]
    evidence = gather(finding)
    marks = evidence.run.marks or []
    path = tmp_path / "load.html"
    path.write_text(repro_page(evidence), encoding="utf-8")
    page = browser.open_page(path)
    assert page.report.console_errors == []
    assert page.report.requests == [path.as_uri()]
    # each lane: its request, its title as drawn, its count, and the marks drawn in it
    lanes = page.evaluate(
        "[...document.querySelectorAll('g.lane')].map(g => { const r = g.dataset.request;"
        " const own = r === undefined ? '' : `[data-request='${r}']`;"
        " return [r ?? null, g.querySelector('text').textContent, +g.dataset.marks,"
        " document.querySelectorAll(`g.mark[data-lane=${g.dataset.lane}]${own}`).length]; })"
    )
    requests = range(finding.scenario.requests)
    titles = {"upstream": "upstream", "pool": "key pool", "recorder": "recorder", "tool": "tool"}
    assert lanes == [
        [str(r), f"{lane} {r}", *[sum(1 for m in marks if (m.request, m.lane) == (r, lane))] * 2]
        for r in requests
        for lane in ("client", "relay", "loop")
    ] + [
        [None, title, *[sum(1 for m in marks if m.lane == lane)] * 2]
        for lane, title in titles.items()
    ]
    # which request took which key: every attempt's arrow leaves its request's loop lane
    drawn = page.evaluate(
        "[...document.querySelectorAll('g.mark[data-kind=attempt]')].map(g =>"
        " [g.dataset.request, g.querySelector('line').getBoundingClientRect().left,"
        " document.querySelector(`g.lane[data-lane=loop][data-request='${g.dataset.request}']"
        " line`).getBoundingClientRect().left])"
    )
    assert len(drawn) == sum(1 for m in marks if m.kind == "attempt") > 0
    for _, arrow, lane in drawn:
        assert abs(arrow - lane) < 2
