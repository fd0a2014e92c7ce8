"""A command imports only what it runs: help loads no fuzzer, simulation, page builder or
test framework."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
