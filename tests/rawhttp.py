"""A raw h11 client for tests: full control over when each byte is read."""

from __future__ import annotations

from dataclasses import dataclass

import h11
import trio

# The headers of a WebSocket upgrade request (RFC 6455's sample key).
WEBSOCKET_UPGRADE = [
    ("connection", "upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
]


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def _authority(stream: trio.abc.Stream) -> str:
    """The Host a real client sends: the address dialled (the guard admits no other); a
    memory stream has none."""
    if not isinstance(stream, trio.SocketStream):
        return "test"
    ip, port = stream.socket.getpeername()[:2]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class RawClient:
    """One HTTP/1.1 client connection over any ``trio.abc.Stream``."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.host = _authority(stream)

    async def send_request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        all_headers = [("host", self.host), ("content-length", str(len(body))), *(headers or [])]
        await self.stream.send_all(
            self.h11.send(h11.Request(method=method, target=target, headers=all_headers))
        )
        if body:
            await self.stream.send_all(self.h11.send(h11.Data(data=body)))
        await self.stream.send_all(self.h11.send(h11.EndOfMessage()))

    async def _next(self, max_bytes: int = 65536) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise EOFError(f"server closed the connection mid-response: {exc}") from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # NEED_DATA is excluded
            self.h11.receive_data(bytes(await self.stream.receive_some(max_bytes)))

    async def read_response(self, max_bytes: int = 65536) -> RawResponse:
        """The whole response; ``max_bytes`` per read lets a test read slowly."""
        head = await self._next(max_bytes)
        while isinstance(head, h11.InformationalResponse):
            head = await self._next(max_bytes)
        if isinstance(head, h11.ConnectionClosed):
            raise EOFError("server closed the connection without answering")
        assert isinstance(head, h11.Response), head
        parts: list[bytes] = []
        while True:
            event = await self._next(max_bytes)
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        headers = [(k.decode(), v.decode()) for k, v in head.headers]
        return RawResponse(head.status_code, headers, b"".join(parts))

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> RawResponse:
        await self.send_request(method, target, body, headers)
        response = await self.read_response()
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return response

    async def at_eof(self) -> bool:
        """True when the server closed its side (after any response it sent)."""
        try:
            return await self.stream.receive_some(1) == b""
        except trio.BrokenResourceError:
            return True
