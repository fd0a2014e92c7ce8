"""Where scenarios come from: the built-in ones, and fixture files named on the command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, FixtureError
from .builtin import BUILTIN
from .scenario import Scenario


def builtin_names() -> list[str]:
    return sorted(BUILTIN)


def builtin(name: str) -> Scenario:
    if name not in BUILTIN:
        known = ", ".join(builtin_names())
        raise ConfigError(f"no built-in scenario {name!r} (known: {known})")
    return Scenario.from_interception(name, BUILTIN[name]())


def from_file(path: Path) -> Scenario:
    """A scenario from a JSONL file holding a ``scenario`` line (a repro file has one)."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise FixtureError(f"{path}: not JSON lines: {exc}") from None
    for line in lines:
        if isinstance(line, dict) and line.get("kind") == "scenario":
            try:
                return Scenario.from_json({k: v for k, v in line.items() if k != "kind"})
            except (KeyError, TypeError, ValueError) as exc:
                raise FixtureError(f"{path}: malformed scenario: {exc}") from None
    raise FixtureError(f"{path}: no scenario line in this file")


def select(names: Sequence[str], files: Sequence[Path]) -> tuple[Scenario, ...]:
    """The named built-ins and the files; every built-in when neither is given."""
    chosen = [builtin(name) for name in names] + [from_file(path) for path in files]
    if not chosen:
        chosen = [builtin(name) for name in builtin_names()]
    return tuple(chosen)
