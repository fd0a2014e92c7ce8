"""Faults at every stage of a request: clients that leave, upstreams that break, slowloris.

Real loopback sockets under the autojump clock: a stall costs no real time. A raw fake
upstream plays what ``ScriptedUpstream`` cannot: silence before the status line and
bytes that are not HTTP.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions, ServerConfig, UpstreamTimeouts
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.proxy.routes import BridgeApp
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sim.raw_upstream import RawUpstream as SimUpstream
from aibridge_cli.sse import encode_event
from aibridge_cli.tools import InjectedTool, ToolOutcome, ToolSet

from .anthropic_script import (
    FINAL_TURN,
    TOOL_TURN,
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from .conftest import StackFactory, start_server
from .rawhttp import RawClient
from .test_anthropic_e2e import HELLO, K0, parse_sse_strictly

MESSAGES = "/anthropic/v1/messages"


def task_count() -> int:
    """Every task alive in this run."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


async def settle(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (in virtual time) until ``predicate`` holds; fail after ``seconds``."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110 (state of objects that have no event to wait on)
            await trio.sleep(0.01)


async def open_client(url: str) -> RawClient:
    host, port = url.removeprefix("http://").split(":")
    return RawClient(await trio.open_tcp_stream(host, int(port)))


def request_body(streaming: bool = True) -> bytes:
    return json.dumps(
        {"model": "claude-test", "max_tokens": 50, "stream": streaming, "messages": HELLO}
    ).encode()


async def send_messages(client: RawClient, streaming: bool = True) -> None:
    await client.send_request(
        "POST", MESSAGES, request_body(streaming), [("content-type", "application/json")]
    )


async def read_until(client: RawClient, marker: bytes) -> None:
    got = b""
    while marker not in got:
        data = await client.stream.receive_some(65536)
        assert data, f"connection closed before {marker!r}"
        got += data


# -- clients that go away ----------------------------------------------------------------


@dataclass
class BlockingTool:
    """A tool runner that never returns, and notes when it is cancelled."""

    started: trio.Event = field(default_factory=trio.Event)
    cancelled: bool = False

    async def __call__(self, tool: InjectedTool, arguments: Any) -> ToolOutcome:
        self.started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


Stage = Literal["before-headers", "mid-stream", "during-tool-input", "during-tool-run"]

STALLED_AT: dict[str, tuple[Reply, bytes | None]] = {
    # the upstream answered 200 and nothing more: the client has no headers yet
    "before-headers": (stream(message_start(), fault="stall", fault_at=0), None),
    "mid-stream": (
        stream(
            message_start(),
            text_block(0, "Hel", "lo"),
            message_end("end_turn", 1),
            fault="stall",
            fault_at=3,
        ),
        b"content_block_delta",
    ),
    # the injected tool_use block is half streamed (hidden from the client) when it leaves
    "during-tool-input": (
        stream(
            message_start(),
            text_block(0, "Let me check."),
            tool_block(1, "bmcp_weather", {"city": "Paris"}),
            message_end("tool_use", 3),
            fault="stall",
            fault_at=6,
        ),
        b"content_block_stop",
    ),
}


@pytest.mark.parametrize(
    "stage", ["before-headers", "mid-stream", "during-tool-input", "during-tool-run"]
)
async def test_client_that_leaves_at_any_stage_closes_the_upstream_and_leaves_no_task(
    stack: StackFactory, autojump_clock: trio.testing.MockClock, stage: Stage
) -> None:
    tool = BlockingTool()
    if stage == "during-tool-run":
        s = await stack([TOOL_TURN, FINAL_TURN], keys=[K0])
        s.app.env.run_tool = tool
    else:
        s = await stack([STALLED_AT[stage][0]], keys=[K0])
    baseline = task_count()
    client = await open_client(s.proxy_url)
    await send_messages(client)
    if stage == "before-headers":
        await settle(lambda: s.upstream.open_responses == 1)
    elif stage == "during-tool-run":
        await tool.started.wait()
    else:
        marker = STALLED_AT[stage][1]
        assert marker is not None
        await read_until(client, marker)
    await client.stream.aclose()

    await settle(lambda: not s.proxy_server.connections)
    assert s.upstream.open_responses == 0
    if stage == "during-tool-run":
        assert tool.cancelled
        assert len(s.upstream.seen) == 1  # no continuation went upstream
        # the first turn ended cleanly, so its connection went back to the pool: drop it
        await s.app.env.client.aclose()
    else:
        assert s.upstream.closed_early == 1
    await settle(lambda: not s.upstream_server.connections)  # the upstream socket is closed
    await settle(lambda: task_count() == baseline)


# -- upstreams that break ----------------------------------------------------------------

Action = Literal["close", "stall", "keep-alive"]


@dataclass
class Play:
    """What the raw upstream does with one request: send ``data``, then ``then``."""

    data: bytes
    then: Action = "keep-alive"


class BytesUpstream(SimUpstream):
    """The simulation's lean upstream, made to play bytes: the n-th request gets the n-th
    ``Play`` (the last one again after that)."""

    def __init__(self, plays: list[Play]) -> None:
        super().__init__(lambda headers, n: plays[min(n, len(plays) - 1)])  # type: ignore[arg-type,return-value]

    async def _play(self, stream: trio.abc.Stream, reply: Any) -> bool:
        play: Play = reply
        if play.data:
            await stream.send_all(play.data)
        if play.then == "stall":
            await trio.sleep_forever()
        return play.then == "keep-alive"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
FIRST_FRAMES = b"".join(
    encode_event(name, json.dumps(data))
    for name, data in [*message_start(), *text_block(0, "Hi")][:3]
)
GOOD_STREAM = (
    SSE_HEAD
    + chunked(
        *(
            encode_event(name, json.dumps(data))
            for name, data in [
                *message_start(),
                *text_block(0, "fine"),
                *message_end("end_turn", 1),
            ]
        )
    )
    + b"0\r\n\r\n"
)

# (name, what the upstream does, status the client gets, in-stream error?)
FAULTS: list[tuple[str, Play, int, bool]] = [
    ("reset before the status line", Play(b"", "close"), 502, False),
    ("silence before the status line", Play(b"", "stall"), 504, False),
    ("garbage for a status line", Play(b"\x00\xffNOT HTTP AT ALL\r\n\r\n", "close"), 502, False),
    ("headers then reset", Play(SSE_HEAD, "close"), 502, False),
    ("headers then silence", Play(SSE_HEAD, "stall"), 504, False),
    ("reset mid-stream", Play(SSE_HEAD + chunked(FIRST_FRAMES), "close"), 200, True),
    ("silence mid-stream", Play(SSE_HEAD + chunked(FIRST_FRAMES), "stall"), 200, True),
    (
        "broken chunk framing mid-stream",
        Play(SSE_HEAD + chunked(FIRST_FRAMES) + b"zz\r\ngarbage\r\n", "close"),
        200,
        True,
    ),
    (
        "an event that is not JSON mid-stream",
        Play(
            SSE_HEAD + chunked(FIRST_FRAMES, b"event: content_block_delta\ndata: {\x01\n\n"),
            "stall",
        ),
        200,
        True,
    ),
]


@pytest.fixture
async def raw_stack(nursery: trio.Nursery) -> AsyncIterator[Callable[[list[Play]], Awaitable[str]]]:
    """Start a proxy in front of a ``RawUpstream``; returns the proxy's URL."""
    started: list[tuple[BridgeApp, Server]] = []

    async def start(plays: list[Play]) -> str:
        upstream = BytesUpstream(plays)
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, upstream.serve_stream, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        options = ServeOptions(
            anthropic_base_url=f"http://127.0.0.1:{port}",
            anthropic_keys=[K0],
            timeouts=UpstreamTimeouts(read=60.0),
        )
        app = build_app(options, tools=ToolSet())
        server, url = await start_server(nursery, app)
        started.append((app, server))
        return url

    yield start
    for app, server in started:
        await app.env.client.aclose()
        server.shutdown()


@pytest.mark.parametrize(
    ("fault", "play", "status", "in_stream"), FAULTS, ids=[f[0] for f in FAULTS]
)
async def test_upstream_fault_reaches_the_client_in_the_right_shape_and_the_proxy_serves_on(
    raw_stack: Callable[[list[Play]], Awaitable[str]],
    autojump_clock: trio.testing.MockClock,
    fault: str,
    play: Play,
    status: int,
    in_stream: bool,
) -> None:
    url = await raw_stack([play, Play(GOOD_STREAM)])
    async with httpx.AsyncClient(timeout=1000) as http:
        response = await http.post(url + MESSAGES, content=request_body())
        assert response.status_code == status
        if in_stream:
            events = parse_sse_strictly(response.content)
            assert events[0].event == "message_start"
            assert events[-1].event == "error"
            error = json.loads(events[-1].data)
        else:
            assert response.headers["content-type"] == "application/json"
            error = response.json()
        assert error["type"] == "error"
        assert error["error"]["type"] == "api_error"
        assert error["error"]["message"]

        again = await http.post(url + MESSAGES, content=request_body())
        assert again.status_code == 200
        kinds = [e.event for e in parse_sse_strictly(again.content)]
        assert kinds[-1] == "message_stop"


# -- slowloris -----------------------------------------------------------------------------


async def test_slowloris_is_cut_off_by_the_header_timeout_and_frees_its_slot(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    from .test_server import SleepyApp, connect

    server = Server(SleepyApp(), ServerConfig(header_timeout=10.0))
    client = connect(nursery, server)
    start = trio.current_time()
    cut_at = None
    head = b"GET /x HTTP/1.1\r\nHost: x\r\n" + b"X-Drip: " + b"a" * 100
    for byte in head:  # one byte a second: every read succeeds, the head never ends
        try:
            await client.stream.send_all(bytes([byte]))
        except trio.BrokenResourceError:
            cut_at = trio.current_time() - start
            break
        await trio.sleep(1)
    response = await client.read_response()
    assert response.status == 408
    assert cut_at is None or cut_at == pytest.approx(10.0, abs=1.01)
    assert await client.at_eof()
    await settle(lambda: not server.connections)
    assert trio.current_time() - start == pytest.approx(10.0, abs=1.01)
    fresh = connect(nursery, server)
    assert (await fresh.request("GET", "/after")).status == 200
