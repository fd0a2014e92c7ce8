"""``aibridge fuzz`` from the outside: listing, usage errors, reproducibility, shards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.fuzz.campaign import Settings, Shard, run_campaign
from aibridge_cli.fuzz.catalog import builtin, select

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


def _fuzz(tmp_path: Path, hash_seed: str, argv: list[str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "COLUMNS": "200"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aibridge_cli",
            "fuzz",
            *(
                argv
                or ["--scenario", SEED_CASE, "--stream-initiation", "lazy", "--iterations", "3"]
            ),
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
    repros = sorted((tmp_path / "1").glob("repro-*.jsonl"))
    assert [r.read_text() for r in repros] == [
        (tmp_path / "4242" / r.name).read_text() for r in repros
    ]
    # Each distinct failure has its own repro, and each replays to its own signature; beside
    # each repro its page, the same from both processes and from --repro --html.
    for repro in repros:
        page = repro.with_suffix(".html")
        assert page.read_text() == (tmp_path / "4242" / page.name).read_text()
        header = json.loads(repro.read_text().splitlines()[0])
        again = tmp_path / f"again-{repro.stem}.html"
        replayed = runner.invoke(
            app, ["fuzz", "--repro", str(repro), "--json", "--html", str(again)]
        )
        assert again.read_text() == page.read_text()
        assert replayed.exit_code == 1
        finding = json.loads(replayed.stdout)
        assert finding["signature"]["oracle"] == header["oracle"]
        assert finding["signature"]["shape"] == header["shape"]
        if header["oracle"] == "malformed-body":
            timeline = first.stdout.split("timeline (", 1)[1].split("\n", 1)[1]
            timeline = timeline.split("repro:", 1)[0]
            assert [line.strip() for line in finding["timeline"]] == [
                line.strip() for line in timeline.strip().splitlines()
            ]
    assert any("malformed-body" in r.read_text() for r in repros)


def test_shards_together_run_and_find_exactly_what_one_run_does() -> None:
    scenarios = (*builtin(SEED_CASE), *builtin("anthropic/simple#streaming"))
    whole = run_campaign(Settings(scenarios, 3, 30, "lazy"), investigate=False)
    parts = [
        run_campaign(Settings(scenarios, 3, 30, "lazy", shard=Shard(k, 4)), investigate=False)
        for k in range(1, 5)
    ]
    ran = sorted(o.iteration for p in parts for o in p.outcomes)
    assert ran == list(range(30))
    failed = sorted((o.iteration, o.oracle) for p in parts for o in p.failures)
    assert failed == [(o.iteration, o.oracle) for o in whole.failures]
    assert whole.failures


def test_workers_run_and_find_exactly_what_one_process_does() -> None:
    # two batches, one per worker (forked from this process on Linux, which has run
    # worlds already: each worker's must still be the runs one process gives)
    scenarios = (*builtin(SEED_CASE), *builtin("anthropic/simple#streaming"))
    alone = run_campaign(Settings(scenarios, 3, 30, "lazy"), investigate=False)
    workers = run_campaign(Settings(scenarios, 3, 30, "lazy", jobs=2), investigate=False)
    assert workers.outcomes == alone.outcomes
    assert [o.iteration for o in workers.outcomes] == list(range(30))
    assert alone.failures


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
            "--each",  # one scenario per interception (without: the file is one session)
        ],
    )
    assert result.exit_code == 0, result.output
    assert "simple#streaming" in result.output or "simple#blocking" in result.output
    xml = junit.read_text()
    assert 'name="malformed-body"' in xml
    assert "<failure" not in xml


SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def test_every_usage_and_setup_error_exits_2_with_one_line(tmp_path: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('api = "anthropic"\n[[turn]]\nstatus = 200\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        cases = [
            ["--iterations", "0"],
            ["--iterations", "-3"],
            ["--time-budget", "-1"],
            ["--jobs", "0"],
            ["--max-findings", "0"],
            ["--fault", "teapot"],
            ["--no-fault", "429"],
            ["--skip-oracle", "vibes"],
            ["--scenario", str(bad_toml)],
            ["--scenario", str(tmp_path / "missing.toml")],
            ["--target", "http://127.0.0.1:1", "--upstream-port", "0"],
            ["--target", f"http://127.0.0.1:{taken}", "--upstream-port", str(taken)],
            ["--target", "ftp://x", "--upstream-port", "1"],
            ["--upstream-port", "99999", "--target", "http://127.0.0.1:1"],
        ]
        for args in cases:
            result = runner.invoke(app, ["fuzz", *args])
            assert result.exit_code == 2, (args, result.output)
            assert "Traceback" not in result.output
            assert len(result.output.strip().splitlines()) == 1, (args, result.output)


def test_a_toml_scenario_401_on_every_key_after_a_tool_turn(tmp_path: Path) -> None:
    # 15 lines of TOML; lazy initiation answers the all-keys-failed error after the SSE
    # head went out (the seed race), eager never does.
    path = SCENARIOS / "401-after-tool-turn.toml"
    assert len(path.read_text().splitlines()) <= 15
    scenarios = select([str(path)], [])
    lazy = run_campaign(Settings(scenarios, 1, 12, "lazy"), investigate=False)
    eager = run_campaign(Settings(scenarios, 1, 12, "eager"), investigate=False)
    assert "JSON 502 then SSE" in {s.shape for o in lazy.failures for s in o.signatures}
    assert eager.failures == []


def test_a_command_tool_scenario_gives_the_same_report_in_two_processes(tmp_path: Path) -> None:
    argv = ["--scenario", str(SCENARIOS / "weather-command.toml"), "--iterations", "40"]
    argv.append("--allow-commands")  # the file runs a command: only when told to
    processes = [_fuzz(tmp_path, seed, argv) for seed in ("1", "4242")]
    first, second = (_wait(p) for p in processes)
    assert first.returncode == second.returncode == 0, first.stdout + first.stderr
    assert first.stdout == second.stdout
    assert "no failures" in first.stdout


def test_list_describes_each_scenario_on_one_line() -> None:
    result = runner.invoke(app, ["fuzz", "--list"], env={"COLUMNS": "400"})
    line = next(x for x in result.output.splitlines() if SEED_CASE in x)
    assert (
        "streaming, 2 key(s), injected bmcp_weather; upstream: tool call bmcp_weather -> 429"
        in line
    )
    assert "error-surfaced" in result.output
    assert "generic" in result.output


def test_oracles_and_faults_narrow_a_campaign(tmp_path: Path) -> None:
    args = ["fuzz", "--scenario", SEED_CASE, "--stream-initiation", "lazy", "--seed", "1"]
    args += ["--iterations", "30", "--out", str(tmp_path), "--json"]
    wide = json.loads(runner.invoke(app, args).stdout)
    narrow = runner.invoke(
        app,
        [*args, "--skip-oracle", "malformed-body", "--oracles", "generic", "--no-fault", "429-all"],
    )
    data = json.loads(narrow.stdout)
    assert "malformed-body" in {s["oracle"] for s in wide["signatures"]}
    assert "key-pool" in wide["oracles"]
    assert "key-pool" not in data["oracles"]
    assert {s["oracle"] for s in data["signatures"]} <= set(data["oracles"])
    assert "malformed-body" not in data["oracles"]


def test_repro_show_body_prints_the_whole_client_body(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "fuzz",
            "--scenario",
            SEED_CASE,
            "--stream-initiation",
            "lazy",
            "--seed",
            "1",
            "--iterations",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    repro = sorted(tmp_path.glob("repro-*.jsonl"))[0]
    shown = runner.invoke(
        app, ["fuzz", "--repro", str(repro), "--show-body"], env={"COLUMNS": "400"}
    )
    replayed = runner.invoke(app, ["fuzz", "--repro", str(repro), "--json"])
    body = json.loads(replayed.stdout)
    assert shown.exit_code == 1
    assert "client response: status" in shown.output
    for line in body["client"]["body"].splitlines():
        assert line in shown.output


def test_loads_give_byte_identical_reports_across_processes_and_job_counts(
    tmp_path: Path,
) -> None:
    # Every load scenario in one campaign, lazy (so it finds things: findings, repros,
    # pages), in two processes with different hash seeds, one job against two.
    scenarios = sorted((Path(__file__).parent / "scenarios").glob("*.toml"))
    argv = [arg for path in scenarios for arg in ("--scenario", str(path))]
    argv += ["--allow-commands", "--stream-initiation", "lazy", "--iterations", "40", "--json"]
    processes = (
        _fuzz(tmp_path, "1", [*argv, "--jobs", "1"]),
        _fuzz(tmp_path, "4242", [*argv, "--jobs", "2"]),
    )
    one, two = (_wait(p) for p in processes)
    assert one.returncode == two.returncode == 1, one.stderr
    report = json.loads(one.stdout)
    assert len(report["scenarios"]) == len(scenarios)
    assert report["findings"]
    assert one.stdout.replace(str(tmp_path / "1"), "OUT") == two.stdout.replace(
        str(tmp_path / "4242"), "OUT"
    )
    written = sorted(p.name for p in (tmp_path / "1").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "4242").iterdir())
    assert {name.rsplit(".", 1)[1] for name in written} == {"jsonl", "html"}
    for name in written:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "4242" / name).read_bytes()
