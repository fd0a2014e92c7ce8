"""The framing oracle: each API's frames line by line, and a planted framing bug found."""

from __future__ import annotations

import pytest

from aibridge_cli import sse
from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.framing import sse_framing_problems, websocket_framing_problems
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.providers import openai_chat
from aibridge_cli.providers.openai_responses_ws import frame_messages as messages_of
from aibridge_cli.proxy import ws_bridge

CHAT_TOOL = "openai-chat/injected-tool#streaming"

ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b": a comment\n\n"
    b'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n'
)
CHAT = b'data: {"object":"chat.completion.chunk"}\n\ndata: [DONE]\n\n'
RESPONSES = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'


def kinds(api: str, body: bytes, complete: bool = True) -> list[str]:
    return [p.kind for p in sse_framing_problems(api, body, complete=complete)]


def test_well_framed_streams_of_each_api_pass() -> None:
    assert kinds("anthropic", ANTHROPIC) == []
    assert kinds("openai-chat", CHAT) == []
    assert kinds("openai-responses", RESPONSES) == []
    assert websocket_framing_problems(['{"type": "response.created"}']) == []


def test_anthropic_frames_need_an_event_line_naming_the_data_type() -> None:
    assert kinds("anthropic", b'data: {"type":"ping"}\n\n') == [
        "0 event: lines in one anthropic frame"
    ]
    assert kinds("anthropic", b'event: pong\ndata: {"type":"ping"}\n\n') == [
        "an event: name that is not the data's type"
    ]
    two = b'event: ping\ndata: {"type":"ping"}\ndata: {}\n\n'
    assert kinds("anthropic", two) == ["2 data lines in one frame"]
    assert kinds("anthropic", b"event: ping\nid: 3\ndata: {}\n\n") == ["a 'id' field line"]


def test_chat_frames_are_nameless_and_end_with_one_done() -> None:
    named = b'event: chunk\ndata: {"object":"chat.completion.chunk"}\n\ndata: [DONE]\n\n'
    assert kinds("openai-chat", named) == ["a Chat frame with an event: line"]
    assert kinds("openai-chat", CHAT[: CHAT.index(b"data: [DONE]")]) == [
        "a Chat stream that does not end with [DONE]"
    ]
    assert kinds("openai-chat", CHAT + CHAT[-14:]) == ["a Chat frame after [DONE]"]
    # a failed stream may end in an error frame; a cut one is not judged on its end
    assert kinds("openai-chat", b'data: {"error": {"message": "x"}}\n\n') == []
    assert kinds("openai-chat", CHAT[:40], complete=False) == []


def test_responses_frames_are_named_and_never_done() -> None:
    assert kinds("openai-responses", RESPONSES + b"data: [DONE]\n\n") == [
        "[DONE] in a openai-responses stream",
        "0 event: lines in one openai-responses frame",
    ]


def test_a_frame_must_end_with_a_blank_line_unless_the_client_left() -> None:
    assert kinds("openai-responses", RESPONSES[:-1]) == ["a frame not ended by a blank line"]
    assert kinds("openai-responses", RESPONSES[:-1], complete=False) == []


def test_websocket_messages_are_json_events_without_sse_framing() -> None:
    found = websocket_framing_problems(
        ['event: response.created\ndata: {"type": "response.created"}', "[1]"]
    )
    assert [p.kind for p in found] == [
        "SSE framing in a WebSocket message",
        "a WebSocket message that is not a typed JSON event",
    ]


def oracles() -> set[str]:
    violations, _ = Judge("eager").evaluate(builtin(CHAT_TOOL)[0], Plan())
    return {v.oracle for v in violations}


def test_the_unplanted_relays_are_well_framed() -> None:
    assert oracles() == set()
    violations, _ = Judge("eager").evaluate(builtin("openai-responses-ws/simple")[0], Plan())
    assert violations == []
    campaign = run_campaign(Settings(tuple(builtin(CHAT_TOOL)), 3, 20))
    assert [o.oracle for o in campaign.failures] == []


def test_a_chat_frame_written_with_an_event_line_is_a_framing_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plant: the Chat relay's encoder names the frames it rewrites (the summed usage).
    monkeypatch.setattr(
        openai_chat, "encode_event", lambda event, data: sse.encode_event(event or "chunk", data)
    )
    # Only the framing oracle sees it: SSE lets a client ignore a name.
    assert oracles() == {"framing"}
    campaign = run_campaign(Settings(tuple(builtin(CHAT_TOOL)), 3, 20))
    assert "framing" in {o.oracle for o in campaign.failures}


def test_a_websocket_message_sent_in_sse_framing_is_a_framing_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plant: the socket relay sends its first message as the SSE frame it came in.
    def frame_messages(data: bytes) -> list[str]:
        messages = messages_of(data)
        if '"response.created"' in data.decode():
            return [f"data: {messages[0]}", *messages[1:]]
        return messages

    monkeypatch.setattr(ws_bridge, "frame_messages", frame_messages)
    violations, _ = Judge("eager").evaluate(builtin("openai-responses-ws/simple")[0], Plan())
    assert "SSE framing in a WebSocket message" in {v.shape for v in violations}
