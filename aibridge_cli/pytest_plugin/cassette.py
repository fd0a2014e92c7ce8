"""One test's recording as the plugin's server serves it: replay, record, or both.

A request comes in under ``/anthropic/...`` or ``/openai/v1/...``, the layout of the
proxy's own routes. With a recording loaded, the request takes the first unserved
exchange it matches and gets its recorded answer. Otherwise, when the test records, it
goes through the real proxy to the real upstream and the proxy's recorder appends the
interception to the test's file. Otherwise it is a miss: the client gets a 400 in the
provider's shape, and the test fails afterwards with how the request differs from the
closest recorded one, even if the code under test swallowed the error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import trio

from ..fakes.scripted_upstream import play_reply
from ..interception import Interception
from ..proxy.routes import BridgeApp
from ..proxy.server import Request, ResponseWriter
from ..sessions.fixture import Fixture
from ..sessions.matching import request_shape
from ..sessions.mock import MockUpstream, mismatch_reply, reply_for
from ..sessions.recording import FixtureWriter
from .network_guard import NetworkGuard
from .settings import CassetteSettings, shown

PROVIDER_ROUTES = ("/anthropic", "/openai")
DRAIN_TIMEOUT = 5.0
MAX_SHOWN = 5  # misses shown in full in a failure; the rest are counted


@dataclass(frozen=True)
class Miss:
    """A request nothing recorded matched, and why."""

    method: str
    target: str
    problems: list[str]


class Cassette:
    """Serves one test: ``fixture`` (what is recorded already) and, when the test records,
    the real proxy (``bridge`` with this cassette as its recorder) writing to ``writer``."""

    def __init__(
        self,
        settings: CassetteSettings,
        base_url: str,
        fixture: Fixture | None = None,
        bridge: BridgeApp | None = None,
        writer: FixtureWriter | None = None,
        guard: NetworkGuard | None = None,
    ) -> None:
        self.settings = settings
        # on for the test's length (the fixture's ``with``): what it refused fails the test
        self.guard = guard or NetworkGuard()
        self.anthropic_url = f"{base_url}/anthropic"
        self.openai_url = f"{base_url}/openai/v1"
        self.mock = (
            MockUpstream([fixture], settings.timing, settings.rules)
            if fixture is not None
            else None
        )
        self.writer = writer
        self.proxy = dataclasses.replace(bridge, recorder=self.record) if bridge else None
        self.replayed = 0
        self.recorded = 0
        self.late = 0  # interceptions that ended after the test did, not written
        self.misses: list[Miss] = []
        self.closed = False
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    def record(self, interception: Interception) -> None:
        """The proxy's recorder: append to the test's file while the test runs."""
        if self.closed or self.writer is None:
            self.late += 1
            return
        self.writer(interception)  # written by its thread; counted once it is closed

    async def aclose(self) -> None:
        """In the server's loop: let requests in flight finish (their interceptions are
        written when they end), then close the file. A request still going after
        ``DRAIN_TIMEOUT`` is the test's leak; what it records later is dropped."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            await self._idle.wait()
        self.closed = True
        if self.writer is not None:
            await trio.to_thread.run_sync(self.writer.close)  # waits for the last write
            self.recorded = self.writer.written  # a write the disk refused is not counted

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        self._in_flight += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        try:
            await self._handle(request, writer)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _handle(self, request: Request, writer: ResponseWriter) -> None:
        prefix = next((p for p in PROVIDER_ROUTES if request.path.startswith(p + "/")), None)
        inner = request.target[len(prefix) :] if prefix else request.target
        shape = None
        if self.mock is not None and prefix is not None:
            shape = request_shape(
                request.method, inner, request.body, self.mock.rules, request.headers
            )
            expected = self.mock.take(shape)
            if expected is not None:
                self.replayed += 1
                await play_reply(reply_for(expected, self.settings.timing), writer)
                return
        if self.proxy is not None:
            await self.proxy.handle(request, writer)
            return
        if shape is not None and self.mock is not None:
            problems = self.mock.problems(shape)
        elif prefix is None:
            problems = ["aibridge serves only paths under /anthropic/ and /openai/v1/"]
        else:
            problems = ["nothing is recorded for this test"]
        self.misses.append(Miss(request.method, request.target, problems))
        await play_reply(mismatch_reply(inner, len(self.misses) - 1, problems), writer)

    def failure(self) -> str | None:
        """The failure message when requests matched nothing recorded or the test tried to
        reach another host; None when neither happened."""
        lines = self._blocked()
        if not self.misses:
            return "\n".join(lines) or None
        path, mode = shown(self.settings.path), self.settings.mode
        lines.append(
            f"aibridge: {len(self.misses)} request(s) matched nothing recorded in {path} "
            f"(record mode {mode!r})"
        )
        for miss in self.misses[:MAX_SHOWN]:
            lines.append(f"  {miss.method} {miss.target}")
            lines += [f"    {problem}" for problem in miss.problems]
        if len(self.misses) > MAX_SHOWN:
            lines.append(f"  ... and {len(self.misses) - MAX_SHOWN} more")
        lines.append(
            "if the change is intended, record it: --aibridge-record=new adds the new "
            "requests, --aibridge-record=all records the test afresh (both need API keys)"
        )
        return "\n".join(lines)

    def _blocked(self) -> list[str]:
        if not self.guard.blocked:
            return []
        hosts = ", ".join(self.guard.blocked)
        return [
            f"aibridge: the test tried to reach {hosts} outside aibridge's server; the "
            "connection was refused (no live call from a test using aibridge)",
            "  a client built before the test (at import, say) keeps the base URL it read "
            "then: build it in the test, or give it aibridge_anthropic_url / "
            "aibridge_openai_url; to let the test reach a host, name it in the marker's "
            "allowed_hosts or the ini key aibridge_allowed_hosts",
        ]
