"""The plugin's state for one pytest session: the server thread and the active test.

Started on the first test that uses aibridge, never before: one ``LoopThread`` serving
this object, which hands each request to the cassette of the test running now. The URLs
a test gets are the same for the whole session, so clients built once (at import, in a
session fixture) keep working from test to test. Recording builds the real proxy once
(one upstream client, shared by every test's ``BridgeApp``, closed at the end); the keys
are the client's own, forwarded, so the proxy holds none.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import ServeOptions
from ..errors import ConfigError
from ..headers import Headers
from ..proxy.routes import BridgeApp, error_response
from ..proxy.run import build_app
from ..proxy.server import Request, ResponseWriter
from ..sessions.recording import load_fixture, open_recorder
from .cassette import Cassette
from .loop_thread import LoopThread
from .network_guard import NetworkGuard, exempt
from .settings import REPLACING, CassetteSettings, Defaults, shown

KEY_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")


class PluginSession:
    """What the server serves, and the bookkeeping of what each test recorded."""

    def __init__(self, defaults: Defaults) -> None:
        self.defaults = defaults
        self.active: Cassette | None = None
        self.thread: LoopThread | None = None
        self.recorded: dict[Path, int] = {}
        self.late: dict[Path, int] = {}
        self.replaced: set[Path] = set()  # files ``all``/``rewrite`` emptied this session
        self._bridge: BridgeApp | None = None

    @property
    def options(self) -> ServeOptions:
        return ServeOptions(
            port=0,
            anthropic_base_url=self.defaults.anthropic_upstream,
            openai_base_url=self.defaults.openai_upstream,
        )

    # -- the app the thread serves --------------------------------------------------------
    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        cassette = self.active  # read once: the test thread swaps it between tests
        if cassette is None:
            message = "aibridge: no test using aibridge is running to answer this request"
            await writer.respond(400, *self.error_response(request.target, 400, message))
            return
        with exempt():  # the proxy's own upstream connections, when recording
            await cassette.handle(request, writer)

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        return error_response(target, status, message)

    # -- tests ---------------------------------------------------------------------------
    def open(self, settings: CassetteSettings) -> Cassette:
        """The cassette for a test about to run, now the one the server answers with."""
        if self.thread is None:
            thread = LoopThread(self, name="aibridge-pytest")
            thread.start()
            self.thread = thread
        path, mode = settings.path, settings.mode
        exists = path.exists()
        if mode == "none" and not exists:
            raise ConfigError(
                f"no recording at {shown(path)}: record it once with --aibridge-record=once "
                "(with the API keys in the environment)"
            )
        recording = mode in ("new", *REPLACING) or (mode == "once" and not exists)
        if mode in REPLACING:
            # Replaced once a session: tests sharing the file append after the first.
            if exists and path not in self.replaced:
                path.unlink()
            self.replaced.add(path)
        fixture = load_fixture(path) if exists and mode not in REPLACING else None
        bridge = writer = None
        if recording:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a short value is no key, and scrubbing it would mangle ordinary text
            secrets = [v for n in KEY_VARIABLES if len(v := os.environ.get(n, "")) >= 8]
            writer = open_recorder(path, self.options, secrets=secrets)
            bridge = self.bridge()
        guard = NetworkGuard(settings.allowed_hosts)
        cassette = Cassette(settings, self.thread.url, fixture, bridge, writer, guard)
        self.active = cassette
        return cassette

    def close(self, cassette: Cassette) -> None:
        """After the test: nothing new reaches the cassette, what is in flight is written."""
        if self.active is cassette:
            self.active = None
        if cassette.writer is None:
            cassette.closed = True  # replay only: nothing in flight can write anything
        elif self.thread is not None:
            self.thread.call(cassette.aclose)
        path = cassette.settings.path
        if cassette.recorded:
            self.recorded[path] = self.recorded.get(path, 0) + cassette.recorded
        if cassette.late:
            self.late[path] = self.late.get(path, 0) + cassette.late

    def bridge(self) -> BridgeApp:
        """The recording proxy, built on first use; its upstream client closes with the loop."""
        if self._bridge is None:
            assert self.thread is not None
            self._bridge = build_app(self.options)
            self.thread.closers.append(self._bridge.env.client.aclose)
        return self._bridge

    def stop(self) -> None:
        if self.thread is not None:
            thread, self.thread = self.thread, None
            thread.stop()
