"""An HTTP/1.1 server on trio and h11 that serves any ``trio.abc.Stream``.

h11 parses what clients send (untrusted: every head is checked as strictly as h11 checks
it); the responses, the proxy's own or an upstream's already parsed, are written by
``http11_response`` to the same bytes at a fraction of the cost, and on a plain socket
without a trip through trio's scheduler when the kernel takes them at once
(``socket_now``).

One ``HTTPConnection`` owns one stream: it reads a request head within the header timeout
and the head size limit, reads the body within the body timeout and size limit (each
timeout a deadline for the whole head or body, however slowly its bytes trickle in; a
streamed body bounds each wait instead), then
runs the app's handler while a watcher task reads the stream, so a client that goes away
cancels the handler (and with it any upstream request) at once. Keep-alive cycles the
same connection; shutdown lets in-flight requests finish within a grace period, then cuts
them, ending each cut event stream with an error event in its API's shape first.

An app that relays bodies it does not read (``BodyStreamingApp``) may take a request's
body as a stream instead: the handler then runs as soon as the head is in, and the watcher
starts once the body has been read. A reply to a HEAD never carries a body, whatever the
app writes: the writer drops it, keeping the head (``content-length`` included) as given.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Protocol, runtime_checkable

import h11
import trio

from ..config import ServerConfig
from ..errors import ClientDisconnected, ListenError
from ..headers import Headers, header, media_type
from .guard import Address, Admit, Guard, Preflight, Refuse
from .http11_response import Body, Peer, request_keep_alive, response_head
from .socket_now import socket_of, writable_now, write_now

log = logging.getLogger("aibridge.server")
# ": b'...'" or ": bytearray(b'...')" at the end of an h11 message
_QUOTED_BYTES = re.compile(r":\s*(?:bytearray\()?b['\"].*\Z", re.S)

# A request target is logged up to this many characters: a 100 KB path is an attack or a
# mistake, and one line of log is no place for it.
LOGGED_TARGET_LIMIT = 200
# How long a stream cut at the end of the grace period gets to take its error event.
SHUTDOWN_NOTICE_TIMEOUT = 1.0
SHUTDOWN_MESSAGE = "proxy shutting down"
# Before a request is read: h11 assumes the worst of the client's version.
_NO_REQUEST = Peer(None, None, keep_alive=True)
# What h11 is told a response was, so its state machine reaches the next cycle: one of
# the same framing as any kept-alive response, with no body to count.
_ENDED = h11.Response(status_code=200, headers=[("content-length", "0")])


def _h11_reason(exc: h11.RemoteProtocolError) -> str:
    """h11's reason without the bytes it quotes: those can be any line of the head (a
    broken request line makes h11 quote the next one, an ``x-api-key`` line, say), and the
    reason is logged."""
    return _QUOTED_BYTES.sub("", str(exc))


def loggable(target: str, limit: int = LOGGED_TARGET_LIMIT) -> str:
    """``target`` cut to ``limit`` characters, saying how much was left out."""
    if len(target) <= limit:
        return target
    return f"{target[:limit]}…(+{len(target) - limit} chars)"


@dataclass(frozen=True)
class Request:
    """A request: header names are lower-case; the body is read in full, or, for an app
    that asked for it, left in ``body_stream`` to read as it comes (``body`` is then empty)."""

    method: str
    target: str
    headers: Headers
    body: bytes
    body_stream: RequestBody | None = None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class AbortConnection(Exception):
    """Raised by a handler to drop the connection at once, mid-response if need be.

    Fake upstreams use it to play a connection reset.
    """


@runtime_checkable
class BodyStreamingApp(Protocol):
    """An app that may take some request bodies as they come, without a size limit."""

    def streams_body(self, method: str, target: str) -> bool:
        """True when the request's body is relayed, not read: it is not buffered."""
        ...


@runtime_checkable
class ShutdownNoticeApp(Protocol):
    """An app that can say why an event stream is cut at the end of the grace period."""

    def stream_error_frame(self, target: str, message: str) -> bytes | None:
        """The last bytes of a cut event stream: an error event in the shape of the API at
        ``target``, or None to cut it without one."""
        ...


class ResponseObserver(Protocol):
    """Sees what a response writer sends: used to record the client-facing response."""

    def started(self, status: int, headers: Headers) -> None: ...

    def wrote(self, data: bytes) -> None: ...


class App(Protocol):
    """What the server runs for each request."""

    async def handle(self, request: Request, response: ResponseWriter) -> None: ...

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        """Headers and body for an error the server itself detects (413, 431, ...)."""
        ...


@dataclass(frozen=True)
class Upgrade:
    """A request that asked to switch protocols, and the connection it came on.

    ``buffered`` holds the bytes that came after the request head (the new protocol's);
    ``shutdown`` is set when the server starts its graceful stop.
    """

    request: Request
    stream: trio.abc.Stream
    buffered: bytes
    shutdown: trio.Event


UpgradeHandler = Callable[[Upgrade], Awaitable[None]]


@runtime_checkable
class Upgrader(Protocol):
    """An ``App`` that takes some upgrades (WebSockets): it returns the handler that owns
    the connection from then on, or None to answer the request as HTTP."""

    def upgrade_handler(self, request: Request) -> UpgradeHandler | None: ...


class _WriteLock:
    """A response's write lock, taken at once when free, without the checkpoint
    ``acquire`` makes (a trip through the scheduler): a relay writes once per batch, and
    the first byte of a stream went through three such trips. A class, not a generator
    context manager: it is taken on every write."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.StrictFIFOLock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class ResponseWriter:
    """Writes one response. Safe to use from two tasks at once.

    Like Go's ``http.ResponseWriter``, a second ``start`` is superfluous: it is ignored
    (and counted), and data written after it joins the body already started. That is what
    lets lazy stream initiation reproduce the JSON-then-SSE body of the seed race.
    """

    def __init__(
        self,
        connection: HTTPConnection,
        observer: ResponseObserver | None = None,
        *,
        head: bool = False,
        cors: Headers | None = None,
    ):
        self._connection = connection
        self._head = head  # the answer to a HEAD: a head and never a body
        self.cors = cors
        self._lock = _WriteLock()
        self.observer = observer
        self.status: int | None = None
        self.headers: Headers = []
        self.finished = False
        self.superfluous_starts = 0
        self.bytes_sent = 0

    @property
    def started(self) -> bool:
        return self.status is not None

    async def start(self, status: int, headers: Headers, data: bytes = b"") -> None:
        """Send the status line and headers; a second call is logged and ignored.

        ``data``, the first body bytes, goes out in the same write as the headers (one
        wake-up of the client instead of two); after an ignored start it is still sent.
        """
        async with self._lock:
            if self.status is not None:
                self.superfluous_starts += 1
                log.warning("superfluous response start %d after %d", status, self.status)
                if data:
                    await self._send(data)
                return
            await self._start(status, headers, data)

    async def _start(
        self, status: int, headers: Headers, data: bytes = b"", *, end: bool = False
    ) -> None:
        self.status = status
        if self._connection.closing:
            headers = [*headers, ("connection", "close")]
        self.headers = headers
        if self.observer is not None:
            self.observer.started(status, headers)
        if self.cors:
            # After the observer: a recording is the same whether a browser asked or not.
            headers = [*headers, *self.cors]
        if data and not self._head:
            if self.observer is not None:
                self.observer.wrote(data)
            self.bytes_sent += len(data)
        else:
            data = b""
        if end:
            self.finished = True
        await self._connection.send_head(status, headers, data, end=end)

    async def wait_writable(self) -> None:
        """Wait until the client can take bytes without blocking (it is reading).

        Held under the write lock, since a trio stream allows one sender at a time; a
        writer that queues meanwhile goes first once the client reads.
        """
        async with self._lock:
            await self._connection.wait_writable()

    async def send(self, data: bytes) -> None:
        """Send body bytes, starting a 200 response first if nothing was started."""
        async with self._lock:
            if self.status is None:
                await self._start(200, [], data)
            elif data:
                await self._send(data)

    async def _send(self, data: bytes) -> None:
        if self._head:
            return
        if self.observer is not None:
            self.observer.wrote(data)
        self.bytes_sent += len(data)
        await self._connection.send_data(data)

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        """A whole response with a ``Content-Length``, ended at once."""
        async with self._lock:
            if self.status is not None:
                self.superfluous_starts += 1
                log.warning("superfluous response %d after %d", status, self.status)
                return
            # head, body and end in one write
            length = ("content-length", str(len(body)))
            await self._start(status, [*headers, length], body, end=True)

    async def finish(self) -> None:
        """End the response (idempotent)."""
        async with self._lock:
            await self._finish()

    async def _finish(self) -> None:
        if not self.finished and self.status is not None:
            self.finished = True
            await self._connection.send_end()


class RequestBody:
    """A request body read as it arrives: ``async for`` over its chunks, once.

    Each wait for more is bounded by the body timeout. A client that goes away or stalls
    mid-body is ``ClientDisconnected``: the request can neither be completed nor answered.
    """

    def __init__(self, connection: HTTPConnection) -> None:
        self._connection = connection
        self.ended = trio.Event()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if self.ended.is_set():
            return
        await connection._send_continue()
        timeout = connection.config.body_timeout
        while True:
            try:
                # each wait, not the whole: a streamed upload may be large, and it is
                # relayed as it comes rather than held
                event = await connection.next_event(trio.current_time() + timeout)
            except h11.RemoteProtocolError as exc:
                raise ClientDisconnected(f"request body cut short: {exc}") from None
            if event is None:
                raise ClientDisconnected(f"request body stalled for {timeout:g} s")
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.ended.set()
                return
            else:
                raise ClientDisconnected("client closed the connection mid-body")


class _Writing:
    """Bounds a write by the write timeout; a gone or stalled peer is ClientDisconnected.

    A class around a bare cancel scope rather than ``trio.fail_after``: that is two
    generator context managers, and every write enters one."""

    __slots__ = ("_connection", "_scope")

    def __init__(self, connection: HTTPConnection) -> None:
        self._connection = connection
        self._scope = trio.CancelScope(
            deadline=trio.current_time() + connection.config.write_timeout
        )

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        self._scope.__exit__(kind, exc, traceback)  # swallows its own Cancelled only
        if self._scope.cancelled_caught:  # the deadline passed (trio's ``fail_at``)
            connection.peer_gone = True
            raise ClientDisconnected(
                f"client read nothing for {connection.config.write_timeout:g} s"
            ) from None
        if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
            # The peer reset or closed the socket: nothing more can be said to it.
            connection.peer_gone = True
            raise ClientDisconnected("client connection closed") from exc


class HTTPConnection:
    """One client connection: its stream, its h11 state, and its request cycle."""

    def __init__(self, stream: trio.abc.Stream, app: App, config: ServerConfig, server: Server):
        self.stream = stream
        self.app = app
        self.config = config
        self.server = server
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        self.idle = True
        self.scope = trio.CancelScope()
        self.peer_gone = False
        self.cycles = 0
        self._streams_body = server.streams_body
        # Asked once per connection, for the guard's Host check.
        self.local = _local_address(stream) if server.guard is not None else None
        self.received = 0  # bytes fed to h11 since the current request began
        self._socket = socket_of(stream)  # a plain socket: written without a trip
        self.request: Request | None = None
        self.writer: ResponseWriter | None = None
        self.torn = False  # a send was cancelled part-way: the byte stream is not whole
        # The cycle's response, written here rather than through h11 (http11_response.py):
        self.peer = _NO_REQUEST  # what the request said that shapes the answer
        self.body: Body | None = None  # the body's framing, once the head is out
        self.keep_alive = True  # the connection may serve another request after it
        self.broken = False  # a response h11 would have refused: nothing more is sent

    @property
    def closing(self) -> bool:
        return self.server.shutting_down

    async def send_head(
        self, status: int, headers: Headers, data: bytes = b"", *, end: bool = False
    ) -> None:
        """Send a response's head, with its first body bytes and its end if given, in one
        write."""
        if self.body is not None or self.broken:
            raise h11.LocalProtocolError("a response was started already")
        try:
            head = response_head(status, headers, self.peer)
            out = head.data + head.body.data(data) if data else head.data
            if end:
                out += head.body.end()
        except (h11.LocalProtocolError, UnicodeEncodeError):
            self.broken = True
            raise
        self.body, self.keep_alive = head.body, head.keep_alive
        await self._write(out)

    async def send_data(self, data: bytes) -> None:
        """Send body bytes, framed."""
        await self._write(self._framed(data, end=False))

    async def send_end(self, data: bytes = b"") -> None:
        """End the body, after ``data`` if given."""
        await self._write(self._framed(data, end=True))

    def _framed(self, data: bytes, *, end: bool) -> bytes:
        body = self.body
        if body is None or self.broken:
            raise h11.LocalProtocolError("no response to send body bytes in")
        try:
            out = body.data(data) if data else b""
            return out + body.end() if end else out
        except h11.LocalProtocolError:
            self.broken = True
            raise

    async def _send_continue(self) -> None:
        """Tell a client that waits for it to send its body (``Expect: 100-continue``)."""
        if self.body is None and self.h11.they_are_waiting_for_100_continue:
            data = self.h11.send(h11.InformationalResponse(status_code=100, headers=[]))
            await self._write(data or b"")

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        if self._socket is not None:
            data = await self._write_now(self._socket, data)
            if not data:
                return
        with _Writing(self):
            try:
                await self.stream.send_all(data)
            except trio.Cancelled:
                self.torn = True  # part of ``data`` may be out: nothing may follow it
                raise

    async def _write_now(self, sock: trio.socket.SocketType, data: bytes) -> bytes:
        """Write what the socket takes at once (socket_now.py); the bytes left over."""
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            self.torn = True  # as trio's send would say: nothing may follow
            raise
        try:
            sent = write_now(sock, data)
        except OSError as exc:
            # The peer reset or closed the socket: nothing more can be said to it.
            self.peer_gone = True
            raise ClientDisconnected("client connection closed") from exc
        return data[sent:]

    async def wait_writable(self) -> None:
        if self._socket is not None and writable_now(self._socket):
            return
        with _Writing(self):
            await self.stream.wait_send_all_might_not_block()

    async def run(self) -> None:
        """Serve requests until the peer closes, a timeout fires or shutdown."""
        try:
            with self.scope:
                try:
                    while True:
                        request = await self._read_request()
                        if request is None:
                            break
                        self.idle = False
                        admitted = await self._admitted(request)
                        if admitted is None:
                            pass  # turned away: the answer is written
                        elif await self._upgraded(admitted[0]):
                            break
                        else:
                            await self._handle(*admitted)
                        self.idle = True
                        self.cycles += 1
                        if self.peer_gone or self.closing or not self._next_cycle():
                            break
                # The handler's nursery wraps what it raises in an ExceptionGroup.
                except* (ClientDisconnected, AbortConnection):
                    pass  # the peer went away, or the app dropped it: nobody to answer
                except* Exception as group:
                    # A bug in a handler must cost its connection, not the whole server.
                    log.error("request handler failed; closing the connection", exc_info=group)
        finally:
            await self._end_cut_stream()
            # Also when the grace period's deadline cuts us: the socket must not leak.
            await self._close()

    def _next_cycle(self) -> bool:
        """Make ready for the next request on this connection; False when it must close.

        h11 still reads the requests but no longer writes the responses: it learns that
        one ended from a stand-in of the same framing (keep-alive, no body) sent through
        it here, so its state machine moves on as before."""
        body = self.body
        if body is None or not body.ended or not self.keep_alive or self.broken:
            return False
        state = self.h11.their_state
        # h11 exports the state but leaves it out of __all__, which mypy reads as private
        if state is not h11.DONE and state is not h11.MIGHT_SWITCH_PROTOCOL:  # type: ignore[attr-defined]
            return False
        self.h11.send(_ENDED)
        self.h11.send(h11.EndOfMessage())
        self.h11.start_next_cycle()
        self.peer, self.body = _NO_REQUEST, None
        return True

    async def _upgraded(self, request: Request) -> bool:
        """Hand the connection to the app's upgrade handler, if it takes this upgrade."""
        # h11 exports the state but leaves it out of __all__, which mypy reads as private
        if self.h11.their_state is not h11.MIGHT_SWITCH_PROTOCOL:  # type: ignore[attr-defined]
            return False
        if not isinstance(self.app, Upgrader):
            return False
        handler = self.app.upgrade_handler(request)
        if handler is None:
            return False
        buffered = bytes(self.h11.trailing_data[0])
        await handler(Upgrade(request, self.stream, buffered, self.server.shutdown_started))
        return True

    async def _end_cut_stream(self) -> None:
        """At the end of the grace period, end an event stream that is being cut with an
        error event, so its client reads why instead of a broken connection."""
        writer, request = self.writer, self.request
        if (
            writer is None
            or request is None
            or not writer.started
            or writer.finished
            or self.torn
            or self.peer_gone
            or trio.current_time() < self.server.grace_deadline
            or media_type(writer.headers) != "text/event-stream"
        ):
            return
        if not isinstance(self.app, ShutdownNoticeApp):
            return
        frame = self.app.stream_error_frame(request.target, SHUTDOWN_MESSAGE)
        if frame is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_NOTICE_TIMEOUT):
            try:
                await self.send_end(frame)
            except (ClientDisconnected, h11.LocalProtocolError):
                return  # gone, or h11 will not send: the cut says the rest
            writer.finished = True
            log.warning(
                "%s %s: stream cut at the end of the %g s grace period; sent an error event (%s)",
                request.method,
                loggable(request.path),
                self.config.grace_period,
                SHUTDOWN_MESSAGE,
            )

    async def _close(self) -> None:
        # Closing may race a peer that already reset the socket: either way it is gone.
        with trio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _receive(self) -> bool:
        """Read more bytes into h11; False on EOF or a broken stream."""
        try:
            data = bytes(await self.stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        self.received += len(data)
        self.h11.receive_data(data)
        if not data:
            self.peer_gone = True
        return bool(data)

    async def next_event(self, deadline: float) -> h11.Event | type[h11.PAUSED] | None:
        """The next h11 event, reading as needed; None when the deadline passed."""
        event = self.h11.next_event()
        if event is not h11.NEED_DATA:
            # Read already (a small request's head and body come in one read): no wait
            # to bound, and a cancel scope costs more than parsing the event.
            return event  # type: ignore[return-value]  # NEED_DATA is excluded
        with trio.move_on_at(deadline):
            while True:
                await self._receive()
                event = self.h11.next_event()
                if event is not h11.NEED_DATA:
                    return event  # type: ignore[return-value]
        return None

    async def _read_request(self) -> Request | None:
        first_wait = (
            self.config.header_timeout if self.cycles == 0 else self.config.keepalive_timeout
        )
        try:
            self.received = len(self.h11.trailing_data[0])  # pipelined bytes already read
            if not self.received:
                # Idle keep-alive: wait for the first byte of the next request.
                with trio.move_on_after(first_wait) as idle_scope:
                    if not await self._receive():
                        return None
                if idle_scope.cancelled_caught:
                    return None
            head = await self.next_event(trio.current_time() + self.config.header_timeout)
            if head is None:
                await self._reject(408, "request header timeout", target="/")
                return None
            if not isinstance(head, h11.Request):
                return None  # ConnectionClosed: the peer is done
            target = head.target.decode("latin-1")
            # h11 checks its limit only while a head is incomplete, so a head that arrives
            # whole in one or two reads may be up to twice as large: measured here exactly.
            head_size = self.received - len(self.h11.trailing_data[0])
            if head_size > self.config.max_header_size:
                await self._reject(
                    431,
                    f"request head is {head_size} bytes, larger than the limit of "
                    f"{self.config.max_header_size}",
                    target=target,
                )
                return None
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
            method = head.method.decode("ascii")
            self.peer = Peer(
                head.method, head.http_version, request_keep_alive(head.http_version, headers)
            )
            # A request that asks to upgrade is read whole (it has no body), so h11 reaches
            # the state where the app may take the connection over.
            streams = self._streams_body is not None and self._streams_body(method, target)
            if streams and header(headers, "upgrade") is None:
                return Request(method, target, headers, b"", RequestBody(self))
            length = _content_length(headers)
            if length is not None and length > self.config.max_body_size:
                await self._reject(413, self._too_large(), target=target, head=method == "HEAD")
                return None
            body = await self._read_body(target)
            if body is None:
                return None
        except h11.RemoteProtocolError as exc:
            if self.body is None and not self.broken:
                await self._reject(
                    exc.error_status_hint, f"bad request: {_h11_reason(exc)}", target="/"
                )
            return None
        return Request(method, target, headers, body)

    def _too_large(self) -> str:
        return f"request body is larger than the limit of {self.config.max_body_size} bytes"

    async def _read_body(self, target: str) -> bytes | None:
        await self._send_continue()
        parts: list[bytes] = []
        size = 0
        # One deadline for the whole body: a client sending a byte now and then must not
        # hold the connection for ever.
        deadline = trio.current_time() + self.config.body_timeout
        while True:
            event = await self.next_event(deadline)
            if event is None:
                await self._reject(408, "request body timeout", target=target)
                return None
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.config.max_body_size:
                    await self._reject(413, self._too_large(), target=target)
                    return None
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                return None

    async def _reject(self, status: int, message: str, *, target: str, head: bool = False) -> None:
        """Answer an error the server found itself, then the connection closes."""
        if self.body is not None or self.broken:
            return
        headers, body = self.app.error_response(target, status, message)
        try:
            writer = ResponseWriter(self, head=head)
            await writer.respond(status, [*headers, ("connection", "close")], body)
        except (ClientDisconnected, h11.LocalProtocolError):
            pass  # the peer is gone or the state forbids an answer: closing says enough
        log.info(
            "rejected %s from %s: %d %s", loggable(target), _peer(self.stream), status, message
        )

    async def _admitted(self, request: Request) -> tuple[Request, Headers | None] | None:
        """The request as the guard lets it through (its token header dropped) and the CORS
        headers its answer carries; None when the guard turned it away. Upgrades (WebSocket)
        pass the same gate as every other request."""
        if self.server.guard is None:
            return request, None
        verdict = self.server.guard.check(request.method, request.path, request.headers, self.local)
        if not isinstance(verdict, Admit):
            await self._turn_away(request, verdict)
            return None
        if verdict.headers is not request.headers:
            request = replace(request, headers=verdict.headers)
        return request, verdict.cors

    async def _handle(self, request: Request, cors: Headers | None) -> None:
        writer = ResponseWriter(self, head=request.method == "HEAD", cors=cors)
        self.request, self.writer = request, writer
        async with trio.open_nursery() as nursery:
            if request.body_stream is not None:
                # The body is still arriving: watch the peer once the handler has read it.
                nursery.start_soon(
                    self._watch_after_body, request.body_stream, nursery.cancel_scope
                )
            elif not self.h11.trailing_data[0]:
                nursery.start_soon(self._watch_peer, nursery.cancel_scope)
            try:
                try:
                    await self.app.handle(request, writer)
                except Exception as exc:
                    if writer.started or _is_disconnect(exc):
                        raise  # mid-response: cutting the connection is all that is left
                    # A bug in the app: answer in the app's error shape, not with silence.
                    log.error("request handler failed on %s", loggable(request.path), exc_info=exc)
                    headers, body = self.app.error_response(
                        request.target, 500, "internal error in the proxy"
                    )
                    await writer.respond(500, [*headers, ("connection", "close")], body)
                if not writer.started:
                    await writer.respond(500, [], b"")
                await writer.finish()
            finally:
                nursery.cancel_scope.cancel()

    async def _watch_after_body(self, body: RequestBody, handler_scope: trio.CancelScope) -> None:
        await body.ended.wait()
        if not self.h11.trailing_data[0]:
            await self._watch_peer(handler_scope)

    async def _turn_away(self, request: Request, verdict: Refuse | Preflight) -> None:
        """Answer for the guard; the app never sees the request (nor reads a body still
        arriving: the connection closes after the answer)."""
        writer = ResponseWriter(self, head=request.method == "HEAD")
        if isinstance(verdict, Preflight):
            await writer.start(204, verdict.headers)  # no Content-Length on a 204
            await writer.finish()
            return
        log.warning(
            "refused %s %s from %s: %d %s",
            request.method,
            loggable(request.path),
            _peer(self.stream),
            verdict.status,
            verdict.message,
        )
        headers, body = self.app.error_response(request.target, verdict.status, verdict.message)
        await writer.respond(verdict.status, headers, body)

    async def _watch_peer(self, handler_scope: trio.CancelScope) -> None:
        """Cancel the handler when the client goes away while it is being answered."""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            # A pipelined request: keep it for the next cycle and stop watching.
            self.h11.receive_data(bytes(data))
            return
        self.peer_gone = True
        handler_scope.cancel()


def _is_disconnect(exc: BaseException) -> bool:
    """True for a peer that went away (or an app that dropped it), even inside a group."""
    expected = (ClientDisconnected, AbortConnection)
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(expected) is not None
    return isinstance(exc, expected)


def _peer(stream: trio.abc.Stream) -> str:
    """Who is on the other end, for a refusal's log line: ``ip:port``, or ``-``."""
    if not isinstance(stream, trio.SocketStream):
        return "-"
    try:
        ip, port = stream.socket.getpeername()[:2]
    except OSError:
        return "-"  # reset already
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _local_address(stream: trio.abc.Stream) -> Address | None:
    """The address a socket stream's peer connected to; None for other streams."""
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        sockname = stream.socket.getsockname()
    except OSError:
        # Reset already. Not None, which would skip the port check: this address matches
        # no Host, so the check fails closed.
        return "", -1
    return str(sockname[0]), int(sockname[1])


def _content_length(headers: Sequence[tuple[str, str]]) -> int | None:
    for key, value in headers:
        if key == "content-length" and value.isdigit():
            return int(value)
    return None


@dataclass
class Server:
    """Runs connections for an app; ``shutdown`` starts a graceful stop."""

    app: App
    config: ServerConfig = field(default_factory=ServerConfig)
    guard: Guard | None = None  # None: every request goes to the app (fakes, memory pipes)
    shutting_down: bool = False
    connections: set[HTTPConnection] = field(default_factory=set)
    # when the grace period ends and busy connections are cut (set at shutdown)
    grace_deadline: float = math.inf

    def __post_init__(self) -> None:
        self._shutdown = trio.Event()
        self.stopped = trio.Event()
        # Asked once: a runtime protocol check costs tens of µs, a connection each in a burst.
        self.streams_body = (
            self.app.streams_body if isinstance(self.app, BodyStreamingApp) else None
        )
        self._connections: trio.CancelScope | None = None  # while serving listeners

    @property
    def shutdown_started(self) -> trio.Event:
        return self._shutdown

    def shutdown(self) -> None:
        """Stop accepting; idle connections close now, busy ones at the end of the grace."""
        self.shutting_down = True
        self._shutdown.set()
        for connection in list(self.connections):
            if connection.idle:
                connection.scope.cancel()

    def end_grace(self) -> None:
        """End the grace period now (a second Ctrl-C): busy connections are cut as at its
        end, so a cut event stream still gets its error event."""
        self.shutdown()
        self.grace_deadline = trio.current_time()
        if self._connections is not None:
            self._connections.deadline = self.grace_deadline

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection over any stream (a TCP socket or an in-memory pipe)."""
        connection = HTTPConnection(stream, self.app, self.config, self)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def serve_tcp(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on host:port and serve until shutdown; reports the bound address.

        An address that cannot be bound (taken, not this machine's, unresolvable) is a
        ``ListenError`` naming it: the one failure an operator causes here."""
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:  # socket.gaierror included
            raise ListenError(host, port, exc) from exc
        await self.serve_listeners(listeners, task_status=task_status)

    async def serve_listeners(
        self,
        listeners: Sequence[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        sockname = listeners[0].socket.getsockname()
        try:
            await self._serve_listeners(listeners, sockname, task_status)
        finally:
            self.stopped.set()

    async def _serve_listeners(
        self,
        listeners: Sequence[trio.SocketListener],
        sockname: tuple[str, int],
        task_status: trio.TaskStatus[tuple[str, int]],
    ) -> None:
        async with trio.open_nursery() as connections:
            self._connections = connections.cancel_scope
            try:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
                    task_status.started((sockname[0], sockname[1]))
                    await self._shutdown.wait()
                    acceptors.cancel_scope.cancel()
            finally:
                # Also when cancelled from outside: the listening sockets must not leak.
                with trio.CancelScope(shield=True):
                    for listener in listeners:
                        await listener.aclose()
            # ``end_grace`` may have ended it already
            self.grace_deadline = min(
                self.grace_deadline, trio.current_time() + self.config.grace_period
            )
            connections.cancel_scope.deadline = self.grace_deadline

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # Out of file descriptors and the like: wait a little, the pressure passes.
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self.serve_stream, stream)
