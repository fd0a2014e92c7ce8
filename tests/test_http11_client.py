"""The intercepted requests' lean HTTP/1.1 client: the wire httpx would write, warm
connections handed out once, FIFO slots within the pool timeout, and a cancelled or cut
request closing its connection."""

from __future__ import annotations

import typing

import httpcore
import httpx
import pytest
import trio
import trio.testing

from aibridge_cli.config import UpstreamTimeouts
from aibridge_cli.proxy.http11_client import Http11Pool, UpstreamRequest
from aibridge_cli.proxy.httpcore_fence import BodyPart
from aibridge_cli.proxy.upstream_client import make_client, send_upstream

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
SSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if not self.peer.reads:
            await trio.sleep_forever()  # a silent upstream
        return self.peer.reads.pop(0)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.peer.writes.append(buffer)

    async def aclose(self) -> None:
        self.closed = True


class Peer(httpcore.AsyncNetworkBackend):
    """An upstream whose socket reads return the given bytes, one string per read, and
    then wait for ever."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.writes: list[bytes] = []
        self.streams: list[_Stream] = []

    async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> _Stream:
        self.streams.append(_Stream(self))
        return self.streams[-1]

    async def sleep(self, seconds: float) -> None:
        pass


def pool(peer: Peer, max_connections: int = 4) -> Http11Pool:
    return Http11Pool(
        peer,
        UpstreamTimeouts(pool=5.0),
        defaults=list(httpx.AsyncClient().headers.raw),
        max_connections=max_connections,
        max_keepalive_connections=4,
        keepalive_expiry=30.0,
    )


def request(headers: list[tuple[bytes, bytes]] | None = None) -> UpstreamRequest:
    url = httpx.URL("http://up.test:8080/v1/messages?beta=true")
    return UpstreamRequest("POST", url, headers or [], b'{"a":1}')


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"user-agent", b"claude-cli/1"), (b"X-Odd", b"v"), (b"accept-encoding", b"identity")],
    ],
)
async def test_the_request_goes_out_as_httpx_wrote_it(headers: list[tuple[bytes, bytes]]) -> None:
    lean, through_httpx = Peer([OK]), Peer([OK])
    response = await pool(lean).send(request(headers))
    assert await response.aread() == b"{}"
    async with httpx.AsyncClient(
        transport=make_client(network_backend=through_httpx)._transport
    ) as client:
        built = client.build_request(
            "POST", str(request().url), headers=headers, content=b'{"a":1}'
        )
        await (await client.send(built)).aread()
    assert lean.writes == through_httpx.writes
    assert len(lean.writes) == 1  # head and body in one write


async def test_a_connection_whose_response_ended_serves_the_next_request() -> None:
    peer = Peer([OK, OK])
    upstream = pool(peer)
    for _ in range(2):
        response = await upstream.send(request())
        assert await response.aread() == b"{}"
        await response.aclose()
    assert len(peer.streams) == 1
    assert not peer.streams[0].closed


async def test_a_response_left_half_read_closes_its_connection() -> None:
    peer = Peer([SSE + chunked(b"data: 1\n\n"), chunked(b"data: 2\n\n") + b"0\r\n\r\n", OK])
    upstream = pool(peer)
    response = await upstream.send(request())
    async for part in response.aiter_raw():
        assert part == b"data: 1\n\n"
        break
    await response.aclose()
    assert peer.streams[0].closed
    peer.reads[:] = [OK]
    await (await upstream.send(request())).aclose()
    assert len(peer.streams) == 2  # a new connection, not the half-read one


async def test_each_socket_read_comes_up_as_one_part_keeping_its_chunks() -> None:
    events = [b"data: %d\n\n" % i for i in range(3)]
    peer = Peer([SSE + chunked(*events), chunked(b"data: 3\n\n") + b"0\r\n\r\n"])
    response = await pool(peer).send(request())
    parts = [part async for part in response.aiter_raw()]
    assert parts == [b"".join(events), b"data: 3\n\n"]
    assert isinstance(parts[0], BodyPart)
    assert parts[0].chunks == tuple(events)


async def test_broken_framing_comes_after_the_good_bytes_before_it() -> None:
    peer = Peer([SSE + chunked(b"data: 1\n\n") + b"zz\r\n"])
    response = await pool(peer).send(request())
    parts = response.aiter_raw()
    assert await parts.__anext__() == b"data: 1\n\n"
    with pytest.raises(httpx.RemoteProtocolError):
        await parts.__anext__()
    assert peer.streams[0].closed


async def test_an_upstream_that_closes_before_answering_is_a_protocol_error() -> None:
    peer = Peer([b""])
    with pytest.raises(httpx.RemoteProtocolError, match="closed without a response"):
        await pool(peer).send(request())
    assert peer.streams[0].closed


async def test_a_cancelled_request_closes_its_connection_and_frees_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = Peer([])  # never answers
    upstream = pool(peer, max_connections=1)
    with trio.move_on_after(1.0):
        await upstream.send(request())
    assert peer.streams[0].closed
    peer.reads.append(OK)
    await (await upstream.send(request())).aclose()  # the one slot is free again


async def test_requests_beyond_the_limit_wait_their_turn_within_the_pool_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = Peer([OK, OK])
    upstream = pool(peer, max_connections=1)
    held = await upstream.send(request())
    order: list[str] = []

    async def second() -> None:
        response = await upstream.send(request())
        order.append("second")
        await response.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.sleep(1.0)
        order.append("first done")
        await held.aread()
        await held.aclose()
    assert order == ["first done", "second"]
    assert len(peer.streams) == 1  # the second took the first's connection
    peer.reads.append(OK)
    held = await upstream.send(request())  # the one connection, held again
    start = trio.current_time()
    with pytest.raises(httpx.PoolTimeout):
        await upstream.send(request())
    assert trio.current_time() - start == 5.0


async def test_the_proxy_client_sends_intercepted_requests_on_the_lean_pool() -> None:
    peer = Peer([OK])
    async with make_client(network_backend=peer) as client:
        response = await send_upstream(client, request())
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == "application/json"
        assert await response.aread() == b"{}"
        await response.aclose()
    assert peer.streams[0].closed  # closing the client closed its idle connection


async def test_a_connection_the_upstream_will_close_or_kept_past_its_expiry_is_not_reused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closing = OK.replace(b"content-length: 2", b"connection: close\r\ncontent-length: 2")
    peer = Peer([closing, OK, OK])
    upstream = pool(peer)
    for _ in range(2):
        response = await upstream.send(request())
        await response.aread()
        await response.aclose()
    assert len(peer.streams) == 2  # the first said it would close
    assert peer.streams[0].closed
    assert not peer.streams[1].closed
    await trio.sleep(30.0)  # the keep-alive expiry
    await (await upstream.send(request())).aclose()
    assert len(peer.streams) == 3
    assert peer.streams[1].closed


async def test_an_answer_sent_before_the_request_was_read_whole_still_comes_up() -> None:
    class Refusing(Peer):
        async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> _Stream:
            stream = await super().connect_tcp()

            async def write(buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
                raise httpcore.WriteError("connection reset by peer")

            stream.write = write  # type: ignore[method-assign]
            return stream

    too_large = b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    response = await pool(Refusing([too_large])).send(request())
    assert response.status_code == 413
