"""Every file aibridge writes that can hold traffic is its owner's alone (0600), whatever
the umask: recordings, session and reproducer pages, repro files, reports, imports."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.sessions.recording import FixtureWriter

runner = CliRunner()
REFERENCE = Path("/work/shared/reference/aibridge-fixtures/anthropic")


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common 022: a file created the plain way would be world-readable."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_recording_is_private(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    writer = FixtureWriter(path)  # its header is written at once
    assert mode(path) == 0o600
    writer.close()


def test_a_session_page_is_private_also_over_an_older_one(tmp_path: Path) -> None:
    page = tmp_path / "s.html"
    page.write_text("an older page")
    page.chmod(0o644)
    result = runner.invoke(app, ["show", "--builtin", "anthropic/simple", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert mode(page) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["s.html"]  # no temporary left


def test_a_campaign_s_repros_pages_and_report_are_private(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["fuzz", "--scenario", "anthropic/rate-limit-after-tool-turn"]
    args += ["--stream-initiation", "lazy", "--seed", "1", "--iterations", "6"]
    args += ["--max-findings", "1", "--out", str(out), "--junit", str(out / "r.xml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.stderr  # the planted race is found
    written = sorted(out.iterdir())
    assert {p.suffix for p in written} == {".jsonl", ".html", ".xml"}
    assert {mode(p) for p in written} == {0o600}
    repro = next(p for p in written if p.suffix == ".jsonl")
    page = tmp_path / "again.html"
    result = runner.invoke(app, ["fuzz", "--repro", str(repro), "--html", str(page)])
    assert result.exit_code == 1, result.stderr
    assert mode(page) == 0o600


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference txtar fixtures are absent")
def test_an_imported_fixture_is_private(tmp_path: Path) -> None:
    txtar = sorted(REFERENCE.glob("*.txtar"))[0]
    result = runner.invoke(app, ["import", str(txtar), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    assert {mode(p) for p in tmp_path.iterdir()} == {0o600}
