"""Request matching (sessions/matching.py): what counts as the same request, and the diff
shown against the closest recorded one when nothing matches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.sessions.matching import (
    ANY_BODY,
    MatchRules,
    RequestShape,
    closest,
    differences,
    matches,
    request_shape,
)

RULES = MatchRules()
BODY = {
    "model": "claude-test",
    "max_tokens": 64,
    "metadata": {"user_id": "session-1"},
    "messages": [{"role": "user", "content": "Hi"}],
}


def shape(body: Any, target: str = "/v1/messages", rules: MatchRules = RULES) -> RequestShape:
    raw = body if body is ANY_BODY else json.dumps(body).encode()
    return request_shape("POST", target, raw, rules)


def test_ids_timestamps_and_a_missing_stream_do_not_tell_requests_apart() -> None:
    recorded = shape({**BODY, "stream": False})
    seen = shape({**BODY, "metadata": {"user_id": "session-2"}})
    assert matches(recorded, seen, RULES)
    assert not matches(recorded, shape({**BODY, "stream": True}), RULES)


def test_a_changed_prompt_is_named_by_its_path_in_the_body() -> None:
    changed = {**BODY, "messages": [{"role": "user", "content": "Bye"}]}
    assert differences(shape(BODY), shape(changed), RULES) == [
        "request body messages[0].content: expected 'Hi', got 'Bye'"
    ]


def test_query_order_does_not_matter_but_its_values_do() -> None:
    a = shape(BODY, "/v1/messages?beta=true&x=1")
    assert matches(a, shape(BODY, "/v1/messages?x=1&beta=true"), RULES)
    assert differences(a, shape(BODY, "/v1/messages"), RULES) == [
        "request query: expected beta=true&x=1, got (none)"
    ]


def test_ignore_drops_fields_by_dotted_path_and_match_on_narrows_the_fields() -> None:
    rules = MatchRules.of(ignore=["max_tokens", "messages.*.role"])
    other = {**BODY, "max_tokens": 9, "messages": [{"role": "assistant", "content": "Hi"}]}
    assert matches(shape(BODY, rules=rules), shape(other, rules=rules), rules)
    assert not matches(shape(BODY), shape(other), RULES)
    route_only = MatchRules.of(["method", "path"])
    assert matches(shape(BODY), shape({"any": "thing"}), route_only)
    with pytest.raises(ConfigError, match="unknown field 'bodies'"):
        MatchRules.of(["bodies"])


def test_a_body_not_recorded_matches_any_and_bytes_compare_as_bytes() -> None:
    assert matches(shape(ANY_BODY), shape(BODY), RULES)
    raw = request_shape("POST", "/v1/messages", b"\xff not json", RULES)
    other = request_shape("POST", "/v1/messages", b"\xfe not json", RULES)
    assert differences(raw, other, RULES) == ["request body differs from the recorded bytes"]


def test_the_closest_candidate_prefers_the_same_route() -> None:
    seen = shape({**BODY, "messages": [{"role": "user", "content": "Bye"}], "max_tokens": 1})
    elsewhere = shape({**BODY, "max_tokens": 1}, "/v1/other")
    same_route = shape(BODY)
    found = closest([elsewhere, same_route], seen, RULES)
    assert found is not None
    index, problems = found
    assert index == 1
    assert len(problems) == 2
    assert closest([], seen, RULES) is None
