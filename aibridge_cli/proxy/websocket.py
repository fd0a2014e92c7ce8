"""One open WebSocket over a byte stream: wsproto frames it, this module does the I/O.

Theory of operation: the handshake is done elsewhere (``ws_server`` answers a client's
upgrade, ``ws_upstream`` asks an upstream for one); from then on a ``WebSocket`` owns the
wsproto state and the stream. ``receive`` returns the next whole text message and answers
what the peer sends meanwhile: a ping gets its pong at once, a close gets its close and
ends the socket. A message past ``max_message_size`` is read to its end and dropped (memory
stays bounded by one read) and reported as ``MessageTooBig``, so the caller can answer it
and keep the socket. ``send`` and ``close`` may be called from another task while one task
sits in ``receive``: writes are serialized by a lock, wsproto's state is only touched
between awaits.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio
import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

log = logging.getLogger("aibridge.websocket")

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006  # never sent: what a stream that ends without a close reads as

READ_SIZE = 65536


class ByteStream(Protocol):
    """What a WebSocket runs over: a trio stream, or an upstream connection wrapped as one."""

    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray: ...

    async def aclose(self) -> None: ...


class WebSocketClosed(Exception):
    """The socket is closed: by the peer (with its code), or its stream broke (1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class MessageTooBig(Exception):
    """A message larger than the limit arrived; it was read to its end and dropped."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes is larger than the limit of {limit}")
        self.size = size
        self.limit = limit


class BinaryMessage(Exception):
    """A binary message arrived where only text (JSON) is spoken; it was dropped."""

    def __init__(self, size: int) -> None:
        super().__init__(f"binary message of {size} bytes where JSON text was expected")
        self.size = size


class WebSocket:
    """An open WebSocket: whole text messages in and out, pings answered, close codes kept."""

    def __init__(
        self,
        stream: ByteStream,
        connection: wsproto.WSConnection,
        *,
        max_message_size: int,
        buffered: bytes = b"",
    ) -> None:
        self.stream = stream
        self.connection = connection
        self.max_message_size = max_message_size
        self._send_lock = trio.StrictFIFOLock()
        self._parts: list[str] = []
        self._size = 0
        self._binary = False
        self.close_code: int | None = None  # set once closed, from either side
        self.pongs = 0
        if buffered:
            connection.receive_data(buffered)

    @property
    def open(self) -> bool:
        return self.connection.state is ConnectionState.OPEN

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self.close_code = self.close_code or ABNORMAL_CLOSURE
                raise WebSocketClosed(ABNORMAL_CLOSURE, "the stream broke") from exc

    async def send(self, text: str) -> None:
        """Send one text message; ``WebSocketClosed`` when the socket is no longer open."""
        if not self.open:
            raise WebSocketClosed(self.close_code or ABNORMAL_CLOSURE, "socket not open")
        await self._write(self.connection.send(Message(data=text)))

    async def ping(self, payload: bytes = b"") -> None:
        if self.open:
            await self._write(self.connection.send(Ping(payload=payload)))

    async def receive(self) -> str:
        """The next whole text message.

        Raises ``WebSocketClosed`` when the peer closes (after answering its close) or the
        stream ends, ``MessageTooBig`` or ``BinaryMessage`` for a message it dropped.
        """
        while True:
            for event in self.connection.events():
                message = await self._on_event(event)
                if message is not None:
                    return message
            if self.connection.state is ConnectionState.CLOSED:
                raise WebSocketClosed(self.close_code or ABNORMAL_CLOSURE)
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self.close_code = self.close_code or ABNORMAL_CLOSURE
                self.connection.receive_data(None)
                raise WebSocketClosed(ABNORMAL_CLOSURE, "the peer went away without a close")
            self.connection.receive_data(bytes(data))

    async def _on_event(self, event: object) -> str | None:
        if isinstance(event, TextMessage | BytesMessage):
            return self._on_data(event)
        if isinstance(event, Ping):
            await self._write(self.connection.send(event.response()))
        elif isinstance(event, Pong):
            self.pongs += 1
        elif isinstance(event, CloseConnection):
            self.close_code = event.code
            if self.connection.state is ConnectionState.REMOTE_CLOSING:
                try:
                    await self._write(self.connection.send(event.response()))
                except WebSocketClosed:
                    pass  # the peer closed and left: its close is answered by the hang-up
            raise WebSocketClosed(event.code, event.reason or "")
        return None

    def _on_data(self, event: TextMessage | BytesMessage) -> str | None:
        self._size += len(event.data)
        if isinstance(event, BytesMessage):
            self._binary = True
        if isinstance(event, TextMessage) and self._size <= self.max_message_size:
            self._parts.append(event.data)
        else:
            self._parts = []  # past the limit, or binary: keep counting, stop keeping
        if not event.message_finished:
            return None
        size, binary, parts = self._size, self._binary, self._parts
        self._size, self._binary, self._parts = 0, False, []
        if size > self.max_message_size:
            raise MessageTooBig(size, self.max_message_size)
        if binary:
            raise BinaryMessage(size)
        return "".join(parts)

    async def close(
        self, code: int = NORMAL_CLOSURE, reason: str = "", *, wait: float = 1.0
    ) -> None:
        """Send a close (if still open), wait up to ``wait`` s for the peer's, close the stream.

        Shielded: it also runs on the way out of a cancelled scope, so the peer always
        gets a code instead of a bare hang-up when the stream still works.
        """
        with trio.CancelScope(shield=True):
            try:
                if self.open:
                    self.close_code = code
                    await self._write(self.connection.send(CloseConnection(code, reason)))
                    with trio.move_on_after(wait):
                        while self.connection.state is not ConnectionState.CLOSED:
                            await self.receive()
            except (WebSocketClosed, MessageTooBig, BinaryMessage, LocalProtocolError):
                pass  # the peer answered, left, or sent more: either way the socket is done
            finally:
                try:
                    await self.stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass  # already gone: closing it is what we wanted
