"""What one recorded interception amounts to, sans-io: the facts ``aibridge show`` presents.

A fixture keeps bytes and their timing; a reader wants the API and model, the status,
the tokens spent over every upstream exchange, the injected tool calls, the keys tried
and how each answered, how long it took and how soon the client saw its first event.
``summarize`` reads them from an ``Interception`` once, for the terminal table and the
HTML page alike. Nothing here trusts the recording: a malformed body is a fact to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..headers import Headers, media_type
from ..interception import Chunk, Interception, ResponseLog, Transport
from ..providers.openai_responses_ws import WEBSOCKET_STATUS, message_frame
from ..sse import SSEDecoder
from .normalize import facts_reader, loads_or_text, normalize_response

# Token counts by the names each API gives them (Anthropic and Responses, Chat Completions).
_INPUT_TOKENS = ("input_tokens", "prompt_tokens")
_OUTPUT_TOKENS = ("output_tokens", "completion_tokens")


@dataclass(frozen=True)
class TimedEvent:
    """An SSE event (or a whole non-SSE body) and the time its last byte arrived."""

    ms: float
    name: str  # the SSE event name, the JSON ``type``, or ``body`` for a non-SSE body
    size: int
    chunk: int  # index of the chunk that completed it


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True)
class StreamFacts:
    """One response (upstream or client-facing): its timing, events and what they said."""

    status: int | None
    chunks: int
    size: int
    first_ms: float | None
    last_ms: float | None
    events: tuple[TimedEvent, ...]
    usage: Usage
    error_type: str | None
    tool_calls: tuple[str, ...]  # names of the tool calls the response asked for

    @property
    def first_event_ms(self) -> float | None:
        """When the first event that is not a ping arrived."""
        return next((e.ms for e in self.events if e.name != "ping"), None)


@dataclass(frozen=True)
class Attempt:
    """One upstream exchange: the key tried and how the upstream answered."""

    key: str | None  # masked; None when the client's own key went upstream
    error: str | None  # the connection error, when no response came
    facts: StreamFacts

    @property
    def verdict(self) -> str:
        """``200``, ``429 rate_limit_error``, or the connection error."""
        if self.facts.status is None:
            return self.error or "no response"
        kind = f" {self.facts.error_type}" if self.facts.error_type else ""
        return f"{self.facts.status}{kind}"


@dataclass(frozen=True)
class ToolTurn:
    """The injected tools one upstream exchange asked for, which the loop ran after it."""

    after: int  # index of the exchange whose response asked for them
    calls: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    label: str
    api: str
    model: str
    stream: bool
    outcome: str
    client: StreamFacts
    attempts: tuple[Attempt, ...]
    injected: tuple[str, ...]  # names of the injected tool calls the loop ran, in order
    tool_turns: tuple[ToolTurn, ...]
    client_app: str = "unknown"  # who sent it (attribution.py)
    session: str | None = None  # the client's session id, when it sends one

    @property
    def status(self) -> int | None:
        return self.client.status

    @property
    def usage(self) -> Usage:
        """Tokens summed over every upstream exchange: what the session cost."""
        total = Usage()
        for attempt in self.attempts:
            total += attempt.facts.usage
        return total

    @property
    def duration_ms(self) -> float | None:
        """From the request's arrival to the last byte recorded on either side."""
        ends = [f.last_ms for f in (self.client, *(a.facts for a in self.attempts))]
        known = [end for end in ends if end is not None]
        return max(known) if known else None


def _read_stream(
    api: str, headers: Headers, chunks: Sequence[Chunk], messages: bool = False
) -> tuple[list[TimedEvent], dict[str, Any]]:
    """The events of a response, each at the time of the chunk that completed it, and the
    facts they state (``normalize``'s readers), in one pass over the bytes. ``messages``:
    each chunk is one WebSocket message (an event), read through its SSE frame."""
    if not chunks:
        return [], facts_reader(api).result()
    if messages:
        chunks = [
            Chunk(c.offset_ms, message_frame(c.data.decode("utf-8", "replace"))) for c in chunks
        ]
    elif media_type(headers) != "text/event-stream":
        size = sum(len(c.data) for c in chunks)
        body = b"".join(c.data for c in chunks)
        facts = normalize_response(api, 200, headers, body)
        return [TimedEvent(chunks[-1].offset_ms, "body", size, len(chunks) - 1)], facts
    reader = facts_reader(api)
    decoder = SSEDecoder()
    out = []
    for i, chunk in enumerate(chunks):
        for event in decoder.feed(chunk.data):
            data = loads_or_text(event.data)
            name = event.event or (data.get("type") if isinstance(data, dict) else None)
            if name != "ping" and (event.data or name is not None):
                reader.event(name, data)
            label = name if isinstance(name, str) else str(data)[:20] or "message"
            out.append(TimedEvent(chunk.offset_ms, label, len(event.raw), i))
    return out, reader.result()


def _tokens(usage: dict[str, Any], names: Sequence[str]) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def stream_facts(api: str, log: ResponseLog, transport: Transport = "http") -> StreamFacts:
    """What one recorded response was and said."""
    chunks = log.chunks
    messages = transport == "websocket" and log.status == WEBSOCKET_STATUS
    events, facts = _read_stream(api, log.headers, chunks, messages)
    usage = facts["usage"] if isinstance(facts["usage"], dict) else {}
    error_type = facts["error_type"]
    return StreamFacts(
        status=log.status,
        chunks=len(chunks),
        size=sum(len(c.data) for c in chunks),
        first_ms=chunks[0].offset_ms if chunks else None,
        last_ms=chunks[-1].offset_ms if chunks else None,
        events=tuple(events),
        usage=Usage(_tokens(usage, _INPUT_TOKENS), _tokens(usage, _OUTPUT_TOKENS)),
        error_type=str(error_type) if error_type is not None else None,
        tool_calls=tuple(str(call["name"]) for call in facts["tool_calls"]),
    )


def summarize(record: Interception, label: str) -> Summary:
    """The facts of one interception."""
    body = record.request.body if isinstance(record.request.body, dict) else {}
    model = body.get("model")
    attempts = tuple(
        Attempt(ex.key, ex.error, stream_facts(record.api, ex.response, record.transport))
        for ex in record.upstream
    )
    offered = {str(tool.get("name")) for tool in record.tools if isinstance(tool, dict)}
    turns = []
    for i, attempt in enumerate(attempts):
        calls = tuple(name for name in attempt.facts.tool_calls if name in offered)
        # The loop runs an exchange's injected calls only when another exchange follows.
        if calls and i + 1 < len(attempts):
            turns.append(ToolTurn(i, calls))
    return Summary(
        label=label,
        api=record.api,
        model=model if isinstance(model, str) else "",
        stream=body.get("stream") is True or record.transport == "websocket",
        outcome=record.outcome,
        client=stream_facts(record.api, record.response, record.transport),
        attempts=attempts,
        injected=tuple(call.name for call in record.tool_calls),
        tool_turns=tuple(turns),
        client_app=record.client,
        session=record.session,
    )


@dataclass(frozen=True)
class SessionGroup:
    """The interceptions of one client session (or of one client without a session id)."""

    client: str
    session: str | None
    indexes: tuple[int, ...]  # into the summaries, in recording order
    usage: Usage
    injected: int  # injected tool calls run

    @property
    def title(self) -> str:
        return f"{self.client} session {self.session}" if self.session else self.client


def group_by_session(summaries: Sequence[Summary]) -> list[SessionGroup]:
    """The summaries by (client, session), groups in the order each first appears."""
    members: dict[tuple[str, str | None], list[int]] = {}
    for i, s in enumerate(summaries):
        members.setdefault((s.client_app, s.session), []).append(i)
    groups = []
    for (client, session), indexes in members.items():
        usage = Usage()
        for i in indexes:
            usage += summaries[i].usage
        injected = sum(len(summaries[i].injected) for i in indexes)
        groups.append(SessionGroup(client, session, tuple(indexes), usage, injected))
    return groups
