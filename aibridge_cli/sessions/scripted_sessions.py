"""Making fixtures without a real provider: scripted upstream replies through the proxy.

A ``Session`` is client requests, each with the upstream replies the scripted upstream
plays for it, the injected tools and the number of keys. ``record_session`` runs it
through aibridge's own proxy on loopback and returns what the recorder got: a fixture.
The built-in fixtures (``scripts/make_builtin_fixtures.py``) and ``aibridge import`` are
made this way.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from ..config import ServeOptions
from ..errors import FixtureError
from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from ..interception import Interception, Transport
from ..providers.base import dumps
from ..proxy.run import build_app
from ..proxy.server import Server
from ..tools import InjectedTool, ToolSet
from .fixture import Fixture, provider_of
from .ws_client import websocket_exchange

CLIENT_PATHS = {
    "anthropic": "/anthropic/v1/messages",
    "openai-chat": "/openai/v1/chat/completions",
    "openai-responses": "/openai/v1/responses",
}
PROVIDER_PREFIXES = {"anthropic": "/anthropic", "openai": "/openai/v1"}
_CLIENT_HEADERS = {
    "anthropic": [("anthropic-version", "2023-06-01"), ("x-api-key", "client-key")],
    "openai": [("authorization", "Bearer client-key")],
}
_RECORD_WAIT = 5.0
_EXHAUSTED = Reply.json(
    {"type": "error", "error": {"type": "api_error", "message": "scenario: no reply left"}}, 500
)


async def stop_servers(*servers: Server, grace: float = 5.0) -> None:
    """Shut servers down and wait until their connections are closed (bounded)."""
    for server in servers:
        server.shutdown()
    with trio.move_on_after(grace):
        for server in servers:
            await server.stopped.wait()


@dataclass(frozen=True)
class Step:
    """One client request and the upstream replies, in order, that the proxy will get.

    A pass-through step (``api`` ``anthropic-passthrough`` or ``openai-passthrough``) names
    its ``method`` and its ``path`` under the provider's prefix; ``body`` may be None.
    """

    api: str
    body: dict[str, Any] | None
    replies: Sequence[Reply]
    label: str = ""
    method: str = "POST"
    path: str | None = None  # under the provider's prefix; None: the API's own route
    transport: Transport = "http"  # websocket: ``body`` is a response.create message

    def client_path(self) -> str:
        if self.path is None:
            return CLIENT_PATHS[self.api]
        return PROVIDER_PREFIXES[provider_of(self.api)] + self.path


@dataclass(frozen=True)
class Session:
    steps: Sequence[Step]
    tools: Sequence[InjectedTool] = ()
    keys: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def fake_keys(provider: str, count: int) -> list[str]:
    """Keys that look real enough to be masked like real ones."""
    prefix = "sk-ant-api03" if provider == "anthropic" else "sk-proj"
    return [f"{prefix}-fixture{i + 1}-{'abcdefgh'[i % 8] * 12}" for i in range(count)]


def split_sse(text: str) -> list[bytes]:
    """An SSE body cut after each blank line: one chunk per event, bytes kept exactly."""
    return [part.encode() for part in re.split(r"(?<=\n\n)", text) if part]


async def record_session(session: Session, path: str = "<session>") -> Fixture:
    """Run ``session`` through the proxy and return the fixture it records."""
    # Each step plays its own replies: one the proxy did not ask for never leaks into the next.
    pending: deque[Reply] = deque()

    def play(seen: SeenRequest, index: int) -> Reply:
        return pending.popleft() if pending else _EXHAUSTED

    def refuse(seen: SeenRequest) -> Reply | None:
        # a WebSocket upgrade is refused with the next reply when that is an error
        return pending.popleft() if pending and pending[0].status >= 400 else None

    upstream = ScriptedUpstream(script=play, refuse=refuse)
    records: list[Interception] = []
    recorded = trio.Event()

    def record(interception: Interception) -> None:
        records.append(interception)
        recorded.set()

    options = dict(session.options)
    failure: str | None = None
    async with trio.open_nursery() as nursery:
        upstream_server = Server(upstream)
        host, port = await nursery.start(upstream_server.serve_tcp, "127.0.0.1", 0)
        url = f"http://{host}:{port}"
        app = build_app(
            ServeOptions(
                anthropic_base_url=url,
                openai_base_url=url + "/v1",
                anthropic_keys=fake_keys("anthropic", session.keys),
                openai_keys=fake_keys("openai", session.keys),
                **options,
            ),
            tools=ToolSet.of(session.tools),
            recorder=record,
        )
        proxy = Server(app)
        phost, pport = await nursery.start(proxy.serve_tcp, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                for step in session.steps:
                    pending.clear()
                    pending.extend(step.replies)
                    recorded = trio.Event()
                    headers = [
                        ("content-type", "application/json"),
                        *_CLIENT_HEADERS[provider_of(step.api)],
                    ]
                    url_ = f"http://{phost}:{pport}{step.client_path()}"
                    content = None if step.body is None else dumps(step.body).encode()
                    if step.transport == "websocket":
                        status, _, _ = await websocket_exchange(url_, headers, content or b"")
                    else:
                        async with client.stream(
                            step.method, url_, headers=headers, content=content
                        ) as response:
                            await response.aread()
                        status = response.status_code
                    # A whole JSON answer can reach the client just before the recorder runs.
                    with trio.move_on_after(_RECORD_WAIT):
                        await recorded.wait()
                    if not recorded.is_set():
                        failure = (
                            f"{path}: the proxy did not intercept {step.api} "
                            f"({step.client_path()} answered {status})"
                        )
                        break
        finally:
            await app.env.client.aclose()
            await stop_servers(proxy, upstream_server)
    if failure is not None:
        raise FixtureError(failure)
    proxy_options = {
        "stream_initiation": options.get("stream_initiation", "eager"),
        "max_iterations": options.get("max_iterations", 10),
    }
    labels = [step.label or f"#{i + 1}" for i, step in enumerate(session.steps)]
    return Fixture(path, records, labels[: len(records)], proxy=proxy_options)
