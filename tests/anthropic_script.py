"""Scripted Anthropic replies the tests share (the builders live in the package)."""

from __future__ import annotations

from aibridge_cli.fakes.anthropic_replies import (
    Event,
    error_reply,
    message,
    message_end,
    message_start,
    rate_limited,
    stream,
    text_block,
    tool_block,
)

__all__ = [
    "Event",
    "error_reply",
    "message",
    "message_end",
    "message_start",
    "rate_limited",
    "stream",
    "text_block",
    "tool_block",
]

WEATHER_CALL = tool_block(1, "bmcp_weather", {"city": "Paris"})
TOOL_TURN = stream(
    message_start("msg_a"),
    text_block(0, "Let me check."),
    WEATHER_CALL,
    message_end("tool_use", 10),
)
TOOL_ONLY_TURN = stream(
    message_start("msg_a"),
    tool_block(0, "bmcp_weather", {"city": "Paris"}),
    message_end("tool_use", 10),
)
FINAL_TURN = stream(
    message_start("msg_b", input_tokens=7),
    text_block(0, "Sunny", " in Paris."),
    message_end("end_turn", 4),
)
