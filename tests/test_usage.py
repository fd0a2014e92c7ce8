"""The one usage arithmetic all three providers use, streaming and blocking."""

from __future__ import annotations

from typing import Any

from aibridge_cli.providers.usage import add_usage, overlay_usage, summed


def test_every_number_at_any_depth_adds_up() -> None:
    first = {
        "input_tokens": 5,
        "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 1},
        "deep": {"deeper": {"n": 1.5}},
        "service_tier": "standard",
    }
    second = {
        "input_tokens": 7,
        "cache_creation": {"ephemeral_5m_input_tokens": 2},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
        "deep": {"deeper": {"n": 1}},
        "service_tier": "priority",
    }
    assert summed(first, second) == {
        "input_tokens": 12,
        "cache_creation": {"ephemeral_5m_input_tokens": 6, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
        "deep": {"deeper": {"n": 2.5}},
    }


def test_what_is_not_a_number_is_left_out() -> None:
    total: dict[str, Any] = {}
    add_usage(total, {"flag": True, "name": "x", "none": None, "list": [1, 2], "n": 1})
    add_usage(total, None)
    add_usage(total, ["not", "a", "dict"])
    assert total == {"n": 1}


def test_a_shape_change_between_iterations_does_not_crash() -> None:
    # an upstream is untrusted: a number where a dict was, and the other way round
    assert summed({"a": {"b": 1}, "c": 2}, {"a": 3, "c": {"d": 4}}) == {"a": 3, "c": {"d": 4}}


def test_overlay_keeps_what_the_totals_do_not_say() -> None:
    usage = {
        "input_tokens": 7,
        "service_tier": "standard",
        "cache_creation": {"ephemeral_5m_input_tokens": 2, "note": "kept"},
    }
    totals = {"input_tokens": 12, "cache_creation": {"ephemeral_5m_input_tokens": 6}, "new": 1}
    assert overlay_usage(usage, totals) == {
        "input_tokens": 12,
        "service_tier": "standard",
        "cache_creation": {"ephemeral_5m_input_tokens": 6, "note": "kept"},
        "new": 1,
    }
    assert overlay_usage(None, {"a": 1}) == {"a": 1}
    assert usage["input_tokens"] == 7  # not changed in place
