"""``aibridge fuzz`` from the outside: listing, usage errors, reproducibility, shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin

SEED_CASE = "anthropic/rate-limit-after-tool-turn"
runner = CliRunner()


def test_list_shows_scenarios_fault_kinds_and_oracles() -> None:
    result = runner.invoke(app, ["fuzz", "--list"])
    assert result.exit_code == 0
    for word in (SEED_CASE, "429-all", "client-disconnect", "malformed-body"):
        assert word in result.output


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["fuzz", "--shard", "5/4"]).exit_code == 2
    assert runner.invoke(app, ["fuzz", "--scenario", "nope/none"]).exit_code == 2
    assert runner.invoke(app, ["fuzz", "--target", "http://127.0.0.1:1"]).exit_code == 2
    assert runner.invoke(app, ["fuzz", "--iterations", "lots"]).exit_code == 2


def _fuzz(tmp_path: Path, hash_seed: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "COLUMNS": "200"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aibridge_cli",
            "fuzz",
            "--scenario",
            SEED_CASE,
            "--stream-initiation",
            "lazy",
            "--iterations",
            "3",
            "--seed",
            "1",
            "--out",
            str(tmp_path / hash_seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_a_failing_seed_gives_the_same_report_in_two_processes(tmp_path: Path) -> None:
    # Both at once: two cores, and different hash seeds for every set and dict of str.
    processes = _fuzz(tmp_path, "1"), _fuzz(tmp_path, "4242")
    first, second = (_wait(p) for p in processes)
    assert first.returncode == second.returncode == 1, first.stderr
    assert "FAIL malformed-body" in first.stdout
    assert first.stdout.replace("/4242/", "/1/") == second.stdout.replace("/4242/", "/1/")
    repro = next((tmp_path / "1").glob("repro-*.jsonl"))
    assert repro.read_text() == (tmp_path / "4242" / repro.name).read_text()
    # beside each repro its page, the same from both processes and from --repro --html
    page = repro.with_suffix(".html")
    assert page.read_text() == (tmp_path / "4242" / page.name).read_text()
    again = tmp_path / "again.html"
    replayed = runner.invoke(app, ["fuzz", "--repro", str(repro), "--json", "--html", str(again)])
    assert again.read_text() == page.read_text()
    assert replayed.exit_code == 1
    finding = json.loads(replayed.stdout)
    assert finding["oracle"] == "malformed-body"
    timeline = first.stdout.split("timeline (", 1)[1].split("\n", 1)[1].split("repro:", 1)[0]
    assert [line.strip() for line in finding["timeline"]] == [
        line.strip() for line in timeline.strip().splitlines()
    ]


def test_shards_together_run_and_find_exactly_what_one_run_does() -> None:
    scenarios = (*builtin(SEED_CASE), *builtin("anthropic/simple#streaming"))
    whole = run_campaign(Settings(scenarios, 3, 30, "lazy"), investigate=False)
    parts = [
        run_campaign(Settings(scenarios, 3, 30, "lazy", shard=(k, 4)), investigate=False)
        for k in range(1, 5)
    ]
    ran = sorted(o.iteration for p in parts for o in p.outcomes)
    assert ran == list(range(30))
    failed = sorted((o.iteration, o.oracle) for p in parts for o in p.failures)
    assert failed == [(o.iteration, o.oracle) for o in whole.failures]
    assert whole.failures


def test_fixture_files_are_scenarios_and_junit_lists_every_oracle(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "aibridge_cli/fixtures/anthropic/simple.jsonl"
    junit = tmp_path / "fuzz.xml"
    result = runner.invoke(
        app,
        [
            "fuzz",
            str(fixture),
            "--iterations",
            "4",
            "--seed",
            "2",
            "--junit",
            str(junit),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "simple#streaming" in result.output or "simple#blocking" in result.output
    xml = junit.read_text()
    assert 'name="malformed-body"' in xml
    assert "<failure" not in xml
