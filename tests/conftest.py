"""Shared fixtures: a scripted upstream and the proxy, both on real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from aibridge_cli.app import BridgeApp
from aibridge_cli.scripted import Reply, ScriptedUpstream
from aibridge_cli.serve import ServeOptions, build_app
from aibridge_cli.server import Server
from aibridge_cli.tools import InjectedTool, ToolSet

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


async def start_server(nursery: trio.Nursery, app: Any) -> tuple[Server, str]:
    server = Server(app)
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
        app = build_app(
            ServeOptions(
                anthropic_base_url=upstream_url,
                openai_base_url=upstream_url + "/v1",
                anthropic_keys=keys or [],
                openai_keys=openai_keys or [],
                **options,
            ),
            tools=tools if tools is not None else ToolSet.of([WEATHER]),
        )
        proxy_server, proxy_url = await start_server(nursery, app)
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
