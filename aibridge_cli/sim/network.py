"""In-memory networking for the simulation: no sockets, same code paths above.

``MemoryNetwork`` is an httpcore network backend: ``connect_tcp`` makes an in-memory
stream pair, hands the far end to a serve function (the mock upstream's
``Server.serve_stream``) and gives httpcore the near end. ``Yields`` wraps any stream and
adds extra ``trio.lowlevel.checkpoint()``s before chosen operations, which widens the
interleavings the scheduler can reach without touching the code under test.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping

import httpcore
import trio
import trio.testing

ServeStream = Callable[[trio.abc.Stream], Awaitable[None]]
# (point, operation index) -> extra checkpoints before that operation
CheckpointPlan = Mapping[tuple[str, int], int]


class Yields:
    """Counts operations per point and yields where the plan says so."""

    def __init__(self, plan: CheckpointPlan) -> None:
        self.plan = plan
        self.counts: dict[str, int] = {}

    async def at(self, point: str) -> None:
        if not self.plan:
            return
        index = self.counts.get(point, 0)
        self.counts[point] = index + 1
        for _ in range(self.plan.get((point, index), 0)):
            await trio.lowlevel.checkpoint()


class YieldingStream(trio.abc.Stream):
    """A stream whose sends and receives pass through ``Yields`` points first."""

    def __init__(
        self,
        inner: trio.abc.Stream,
        yields: Yields,
        name: str,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.note = note
        self.yields = yields
        self._send_point = f"{name}-send"
        self._receive_point = f"{name}-receive"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.yields.at(self._send_point)
        if self.note is not None:
            self.note(f"{self._send_point} {len(data)} bytes: {bytes(data[:40])!r}")
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await self.yields.at(self._receive_point)
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class MemoryNetworkStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one in-memory connection, with its timeouts and errors."""

    def __init__(self, stream: trio.abc.Stream, network: MemoryNetwork) -> None:
        self._stream = stream
        self._network = network
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        try:
            with trio.fail_after(float("inf") if timeout is None else timeout):
                return bytes(await self._stream.receive_some(max_bytes))
        except trio.TooSlowError:
            raise httpcore.ReadTimeout("no data from the upstream in time") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(f"upstream connection broken: {exc}") from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        if not buffer:
            return
        try:
            with trio.fail_after(float("inf") if timeout is None else timeout):
                await self._stream.send_all(buffer)
        except trio.TooSlowError:
            raise httpcore.WriteTimeout("upstream did not take the request in time") from None
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
        near, far = trio.testing.memory_stream_pair()
        self.connections += 1
        self.open_connections += 1
        self.nursery.start_soon(self.serve, far, name=f"upstream-conn-{self.connections}")
        stream = YieldingStream(near, self.yields, "upstream")
        return MemoryNetworkStream(stream, self)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the simulated network has no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)
