"""Record -> replay -> mock of a WebSocket session: the fixture keeps the transport and one
message per chunk; replay (in-process and against a target proxy) opens a socket per
recorded response.create, and the mock upstream answers the proxy's sockets from the
recorded exchanges, refused upgrades included."""

from __future__ import annotations

import asyncio
import socket

import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.interception import Interception
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.fixture import Fixture, dump_fixture, parse_fixture
from aibridge_cli.sessions.replay import replay_fixture, replay_tools
from aibridge_cli.tools import ToolSet

from .conftest import WEATHER, StackFactory, start_server
from .openai_scripts import function_item, message_item, openai_error_reply, responses_stream
from .test_openai_responses_websocket import KEYS, _async_session, create

# 1: text after a refused upgrade (key 0 limited); 2: an injected tool turn; then a bad message
REPLIES = [
    openai_error_reply(429, "slow down", "30"),
    responses_stream("resp_1", [message_item("msg_1", "Hello.")]),
    responses_stream("resp_2", [function_item("bmcp_weather")]),
    responses_stream("resp_3", [message_item("msg_3", "Sunny.")]),
]


async def record(stack: StackFactory) -> Fixture:
    records: list[Interception] = []
    s = await stack(list(REPLIES), openai_keys=KEYS)
    app = build_app(
        ServeOptions(openai_base_url=s.upstream_url + "/v1", openai_keys=KEYS),
        tools=ToolSet.of([WEATHER]),
        recorder=records.append,
    )
    async with trio.open_nursery() as nursery:
        server, url = await start_server(nursery, app)
        await trio.to_thread.run_sync(
            lambda: asyncio.run(_async_session(url + "/openai/v1", [create(), create("weather?")]))
        )
        await app.env.client.aclose()
        server.shutdown()
    text = dump_fixture(Fixture("ws.jsonl", records, [f"#{i + 1}" for i in range(len(records))]))
    return parse_fixture(text, "ws.jsonl")


async def test_record_replay_mock_round_trip(stack: StackFactory) -> None:
    fixture = await record(stack)
    assert [r.transport for r in fixture.interceptions] == ["websocket", "websocket"]
    first, second = fixture.interceptions
    assert [(e.method, e.response.status) for e in first.upstream] == [
        ("WEBSOCKET", 429),
        ("WEBSOCKET", 101),
    ]
    assert first.response.status == 101
    assert first.response.chunks[-1].data.startswith(b'{"type":"response.completed"')
    assert [c.name for c in second.tool_calls] == ["bmcp_weather"]
    assert '"transport":"websocket"' in dump_fixture(fixture)

    replayed = await replay_fixture(fixture)
    assert [r.status for r in replayed.results] == ["match", "match"], [
        r.problems for r in replayed.results
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_replay_against_a_target_proxy(stack: StackFactory) -> None:
    fixture = await record(stack)
    port = _free_port()
    tools, runner = replay_tools(fixture)
    app = build_app(
        ServeOptions(
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            openai_keys=["aibridge-replay-openai-key-1", "aibridge-replay-openai-key-2"],
        ),
        tools=tools,
        run_tool=runner,
    )
    async with trio.open_nursery() as nursery:
        server = Server(app)
        host, pport = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        replayed = await replay_fixture(
            fixture, target=f"http://{host}:{pport}", upstream_port=port
        )
        await app.env.client.aclose()
        server.shutdown()
    assert [r.status for r in replayed.results] == ["match", "match"], [
        r.problems for r in replayed.results
    ]
