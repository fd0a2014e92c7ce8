"""The HTTP server in memory: keep-alive, limits, timeouts, routes, graceful shutdown."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions, ServerConfig
from aibridge_cli.headers import Headers
from aibridge_cli.proxy.routes import BridgeApp
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Request, ResponseWriter, Server
from aibridge_cli.proxy.socket_now import socket_of, writable_now, write_now
from aibridge_cli.tools import ToolSet

from .rawhttp import RawClient


@dataclass
class SleepyApp:
    """Answers ``/sleep/N`` after N seconds (``/sleep/forever`` never), anything else at once."""

    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        return [("content-type", "application/json")], json.dumps({"error": message}).encode()

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        self.started.append(request.path)
        try:
            if request.path.startswith("/sleep/"):
                arg = request.path.removeprefix("/sleep/")
                if arg == "forever":
                    await trio.sleep_forever()
                await trio.sleep(float(arg))
        except trio.Cancelled:
            self.cancelled.append(request.path)
            raise
        self.finished.append(request.path)
        await writer.respond(200, [], request.body or request.path.encode())


def connect(nursery: trio.Nursery, server: Server) -> RawClient:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(server.serve_stream, server_stream)
    return RawClient(client_stream)


@pytest.fixture
async def bridge() -> AsyncIterator[BridgeApp]:
    app = build_app(ServeOptions(anthropic_base_url="http://127.0.0.1:9"), tools=ToolSet())
    async with app.env.client:
        yield app


async def test_keep_alive_serves_several_requests_on_one_connection(nursery: trio.Nursery) -> None:
    app = SleepyApp()
    server = Server(app)
    client = connect(nursery, server)
    first = await client.request("GET", "/one")
    second = await client.request("POST", "/two", b"payload")
    assert (first.status, first.body) == (200, b"/one")
    assert (second.status, second.body) == (200, b"payload")
    await trio.testing.wait_all_tasks_blocked()
    (connection,) = server.connections
    assert connection.cycles == 2


async def test_body_over_the_limit_by_content_length_is_413_before_reading_it(
    nursery: trio.Nursery, bridge: BridgeApp
) -> None:
    server = Server(bridge, ServerConfig(max_body_size=100))
    client = connect(nursery, server)
    await client.stream.send_all(
        client.h11.send(
            h11.Request(
                method="POST",
                target="/anthropic/v1/messages",
                headers=[("host", "t"), ("content-length", "101")],
            )
        )
    )
    response = await client.read_response()
    assert response.status == 413
    assert response.header("connection") == "close"
    body = json.loads(response.body)
    assert body["error"]["type"] == "request_too_large"
    assert "limit of 100 bytes" in body["error"]["message"]
    assert await client.at_eof()


async def test_chunked_body_over_the_limit_is_413(nursery: trio.Nursery, bridge: BridgeApp) -> None:
    server = Server(bridge, ServerConfig(max_body_size=100))
    client = connect(nursery, server)
    head = h11.Request(
        method="POST",
        target="/anthropic/v1/messages",
        headers=[("host", "t"), ("transfer-encoding", "chunked")],
    )
    await client.stream.send_all(client.h11.send(head))
    await client.stream.send_all(client.h11.send(h11.Data(data=b"x" * 60)))
    await client.stream.send_all(client.h11.send(h11.Data(data=b"x" * 60)))
    response = await client.read_response()
    assert response.status == 413
    assert json.loads(response.body)["error"]["type"] == "request_too_large"


async def test_body_at_the_limit_is_read(nursery: trio.Nursery) -> None:
    server = Server(SleepyApp(), ServerConfig(max_body_size=100))
    client = connect(nursery, server)
    response = await client.request("POST", "/x", b"y" * 100)
    assert (response.status, response.body) == (200, b"y" * 100)


@pytest.mark.parametrize(
    ("method", "target", "status", "error_type", "allow"),
    [
        ("GET", "/nope", 404, "not_found_error", None),
        ("POST", "/anthropicx/v1/complete", 404, "not_found_error", None),
        ("POST", "/healthz", 405, "invalid_request_error", "GET, HEAD"),
        ("DELETE", "/aibridge/status", 405, "invalid_request_error", "GET, HEAD"),
    ],
)
async def test_unknown_route_404_wrong_method_405(
    nursery: trio.Nursery,
    bridge: BridgeApp,
    method: str,
    target: str,
    status: int,
    error_type: str,
    allow: str | None,
) -> None:
    client = connect(nursery, Server(bridge))
    response = await client.request(method, target)
    assert response.status == status
    assert response.header("allow") == allow
    body = json.loads(response.body)
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    # The connection survives an answered error.
    assert (await client.request("GET", "/healthz")).status == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object, not list"),
        (b'{"messages": []}', "model: field required"),
        (b'{"model": 3, "messages": []}', "model: field required"),
        (b'{"model": "m"}', "messages: field required"),
        (b'{"model": "m", "messages": {}}', "messages: field required"),
        (b'{"model": "m", "messages": [], "tools": 5}', "tools: must be a list of tool objects"),
        (b'{"model": "m", "messages": [], "tools": [1]}', "tools: must be a list of tool objects"),
    ],
)
async def test_bad_request_body_is_400_invalid_request(
    nursery: trio.Nursery, bridge: BridgeApp, body: bytes, message: str
) -> None:
    client = connect(nursery, Server(bridge))
    response = await client.request(
        "POST", "/anthropic/v1/messages", body, [("content-type", "application/json")]
    )
    assert response.status == 400
    payload = json.loads(response.body)
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert message in payload["error"]["message"]


async def test_healthz(nursery: trio.Nursery, bridge: BridgeApp) -> None:
    response = await connect(nursery, Server(bridge)).request("GET", "/healthz")
    assert (response.status, json.loads(response.body)) == (200, {"status": "ok"})


async def test_header_timeout_answers_408_and_closes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    config = ServerConfig(header_timeout=10.0)
    client = connect(nursery, Server(SleepyApp(), config))
    start = trio.current_time()
    await client.stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line: head unfinished
    response = await client.read_response()
    assert response.status == 408
    assert trio.current_time() - start == pytest.approx(10.0)
    assert await client.at_eof()


async def test_a_body_sent_a_byte_a_second_is_cut_at_the_body_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # The deadline is for the whole body: each byte used to restart the timeout, so a
    # client trickling one byte a second held the connection open for ever.
    app = SleepyApp()
    config = ServerConfig(body_timeout=60.0)
    client = connect(nursery, Server(app, config))
    await client.stream.send_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    start = trio.current_time()

    async def trickle() -> None:
        for _ in range(1000):
            await trio.sleep(1)
            try:
                await client.stream.send_all(b"x")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    nursery.start_soon(trickle)
    response = await client.read_response()
    assert response.status == 408
    assert b"request body timeout" in response.body
    assert trio.current_time() - start == pytest.approx(60.0)
    assert app.started == []


@pytest.mark.parametrize("pieces", [1, 2, 3, 1000])
async def test_a_head_over_the_limit_is_431_however_it_arrives(
    nursery: trio.Nursery, pieces: int
) -> None:
    # h11 checks its limit only while a head is incomplete: a head that arrived whole in
    # one or two reads got through at up to twice the limit.
    app = SleepyApp()
    limit = 64 * 1024
    client = connect(nursery, Server(app, ServerConfig(max_header_size=limit)))
    head = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (limit + 1) + b"\r\n\r\n"
    size = -(-len(head) // pieces)
    for i in range(0, len(head), size):
        await client.stream.send_all(head[i : i + size])
    response = await client.read_response()
    assert response.status == 431
    assert app.started == []


async def test_a_head_at_the_limit_is_served(nursery: trio.Nursery) -> None:
    app = SleepyApp()
    limit = 64 * 1024
    client = connect(nursery, Server(app, ServerConfig(max_header_size=limit)))
    start = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: "
    head = start + b"a" * (limit - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == limit
    await client.stream.send_all(head)
    response = await client.read_response()
    assert response.status == 200


async def test_a_long_path_is_cut_in_the_log(
    nursery: trio.Nursery, bridge: BridgeApp, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(nursery, Server(bridge))
    path = "/" + "p" * 50_000
    response = await client.request("GET", path)
    assert response.status == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "aibridge.requests"]
    assert line.startswith("GET /" + "p" * 199 + "…(+49801 chars) 404 ")
    assert len(line) < 300


async def test_idle_keep_alive_connection_closes_after_the_keep_alive_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    config = ServerConfig(keepalive_timeout=75.0)
    client = connect(nursery, Server(SleepyApp(), config))
    await client.request("GET", "/x")
    done_at = trio.current_time()
    assert await client.at_eof()
    assert trio.current_time() - done_at == pytest.approx(75.0)


async def test_client_that_goes_away_cancels_the_handler(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    app = SleepyApp()
    server = Server(app)
    client = connect(nursery, server)
    await client.send_request("GET", "/sleep/forever")
    await trio.testing.wait_all_tasks_blocked()
    assert app.started == ["/sleep/forever"]
    await client.stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert not server.connections
    assert app.cancelled == ["/sleep/forever"]


async def test_graceful_shutdown_lets_in_flight_requests_finish_within_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = SleepyApp()
    server = Server(app, ServerConfig(grace_period=10.0))
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        clients = [RawClient(await trio.open_tcp_stream(host, port)) for _ in range(3)]
        try:
            await _shutdown_scenario(server, app, (host, port), *clients)
        finally:
            for client in clients:
                await client.stream.aclose()


async def _shutdown_scenario(
    server: Server,
    app: SleepyApp,
    address: tuple[str, int],
    idle: RawClient,
    quick: RawClient,
    stuck: RawClient,
) -> None:
    assert (await idle.request("GET", "/warm")).status == 200
    await quick.send_request("GET", "/sleep/4")
    await stuck.send_request("GET", "/sleep/forever")
    while len(app.started) < 3:  # noqa: ASYNC110  (the app has no event to offer)
        await trio.sleep(0.001)
    t0 = trio.current_time()
    server.shutdown()
    assert await idle.at_eof()  # idle keep-alive connections close at once
    assert trio.current_time() - t0 < 0.1

    answered = await quick.read_response()
    assert (answered.status, answered.body) == (200, b"/sleep/4")
    assert answered.header("connection") == "close"
    assert trio.current_time() - t0 == pytest.approx(4.0, abs=0.01)

    with pytest.raises(EOFError):
        await stuck.read_response()  # cut cleanly at the end of the grace, no half response
    assert trio.current_time() - t0 == pytest.approx(10.0, abs=0.01)
    assert app.cancelled == ["/sleep/forever"]
    await server.stopped.wait()
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream(*address)  # the listener is gone


@dataclass
class BuggyApp(SleepyApp):
    """Raises where a real app would have a bug."""

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        if request.path == "/bug":
            raise ValueError("a bug")
        await super().handle(request, writer)


async def test_a_handler_bug_is_a_500_in_the_apps_shape_and_the_server_carries_on(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(BuggyApp())
    response = await connect(nursery, server).request("GET", "/bug")
    assert response.status == 500
    assert response.header("connection") == "close"
    assert json.loads(response.body) == {"error": "internal error in the proxy"}
    assert "request handler failed on /bug" in caplog.text
    assert (await connect(nursery, server).request("GET", "/fine")).status == 200


def fill(fd: int) -> int:
    """Write to a non-blocking socket until the kernel takes no more; the bytes written."""
    sent = 0
    while True:
        try:
            sent += os.write(fd, b"x" * 65536)
        except BlockingIOError:
            return sent


@asynccontextmanager
async def accepted_socket() -> AsyncIterator[
    tuple[trio.abc.Stream, trio.socket.SocketType, trio.abc.Stream]
]:
    """A server's end of a loopback connection, its socket, and the client's end."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener, await trio.testing.open_stream_to_socket_listener(listener) as peer:
        async with await listener.accept() as stream:
            sock = socket_of(stream)
            assert sock is not None
            yield stream, sock, peer


async def test_a_socket_counts_as_writable_exactly_while_the_kernel_takes_bytes() -> None:
    """The relay asks the kernel instead of parking until trio's next readiness report."""
    async with accepted_socket() as (stream, sock, peer):
        assert writable_now(sock)
        sent = fill(sock.fileno())  # the peer reads nothing meanwhile
        assert not writable_now(sock)
        while sent:
            sent -= len(await peer.receive_some(sent))
        assert writable_now(sock)
        await stream.aclose()
        assert not writable_now(sock)
    left, _ = trio.testing.memory_stream_pair()
    assert socket_of(left) is None  # other streams always wait as they did


async def test_a_write_now_takes_what_the_kernel_takes_and_no_more() -> None:
    """The server writes without a trip through the scheduler what fits the socket."""
    async with accepted_socket() as (stream, sock, peer):
        assert write_now(sock, b"hello") == 5
        assert await peer.receive_some(5) == b"hello"
        fill(sock.fileno())
        assert write_now(sock, b"more") == 0  # full: the caller waits as trio would
        await stream.aclose()
        with pytest.raises(OSError, match="Bad file descriptor"):
            write_now(sock, b"closed")  # descriptor -1: never another socket's
