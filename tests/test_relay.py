"""The relay task, in memory under the MockClock: one send per batch, pings when idle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import h11
import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy.routes import BridgeApp
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sim.network import MemoryNetwork, Yields
from aibridge_cli.sse import SSEDecoder
from aibridge_cli.tools import ToolSet

from .anthropic_script import message_end, message_start, stream, text_block
from .rawhttp import RawClient

BODY = json.dumps(
    {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
).encode()


@dataclass
class Proxy:
    app: BridgeApp
    server: Server


@pytest.fixture
async def proxy_for(nursery: trio.Nursery) -> AsyncIterator[Callable[[Reply], Proxy]]:
    apps: list[BridgeApp] = []

    def start(reply: Reply) -> Proxy:
        upstream = Server(ScriptedUpstream([reply]))
        app = build_app(
            ServeOptions(anthropic_base_url="http://upstream.test", anthropic_keys=["sk-relay-0"]),
            tools=ToolSet(),
            network_backend=MemoryNetwork(nursery, upstream.serve_stream, Yields({})),
        )
        apps.append(app)
        return Proxy(app, Server(app))

    yield start
    for app in apps:
        await app.env.client.aclose()


async def open_request(nursery: trio.Nursery, proxy: Proxy) -> RawClient:
    client_side, server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(proxy.server.serve_stream, server_side)
    client = RawClient(client_side)
    await client.send_request("POST", "/anthropic/v1/messages", BODY)
    return client


async def test_frames_waiting_for_a_slow_client_go_out_in_one_send(
    nursery: trio.Nursery,
    proxy_for: Callable[[Reply], Proxy],
    autojump_clock: trio.testing.MockClock,
) -> None:
    reply = stream(message_start(), text_block(0, "a", "b", "c", "d"), message_end("end_turn", 2))
    client = await open_request(nursery, proxy_for(reply))
    await trio.sleep(5)  # everything is on the relay's channel by now
    sends = []
    while True:
        data = await client.stream.receive_some(1 << 20)  # lockstep: one send per receive
        sends.append(bytes(data))
        client.h11.receive_data(bytes(data))
        if data.endswith(b"0\r\n\r\n"):
            break
    # The head and every waiting frame share one send; the end of the body is the other.
    first, end = sends
    head, body = first.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    events = SSEDecoder().feed(body.split(b"\r\n", 1)[1])
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert end == b"0\r\n\r\n"


async def test_idle_stream_gets_a_ping_every_ten_seconds(
    nursery: trio.Nursery,
    proxy_for: Callable[[Reply], Proxy],
    autojump_clock: trio.testing.MockClock,
) -> None:
    stalled = stream(message_start(), text_block(0, "a"), fault="stall", fault_at=2)
    client = await open_request(nursery, proxy_for(stalled))
    arrivals: list[tuple[float, str | None]] = []
    decoder = SSEDecoder()
    while len(arrivals) < 5:
        event = client.h11.next_event()
        if event is h11.NEED_DATA:
            client.h11.receive_data(bytes(await client.stream.receive_some(1 << 20)))
        elif isinstance(event, h11.Data):
            arrivals += [(trio.current_time(), e.event) for e in decoder.feed(bytes(event.data))]
    start = arrivals[0][0]
    assert [(round(t - start, 3), kind) for t, kind in arrivals] == [
        (0.0, "message_start"),
        (0.0, "content_block_start"),
        (10.0, "ping"),
        (20.0, "ping"),
        (30.0, "ping"),
    ]
    await client.stream.aclose()
