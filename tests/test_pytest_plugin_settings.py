"""A test's recording settings from its marker (pytest_plugin/settings.py), and the
recorded timing a replay plays back."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.interception import Chunk, ClientRequest, Interception, ResponseLog
from aibridge_cli.pytest_plugin.settings import Defaults, default_path, settings_for
from aibridge_cli.sessions.fixture import Fixture
from aibridge_cli.sessions.matching import MatchRules
from aibridge_cli.sessions.mock import MockUpstream, reply_for

TEST_FILE = Path("/project/tests/test_agent.py")


def test_the_default_file_sits_beside_the_test_module_named_for_the_test() -> None:
    assert default_path(TEST_FILE, "tests/test_agent.py::test_weather") == Path(
        "/project/tests/aibridge/test_agent/test_weather.jsonl"
    )
    assert default_path(TEST_FILE, "tests/test_agent.py::TestAgent::test_x[paris-1/2]") == Path(
        "/project/tests/aibridge/test_agent/TestAgent.test_x-paris-1_2.jsonl"
    )


def test_the_marker_wins_over_the_session_defaults() -> None:
    defaults = Defaults(mode="none", timing="fast")
    settings = settings_for(
        TEST_FILE,
        "tests/test_agent.py::test_weather",
        {"fixture": "shared/w.jsonl", "record": "new", "timing": "recorded", "ignore": "temp"},
        defaults,
    )
    assert settings.path == Path("/project/tests/shared/w.jsonl")
    assert (settings.mode, settings.timing) == ("new", "recorded")
    assert settings.rules == MatchRules(MatchRules().match_on, ("temp",))
    plain = settings_for(TEST_FILE, "tests/test_agent.py::test_weather", {}, defaults)
    assert (plain.mode, plain.timing, plain.rules) == ("none", "fast", MatchRules())


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ({"cassette": "x"}, "unknown argument 'cassette'"),
        ({"record": "sometimes"}, "record mode 'sometimes' is not one of none, once, new, all"),
        ({"timing": "slow"}, "timing 'slow' is not one of recorded, fast"),
        ({"match_on": ["path", 3]}, "match_on: expected a string or a list of strings"),
    ],
)
def test_a_bad_marker_is_one_clear_error(marker: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_for(TEST_FILE, "t.py::test_x", marker, Defaults())


def test_recorded_timing_replays_the_gaps_between_chunks_and_fast_none() -> None:
    response = ResponseLog(
        status=200, chunks=[Chunk(120.0, b"a"), Chunk(150.0, b"b"), Chunk(400.0, b"c")]
    )
    record = Interception("anthropic", ClientRequest("POST", "/anthropic/v1/messages", [], {}), 0)
    record.new_exchange("POST", "/v1/messages", {"model": "m"}, None).response = response
    (expected,) = MockUpstream([Fixture("f.jsonl", [record], ["#1"])]).expected
    assert list(reply_for(expected, "recorded").delays) == [0.12, 0.03, 0.25]
    assert list(reply_for(expected, "fast").delays) == [0.0, 0.0, 0.0]


def test_session_defaults_take_what_was_given_and_check_it() -> None:
    assert Defaults.of({"record": "", "timing": "", "anthropic_upstream": ""}) == Defaults()
    given = Defaults.of({"record": "all", "openai_upstream": "http://127.0.0.1:9/v1"})
    assert (given.mode, given.openai_upstream) == ("all", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="aibridge_record: record mode 'al' is not one of"):
        Defaults.of({"record": "al"})


def test_ini_rules_are_the_base_and_the_marker_adds_to_them_or_replaces_match_on() -> None:
    lists = {
        "ignore": ["$.metadata"],
        "match_on": ["method,path"],
        "no_normalize": ["ids"],
        "allowed_hosts": ["db.internal"],
    }
    defaults = Defaults.of({}, lists, cassette_dir=Path("/project/cassettes"))
    marker = {"ignore": "temp", "no_normalize": ["codex-date"], "allowed_hosts": "x.test"}
    settings = settings_for(TEST_FILE, "tests/test_agent.py::test_weather", marker, defaults)
    assert settings.path == Path("/project/cassettes/test_agent/test_weather.jsonl")
    assert settings.rules == MatchRules(
        frozenset({"method", "path"}), ("metadata", "temp"), frozenset({"ids", "codex-date"})
    )
    assert settings.allowed_hosts == ("db.internal", "x.test")
    own = settings_for(TEST_FILE, "t.py::test_x", {"match_on": "body"}, defaults)
    assert own.rules.match_on == {"body"}
    with pytest.raises(ConfigError, match="ini aibridge_no_normalize: unknown normalizer 'x'"):
        Defaults.of({}, {"no_normalize": ["x"]})
