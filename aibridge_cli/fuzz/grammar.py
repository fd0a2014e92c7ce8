"""What a client may receive, sans-io: an error in JSON or a well-formed event stream.

``response_problems`` judges one raw response (status, headers, body bytes) against the
rules of its API and returns what is wrong, in words; an empty list means well-formed.

* Anthropic: one ``message_start`` first (or a lone error), blocks opened and closed in
  order with contiguous indexes, ``message_delta`` then ``message_stop``, or one error
  event last.
* OpenAI Chat: every frame a ``chat.completion.chunk`` (or an error object), ``[DONE]``
  or an error last.
* OpenAI Responses: event names match their ``type``, ``sequence_number``s increase,
  ``response.created`` first, a terminal ``response.*`` event or an error last.

Everywhere: an error status carries the API's JSON error body and nothing else, and no
injected tool call is visible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..headers import media_type
from ..sse import SSEDecoder

Events = Sequence[tuple[str | None, Any]]
SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")
DONE = "[DONE]"
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Response:
    """What the client got, as raw as it came."""

    status: int | None
    headers: Sequence[tuple[str, str]]
    body: bytes
    complete: bool  # the HTTP message ended properly
    truncated: bool = False  # the client hung up on purpose: a prefix is all there is


def parse_events(
    body: bytes, *, truncated: bool = False
) -> tuple[list[tuple[str | None, Any]], list[str]]:
    """The SSE events in ``body`` with their JSON data, and what breaks the framing."""
    problems = []
    lines = _LINE_END.split(body)  # CR alone ends a line too
    if truncated:
        lines = lines[:-1]  # the client hung up: the last line may be cut anywhere
    for line in lines:
        if line and not line.startswith(SSE_FIELDS):
            problems.append(f"not an SSE line: {line[:60]!r}")
            break
    decoder = SSEDecoder()
    events: list[tuple[str | None, Any]] = []
    for event in decoder.feed(body):
        if event.data == DONE:
            events.append((event.event, DONE))
            continue
        try:
            data = json.loads(event.data)
        except ValueError:
            problems.append(
                f"event {event.event!r} carries data that is not JSON: {event.data[:60]!r}"
            )
            data = None
        events.append((event.event, data))
    if decoder.pending() and not truncated:
        problems.append("the stream ends in the middle of an event")
    return events, problems


def _is_anthropic_error(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("type") != "error":
        return False
    error = data.get("error")
    return (
        isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
    )


def _is_openai_error(data: Any) -> bool:
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str)


def _visible(name: Any, injected: Collection[str]) -> list[str]:
    return [f"the injected tool {name!r} is visible to the client"] if name in injected else []


# -- Anthropic ---------------------------------------------------------------------------------


def anthropic_stream_problems(
    events: Events, *, finished: bool, injected: Collection[str], strict: bool = True
) -> list[str]:
    problems: list[str] = []
    real = [(name, data) for name, data in events if name != "ping"]
    if not real:
        return ["an empty event stream"] if finished else []
    if real[0][0] not in ("message_start", "error"):
        problems.append(f"the first event is {real[0][0]!r}, not message_start or an error")
    open_block: int | None = None
    next_index = 0
    delta_seen = False
    ended: str | None = None
    for position, (name, data) in enumerate(real):
        index = data.get("index") if isinstance(data, dict) else None
        if ended is not None:
            problems.append(f"event {name!r} after the terminal {ended!r}")
            break
        if name == "message_start" and position:
            problems.append("a second message_start")
        elif name == "content_block_start":
            block = (data or {}).get("content_block") or {}
            if block.get("type") == "tool_use":
                problems += _visible(block.get("name"), injected)
            if open_block is not None:
                problems.append(f"block {index} opened while block {open_block} is open")
            if index != next_index:
                problems.append(f"block index {index} where {next_index} was due")
            if delta_seen:
                problems.append("a block opened after message_delta")
            open_block, next_index = index, next_index + 1
        elif name == "content_block_delta":
            if index != open_block:
                problems.append(f"a delta for block {index} while block {open_block} is open")
        elif name == "content_block_stop":
            if index != open_block:
                problems.append(f"block {index} closed while block {open_block} is open")
            open_block = None
        elif name == "message_delta":
            if open_block is not None:
                problems.append(f"message_delta while block {open_block} is open")
            if delta_seen:
                problems.append("a second message_delta")
            delta_seen = True
        elif name == "message_stop":
            if not delta_seen:
                problems.append("message_stop without message_delta")
            ended = name
        elif name == "error":
            if strict and not _is_anthropic_error(data):
                problems.append(f"an error event that is not an Anthropic error: {data!r:.80}")
            ended = name
    if finished and ended is None:
        problems.append("the stream ended without message_stop or an error event")
    return problems


def _anthropic_body(data: Any, injected: Collection[str]) -> list[str]:
    if not isinstance(data, dict) or data.get("type") != "message":
        return ["a 2xx JSON body that is not a message"]
    return [
        p
        for block in data.get("content") or []
        if isinstance(block, dict) and block.get("type") == "tool_use"
        for p in _visible(block.get("name"), injected)
    ]


# -- OpenAI Chat Completions -------------------------------------------------------------------


def chat_stream_problems(
    events: Events, *, finished: bool, injected: Collection[str], strict: bool = True
) -> list[str]:
    problems: list[str] = []
    ended: str | None = None
    for _, data in events:
        if ended is not None:
            problems.append(f"a frame after the terminal {ended}")
            break
        if data == DONE:
            ended = DONE
        elif _is_openai_error(data) if strict else isinstance(data, dict) and "error" in data:
            ended = "error"
        elif not isinstance(data, dict) or data.get("object") != "chat.completion.chunk":
            problems.append(f"a frame that is not a chat.completion.chunk: {data!r:.80}")
        else:
            for choice in data.get("choices") or []:
                for call in ((choice or {}).get("delta") or {}).get("tool_calls") or []:
                    problems += _visible(((call or {}).get("function") or {}).get("name"), injected)
    if finished and ended is None:
        problems.append("the stream ended without [DONE] or an error")
    return problems


def _chat_body(data: Any, injected: Collection[str]) -> list[str]:
    if not isinstance(data, dict) or data.get("object") != "chat.completion":
        return ["a 2xx JSON body that is not a chat.completion"]
    return [
        p
        for choice in data.get("choices") or []
        for call in ((choice or {}).get("message") or {}).get("tool_calls") or []
        for p in _visible(((call or {}).get("function") or {}).get("name"), injected)
    ]


# -- OpenAI Responses --------------------------------------------------------------------------

_TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")


def _responses_items(data: Any) -> list[Any]:
    if not isinstance(data, dict):
        return []
    items = [data.get("item")] if isinstance(data.get("item"), dict) else []
    response = data.get("response")
    if isinstance(response, dict):
        items += [i for i in response.get("output") or [] if isinstance(i, dict)]
    return items


def responses_stream_problems(
    events: Events, *, finished: bool, injected: Collection[str], strict: bool = True
) -> list[str]:
    problems: list[str] = []
    if not events:
        return ["an empty event stream"] if finished else []
    if events[0][0] not in ("response.created", "error"):
        problems.append(f"the first event is {events[0][0]!r}, not response.created or an error")
    last_sequence = -1
    ended: str | None = None
    for name, data in events:
        if ended is not None:
            problems.append(f"event {name!r} after the terminal {ended!r}")
            break
        kind = data.get("type") if isinstance(data, dict) else None
        if kind != name:
            problems.append(f"event {name!r} carries type {kind!r}")
        sequence = data.get("sequence_number") if isinstance(data, dict) else None
        if isinstance(sequence, int):
            if sequence <= last_sequence:
                problems.append(f"sequence_number {sequence} after {last_sequence}")
            last_sequence = sequence
        for item in _responses_items(data):
            if item.get("type") == "function_call":
                problems += _visible(item.get("name"), injected)
        if name in _TERMINAL:
            ended = name
    if finished and ended is None:
        problems.append("the stream ended without a terminal event")
    return problems


def _responses_body(data: Any, injected: Collection[str]) -> list[str]:
    if not isinstance(data, dict) or data.get("object") != "response":
        return ["a 2xx JSON body that is not a response"]
    return [
        p
        for item in data.get("output") or []
        if isinstance(item, dict) and item.get("type") == "function_call"
        for p in _visible(item.get("name"), injected)
    ]


@dataclass(frozen=True)
class Rules:
    stream: Callable[..., list[str]]
    body: Callable[[Any, Collection[str]], list[str]]
    is_error: Callable[[Any], bool]


RULES: dict[str, Rules] = {
    "anthropic": Rules(anthropic_stream_problems, _anthropic_body, _is_anthropic_error),
    "openai-chat": Rules(chat_stream_problems, _chat_body, _is_openai_error),
    "openai-responses": Rules(responses_stream_problems, _responses_body, _is_openai_error),
}


def _mixed_with_events(status: int, media: str, body: bytes) -> list[str]:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if any(line.startswith((b"event:", b"data:")) for line in lines):
        return [f"status {status} {media or 'without content-type'} with SSE events in its body"]
    return []


def response_problems(
    api: str,
    response: Response,
    *,
    streaming: bool,
    injected: Collection[str],
    strict: bool = True,
) -> list[str]:
    """Everything wrong with one response of ``api``, as the client would see it.

    ``strict``: errors (bodies and events) in the API's own error shape; without it any
    JSON object will do, as a gateway may word its errors its own way.
    """
    rules = RULES[api]
    if response.status is None:
        return [] if response.truncated else ["no response at all"]
    problems: list[str] = []
    if not response.complete and not response.truncated:
        problems.append("the HTTP response did not end properly")
    media = media_type(response.headers)
    if media == "text/event-stream":
        if response.status != 200:
            problems.append(f"an event stream with status {response.status}")
        if not streaming:
            problems.append("an event stream for a blocking request")
        events, framing = parse_events(response.body, truncated=response.truncated)
        problems += framing
        problems += rules.stream(
            events, finished=not response.truncated, injected=injected, strict=strict
        )
        return problems
    if media != "application/json":
        if not strict and response.status >= 400:
            # A gateway's own error page (a 502 in HTML from a reverse proxy) is a right
            # answer in any content type, as long as it is one shape, not a mix with events.
            return [*problems, *_mixed_with_events(response.status, media, response.body)]
        return [*problems, f"status {response.status} with content-type {media or 'none'}"]
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        if response.truncated:
            return problems
        return [*problems, f"a JSON body that does not parse ({exc}): {response.body[:120]!r}"]
    if response.status >= 400:
        if not (rules.is_error(data) if strict else isinstance(data, dict)):
            problems.append(f"status {response.status} without an error body of {api}")
    elif streaming:
        problems.append(f"status {response.status} JSON for a streaming request")
    else:
        problems += rules.body(data, injected)
    return problems
