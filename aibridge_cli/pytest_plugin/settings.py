"""What one test's recording is: its file, record mode, timing and matching rules.

Built from the command line, the ini file and the test's ``aibridge`` marker, the marker
winning; no pytest import, so it is plain data to test and to pass around.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ..config import DEFAULT_ANTHROPIC_URL, DEFAULT_OPENAI_URL
from ..errors import ConfigError
from ..sessions.matching import MatchRules
from ..sessions.mock import Timing

RecordMode = Literal["none", "once", "new", "all"]
"""As VCR's: ``none`` replays only; ``once`` records a test whose file is missing;
``new`` replays what matches and records what does not; ``all`` records afresh."""
RECORD_MODES: tuple[RecordMode, ...] = get_args(RecordMode)
TIMINGS: tuple[Timing, ...] = get_args(Timing)
MARKER_ARGS = frozenset({"fixture", "record", "timing", "match_on", "ignore"})


@dataclass(frozen=True)
class CassetteSettings:
    """One test's recording."""

    path: Path
    mode: RecordMode
    timing: Timing
    rules: MatchRules


SESSION_SETTINGS = ("record", "timing", "anthropic_upstream", "openai_upstream")


@dataclass(frozen=True)
class Defaults:
    """The session-wide settings: the command line's, else the ini file's."""

    mode: RecordMode = "none"
    timing: Timing = "fast"
    anthropic_upstream: str = DEFAULT_ANTHROPIC_URL
    openai_upstream: str = DEFAULT_OPENAI_URL

    @classmethod
    def of(cls, given: Mapping[str, str]) -> Defaults:
        """From the values of ``SESSION_SETTINGS`` given (an empty one was not)."""
        plain = cls()
        return cls(
            record_mode(given["record"], "aibridge_record") if given.get("record") else plain.mode,
            timing(given["timing"], "aibridge_timing") if given.get("timing") else plain.timing,
            given.get("anthropic_upstream") or plain.anthropic_upstream,
            given.get("openai_upstream") or plain.openai_upstream,
        )


def record_mode(value: str, where: str) -> RecordMode:
    for mode in RECORD_MODES:
        if value == mode:
            return mode
    raise ConfigError(f"{where}: record mode {value!r} is not one of {', '.join(RECORD_MODES)}")


def timing(value: str, where: str) -> Timing:
    for choice in TIMINGS:
        if value == choice:
            return choice
    raise ConfigError(f"{where}: timing {value!r} is not one of {', '.join(TIMINGS)}")


def default_path(test_file: Path, nodeid: str) -> Path:
    """``<test dir>/aibridge/<module>/<test>.jsonl``; a class and parameters join the name."""
    name = ".".join(nodeid.split("::")[1:]) or test_file.stem
    name = name.replace("[", "-").replace("]", "")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return test_file.parent / "aibridge" / test_file.stem / f"{name}.jsonl"


def shown(path: Path) -> str:
    """``path`` as a message shows it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: expected a string or a list of strings, not {value!r}")


def settings_for(
    test_file: Path, nodeid: str, marker: Mapping[str, Any], defaults: Defaults
) -> CassetteSettings:
    """The settings of one test; ``marker`` is its ``aibridge`` marker's keyword arguments."""
    where = f"{nodeid}: @pytest.mark.aibridge"
    unknown = sorted(set(marker) - MARKER_ARGS)
    if unknown:
        known = ", ".join(sorted(MARKER_ARGS))
        raise ConfigError(f"{where}: unknown argument {unknown[0]!r} (known: {known})")
    path = default_path(test_file, nodeid)
    if "fixture" in marker:
        path = test_file.parent / Path(str(marker["fixture"]))
    try:
        rules = MatchRules.of(
            _strings(marker["match_on"], "match_on") if "match_on" in marker else None,
            _strings(marker.get("ignore", ()), "ignore"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return CassetteSettings(
        path=path,
        mode=record_mode(str(marker["record"]), where) if "record" in marker else defaults.mode,
        timing=timing(str(marker["timing"]), where) if "timing" in marker else defaults.timing,
        rules=rules,
    )
