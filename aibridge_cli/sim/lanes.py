"""Which request of a load a task works for, for a reproducer's per-request lanes.

A load client sets ``REQUEST`` before it connects; trio copies the spawning task's
context into every task it starts, so the proxy's handler, its relay and the tool runs
of that request read the same index. An upstream connection is the exception: httpcore
keeps it for whichever request comes next, so ``SenderNetwork`` notes, per connection,
the request whose task wrote to it last (one request at a time on an HTTP/1.1
connection), and the upstream's answer is drawn against that request. Used only for a
run recorded with a timeline: it adds no checkpoint, so the run is the same run.
"""

from __future__ import annotations

import typing
from contextvars import ContextVar

import httpcore
import trio

from .network import MemoryNetwork, ServeStream
from .pipes import Yields

REQUEST: ContextVar[int | None] = ContextVar("aibridge_sim_request", default=None)


class _NotedStream(httpcore.AsyncNetworkStream):
    """One upstream connection as httpcore sees it; a write notes the writer's request."""

    def __init__(
        self, inner: httpcore.AsyncNetworkStream, senders: dict[str, int | None], name: str
    ) -> None:
        self._inner = inner
        self._senders = senders
        self._name = name

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        self._senders[self._name] = REQUEST.get()
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class SenderNetwork(MemoryNetwork):
    """A ``MemoryNetwork`` that notes which request last wrote on each connection."""

    def __init__(self, nursery: trio.Nursery, serve: ServeStream, yields: Yields) -> None:
        super().__init__(nursery, serve, yields)
        self.senders: dict[str, int | None] = {}  # connection task name -> request

    async def connect_tcp(
        self, *args: typing.Any, **kwargs: typing.Any
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(*args, **kwargs)
        return _NotedStream(stream, self.senders, f"upstream-conn-{self.connections}")

    def sender(self) -> int | None:
        """The request the running upstream connection task is answering."""
        return self.senders.get(trio.lowlevel.current_task().name)
