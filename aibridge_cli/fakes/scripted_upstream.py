"""A scripted upstream: a fake provider server that plays replies in order.

It serves end-to-end tests, the mock upstream built from fixtures and the fuzzer's
fault-injecting upstream. A ``Reply`` is a status, headers and body chunks, each chunk
written in its own send after its delay, plus an optional fault (a reset before or inside
the body, a stall). Every request it sees is kept for assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from ..errors import kind_for_status
from ..headers import Headers
from ..providers.anthropic import anthropic_error
from ..providers.base import dumps
from ..providers.openai_common import openai_error
from ..proxy.server import AbortConnection, Request, ResponseWriter, UpgradeHandler
from ..proxy.ws_server import wants_websocket
from .replies import Fault, Reply, SeenRequest
from .scripted_websocket import serve_websocket


def upstream_error(path: str, status: int, message: str) -> dict[str, Any]:
    """An error body in the shape of the provider that owns ``path`` on its own host
    (Anthropic's ``/v1/messages...``, OpenAI's the rest of ``/v1/``) or under the proxy's
    prefixes (``/anthropic/...``, ``/openai/...``), where a client-side mock serves."""
    openai = path.startswith("/openai/")
    if openai or (path.startswith("/v1/") and not path.startswith("/v1/messages")):
        return openai_error(kind_for_status(status), message)
    return anthropic_error(kind_for_status(status), message)


__all__ = ["Fault", "Reply", "ScriptedUpstream", "SeenRequest", "play_reply", "upstream_error"]

Script = Callable[[SeenRequest, int], Reply]


@dataclass
class ScriptedUpstream:
    """An ``App`` that answers the n-th request with the n-th reply (or ``script(req, n)``)."""

    replies: list[Reply] = field(default_factory=list)
    script: Script | None = None
    seen: list[SeenRequest] = field(default_factory=list)
    refuse: Callable[[SeenRequest], Reply | None] | None = None  # WebSocket upgrades
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
        async with self.answering() as answered:
            await play_reply(reply, writer)
            answered()

    @asynccontextmanager
    async def answering(self) -> AsyncIterator[Callable[[], None]]:
        """Count a reply as open while it plays; one not marked answered closed early."""
        self.open_responses += 1
        self.all_closed = trio.Event()
        finished = False

        def answered() -> None:
            nonlocal finished
            finished = True

        try:
            yield answered
        finally:
            self.open_responses -= 1
            if not finished:
                self.closed_early += 1
            if not self.open_responses:
                self.all_closed.set()

    # -- the Responses API's WebSocket mode (scripted_websocket.py) -------------------------
    def upgrade_handler(self, request: Request) -> UpgradeHandler | None:
        if not wants_websocket(request):
            return None
        return partial(serve_websocket, self)

    def refusal(self, seen: SeenRequest) -> Reply | None:
        """The answer to a WebSocket upgrade: a reply with an error status refuses it (and
        is a request of the script), None opens the socket."""
        if self.refuse is not None:
            return self.refuse(seen)
        index = len(self.seen)
        if self.script is None and index < len(self.replies) and self.replies[index].status >= 400:
            self.seen.append(seen)
            return self.replies[index]
        return None


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
