"""What a client may receive, sans-io: an error in JSON or a well-formed event stream.

``response_problems`` judges one raw response (status, headers, body bytes) against the
provider's rules and returns what is wrong, in words; an empty list means well-formed.
``normalize`` reduces a response to what must not depend on timing: events without pings
or ids, JSON without ids, no chunk boundaries, no Retry-After value.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..sse import SSEDecoder

Headers = Sequence[tuple[str, str]]
_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")


@dataclass(frozen=True)
class Response:
    """What the client got, as raw as it came."""

    status: int | None
    headers: Headers
    body: bytes
    complete: bool  # the HTTP message ended properly
    truncated: bool = False  # the client hung up on purpose: a prefix is all there is


def _header(headers: Headers, name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _media(headers: Headers) -> str:
    return (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()


def parse_events(
    body: bytes, *, truncated: bool = False
) -> tuple[list[tuple[str | None, Any]], list[str]]:
    """The SSE events in ``body`` with their JSON data, and what breaks the framing."""
    problems = []
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if truncated:
        lines = lines[:-1]  # the client hung up: the last line may be cut anywhere
    for line in lines:
        if line and not line.startswith(_SSE_FIELDS):
            problems.append(f"not an SSE line: {line[:60]!r}")
            break
    decoder = SSEDecoder()
    events: list[tuple[str | None, Any]] = []
    for event in decoder.feed(body):
        try:
            data = json.loads(event.data)
        except ValueError:
            problems.append(f"event {event.event!r} carries data that is not JSON: {event.data[:60]!r}")
            data = None
        events.append((event.event, data))
    if decoder.pending() and not truncated:
        problems.append("the stream ends in the middle of an event")
    return events, problems


def anthropic_stream_problems(
    events: Sequence[tuple[str | None, Any]], *, finished: bool, injected: Collection[str]
) -> list[str]:
    """Anthropic's event grammar: message_start, blocks in order, then message_stop or an error."""
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
            if block.get("type") == "tool_use" and block.get("name") in injected:
                problems.append(f"the injected tool {block.get('name')!r} is visible to the client")
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
            if not _is_error_body(data):
                problems.append(f"an error event that is not an Anthropic error: {data!r:.80}")
            ended = name
    if finished and ended is None:
        problems.append("the stream ended without message_stop or an error event")
    return problems


def _is_error_body(data: Any) -> bool:
    if not isinstance(data, dict) or data.get("type") != "error":
        return False
    error = data.get("error")
    return isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(
        error.get("message"), str
    )


def response_problems(response: Response, *, streaming: bool, injected: Collection[str]) -> list[str]:
    """Everything wrong with one Anthropic response, as the client would see it."""
    if response.status is None:
        return [] if response.truncated else ["no response at all"]
    problems: list[str] = []
    if not response.complete and not response.truncated:
        problems.append("the HTTP response did not end properly")
    media = _media(response.headers)
    if media == "text/event-stream":
        if response.status != 200:
            problems.append(f"an event stream with status {response.status}")
        if not streaming:
            problems.append("an event stream for a blocking request")
        events, framing = parse_events(response.body, truncated=response.truncated)
        problems += framing
        problems += anthropic_stream_problems(
            events, finished=not response.truncated, injected=injected
        )
        return problems
    if media != "application/json":
        return [*problems, f"status {response.status} with content-type {media or 'none'}"]
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        if response.truncated:
            return problems
        return [*problems, f"a JSON body that does not parse ({exc}): {response.body[:120]!r}"]
    if response.status >= 400:
        if not _is_error_body(data):
            problems.append(f"status {response.status} without an Anthropic error body")
    elif streaming:
        problems.append(f"status {response.status} JSON for a streaming request")
    elif not isinstance(data, dict) or data.get("type") != "message":
        problems.append("a 2xx JSON body that is not a message")
    else:
        for block in data.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") in injected:
                problems.append(f"the injected tool {block.get('name')!r} is visible to the client")
    return problems


def _strip_ids(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_ids(v) for k, v in data.items() if k not in ("id", "request_id")}
    if isinstance(data, list):
        return [_strip_ids(v) for v in data]
    return data


def normalize(response: Response) -> Any:
    """The timing-free meaning of a response: comparable across schedules."""
    media = _media(response.headers)
    shape: dict[str, Any] = {"status": response.status, "media": media, "complete": response.complete}
    if media == "text/event-stream":
        events, framing = parse_events(response.body)
        shape["events"] = [[name, _strip_ids(data)] for name, data in events if name != "ping"]
        shape["framing"] = framing
    else:
        try:
            shape["json"] = _strip_ids(json.loads(response.body))
        except ValueError:
            shape["raw"] = response.body.decode("utf-8", "replace")
    return shape
