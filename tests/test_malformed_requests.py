"""Thousands of malformed requests, in memory: the server answers each in the provider's
error shape (or closes), never with a 500, and still serves a good request afterwards."""

from __future__ import annotations

import json
import logging

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aibridge_cli.config import ServeOptions, ServerConfig
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.tools import ToolSet

from .rawhttp import RawClient

PATHS = [b"/anthropic/v1/messages", b"/anthropic/v1/models", b"/healthz", b"/nope", b"*", b""]
METHODS = [b"POST", b"GET", b"PUT", b"BREW", b""]


def _request(method: bytes, path: bytes, headers: list[bytes], body: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method, path, head, body)


bad_json = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.sampled_from(
        [
            b"{",
            b"[]",
            b"null",
            b'{"model": 1}',
            b'{"model": "m", "messages": {}}',
            b'{"model": "m", "messages": [], "stream": "yes"}',
            b"\xff\xfe{}",
        ]
    ),
)
header_line = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"content-length: -1",
            b"content-length: 99999999999",
            b"content-length: x",
            b"transfer-encoding: chunked",
            b"transfer-encoding: gzip, chunked",
            b"content-type: application/json",
            b"expect: 100-continue",
            b"host: x",
            b": empty-name",
            b"x-api-key: sk-ant-fuzz-key-should-stay-out",
        ]
    ),
)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Something shaped like a request, wrong in the method, path, headers or body."""
    body = draw(bad_json)
    headers = [b"host: test", *draw(st.lists(header_line, max_size=4))]
    if draw(st.booleans()):
        headers.append(b"content-length: %d" % len(body))
    return _request(draw(st.sampled_from(METHODS)), draw(st.sampled_from(PATHS)), headers, body)


huge_headers = st.integers(min_value=65 * 1024, max_value=80 * 1024).map(
    lambda n: _request(b"POST", b"/anthropic/v1/messages", [b"host: x", b"x-big: " + b"a" * n], b"")
)
malformed = st.one_of(st.binary(max_size=300), framed(), huge_headers)


async def _serve_one(server: Server, payload: bytes) -> tuple[int | None, bytes]:
    """Send ``payload`` and EOF; the status and body of the answer, if any."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_stream)
        try:
            await client_stream.send_all(payload)
            await client_stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server hung up first: allowed
        # A parser for the answer: as far as it knows, it sent a plain GET.
        connection = h11.Connection(h11.CLIENT)
        connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        connection.send(h11.EndOfMessage())
        status, body = None, b""
        while True:
            data = await client_stream.receive_some(65536)
            if not data:
                break
            connection.receive_data(bytes(data))
            try:
                event = connection.next_event()
                while event is not h11.NEED_DATA and not isinstance(event, h11.ConnectionClosed):
                    if isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        return status, body  # one answer is enough; the server closes next
                    event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"answer is not HTTP: {exc}") from None
        return status, body


async def _run(payloads: list[bytes]) -> None:
    # An upstream that refuses connections at once: a request that validates fails fast.
    app = build_app(ServeOptions(anthropic_base_url="http://127.0.0.1:9"), tools=ToolSet())
    server = Server(app, ServerConfig(header_timeout=1.0, body_timeout=1.0, max_body_size=4096))
    async with app.env.client:
        for payload in payloads:
            with trio.fail_after(30):
                status, body = await _serve_one(server, payload)
            if status is None:
                continue  # closed without a word: fine for bytes that are no request at all
            assert status != 500, (payload, body)
            if status >= 400:
                error = json.loads(body)
                assert error["type"] == "error", body
                assert error["error"]["message"], body
        assert not server.connections
        client_stream, server_stream = trio.testing.memory_stream_pair()
        good = RawClient(client_stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, server_stream)
            assert (await good.request("GET", "/healthz")).status == 200
            bad = await good.request(
                "POST", "/anthropic/v1/messages", b"{}", [("content-type", "application/json")]
            )
            assert bad.status == 400
            await client_stream.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(malformed, min_size=30, max_size=40))
def test_malformed_requests_never_kill_the_server(payloads: list[bytes]) -> None:
    trio.run(_run, payloads, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_broken_request_line_is_rejected_without_logging_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """h11 quotes a line it cannot read as a request line (here a client's key header, sent
    first by a broken client) in its error: the reason is logged, the bytes are not."""
    app = build_app(ServeOptions(anthropic_base_url="http://127.0.0.1:9"), tools=ToolSet())
    server = Server(app, ServerConfig(header_timeout=1.0))
    key = b"sk-ant-client-key-in-a-broken-head-0001"
    async with app.env.client:
        with caplog.at_level(logging.DEBUG, logger="aibridge"):
            status, body = await _serve_one(server, b"x-api-key: " + key + b"\r\n\r\n")
    assert status == 400
    assert b"illegal request line" in body
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "illegal request line" in logged
    assert key.decode() not in logged
