"""The scripted upstream's WebSocket side: the Responses API's WebSocket mode, played
from the same ``Reply`` script as its HTTP side.

A handshake asks ``ScriptedUpstream.refusal`` whether to refuse the upgrade (a ``Reply``
with an error status is sent as the HTTP answer); otherwise the socket opens. Each
message the proxy sends is one request of the script and gets the next ``Reply``:

* status 101: its chunks are the messages, sent as they are;
* another 2xx: an SSE reply (what ``Reply.sse`` makes), each event sent as one message;
* 4xx/5xx: one ``error`` event carrying that status and the body's error object (and its
  ``Retry-After`` among the error's headers), as an upstream that refuses mid-connection.

Delays and faults apply as on HTTP: a reset drops the connection at its chunk, a stall
goes silent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio
import wsproto
from wsproto.events import AcceptConnection, RejectConnection, RejectData

from ..headers import header
from ..providers.openai_responses_ws import (
    EXCHANGE_METHOD,
    error_event,
    frame_messages,
    opening_status,
)
from ..proxy.server import Upgrade
from ..proxy.websocket import MessageTooBig, WebSocket, WebSocketClosed
from .replies import Reply, SeenRequest


class Script(Protocol):
    """What the WebSocket side asks of its scripted upstream (``ScriptedUpstream``)."""

    seen: list[SeenRequest]

    def refusal(self, seen: SeenRequest) -> Reply | None: ...

    def next_reply(self, seen: SeenRequest) -> Reply: ...

    def answering(self) -> AbstractAsyncContextManager[Callable[[], None]]: ...


MAX_MESSAGE_SIZE = 64 * 1024 * 1024


def reply_messages(reply: Reply) -> list[list[str]]:
    """The messages of each chunk of a successful reply."""
    if reply.status == 101:
        return [[chunk.decode()] if chunk else [] for chunk in reply.chunks]
    return [frame_messages(chunk) for chunk in reply.chunks]


def answered_status(reply: Reply) -> tuple[int, str | None]:
    """The status and ``Retry-After`` a reply stands for (see ``opening_status``)."""
    if reply.status == 101 and reply.chunks:
        return opening_status(reply.status, reply.chunks[0].decode("utf-8", "replace"))
    retry = header(reply.headers, "retry-after")
    if retry is None and reply.chunks:
        # a refusal recorded on a socket keeps its Retry-After in its error event
        retry = opening_status(reply.status, b"".join(reply.chunks).decode("utf-8", "replace"))[1]
    return reply.status, retry


def refusal_bytes(connection: wsproto.WSConnection, reply: Reply) -> bytes:
    """An upgrade refused with ``reply``: its status, headers and body as HTTP. A reply
    recorded as a refusal on a socket gets its ``Retry-After`` back as a header."""
    body = b"".join(reply.chunks)
    headers = [(k.encode(), v.encode()) for k, v in reply.headers]
    retry = answered_status(reply)[1]
    if retry is not None and header(reply.headers, "retry-after") is None:
        headers.append((b"retry-after", retry.encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    head = RejectConnection(status_code=reply.status, headers=headers, has_body=True)
    return connection.send(head) + connection.send(RejectData(data=body, body_finished=True))


def reply_error(reply: Reply) -> str:
    """An error reply as the ``error`` event an upstream sends on an open socket."""
    try:
        body = json.loads(b"".join(reply.chunks))
    except ValueError:
        body = None
    error = (
        dict(body["error"])
        if isinstance(body, dict) and isinstance(body.get("error"), dict)
        else {}
    )
    error.setdefault("type", "api_error")
    error.setdefault("message", f"error {reply.status}")
    retry = header(reply.headers, "retry-after")
    if retry is not None:
        error["headers"] = {"retry-after": retry}
    return error_event(reply.status, error)


async def serve_websocket(upstream: Script, upgrade: Upgrade) -> None:
    request = upgrade.request
    stream = upgrade.stream
    connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    connection.initiate_upgrade_connection(raw, request.target)
    list(connection.events())
    refusal = upstream.refusal(
        SeenRequest(EXCHANGE_METHOD, request.path, request.headers, b"", request.target)
    )
    if refusal is not None and refusal.fault == "reset-before-body":
        await stream.aclose()
        return
    if refusal is not None:
        await stream.send_all(refusal_bytes(connection, refusal))
        await stream.aclose()
        return
    await stream.send_all(connection.send(AcceptConnection()))
    socket = WebSocket(
        stream, connection, max_message_size=MAX_MESSAGE_SIZE, buffered=upgrade.buffered
    )
    try:
        while True:
            try:
                text = await socket.receive()
            except MessageTooBig:
                continue
            seen = SeenRequest(
                EXCHANGE_METHOD, request.path, request.headers, text.encode(), request.target
            )
            upstream.seen.append(seen)
            reply = upstream.next_reply(seen)
            async with upstream.answering() as answered:
                if not await play_messages(socket, reply):
                    await stream.aclose()  # a reset: no close frame, the connection drops
                    return
                answered()
    except WebSocketClosed:
        pass  # the proxy closed its socket: the conversation is over
    finally:
        await socket.close()


async def play_messages(socket: WebSocket, reply: Reply) -> bool:
    """Answer one message with ``reply``; False when a fault ended the connection.

    A delay or a stall waits on the socket, so a proxy that closes meanwhile ends the wait
    (``WebSocketClosed``): it sends nothing else mid-response.
    """
    if reply.fault == "reset-before-body":
        return False
    if reply.status >= 400:
        await socket.send(reply_error(reply))
        return True
    for i, messages in enumerate(reply_messages(reply)):
        if reply.fault is not None and i == reply.fault_at:
            return await _fault(socket, reply)
        delay = reply.delays[i] if i < len(reply.delays) else 0.0
        if delay:
            with trio.move_on_after(delay):
                await socket.receive()
                return False  # a message mid-response: the script is over
        for message in messages:
            await socket.send(message)
    if reply.fault is not None:
        return await _fault(socket, reply)
    return True


async def _fault(socket: WebSocket, reply: Reply) -> bool:
    if reply.fault == "stall":
        await socket.receive()  # silent until the proxy gives up and closes
    return False
