"""A file is data: fuzzing a fixture, a repro or a TOML scenario never runs a command it
names unless the command line says ``--allow-commands``.

Each file plants a ``command`` tool that creates a marker file; the marker is the proof.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.fuzz.campaign import REPRO_VERSION
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.scenario import Scenario
from aibridge_cli.sessions.recording import load_fixture

from .cli_process import CLI

BUILTIN = Path(__file__).parent.parent / "aibridge_cli/fixtures/anthropic/injected-tool.jsonl"
runner = CliRunner()


def planting(marker: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran'); print('sunny')"]


def fixture_with_a_command(tmp_path: Path, marker: Path) -> Path:
    """The built-in injected-tool fixture, its tool turned into a command tool."""
    header, *records = BUILTIN.read_text().splitlines()
    planted = []
    for line in records:
        record = json.loads(line)
        for tool in record["tools"]:
            del tool["result"]
            tool["command"] = planting(marker)
        planted.append(json.dumps(record))
    path = tmp_path / "planted.jsonl"
    path.write_text("\n".join([header, *planted]) + "\n")
    return path


def repro_with_a_command(tmp_path: Path, fixture: Path) -> Path:
    record = load_fixture(fixture).interceptions[0]
    scenario = Scenario.from_interception("planted", record, 1, allow_commands=True)
    assert any(tool.command for tool in scenario.tools)
    header = {
        "kind": "fuzz-repro",
        "version": REPRO_VERSION,
        "seed": 1,
        "iteration": 0,
        "iteration_seed": 1,
        "stream_initiation": "eager",
        "oracle": "differential",
        "shape": "",
        "message": "",
    }
    lines = [
        header,
        {"kind": "scenario", **scenario.to_json()},
        {"kind": "plan", **Plan().to_json()},
    ]
    path = tmp_path / "repro-1.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def fuzz(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["fuzz", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("allowed", [False, True])
def test_a_fixture_s_command_tool_answers_from_its_records(tmp_path: Path, allowed: bool) -> None:
    marker = tmp_path / "ran"
    fixture = fixture_with_a_command(tmp_path, marker)
    flag = ["--allow-commands"] if allowed else []
    code, err = fuzz(
        str(fixture), "--iterations", "3", "--seed", "1", "--out", str(tmp_path), *flag
    )
    assert code == 0, err
    assert marker.exists() is allowed


@pytest.mark.parametrize("allowed", [False, True])
def test_a_repro_file_s_command_runs_only_when_allowed(tmp_path: Path, allowed: bool) -> None:
    marker = tmp_path / "ran"
    repro = repro_with_a_command(tmp_path, fixture_with_a_command(tmp_path, marker))
    code, err = fuzz("--repro", str(repro), *(["--allow-commands"] if allowed else []))
    if allowed:
        assert code in (0, 1), err
    else:
        assert code == 2
        assert err.count("\n") == 1, err
        assert "repro-1.jsonl: tool 'bmcp_weather' runs a command" in err
        assert "--allow-commands" in err
    assert marker.exists() is allowed


def test_a_toml_scenario_s_command_is_refused_without_the_flag(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'api = "anthropic"\n[[tool]]\nname = "get_weather"\n'
        f"command = {json.dumps(planting(marker))}\n"
        '[[turn]]\ntool_call = { name = "get_weather", input = {} }\n[[turn]]\ntext = "ok"\n'
    )
    code, err = fuzz("--scenario", str(scenario), "--iterations", "2", "--out", str(tmp_path))
    assert code == 2
    assert err.startswith(f"error: {scenario}: tool 'get_weather' runs a command")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("bad.jsonl", b"\xff\xfe not UTF-8\n", "bad.jsonl:1: not UTF-8 text"),
        ("bad.toml", b"\xff\xfe not UTF-8\n", "bad.toml: scenario is not UTF-8 text"),
        ("blob.bin", bytes(range(256)), "blob.bin:2: not UTF-8 text"),
    ],
)
def test_a_scenario_file_that_is_not_text_is_one_line(
    tmp_path: Path, name: str, content: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, err = fuzz(str(path), "--iterations", "1")
    assert code == 2
    assert err.count("\n") == 1, err
    assert says in err


@pytest.mark.parametrize("name", ["get weather", "<script>", "a" * 129])
def test_a_tool_name_no_provider_takes_is_refused_at_load(tmp_path: Path, name: str) -> None:
    tools = tmp_path / "tools.toml"
    tools.write_text(
        f"[[tool]]\nname = {json.dumps(name)}\ndescription = 'd'\ninput_schema = {{}}\n"
        "result = 'x'\n"
    )
    # a process, bounded: a proxy that accepted the name would serve for ever
    done = subprocess.run(
        [*CLI, "serve", "--port", "0", "--tools", str(tools)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"tool name {name!r} is not a tool name" in done.stderr
