"""Opening a WebSocket to an upstream: TCP (and TLS) from an httpcore network backend,
the handshake with wsproto.

The HTTP client and this dialer take the same network backend, so the simulation's
in-memory network serves both without either knowing (real runs use httpcore's trio
backend). An upstream that refuses the upgrade answers an HTTP status with a body, which
comes back as a ``Refused`` for the key pool to judge, as an HTTP answer would.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import httpcore
import httpx
import trio
import wsproto
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from ..config import UpstreamTimeouts
from ..errors import UpstreamBroken, UpstreamTimeout, UpstreamUnreachable
from ..headers import Headers
from .websocket import READ_SIZE, WebSocket

# Generous: one response.create carries the whole conversation, and an upstream event can
# carry a whole response (response.completed); a message past it is dropped and answered.
MAX_MESSAGE_SIZE = 32 * 1024 * 1024


class NetworkByteStream:
    """An httpcore network stream as the byte stream a ``WebSocket`` runs over.

    Reads wait at most ``timeouts.read`` (the idle time allowed between an upstream's bytes,
    as on HTTP); a broken connection reads as trio's broken-resource error, which the
    socket turns into a close.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream, timeouts: UpstreamTimeouts) -> None:
        self._stream = stream
        self._timeouts = timeouts

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.write(data, timeout=self._timeouts.write)
        except httpcore.WriteTimeout:
            raise UpstreamTimeout(
                f"upstream took no bytes for {self._timeouts.write:g} s"
            ) from None
        except httpcore.NetworkError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await self._stream.read(max_bytes or READ_SIZE, timeout=self._timeouts.read)
        except httpcore.ReadTimeout:
            raise UpstreamTimeout(f"upstream sent nothing for {self._timeouts.read:g} s") from None
        except httpcore.NetworkError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass(frozen=True)
class Accepted:
    """The upstream took the upgrade: the open socket and the 101's headers."""

    socket: WebSocket
    headers: Headers


@dataclass(frozen=True)
class Refused:
    """The upstream answered the upgrade with an HTTP status and a body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class WebSocketDialer:
    """Opens upstream WebSockets; built once per proxy, like the HTTP client."""

    network: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.TrioBackend)
    timeouts: UpstreamTimeouts = field(default_factory=UpstreamTimeouts)
    max_message_size: int = MAX_MESSAGE_SIZE
    ssl_context: ssl.SSLContext | None = None

    async def dial(self, url: httpx.URL, headers: Headers) -> Accepted | Refused:
        """Connect to ``url`` (``http(s)``/``ws(s)``) and ask for a WebSocket upgrade."""
        secure = url.scheme in ("https", "wss")
        host = url.host
        port = url.port or (443 if secure else 80)
        stream = await self._connect(host, port, secure)
        byte_stream = NetworkByteStream(stream, self.timeouts)
        try:
            answer = await self._handshake(byte_stream, url, headers)
        except BaseException:
            with trio.CancelScope(shield=True):
                await byte_stream.aclose()
            raise
        if isinstance(answer, Refused):
            await byte_stream.aclose()  # a refused upgrade leaves nothing to speak over
        return answer

    async def _connect(self, host: str, port: int, secure: bool) -> httpcore.AsyncNetworkStream:
        timeout = self.timeouts.connect
        try:
            stream = await self.network.connect_tcp(host, port, timeout=timeout)
            if secure:
                context = self.ssl_context or ssl.create_default_context()
                stream = await stream.start_tls(context, server_hostname=host, timeout=timeout)
        except httpcore.ConnectTimeout:
            raise UpstreamTimeout("upstream did not accept a connection in time") from None
        except (httpcore.ConnectError, httpcore.NetworkError, OSError) as exc:
            raise UpstreamUnreachable(f"upstream unreachable: {exc}") from None
        return stream

    async def _handshake(
        self, stream: NetworkByteStream, url: httpx.URL, headers: Headers
    ) -> Accepted | Refused:
        connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        authority = url.netloc.decode("ascii")
        target = url.raw_path.decode("ascii")
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        request = Request(host=authority, target=target, extra_headers=extra)
        try:
            await stream.send_all(connection.send(request))
        except trio.BrokenResourceError as exc:
            raise UpstreamBroken(f"upstream connection lost: {exc}") from None
        refused: Refused | None = None
        body: list[bytes] = []
        while True:
            try:
                data = await stream.receive_some(READ_SIZE)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                raise UpstreamBroken("upstream closed the connection during the upgrade")
            connection.receive_data(data)
            for event in connection.events():
                if isinstance(event, AcceptConnection):
                    socket = WebSocket(stream, connection, max_message_size=self.max_message_size)
                    return Accepted(socket, _text_headers(event.extra_headers))
                if isinstance(event, RejectConnection):
                    refused = Refused(event.status_code, _text_headers(event.headers), b"")
                    # A refusal's body says why; a 2xx/3xx's is not for us, and may never end.
                    if not event.has_body or event.status_code < 400:
                        return refused
                elif isinstance(event, RejectData) and refused is not None:
                    body.append(bytes(event.data))
                    if event.body_finished:
                        return Refused(refused.status, refused.headers, b"".join(body))


def _text_headers(headers: list[tuple[bytes, bytes]]) -> Headers:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
