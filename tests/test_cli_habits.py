"""What a user of a command line expects: -h, an example in every help, readable
placeholders, the allowed values, a variable for every option, JSON logs, a help that
starts fast."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from aibridge_cli.cli import app, environment_variables
from aibridge_cli.options import format_size, parse_size

# every command, those added later too
COMMANDS = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
ROOT = Path(__file__).resolve().parent.parent


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "-h"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_short_help_an_example_and_readable_placeholders(command: str) -> None:
    text = help_of(command)
    assert f"Usage: aibridge {command}" in text
    assert re.search(rf"Example: aibridge {command} ", text), text
    # typer's own placeholders name Python types: <int>, <bool>, <list[str]>
    assert not re.search(r"<[a-z\[\]|, ]+>", text, re.IGNORECASE), text
    assert f"[env var: AIBRIDGE_{command.upper()}_" in text


def test_allowed_values_are_listed_in_the_help() -> None:
    serve = help_of("serve")
    assert "debug|info|warning|error" in serve
    assert "eager|lazy" in serve
    assert "text|json" in serve
    assert "default 32MiB" in serve
    assert "recorded|fast" in help_of("mock")


def test_the_root_help_lists_commands_completion_and_the_environment_rule() -> None:
    text = help_of()
    for command in COMMANDS:
        assert command in text
    assert "--install-completion" in text
    assert "AIBRIDGE_<COMMAND>_<OPTION>" in text
    assert not re.search(r"<[a-z\[\]|, ]+>", text), text


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024", 1024), ("64KiB", 65536), ("32MiB", 32 << 20), ("1.5MB", 1_500_000), ("2g", 2 << 30)],
)
def test_sizes_read_with_units_and_show_the_same_way(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


def test_an_option_is_read_from_its_environment_variable() -> None:
    result = CliRunner().invoke(app, ["serve"], env={"AIBRIDGE_SERVE_PORT": "99999"})
    assert result.exit_code == 2
    assert "99999 is not a port" in result.stderr
    result = CliRunner().invoke(
        app, ["serve", "--port", "0"], env={"AIBRIDGE_SERVE_LOG_LEVEL": "loud"}
    )
    assert "'loud' is not one of" in result.stderr


def test_every_option_has_a_variable_in_the_readme_table() -> None:
    variables = [v for vs in environment_variables().values() for v in vs]
    assert "AIBRIDGE_SERVE_MAX_BODY_SIZE" in variables
    assert "AIBRIDGE_FUZZ_ITERATIONS" in variables
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/env_table.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{v}`" in readme for v in variables)


def test_json_logs_are_one_object_per_line() -> None:
    result = CliRunner().invoke(
        app,
        ["replay", "--builtin", "anthropic/simple", "--log-level", "info", "--log-format", "json"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    requests = [line for line in lines if line["logger"] == "aibridge.requests"]
    assert len(requests) == 2
    assert {line["level"] for line in requests} == {"info"}
    assert requests[0]["message"].startswith("POST /anthropic/v1/messages 200 ")
    assert isinstance(requests[0]["time"], float)


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("aibridge se", ["serve"]),
        ("aibridge serve --log-level ", ["debug", "info", "warning", "error"]),
    ],
)
def test_shell_completion_offers_commands_and_allowed_values(
    words: str, offered: list[str]
) -> None:
    env = {
        "_AIBRIDGE_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    result = CliRunner().invoke(app, [], prog_name="aibridge", env=env)
    assert result.exit_code == 0
    assert result.stdout.split() == offered


def test_replay_shows_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from aibridge_cli.sessions import command

    result = CliRunner().invoke(app, ["replay", "--builtin", "anthropic/simple"])
    assert result.exit_code == 0
    assert result.stderr == ""  # piped: the report alone, no bar drawn into a log
    screen = io.StringIO()
    monkeypatch.setattr(command, "stderr", Console(file=screen, force_terminal=True, width=80))
    with command.replay_progress(3) as replayed:
        for _ in range(3):
            replayed()
    assert "replay" in screen.getvalue()
    assert "3/3" in screen.getvalue()
