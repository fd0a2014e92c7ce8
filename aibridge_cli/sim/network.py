"""In-memory networking for the simulation: no sockets, same code paths above.

``MemoryNetwork`` is an httpcore network backend: ``connect_tcp`` makes an in-memory
stream pair (``pipes``), hands the far end to a serve function (the mock upstream's
``serve_stream``) and gives httpcore the near end, where the plan's ``Yields`` apply
(points ``upstream-send`` and ``upstream-receive``).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import trio

from .pipes import CheckpointPlan, PipeStream, Yields, stream_pair

ServeStream = Callable[[trio.abc.Stream], Awaitable[None]]

__all__ = ["CheckpointPlan", "MemoryNetwork", "MemoryNetworkStream", "Yields"]


class MemoryNetworkStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one in-memory connection, with its timeouts and errors.

    Writes never wait (the upstream's pipe is unbounded), so only a read that has to wait
    pays for its timeout's cancel scope.
    """

    def __init__(self, stream: PipeStream, network: MemoryNetwork) -> None:
        self._stream = stream
        self._network = network
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        try:
            return await self._stream.receive_before(max_bytes, deadline)
        except trio.TooSlowError:
            raise httpcore.ReadTimeout("no data from the upstream in time") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(f"upstream connection broken: {exc}") from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        if not buffer:
            return
        try:
            await self._stream.send_all(buffer)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(f"upstream connection broken: {exc}") from None

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._network.open_connections -= 1
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        return None


class MemoryNetwork(httpcore.AsyncNetworkBackend):
    """Every TCP connect reaches ``serve`` over a fresh in-memory stream pair."""

    def __init__(self, nursery: trio.Nursery, serve: ServeStream, yields: Yields) -> None:
        self.nursery = nursery
        self.serve = serve
        self.yields = yields
        self.connections = 0
        self.open_connections = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        far, near = stream_pair(yields=self.yields, name="upstream")
        self.connections += 1
        self.open_connections += 1
        self.nursery.start_soon(self.serve, far, name=f"upstream-conn-{self.connections}")
        return MemoryNetworkStream(near, self)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the simulated network has no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)
