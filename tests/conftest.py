"""Shared fixtures: a scripted upstream and the proxy, both on real loopback sockets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from aibridge_cli import interception
from aibridge_cli.config import GuardConfig, ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy import guard, keypool, ws_server
from aibridge_cli.proxy import routes as app_module
from aibridge_cli.proxy.guard import Guard
from aibridge_cli.proxy.routes import BridgeApp
from aibridge_cli.proxy.run import build_app, proxy_guard
from aibridge_cli.proxy.server import Server
from aibridge_cli.tools import InjectedTool, ToolSet

from .keywatch import KeyWatch

# -- no key in what the whole run logged or recorded (tests/keywatch.py) ------------------
WATCH = KeyWatch()
_BASETEMP: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(WATCH)
    from_secrets = keypool.KeyPool.from_secrets.__func__  # type: ignore[attr-defined]

    def noting_pool(cls: type[keypool.KeyPool], secrets: list[str]) -> keypool.KeyPool:
        WATCH.note(secrets)
        return from_secrets(cls, secrets)  # type: ignore[no-any-return]

    keypool.KeyPool.from_secrets = classmethod(noting_pool)  # type: ignore[assignment]
    # The HTTP and WebSocket routes' own names for the function, imported from interception.
    credentials = interception.credentials

    def noting_client(headers: Iterable[tuple[str, str]]) -> list[str]:
        found: list[str] = credentials(headers)
        WATCH.note(found)
        return found

    for module in (app_module, ws_server):
        setattr(module, "credentials", noting_client)  # noqa: B010
    guard_init = guard.Guard.__init__

    def noting_token(
        self: Guard, config: GuardConfig, json_routes: Iterable[tuple[str, str]] = ()
    ) -> None:
        WATCH.note([config.auth_token] if config.auth_token else [])
        guard_init(self, config, list(json_routes))

    guard.Guard.__init__ = noting_token  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _watch_every_log_record() -> None:
    """Every aibridge record reaches the watch, also after an in-process CLI run set up its
    own stderr logging (which stops propagation)."""
    aibridge = logging.getLogger("aibridge")
    aibridge.setLevel(logging.DEBUG)
    aibridge.propagate = True
    aibridge.handlers.clear()


@pytest.fixture(autouse=True, scope="session")
def _note_basetemp(tmp_path_factory: pytest.TempPathFactory) -> None:
    _BASETEMP.append(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    files = [path for base in _BASETEMP for path in sorted(base.rglob("*.jsonl"))]
    leaks = WATCH.leaks(files)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    searched = (
        f"key watch: {len(WATCH.secrets)} keys, {len(WATCH.lines)} log records,"
        f" {len(files)} .jsonl files"
    )
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        lines = [f"{searched}: {len(leaks)} leaks", *leaks[:20]]
    else:
        lines = [f"{searched}: no key in any"]
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=bool(leaks))


WEATHER = InjectedTool(
    name="bmcp_weather",
    description="Current weather for a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    result="sunny, 21 C",
)


@dataclass
class Stack:
    """A running upstream and proxy, and their URLs."""

    upstream: ScriptedUpstream
    upstream_server: Server
    upstream_url: str
    app: BridgeApp
    proxy_server: Server
    proxy_url: str


async def start_server(
    nursery: trio.Nursery, app: Any, guard: Guard | None = None
) -> tuple[Server, str]:
    server = Server(app, guard=guard)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    return server, f"http://{host}:{port}"


StackFactory = Callable[..., Any]


@pytest.fixture
async def stack(nursery: trio.Nursery) -> AsyncIterator[StackFactory]:
    """Start an upstream with ``replies`` and a proxy in front of it."""
    started: list[Stack] = []

    async def start(
        replies: list[Reply] | None = None,
        *,
        keys: list[str] | None = None,
        openai_keys: list[str] | None = None,
        tools: ToolSet | None = None,
        **options: Any,
    ) -> Stack:
        upstream = ScriptedUpstream(list(replies or []))
        upstream_server, upstream_url = await start_server(nursery, upstream)
        serve_options = ServeOptions(
            anthropic_base_url=upstream_url,
            openai_base_url=upstream_url + "/v1",
            anthropic_keys=keys or [],
            openai_keys=openai_keys or [],
            **options,
        )
        app = build_app(serve_options, tools=tools if tools is not None else ToolSet.of([WEATHER]))
        # Guarded as ``serve`` is: the SDKs must pass the guard unchanged.
        proxy_server, proxy_url = await start_server(nursery, app, proxy_guard(serve_options))
        s = Stack(upstream, upstream_server, upstream_url, app, proxy_server, proxy_url)
        started.append(s)
        return s

    yield start
    for s in started:
        await s.app.env.client.aclose()
        s.proxy_server.shutdown()
        s.upstream_server.shutdown()
    # Wait for the servers to close their listeners before the nursery is cancelled.
    with trio.move_on_after(5):
        for s in started:
            await s.proxy_server.stopped.wait()
            await s.upstream_server.stopped.wait()
