"""``aibridge show`` on a 10,000-event recording: build time, page size, render time.

Records one streaming Anthropic interception of 10,000 SSE events through aibridge's own
proxy over loopback (a scripted upstream, ``sessions.scripted_sessions``), then times
``summarize`` and ``session_page`` in this process, runs ``aibridge show`` (terminal and
``--html``) as a user would, and loads the page in headless Chromium: navigation start to
the first frame drawn after the load event, best of ``--repeat``.

    python bench/show_large.py [--events 10000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from harness import ROOT, machine, print_table

sys.path.insert(0, str(ROOT))

from aibridge_cli.fakes.anthropic_replies import message_end, message_start, stream, text_block
from aibridge_cli.sessions.fixture import dump_fixture
from aibridge_cli.sessions.recording import load_fixture
from aibridge_cli.sessions.scripted_sessions import Session, Step, record_session
from aibridge_cli.sessions.summary import summarize
from aibridge_cli.views.session import session_page
from tests.chromium import Chromium, find_chromium


def large_session(events: int) -> Session:
    deltas = [f"word{i} " for i in range(events - 5)]  # 5 events frame the deltas
    reply = stream(
        message_start(input_tokens=40),
        text_block(0, *deltas),
        message_end("end_turn", len(deltas)),
        # a pause every 50 events: the chart has a time axis to spread over
        delays=[0.002 if i % 50 == 0 else 0.0 for i in range(events)],
    )
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "messages": [{"role": "user", "content": "Count for a while."}],
    }
    return Session([Step("anthropic", body, [reply], label="long stream")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Keep the fixture and page in this directory.")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="aibridge-show-"))
    out.mkdir(parents=True, exist_ok=True)
    recorded = trio.run(record_session, large_session(args.events), "large")
    fixture_path = out / "large-session.jsonl"
    fixture_path.write_text(dump_fixture(recorded), encoding="utf-8")

    started = time.perf_counter()
    fixture = load_fixture(fixture_path)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    summaries = [
        summarize(r, label) for r, label in zip(fixture.interceptions, fixture.labels, strict=True)
    ]
    summarized = time.perf_counter() - started
    started = time.perf_counter()
    page = session_page(fixture, summaries)
    built = time.perf_counter() - started
    page_path = out / "large-session.html"

    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "show", str(fixture_path), "--html", str(page_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    command = time.perf_counter() - started
    print(done.stdout)
    assert page_path.read_text(encoding="utf-8") == page

    rows = [
        ["client events", f"{len(summaries[0].client.events):,}"],
        ["fixture size", f"{fixture_path.stat().st_size / 1024:,.0f} KiB"],
        ["page size", f"{len(page.encode()) / 1024:,.0f} KiB"],
        ["load_fixture", f"{loaded * 1000:.0f} ms"],
        ["summarize", f"{summarized * 1000:.0f} ms"],
        ["session_page", f"{built * 1000:.0f} ms"],
        ["aibridge show --html (whole process)", f"{command * 1000:.0f} ms"],
    ]
    executable = find_chromium()
    if executable is None:
        rows.append(["chromium", "absent: no render time"])
    else:
        with Chromium(executable) as browser:
            loads = []
            for _ in range(args.repeat):
                report = browser.open_page(page_path)
                loads.append(report.report)
                elements = report.count("*")
            best = min(loads, key=lambda r: r.load_ms)
            rows += [
                ["chromium: navigation to first frame after load (best)", f"{best.load_ms:.0f} ms"],
                ["chromium: the same, all runs", ", ".join(f"{r.load_ms:.0f}" for r in loads)],
                ["DOM elements", f"{elements:,}"],
                ["console errors", str(len(best.console_errors))],
            ]
    print(machine())
    print_table(f"aibridge show, {args.events:,}-event recording", ["measure", "value"], rows)
    print(f"\nfixture and page in {out}")


if __name__ == "__main__":
    main()
