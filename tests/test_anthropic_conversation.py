"""The Messages conversation, sans-io: the text-delta fast path agrees with the general one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibridge_cli.errors import UpstreamBroken
from aibridge_cli.fakes.anthropic_replies import (
    Event,
    message_end,
    message_start,
    text_block,
    tool_block,
)
from aibridge_cli.providers.anthropic import AnthropicConversation
from aibridge_cli.providers.base import dumps
from aibridge_cli.sse import SSEDecoder, encode_event
from aibridge_cli.tools import ToolOutcome, ToolSet

from .conftest import WEATHER

BODY = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
TEXT = ["Let me ", 'check "the" weather\n', "caf\u00e9 \u2603 \\ /", ""]


def conversation() -> AnthropicConversation:
    return AnthropicConversation(dict(BODY), ToolSet.of([WEATHER]))


def frames(conv: AnthropicConversation, events: list[Event], *, compact: bool) -> list[bytes]:
    out: list[bytes] = []
    for name, data in events:
        text = dumps(data) if compact else json.dumps(data)
        for event in SSEDecoder().feed(encode_event(name, text)):
            out += conv.on_event(event)
    return out


def tool_turn() -> list[Event]:
    return [
        *message_start(),
        *text_block(0, *TEXT),
        *tool_block(1, WEATHER.name, {"city": "Paris"}),
        *message_end("tool_use", 5),
    ]


def assistant_turn(conv: AnthropicConversation) -> Any:
    calls = conv.end_stream()
    conv.add_results(calls, [ToolOutcome("sunny")] * len(calls))
    return conv.upstream_body()["messages"][1]


@pytest.mark.parametrize("compact", [True, False])
def test_a_tool_turn_sends_the_text_back_whatever_the_json_spacing(compact: bool) -> None:
    conv = conversation()
    out = frames(conv, tool_turn(), compact=compact)
    assert assistant_turn(conv) == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "".join(TEXT)},
            {"type": "tool_use", "id": "toolu_1", "name": WEATHER.name, "input": {"city": "Paris"}},
        ],
    }
    texts = [e for f in out for e in SSEDecoder().feed(f) if e.event == "content_block_delta"]
    assert [json.loads(e.data)["delta"]["text"] for e in texts] == TEXT


def test_compact_and_spaced_deltas_of_one_block_keep_their_order() -> None:
    conv = conversation()
    events = tool_turn()
    deltas = [i for i, (name, _) in enumerate(events) if name == "content_block_delta"]
    out: list[bytes] = []
    for i, (name, data) in enumerate(events):
        text = json.dumps(data) if i in deltas[1::2] else dumps(data)  # alternate the shapes
        for event in SSEDecoder().feed(encode_event(name, text)):
            out += conv.on_event(event)
    assert assistant_turn(conv)["content"][0]["text"] == "".join(TEXT)


def test_the_fast_path_passes_the_event_on_byte_for_byte() -> None:
    conv = conversation()
    frames(conv, [*message_start(), *text_block(0)[:1]], compact=True)
    raw = encode_event("content_block_delta", dumps(text_block(0, "hi")[1][1]))
    (event,) = SSEDecoder().feed(raw)
    assert conv.on_event(event) == [raw]


def test_after_a_tool_turn_text_deltas_are_renumbered() -> None:
    conv = conversation()
    frames(conv, tool_turn(), compact=True)
    assistant_turn(conv)
    second = [*message_start("msg_2"), *text_block(0, "It is sunny."), *message_end("end_turn", 3)]
    out = frames(conv, second, compact=True)
    decoded = [json.loads(e.data) for f in out for e in SSEDecoder().feed(f)]
    deltas = [d for d in decoded if d["type"] == "content_block_delta"]
    assert [(d["index"], d["delta"]["text"]) for d in deltas] == [(1, "It is sunny.")]


@pytest.mark.parametrize(
    "data",
    [
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\\q"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\x01"}}',
        '{"type":"content_block_delta","index":00,"delta":{"type":"text_delta","text":"a"}}',
    ],
)
def test_text_deltas_that_are_not_json_break_the_stream(data: str) -> None:
    conv = conversation()
    frames(conv, [*message_start(), *text_block(0)[:1]], compact=True)
    (event,) = SSEDecoder().feed(encode_event("content_block_delta", data))
    with pytest.raises(UpstreamBroken):
        conv.on_event(event)
