"""Where scenarios come from: the built-in fixtures, and fixture files named on the command line.

Every interception of a built-in fixture is one scenario, named after the fixture
(``anthropic/simple``), with ``#label`` when the file holds several
(``anthropic/simple#blocking``). ``--scenario`` takes either form, or a provider
(``anthropic``) for all of its scenarios. A fixture file named on the command line is one
session (``session.py``): its HTTP interceptions of one provider in one world, at their
recorded offsets; ``--each`` makes it one scenario per interception, as the built-ins.

The built-in loads (``fixtures/loads/*.toml``, named ``loads/NAME``; ``loads`` selects them
all) are TOML scenarios with several clients in one world, or several responses on one
socket: without them the default campaign holds one request per world, and what requests
share (the key pool under concurrency, the recorder, the circuit breaker, a client
connection's upstream socket) is never judged by it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..sessions.builtin import list_builtin, load_builtin
from ..sessions.fixture import Fixture, is_pass_through, parse_fixture, provider_of
from ..sessions.recording import read_text
from .scenario import Scenario, refuse_commands


def fixture_scenarios(
    name: str, fixture: Fixture, allow_commands: bool = False, session: bool = False
) -> list[Scenario]:
    """The fixture's scenarios: one per interception, or (``session``) one session of its
    HTTP interceptions of the first one's provider, then one per interception left."""
    records = fixture.interceptions
    chosen = []
    for i, record in enumerate(records):
        if is_pass_through(record.api):
            continue  # the fuzzer drives intercepted APIs; a pass-through has no grammar
        label = fixture.labels[i] if i < len(fixture.labels) and fixture.labels[i] else str(i)
        chosen.append((label, record))
    together = [
        (label, record)
        for label, record in chosen
        if record.transport == "http" and provider_of(record.api) == provider_of(chosen[0][1].api)
    ] if session and chosen else []  # fmt: skip
    out = []
    if len(together) > 1:
        from .session import session_scenario

        keys = fixture.keys_count(provider_of(together[0][1].api))
        out.append(session_scenario(name, together, keys, allow_commands))
        chosen = [c for c in chosen if c not in together]
    for label, record in chosen:
        full = name if len(records) == 1 else f"{name}#{label}"
        out.append(
            Scenario.from_interception(
                full, record, fixture.keys_count(provider_of(record.api)), allow_commands
            )
        )
    return out


@cache
def builtin_scenarios() -> tuple[Scenario, ...]:
    return _builtin_fixtures() + builtin_loads()


@cache
def _builtin_fixtures() -> tuple[Scenario, ...]:
    return tuple(
        scenario
        for name, fixture in zip(list_builtin(), load_builtin(), strict=True)
        for scenario in fixture_scenarios(name, fixture)
    )


def _fixture_named(name: str) -> list[Scenario]:
    """A built-in fixture's scenarios, for a shipped socket's ``fixtures``: the loads are
    not yet built when they are read, and a load names fixtures only."""
    return _named(name, _builtin_fixtures())


def builtin_loads() -> tuple[Scenario, ...]:
    """The shipped loads, ``loads/NAME`` each, sorted by name."""
    from .toml_scenario import scenario_from_toml

    folder = resources.files("aibridge_cli") / "fixtures" / "loads"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return tuple(
        scenario_from_toml(
            f"loads/{f.name[: -len('.toml')]}",
            tomllib.loads(f.read_text(encoding="utf-8")),
            f"builtin:loads/{f.name}",
            _fixture_named,
        )
        for f in files
    )


def builtin_names() -> list[str]:
    return [scenario.name for scenario in builtin_scenarios()]


def builtin(name: str) -> list[Scenario]:
    """The built-in scenarios called ``name``: a fixture or a provider selects all of its own."""
    return _named(name, builtin_scenarios())


def _named(name: str, scenarios: Sequence[Scenario]) -> list[Scenario]:
    chosen = [s for s in scenarios if name in (s.name, s.name.split("#")[0], s.name.split("/")[0])]
    if not chosen:
        raise ConfigError(f"no built-in scenario {name!r} (see aibridge fuzz --list)")
    return chosen


def from_file(path: Path, allow_commands: bool = False, each: bool = False) -> list[Scenario]:
    """The scenarios of a fixture file (one session, or with ``each`` one per
    interception); the one scenario of a TOML or a repro file. A fixture's command tools
    answer from its records, a TOML or repro file's are refused, unless ``allow_commands``
    (the command line's ``--allow-commands``)."""
    if path.suffix == ".toml":
        from .toml_scenario import load_toml_scenario

        scenario = load_toml_scenario(path, builtin)
        if not allow_commands:
            refuse_commands(scenario.tools, str(path))
        return [scenario]
    text = read_text(path, " (expected a fixture or a repro file)")
    first = text.lstrip().split("\n", 1)[0]
    try:
        is_repro = json.loads(first).get("kind") == "fuzz-repro"
    except (ValueError, AttributeError):
        is_repro = False
    if is_repro:
        from .campaign import load_repro

        return [load_repro(path, allow_commands)[1]]
    fixture = parse_fixture(text, str(path))
    return fixture_scenarios(path.stem, fixture, allow_commands, session=not each)


def _is_file_name(name: str) -> bool:
    """A ``--scenario`` that names a file (a path, or a .toml/.jsonl name), not a built-in."""
    return name.endswith((".toml", ".jsonl")) or Path(name).is_file()


def select(
    names: Sequence[str], files: Sequence[Path], allow_commands: bool = False, each: bool = False
) -> tuple[Scenario, ...]:
    """The named built-ins or scenario files, and the files' scenarios (``each``: a
    fixture's interceptions one by one, not as a session); every built-in when neither
    is given."""
    chosen = [
        s
        for name in names
        for s in (
            from_file(Path(name), allow_commands, each) if _is_file_name(name) else builtin(name)
        )
    ]
    chosen += [s for path in files for s in from_file(path, allow_commands, each)]
    return tuple(chosen) if chosen else builtin_scenarios()
