"""A lean fake upstream for the simulation: just enough HTTP/1.1 to answer ``Reply``s.

The end-to-end tests use ``ScriptedUpstream`` on the real server; thousands of simulated
runs cannot afford a second h11 state machine and a watcher task per request. This one
reads a request head and its Content-Length body, asks the script for a ``Reply`` and
writes it with chunked framing, honouring the same delays and faults: a reset before or
inside the body closes the stream, a stall sleeps until the proxy gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus

import trio
import wsproto
from wsproto.events import AcceptConnection

from ..fakes.scripted_upstream import Reply
from ..fakes.scripted_websocket import play_messages, refusal_bytes
from ..headers import Headers
from ..proxy.websocket import WebSocket, WebSocketClosed

Script = Callable[[list[tuple[str, str]], int], Reply]
Peek = Callable[[int], Reply | None]
BodySeen = Callable[[int, bytes], None]  # request index, request body


@dataclass(frozen=True)
class Answer:
    """One upstream answer's life in virtual time: when it was asked for and when it was
    closed, however it ended (the release oracle judges how long it outlived its client)."""

    index: int
    opened: float
    closed: float


class RawUpstream:
    def __init__(
        self,
        script: Script,
        peek: Peek = lambda index: None,
        body_seen: BodySeen | None = None,
    ) -> None:
        self.script = script
        self.peek = peek  # the reply due at an index, without taking it
        self.body_seen = body_seen
        self.requests = 0
        self.open_responses = 0
        self.answers: list[Answer] = []  # closed ones, in the order they closed

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """One answer being played: counted while open, its life kept when it closes."""
        index, opened = self.requests - 1, trio.current_time()
        self.open_responses += 1
        try:
            yield
        finally:
            self.open_responses -= 1
            self.answers.append(Answer(index, opened, trio.current_time()))

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                headers = _headers(head)
                if "websocket" in next((v.lower() for k, v in headers if k == "upgrade"), ""):
                    target = head.split(b" ", 2)[1].decode("latin-1")
                    await self._serve_websocket(stream, target, headers, buffer)
                    return
                length = int(next((v for k, v in headers if k == "content-length"), "0"))
                while len(buffer) < length:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                if self.body_seen is not None:
                    self.body_seen(self.requests, buffer[:length])
                buffer = buffer[length:]
                reply = self.script(headers, self.requests)
                self.requests += 1
                with self._answering():
                    if not await self._play(stream, reply):
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the proxy hung up: nothing left to answer
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_websocket(
        self, stream: trio.abc.Stream, target: str, headers: Headers, buffered: bytes
    ) -> None:
        """The Responses API's WebSocket mode, by ``scripted_websocket``'s rules: an error
        reply due next refuses the upgrade; each message takes the next reply."""
        connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        connection.initiate_upgrade_connection(raw, target)
        list(connection.events())
        due = self.peek(self.requests)
        if due is not None and due.status >= 400:
            reply = self.script(headers, self.requests)
            self.requests += 1
            if reply.fault == "reset-before-body":
                return  # the connection drops before any answer
            await stream.send_all(refusal_bytes(connection, reply))
            return
        await stream.send_all(connection.send(AcceptConnection()))
        socket = WebSocket(stream, connection, max_message_size=1 << 30, buffered=buffered)
        try:
            while True:
                message = await socket.receive()
                if self.body_seen is not None:
                    self.body_seen(self.requests, message.encode())
                reply = self.script(headers, self.requests)
                self.requests += 1
                with self._answering():
                    if not await play_messages(socket, reply):
                        return  # a reset: the connection drops without a close
        except WebSocketClosed:
            pass  # the proxy closed its socket (answered by receive)

    async def _play(self, stream: trio.abc.Stream, reply: Reply) -> bool:
        """Write one reply; False when a fault or the proxy ended the connection."""
        if reply.fault == "reset-before-body":
            return False
        if reply.head_delay and await _hung_up_within(stream, reply.head_delay):
            return False
        reason = (
            HTTPStatus(reply.status).phrase if reply.status in HTTPStatus._value2member_map_ else ""
        )
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        lines.append("transfer-encoding: chunked")
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for i, chunk in enumerate(reply.chunks):
            if reply.fault is not None and i == reply.fault_at:
                return await _fault(stream, reply)
            delay = reply.delays[i] if i < len(reply.delays) else 0.0
            if delay and await _hung_up_within(stream, delay):
                return False
            if chunk:
                await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if reply.fault is not None:
            return await _fault(stream, reply)
        await stream.send_all(b"0\r\n\r\n")
        return True


async def _hung_up_within(stream: trio.abc.Stream, seconds: float) -> bool:
    """Wait ``seconds``, or less if the proxy closes the connection (then True).

    A waiting server notices a closed connection; the proxy sends nothing else mid-reply.
    """
    with trio.move_on_after(seconds):
        await stream.receive_some(65536)
        return True
    return False


async def _fault(stream: trio.abc.Stream, reply: Reply) -> bool:
    if reply.fault == "stall":
        await _hung_up_within(stream, float("inf"))
    return False


def _headers(head: bytes) -> list[tuple[str, str]]:
    pairs = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        pairs.append((name.strip().lower(), value.strip()))
    return pairs
