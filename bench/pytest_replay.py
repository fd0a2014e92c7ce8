"""The pytest plugin's replay cost: a 50-test suite, one recorded exchange per test.

A generated project holds 50 tests, each asking the anthropic SDK (sync) one question of
its own. They are recorded once (``--aibridge-record=once``) against a scripted upstream,
then run again and again, interleaved, two ways:

* **replay**: ``--aibridge-record=none``, each test served its own recording by the plugin;
* **direct**: the same tests pointed at the scripted upstream itself (started once per
  session on a thread, as the plugin's server is), no plugin fixture at all.

The tests share one SDK client per URL (the plugin's URLs stay the same all session), so
what is timed is the test's request, not building a client. A conftest writes each
test's setup, call and teardown times. The overhead per test is replay's mean minus
direct's, over the tests after the first (the first also pays for starting a server
thread in both ways, shown apart). Each way runs ``--repeat`` times and
its fastest run is kept: a shared machine slows runs, never speeds them up.

    python bench/pytest_replay.py [--tests 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, machine, print_table

from aibridge_cli.fakes import anthropic_replies as ar
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.pytest_plugin.loop_thread import LoopThread

CONFTEST = '''
import json, os, pytest
import anthropic
from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.pytest_plugin.loop_thread import LoopThread
from bench_answers import answer

TIMES = {}
CLIENTS = {}


@pytest.fixture
def client(url):
    """One SDK client per URL for the session: building one costs more than a replay, and
    the plugin's URLs stay the same from test to test, so a suite may keep its clients."""
    if url not in CLIENTS:
        CLIENTS[url] = anthropic.Anthropic(base_url=url, api_key="sk-bench", max_retries=0)
    return CLIENTS[url]


@pytest.fixture(scope="session")
def direct_url():
    thread = LoopThread(ScriptedUpstream(script=answer), name="direct")
    yield thread.start()
    thread.stop()


@pytest.fixture
def url(request):
    if os.environ["BENCH_WAY"] == "direct":
        return request.getfixturevalue("direct_url")
    return request.getfixturevalue("aibridge_anthropic_url")


def pytest_runtest_logreport(report):
    TIMES.setdefault(report.nodeid, {})[report.when] = report.duration


def pytest_sessionfinish(session):
    for client in CLIENTS.values():
        client.close()
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(TIMES, out)
'''

ANSWERS = """
from aibridge_cli.fakes import anthropic_replies as ar


def answer(seen, index):
    question = seen.json()["messages"][0]["content"]
    return ar.message([{"type": "text", "text": "Answer to " + question}], "end_turn", 4)
"""

TESTS = """
import pytest


@pytest.mark.parametrize("n", range(COUNT))
def test_ask(client, n):
    reply = client.messages.create(
        model="claude-test", max_tokens=64,
        messages=[{"role": "user", "content": f"Question {n}?"}],
    )
    assert reply.content[0].text == f"Answer to Question {n}?"
"""


def answer(seen: SeenRequest, index: int) -> Reply:
    question = seen.json()["messages"][0]["content"]
    return ar.message([{"type": "text", "text": "Answer to " + question}], "end_turn", 4)


def run(project: Path, way: str, *args: str) -> dict[str, dict[str, float]]:
    out = project / f"times-{way}.json"
    env = {**os.environ, "BENCH_WAY": way, "BENCH_OUT": str(out), "PYTHONPATH": str(project)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{way} run failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    times: dict[str, dict[str, float]] = json.loads(out.read_text())
    return times


def per_test(times: dict[str, dict[str, float]]) -> tuple[float, float, list[float]]:
    """The first test's total, the mean of the rest, and each phase's mean of the rest."""
    totals = [sum(t.values()) for t in times.values()]
    rest = list(times.values())[1:]
    phases = [statistics.fmean(t.get(p, 0.0) for t in rest) for p in ("setup", "call", "teardown")]
    return totals[0], statistics.fmean(totals[1:]), phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "conftest.py").write_text(textwrap.dedent(CONFTEST))
        (project / "bench_answers.py").write_text(textwrap.dedent(ANSWERS))
        (project / "test_suite.py").write_text(TESTS.replace("COUNT", str(args.tests)))
        upstream = LoopThread(ScriptedUpstream(script=answer), name="bench-upstream")
        url = upstream.start()
        try:
            run(project, "replay", "--aibridge-record=once", f"--aibridge-anthropic-upstream={url}")
        finally:
            upstream.stop()
        recorded = sorted((project / "aibridge").rglob("*.jsonl"))
        assert len(recorded) == args.tests, f"{len(recorded)} recordings"
        best: dict[str, tuple[float, float, list[float]]] = {}
        for _ in range(args.repeat):
            for way in ("direct", "replay"):
                extra = ["--aibridge-record=none"] if way == "replay" else []
                result = per_test(run(project, way, *extra))
                if way not in best or result[1] < best[way][1]:
                    best[way] = result
    rows = [
        [way, f"{first * 1000:.1f}", f"{mean * 1000:.2f}", *(f"{p * 1000:.2f}" for p in phases)]
        for way, (first, mean, phases) in best.items()
    ]
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print_table(
        f"{args.tests} tests, one exchange each; fastest of {args.repeat} runs (ms)",
        ["way", "first test", "per test (rest)", "setup", "call", "teardown"],
        rows,
    )
    overhead = best["replay"][1] - best["direct"][1]
    print(f"\nreplay overhead per test: {overhead * 1000:.2f} ms (goal: under 20 ms)")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
