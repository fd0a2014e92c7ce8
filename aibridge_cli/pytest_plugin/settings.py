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

RecordMode = Literal["none", "once", "new", "all", "rewrite"]
"""As VCR's: ``none`` replays only; ``once`` records a test whose file is missing;
``new`` replays what matches and records what does not; ``all`` records afresh, and
``rewrite`` (pytest-recording's name for it) too: the file is replaced."""
RECORD_MODES: tuple[RecordMode, ...] = get_args(RecordMode)
REPLACING: frozenset[RecordMode] = frozenset({"all", "rewrite"})
TIMINGS: tuple[Timing, ...] = get_args(Timing)
MARKER_ARGS = frozenset(
    {"fixture", "record", "timing", "match_on", "ignore", "no_normalize", "allowed_hosts"}
)


@dataclass(frozen=True)
class CassetteSettings:
    """One test's recording."""

    path: Path
    mode: RecordMode
    timing: Timing
    rules: MatchRules
    allowed_hosts: tuple[str, ...] = ()


SESSION_SETTINGS = ("record", "timing", "anthropic_upstream", "openai_upstream")
# ini keys holding lists, one item a line (or blank-separated): the project's rules
LIST_SETTINGS = ("ignore", "match_on", "no_normalize", "allowed_hosts")


@dataclass(frozen=True)
class Defaults:
    """The session-wide settings: the command line's, else the ini file's."""

    mode: RecordMode = "none"
    timing: Timing = "fast"
    anthropic_upstream: str = DEFAULT_ANTHROPIC_URL
    openai_upstream: str = DEFAULT_OPENAI_URL
    cassette_dir: Path | None = None  # None: ``aibridge/`` beside each test module
    ignore: tuple[str, ...] = ()
    match_on: tuple[str, ...] = ()  # empty: every field
    no_normalize: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        given: Mapping[str, str],
        lists: Mapping[str, Sequence[str]] | None = None,
        cassette_dir: Path | None = None,
    ) -> Defaults:
        """From the values of ``SESSION_SETTINGS`` given (an empty one was not), the ini
        lists of ``LIST_SETTINGS`` (checked here, so a bad one fails every test alike)."""
        plain = cls()
        lists = lists or {}
        ignore, match_on, off, allowed = (tuple(lists.get(k, ())) for k in LIST_SETTINGS)
        try:
            MatchRules.of(match_on or None, ignore, off)
        except ConfigError as exc:
            raise ConfigError(f"ini aibridge_{exc}") from None
        return cls(
            record_mode(given["record"], "aibridge_record") if given.get("record") else plain.mode,
            timing(given["timing"], "aibridge_timing") if given.get("timing") else plain.timing,
            given.get("anthropic_upstream") or plain.anthropic_upstream,
            given.get("openai_upstream") or plain.openai_upstream,
            cassette_dir,
            ignore,
            match_on,
            off,
            allowed,
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


def default_path(test_file: Path, nodeid: str, cassette_dir: Path | None = None) -> Path:
    """``<test dir>/aibridge/<module>/<test>.jsonl``, or ``<cassette_dir>/<module>/...``;
    a class and parameters join the name."""
    name = ".".join(nodeid.split("::")[1:]) or test_file.stem
    name = name.replace("[", "-").replace("]", "")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    folder = test_file.parent / "aibridge" if cassette_dir is None else cassette_dir
    return folder / test_file.stem / f"{name}.jsonl"


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
    path = default_path(test_file, nodeid, defaults.cassette_dir)
    if "fixture" in marker:
        path = test_file.parent / Path(str(marker["fixture"]))
    # The marker's match_on replaces the ini's; its ignore paths and normalizers switched
    # off add to the ini's.
    try:
        rules = MatchRules.of(
            _strings(marker["match_on"], "match_on")
            if "match_on" in marker
            else defaults.match_on or None,
            [*defaults.ignore, *_strings(marker.get("ignore", ()), "ignore")],
            [*defaults.no_normalize, *_strings(marker.get("no_normalize", ()), "no_normalize")],
        )
        allowed = _strings(marker.get("allowed_hosts", ()), "allowed_hosts")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return CassetteSettings(
        path=path,
        mode=record_mode(str(marker["record"]), where) if "record" in marker else defaults.mode,
        timing=timing(str(marker["timing"]), where) if "timing" in marker else defaults.timing,
        rules=rules,
        allowed_hosts=(*defaults.allowed_hosts, *allowed),
    )
