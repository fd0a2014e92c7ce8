"""HEAD: no reply to a HEAD carries a body, whatever the app writes; provider paths get the
upstream's own HEAD answer."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.testing

from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.headers import Headers
from aibridge_cli.proxy.server import Request, ResponseWriter, Server

from .conftest import StackFactory
from .rawhttp import RawClient


class BodyOnHeadApp:
    """Writes a body whatever the method: the server must keep it off a HEAD reply."""

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        return [("content-type", "application/json")], json.dumps({"error": message}).encode()

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        if request.path == "/streamed":
            await writer.start(200, [("content-type", "text/plain")], b"first")
            await writer.send(b" and more")
        elif request.path == "/error":
            headers, body = self.error_response(request.target, 404, "no such thing")
            await writer.respond(404, headers, body)
        else:
            await writer.respond(200, [("content-type", "text/plain")], b"a whole body")


@pytest.mark.parametrize("path", ["/streamed", "/error", "/whole"])
async def test_a_reply_to_head_has_no_body_and_the_connection_carries_on(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(Server(BodyOnHeadApp()).serve_stream, server_stream)
    client = RawClient(client_stream)
    head = await client.request("HEAD", path)
    assert head.body == b""
    # the same connection serves the next request: nothing stray was written
    get = await client.request("GET", "/whole")
    assert (get.status, get.body) == (200, b"a whole body")
    assert "failed" not in caplog.text
    if path == "/whole":
        assert head.header("content-length") == str(len(b"a whole body"))


async def test_head_on_healthz_and_status_answers_as_get_does(stack: StackFactory) -> None:
    s = await stack()
    async with httpx.AsyncClient() as http:
        for path in ("/healthz", "/aibridge/status"):
            head = await http.head(s.proxy_url + path)
            get = await http.get(s.proxy_url + path)
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-type"] == get.headers["content-type"]
        wrong = await http.post(s.proxy_url + "/healthz")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("/anthropic", "/"),
        ("/anthropic/", "/"),
        ("/anthropic/v1/models", "/v1/models"),
        ("/openai/v1/models?limit=2", "/v1/models?limit=2"),
    ],
)
async def test_head_on_a_provider_path_gets_the_upstreams_head_answer(
    stack: StackFactory, caplog: pytest.LogCaptureFixture, path: str, upstream_path: str
) -> None:
    reply = Reply(200, [("content-type", "application/json"), ("x-upstream", "yes")], [b"{}"])
    s = await stack([reply])
    async with httpx.AsyncClient() as http:
        head = await http.head(s.proxy_url + path)
        after = await http.get(s.proxy_url + "/healthz")  # the connection was kept
    assert (head.status_code, head.content, head.headers["x-upstream"]) == (200, b"", "yes")
    assert after.status_code == 200
    (seen,) = s.upstream.seen
    assert (seen.method, seen.target) == ("HEAD", upstream_path)
    assert "Traceback" not in caplog.text
    assert "failed" not in caplog.text


async def test_head_error_reply_from_the_proxy_has_no_body(stack: StackFactory) -> None:
    s = await stack()
    async with httpx.AsyncClient() as http:
        unknown = await http.head(s.proxy_url + "/nowhere")
        again = await http.get(s.proxy_url + "/healthz")
    assert (unknown.status_code, unknown.content) == (404, b"")
    assert again.status_code == 200
