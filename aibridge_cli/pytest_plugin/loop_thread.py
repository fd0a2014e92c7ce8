"""A trio loop of its own on a thread, serving an app on loopback.

The code under test may be synchronous, asyncio or trio, and may block its own thread
while it waits for an answer: the server it talks to cannot share its loop, so it gets
one of its own. ``start`` returns once the socket listens; ``call`` runs an async
function in that loop from any other thread; ``stop`` shuts the server down (idle
keep-alive connections at once, busy ones within the grace period), runs the closers,
and joins the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..config import ServerConfig
from ..errors import AibridgeError
from ..proxy.server import App, Server

T = TypeVar("T")

START_TIMEOUT = 10.0
# Shutdown waits this long for busy connections, then joining waits a little more.
GRACE_PERIOD = 2.0


class LoopThread:
    """One thread, one trio loop, one ``Server`` for ``app`` on 127.0.0.1."""

    def __init__(self, app: App, name: str = "aibridge") -> None:
        self.server = Server(app, ServerConfig(grace_period=GRACE_PERIOD))
        self.closers: list[Callable[[], Awaitable[object]]] = []
        self.address: tuple[str, int] | None = None
        self.failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        assert self.address is not None, "start() first"
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self) -> str:
        """Start the thread; the server's base URL once it listens."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self.address is None:
            raise AibridgeError(
                f"the aibridge server thread did not start within {START_TIMEOUT:g} s"
                + (f": {self.failure!r}" if self.failure else "")
            )
        return self.url

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by start() or stop(), in the caller's thread
            self.failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(self.server.serve_tcp, "127.0.0.1", 0)
                self.address = (host, port)
                self._ready.set()
                await self.server.stopped.wait()
        finally:
            with trio.CancelScope(shield=True):
                for close in reversed(self.closers):
                    await close()

    def call(self, afn: Callable[[], Awaitable[T]]) -> T:
        """Run ``afn()`` in the loop and wait for its result (not from a trio task there)."""
        assert self._token is not None, "start() first"
        return trio.from_thread.run(afn, trio_token=self._token)

    def stop(self) -> None:
        """Shut down and join; raises what the loop died of, if it did."""
        if self._token is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(self.server.shutdown, trio_token=self._token)
            except trio.RunFinishedError:
                pass  # the loop ended on its own: joining reports why
        self._thread.join(GRACE_PERIOD + START_TIMEOUT)
        if self._thread.is_alive():
            raise AibridgeError("the aibridge server thread did not stop")
        if self.failure is not None:
            raise AibridgeError(f"the aibridge server thread failed: {self.failure!r}") from (
                self.failure
            )
