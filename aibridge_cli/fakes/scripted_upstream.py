"""A scripted upstream: a fake provider server that plays replies in order.

It serves end-to-end tests, the mock upstream built from fixtures and the fuzzer's
fault-injecting upstream. A ``Reply`` is a status, headers and body chunks, each chunk
written in its own send after its delay, plus an optional fault (a reset before or inside
the body, a stall). Every request it sees is kept for assertions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from ..errors import kind_for_status
from ..headers import Headers
from ..providers.anthropic import anthropic_error
from ..providers.base import dumps
from ..providers.openai_common import openai_error
from ..proxy.server import AbortConnection, Request, ResponseWriter
from ..sse import encode_event

Fault = Literal["reset-before-body", "reset-in-body", "stall"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``fault_at`` is the chunk index where the fault strikes."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    chunks: Sequence[bytes] = ()
    delays: Sequence[float] = ()
    fault: Fault | None = None
    fault_at: int = 0

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Headers | None = None) -> Reply:
        data = dumps(body).encode()
        return cls(status, [("content-type", "application/json"), *(headers or [])], [data])

    @classmethod
    def sse(cls, events: Sequence[tuple[str | None, Any]], **kwargs: Any) -> Reply:
        """An SSE reply, one event per chunk; data that is not a string is JSON-encoded."""
        chunks = [
            encode_event(name, data if isinstance(data, str) else dumps(data))
            for name, data in events
        ]
        return cls(200, [("content-type", "text/event-stream")], chunks, **kwargs)


def upstream_error(path: str, status: int, message: str) -> dict[str, Any]:
    """An error body in the shape of the provider that owns ``path`` on its own host:
    Anthropic's ``/v1/messages...``, OpenAI's the rest of ``/v1/``."""
    if path.startswith("/v1/") and not path.startswith("/v1/messages"):
        return openai_error(kind_for_status(status), message)
    return anthropic_error(kind_for_status(status), message)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: Headers
    body: bytes
    target: str  # the path with its query string

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


Script = Callable[[SeenRequest, int], Reply]


@dataclass
class ScriptedUpstream:
    """An ``App`` that answers the n-th request with the n-th reply (or ``script(req, n)``)."""

    replies: list[Reply] = field(default_factory=list)
    script: Script | None = None
    seen: list[SeenRequest] = field(default_factory=list)
    open_responses: int = 0
    closed_early: int = 0

    def __post_init__(self) -> None:
        self.all_closed = trio.Event()
        self.all_closed.set()

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        body = upstream_error(target.split("?", 1)[0], status, message)
        return [("content-type", "application/json")], dumps(body).encode()

    def next_reply(self, seen: SeenRequest) -> Reply:
        index = len(self.seen) - 1
        if self.script is not None:
            return self.script(seen, index)
        if index < len(self.replies):
            return self.replies[index]
        return Reply.json(
            {"type": "error", "error": {"type": "api_error", "message": "script exhausted"}}, 500
        )

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        seen = SeenRequest(
            request.method, request.path, request.headers, request.body, request.target
        )
        self.seen.append(seen)
        reply = self.next_reply(seen)
        self.open_responses += 1
        self.all_closed = trio.Event()
        finished = False
        try:
            await play_reply(reply, writer)
            finished = True
        finally:
            self.open_responses -= 1
            if not finished:
                self.closed_early += 1
            if not self.open_responses:
                self.all_closed.set()


async def play_reply(reply: Reply, writer: ResponseWriter) -> None:
    """Write ``reply``: each chunk in its own send after its delay, then its fault."""
    if reply.fault == "reset-before-body":
        raise AbortConnection()
    await writer.start(reply.status, list(reply.headers))
    for i, chunk in enumerate(reply.chunks):
        if reply.fault is not None and i == reply.fault_at:
            if reply.fault == "stall":
                await trio.sleep_forever()
            raise AbortConnection()
        delay = reply.delays[i] if i < len(reply.delays) else 0.0
        if delay:
            await trio.sleep(delay)
        await writer.send(chunk)
    if reply.fault is not None and reply.fault_at >= len(reply.chunks):
        if reply.fault == "stall":
            await trio.sleep_forever()
        raise AbortConnection()
