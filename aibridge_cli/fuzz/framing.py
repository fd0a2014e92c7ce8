"""The framing oracle, sans-io: every frame the client got against its API's wire format.

The grammar oracle reads a stream through ``SSEDecoder``, which forgives what SSE allows
and the APIs do not: an ``event:`` line on a Chat chunk, a missing one on an Anthropic
event, a name that disagrees with the data's ``type``, two ``data:`` lines. Clients that
dispatch on the name (the Anthropic and OpenAI SDKs do) then misread a stream the grammar
accepts. So this oracle splits the raw body into lines and frames itself:

* Anthropic Messages and OpenAI Responses: one ``event:`` line naming the data's ``type``,
  one ``data:`` line, a blank line after; never ``[DONE]``.
* OpenAI Chat Completions: one nameless ``data:`` line per frame; ``data: [DONE]`` last,
  once, and nothing after it.
* WebSocket mode: each message one JSON event with a ``type``, no SSE framing in it.

Comment lines (``:`` first, pings) are allowed anywhere. A problem carries the offending
frame's bytes so the caller can tell the proxy's problems from the upstream's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..fakes.scripted_upstream import Reply
from ..fakes.scripted_websocket import reply_messages
from ..headers import media_type
from ..sim.client import ClientResult
from .differential import played

_LINE_END = re.compile(rb"\r\n|\r|\n")
DONE = "[DONE]"
CHAT = "openai-chat"


@dataclass(frozen=True)
class FramingProblem:
    kind: str  # what is wrong, without the frame: the signature's shape
    frame: bytes  # the frame (or WebSocket message) it is wrong in

    def __str__(self) -> str:
        return f"{self.kind}: {self.frame[:80]!r}"


def _frames(body: bytes) -> tuple[list[list[bytes]], bytes]:
    """The body's frames (each its lines, blank terminator excluded) and an unterminated
    tail (the bytes after the last blank line)."""
    frames: list[list[bytes]] = []
    lines: list[bytes] = []
    start = pos = 0
    for match in _LINE_END.finditer(body):
        line = body[pos : match.start()]
        pos = match.end()
        if line:
            lines.append(line)
        elif lines:
            frames.append(lines)
            lines = []
            start = pos
        else:
            start = pos  # a stray blank line
    tail = body[start:] if lines or pos < len(body) else b""
    return frames, tail


def _field(line: bytes) -> tuple[str, str]:
    name, colon, value = line.decode("utf-8", "replace").partition(":")
    if colon and value.startswith(" "):
        value = value[1:]
    return name, value


def _data_type(data: str) -> str | None:
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    return kind if isinstance(kind, str) else None


def _chat_error(data: str | None) -> bool:
    try:
        parsed = json.loads(data or "")
    except ValueError:
        return False
    return isinstance(parsed, dict) and "error" in parsed


def _frame_problems(api: str, lines: Sequence[bytes]) -> tuple[list[str], str | None]:
    """What is wrong with one frame, and its data (None: a comment-only frame)."""
    fields = [_field(line) for line in lines if not line.startswith(b":")]
    if not fields:
        return [], None
    names = [value for name, value in fields if name == "event"]
    datas = [value for name, value in fields if name == "data"]
    problems = [f"a {name!r} field line" for name, _ in fields if name not in ("event", "data")]
    if len(datas) != 1:
        problems.append(f"{len(datas)} data lines in one frame")
    data = datas[0] if datas else ""
    if api == CHAT:
        if names:
            problems.append("a Chat frame with an event: line")
        return problems, data
    if data == DONE:
        problems.append(f"[DONE] in a {api} stream")
    if len(names) != 1:
        problems.append(f"{len(names)} event: lines in one {api} frame")
        return problems, data
    kind = _data_type(data)
    if kind is not None and kind != names[0]:
        problems.append("an event: name that is not the data's type")
    return problems, data


def sse_framing_problems(api: str, body: bytes, *, complete: bool) -> list[FramingProblem]:
    """The framing problems of a streamed body of ``api``; ``complete``: the body ended as
    the HTTP message did (otherwise the client left or the stream broke: its last,
    unterminated frame is not judged, nor what a stream must end with)."""
    return list(_sse_framing_problems(api, body, complete))


@lru_cache(maxsize=4096)  # the upstream's answers, and most clients', recur in a campaign
def _sse_framing_problems(api: str, body: bytes, complete: bool) -> tuple[FramingProblem, ...]:
    frames, tail = _frames(body)
    found: list[FramingProblem] = []
    done_at: int | None = None
    last_data: str | None = None
    for n, lines in enumerate(frames):
        raw = b"\n".join(lines)
        problems, data = _frame_problems(api, lines)
        found += [FramingProblem(p, raw) for p in problems]
        if data is None:
            continue
        if api == CHAT and done_at is not None:
            found.append(FramingProblem("a Chat frame after [DONE]", raw))
        if data == DONE and done_at is None:
            done_at = n
        last_data = data
    if complete and tail:
        found.append(FramingProblem("a frame not ended by a blank line", tail))
    if complete and api == CHAT and last_data not in (None, DONE) and not _chat_error(last_data):
        # an error frame may end a failed stream instead (the SDKs raise on it)
        found.append(FramingProblem("a Chat stream that does not end with [DONE]", b""))
    return tuple(found)


def websocket_framing_problems(messages: Iterable[str]) -> list[FramingProblem]:
    """Each WebSocket message must be one JSON event with a ``type``, not an SSE frame."""
    found: list[FramingProblem] = []
    for message in messages:
        raw = message.encode()
        if message.lstrip().startswith(("event:", "data:")):
            found.append(FramingProblem("SSE framing in a WebSocket message", raw))
        elif _data_type(message) is None:
            found.append(FramingProblem("a WebSocket message that is not a typed JSON event", raw))
    return found


def _reply_problems(api: str, transport: str, reply: Reply) -> list[FramingProblem]:
    """The framing problems an upstream answer has of its own, as it was played."""
    if reply.status >= 400:
        return []
    if transport == "websocket":
        stop = reply.fault_at if reply.fault is not None else len(reply.chunks)
        return websocket_framing_problems(m for ms in reply_messages(reply)[:stop] for m in ms)
    if media_type(reply.headers) != "text/event-stream":
        return []
    return sse_framing_problems(api, played(reply), complete=reply.fault is None)


def _client_problems(api: str, transport: str, client: ClientResult) -> list[FramingProblem]:
    if transport == "websocket":
        return websocket_framing_problems(client.messages)
    if client.status != 200 or media_type(client.headers) != "text/event-stream":
        return []  # a JSON answer: no frames (the grammar judges its body)
    return sse_framing_problems(api, client.body, complete=client.complete)


def framing_problems(
    api: str, transport: str, served: Sequence[Reply], clients: Sequence[ClientResult]
) -> list[FramingProblem]:
    """What the proxy got wrong in the frames its clients got. A frame the upstream itself
    sent wrong is relayed faithfully by a transparent proxy: not counted."""
    theirs = {p for reply in served for p in _reply_problems(api, transport, reply)}
    found: list[FramingProblem] = []
    for client in clients:
        found += [p for p in _client_problems(api, transport, client) if p not in theirs]
    return list(dict.fromkeys(found))
