"""The upstream client's HTTP/1.1 connection: one body part per socket read, one write per
request, and broken framing reported after the good bytes before it."""

from __future__ import annotations

import typing

import httpcore
import httpx
import pytest

from aibridge_cli.proxy.httpcore_fence import BodyPart
from aibridge_cli.proxy.upstream_client import body_chunks, make_client

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reads: list[bytes], writes: list[bytes]) -> None:
        self._reads = reads
        self._writes = writes

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return self._reads.pop(0) if self._reads else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._writes.append(buffer)

    async def aclose(self) -> None:
        pass


class ScriptedReads(httpcore.AsyncNetworkBackend):
    """A peer whose socket reads return the given byte strings, one per read."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.writes: list[bytes] = []

    async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> _Stream:
        return _Stream(self.reads, self.writes)

    async def sleep(self, seconds: float) -> None:
        pass


async def parts_of(backend: ScriptedReads) -> list[bytes]:
    async with make_client(network_backend=backend) as client:
        request = client.build_request("POST", "http://up.test/v1/messages", content=b'{"a":1}')
        response = await client.send(request, stream=True)
        async with body_chunks(response) as chunks:
            return [part async for part in chunks]


async def test_every_chunk_of_one_read_comes_up_as_one_part() -> None:
    events = [b"data: %d\n\n" % i for i in range(50)]
    first, rest = chunked(*events[:30]), chunked(*events[30:]) + b"0\r\n\r\n"
    backend = ScriptedReads([HEAD + first, rest])
    parts = await parts_of(backend)
    assert parts == [b"".join(events[:30]), b"".join(events[30:])]


async def test_a_chunk_split_across_reads_is_joined_in_order() -> None:
    body = chunked(b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n") + b"0\r\n\r\n"
    backend = ScriptedReads([HEAD + body[:20], body[20:31], body[31:]])
    parts = await parts_of(backend)
    assert b"".join(parts) == b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"
    assert len(parts) == 3


async def test_the_request_head_and_body_go_out_in_one_write() -> None:
    backend = ScriptedReads([HEAD + b"0\r\n\r\n"])
    await parts_of(backend)
    assert len(backend.writes) == 1
    head, _, body = backend.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/messages HTTP/1.1\r\n")
    assert b"content-length: 7" in head.lower()
    assert body == b'{"a":1}'


async def test_broken_framing_comes_after_the_good_bytes_before_it() -> None:
    good = chunked(b"data: 1\n\n", b"data: 2\n\n")
    backend = ScriptedReads([HEAD + good + b"zz\r\nnot a chunk\r\n"])
    seen: list[bytes] = []
    async with make_client(network_backend=backend) as client:
        request = client.build_request("POST", "http://up.test/v1/messages", content=b"{}")
        response = await client.send(request, stream=True)

        async def read_all() -> None:
            async with body_chunks(response) as chunks:
                async for part in chunks:
                    seen.append(part)

        with pytest.raises(httpx.RemoteProtocolError):
            await read_all()
    assert seen == [b"data: 1\n\ndata: 2\n\n"]


async def test_a_keep_alive_connection_serves_the_next_request() -> None:
    one = HEAD + chunked(b"data: 1\n\n") + b"0\r\n\r\n"
    backend = ScriptedReads([one, one])
    async with make_client(network_backend=backend) as client:
        for _ in range(2):
            request = client.build_request("POST", "http://up.test/v1/messages", content=b"{}")
            response = await client.send(request, stream=True)
            async with body_chunks(response) as chunks:
                assert [part async for part in chunks] == [b"data: 1\n\n"]
            await response.aclose()
    assert len(backend.writes) == 2  # both requests on the one connection


async def test_a_joined_part_keeps_the_chunks_it_came_in() -> None:
    events = [b"data: %d\n\n" % i for i in range(5)]
    backend = ScriptedReads([HEAD + chunked(*events) + b"0\r\n\r\n"])
    (part,) = await parts_of(backend)
    assert part == b"".join(events)
    assert isinstance(part, BodyPart)
    assert part.chunks == tuple(events)
