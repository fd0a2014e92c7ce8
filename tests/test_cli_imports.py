"""A command imports only what it runs: help loads no fuzzer, simulation, page builder or
test framework."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
import typer.main

from aibridge_cli.cli import app
from aibridge_cli.commands import COMMANDS, callback_of

PROBE = """
import sys
from aibridge_cli.cli import main
sys.argv = ["aibridge", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("\\n".join(sorted(sys.modules)), file=sys.stderr)
"""
ALLOWED_FUZZ = {"aibridge_cli.fuzz", "aibridge_cli.fuzz.command"}


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    assert "Usage" in done.stdout
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args", [("--help",), ("serve", "--help"), ("fuzz", "--help"), ("show", "--help")]
)
def test_help_imports_no_fuzzer_no_simulation_no_test_framework(args: tuple[str, ...]) -> None:
    modules = loaded_by(*args)
    assert "aibridge_cli.cli" in modules  # the probe saw the CLI load
    heavy = sorted(
        name
        for name in modules
        if name.startswith(
            ("aibridge_cli.sim", "aibridge_cli.views", "trio.testing", "pytest", "_pytest")
        )
        or (name.startswith("aibridge_cli.fuzz") and name not in ALLOWED_FUZZ)
    )
    assert heavy == []


def test_the_fuzz_workers_module_loads_no_test_framework_and_no_httpx_command_line() -> None:
    # trio.testing imports pytest when it is installed (0.35 billion instructions), httpx
    # its command line (click, pygments: 0.2 billion), in the command before its first
    # iteration.
    probe = "import sys, aibridge_cli.fuzz.campaign; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(done.stdout.split())
    assert {"aibridge_cli.sim.world", "httpx"} <= modules
    unwanted = ("pytest", "_pytest", "trio.testing", "httpx._main", "pygments")
    assert sorted(m for m in modules if m.startswith(unwanted)) == []


@pytest.mark.parametrize("args", [(), ("--help",), ("fuzz", "--help"), ("serve", "-h")])
def test_help_is_typers_rich_help_without_its_markdown_and_traceback_modules(
    args: tuple[str, ...],
) -> None:
    # typer's rich help imports rich.markdown and rich.traceback for what aibridge never
    # shows; the CLI lends it stand-ins: the help must be what the real modules give.
    env = {**os.environ, "COLUMNS": "100"}
    lean, full = (
        subprocess.run(
            [sys.executable, "-c", first + PROBE, *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        for first in ("", "import rich.markdown, rich.traceback\n")
    )
    assert "Usage" in lean.stdout
    assert "─" in lean.stdout  # rich's panels
    assert lean.stdout == full.stdout
    assert not {"rich.markdown", "rich.traceback", "markdown_it"} & set(lean.stderr.split())


@pytest.mark.parametrize(
    ("args", "built"),
    [
        (("--help",), set()),
        ((), set()),
        (("--version",), set()),
        # serve's --chaos options are chaos_command's
        (("serve", "--help"), {"aibridge_cli.proxy.command", "aibridge_cli.proxy.chaos_command"}),
        (("show", "-h"), {"aibridge_cli.sessions.command"}),
        (("fuzz", "-h"), {"aibridge_cli.fuzz.command"}),
    ],
)
def test_a_commands_module_is_imported_only_for_that_command(
    args: tuple[str, ...], built: set[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    modules = set(done.stderr.split())
    assert "aibridge_cli.cli" in modules
    assert {entry.module for entry in COMMANDS.values()} & modules == built
    if not built:  # nor what the commands' options need
        assert not {"aibridge_cli.config", "aibridge_cli.options"} & modules
    if args in {("--help",), ("--version",)}:  # the console (json, logging) prints errors
        assert "aibridge_cli.console" not in modules


@pytest.mark.parametrize("args", [("serve", "--help"), ("chaos", "-h")])
def test_the_chaos_engine_is_imported_by_what_runs_it_not_by_the_help(
    args: tuple[str, ...],
) -> None:
    modules = loaded_by(*args)
    assert "aibridge_cli.proxy.chaos_command" in modules
    assert "aibridge_cli.proxy.chaos" not in modules


def test_a_command_that_uses_httpx_runs_without_httpxs_command_line() -> None:
    # chaos list reaches for the proxy with httpx (nothing listens on port 9: an error)
    args = ("chaos", "list", "--url", "http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    assert "cannot reach http://127.0.0.1:9" in done.stderr
    modules = set(done.stderr.split())
    assert "httpx" in modules
    # (a None under httpx._main is what keeps it out)
    assert sorted(m for m in modules if m.startswith(("click", "pygments", "rich.syntax"))) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_tables_summary_is_the_first_paragraph_of_the_commands_docstring(name: str) -> None:
    entry = COMMANDS[name]
    doc = callback_of(entry).__doc__ or ""
    assert entry.summary == inspect.cleandoc(doc).split("\n\n")[0]


def test_the_root_help_is_the_same_with_every_command_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    ctx = group.context_class(group, info_name="aibridge")
    group.get_help(ctx)
    lean = capsys.readouterr().out
    built = [group.commands[name] for name in group.list_commands(ctx)]
    assert [c.name for c in built] == list(COMMANDS)
    assert all(c.params for c in built)  # the real commands, options and all
    group.get_help(ctx)
    assert capsys.readouterr().out == lean
    for name in COMMANDS:
        assert f" {name} " in lean
