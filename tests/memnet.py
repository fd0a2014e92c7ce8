"""An httpcore network backend whose connections are in-memory streams to one server.

With it, the proxy's upstream traffic never touches a socket, so a test can run the
whole exchange under trio's MockClock and a seeded scheduler, and replay it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import trio
import trio.testing

from aibridge_cli.server import Server


class MemoryStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one in-memory connection, with its timeouts and errors."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with trio.fail_after(float("inf") if timeout is None else timeout):
                return bytes(await self.stream.receive_some(max_bytes))
        except trio.TooSlowError:
            raise httpcore.ReadTimeout("read timed out") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            with trio.fail_after(float("inf") if timeout is None else timeout):
                await self.stream.send_all(buffer)
        except trio.TooSlowError:
            raise httpcore.WriteTimeout("write timed out") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self.stream.aclose()

    def get_extra_info(self, info: str) -> Any:
        return False if info == "is_readable" else None


class MemoryNetwork(httpcore.AsyncNetworkBackend):
    """Every ``connect_tcp`` opens a fresh in-memory connection to ``server``."""

    def __init__(self, nursery: trio.Nursery, server: Server) -> None:
        self.nursery = nursery
        self.server = server
        self.connections = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        client, server = trio.testing.memory_stream_pair()
        self.connections += 1
        self.nursery.start_soon(self.server.serve_stream, server)
        await trio.lowlevel.checkpoint()
        return MemoryStream(client)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise NotImplementedError("the in-memory network has no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)
