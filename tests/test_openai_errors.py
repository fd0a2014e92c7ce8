"""Bad input and upstream failures on the OpenAI routes, answered in OpenAI's error shape."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import trio

from aibridge_cli.config import ServeOptions, ServerConfig, UpstreamTimeouts
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server

from .conftest import StackFactory
from .openai_scripts import openai_error_reply

CHAT = "/openai/v1/chat/completions"
RESPONSES = "/openai/v1/responses"
CHAT_BODY: dict[str, Any] = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY: dict[str, Any] = {"model": "gpt-x", "input": "hi"}


def assert_openai_error(response: httpx.Response, status: int, type_: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    assert error["param"] is None
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        (CHAT, b"{not json", "not valid JSON"),
        (CHAT, b"[1, 2]", "JSON object"),
        (CHAT, b'{"messages": []}', "model"),
        (CHAT, b'{"model": "gpt-x"}', "messages"),
        (RESPONSES, b"\xff\xfe", "not valid JSON"),
        (RESPONSES, b'{"input": "hi"}', "model"),
        (RESPONSES, b'{"model": "gpt-x"}', "input"),
        (RESPONSES, b'{"model": "gpt-x", "input": 3}', "input"),
    ],
)
async def test_bad_request_body_is_400(
    stack: StackFactory, path: str, body: bytes, fragment: str
) -> None:
    s = await stack([])
    async with httpx.AsyncClient() as http:
        # Declared JSON, as SDKs do: a body of another type gets 415 before it is read.
        response = await http.post(
            s.proxy_url + path, content=body, headers={"content-type": "application/json"}
        )
    assert_openai_error(response, 400, "invalid_request_error", fragment)
    assert not s.upstream.seen


async def test_openai_path_outside_the_v1_prefix_is_404(stack: StackFactory) -> None:
    s = await stack([])
    async with httpx.AsyncClient() as http:
        response = await http.post(s.proxy_url + "/openai/completions", json=CHAT_BODY)
    assert_openai_error(response, 404, "not_found_error", "no route")
    assert not s.upstream.seen


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
async def test_another_method_on_an_intercepted_path_is_passed_through(
    stack: StackFactory, path: str
) -> None:
    s = await stack([openai_error_reply(405, "method not allowed")])
    async with httpx.AsyncClient() as http:
        response = await http.get(s.proxy_url + path)
    assert_openai_error(response, 405, "server_error", "method not allowed")
    assert [(r.method, r.target) for r in s.upstream.seen] == [
        ("GET", path.removeprefix("/openai"))
    ]


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
async def test_too_large_body_is_413(nursery: trio.Nursery, path: str) -> None:
    app = build_app(ServeOptions(openai_base_url="http://127.0.0.1:9/v1"))
    server = Server(app, ServerConfig(max_body_size=1000))
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    async with httpx.AsyncClient() as http:
        response = await http.post(f"http://{host}:{port}{path}", content=b"x" * 5000)
    assert response.status_code == 413
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    await app.env.client.aclose()
    server.shutdown()
    await server.stopped.wait()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(("path", "body"), [(CHAT, CHAT_BODY), (RESPONSES, RESPONSES_BODY)])
@pytest.mark.parametrize("streaming", [True, False])
async def test_unreachable_upstream_is_502(
    nursery: trio.Nursery, path: str, body: dict[str, Any], streaming: bool
) -> None:
    app = build_app(
        ServeOptions(
            openai_base_url=f"http://127.0.0.1:{closed_port()}/v1", openai_keys=["sk-k1-aaaa1111"]
        )
    )
    server = Server(app)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://{host}:{port}{path}", json={**body, "stream": streaming}
        )
    assert_openai_error(response, 502, "api_error", "unreachable")
    await app.env.client.aclose()
    server.shutdown()
    await server.stopped.wait()


@pytest.mark.parametrize(("path", "body"), [(CHAT, CHAT_BODY), (RESPONSES, RESPONSES_BODY)])
@pytest.mark.parametrize("streaming", [True, False])
async def test_upstream_timeout_is_504(
    stack: StackFactory, path: str, body: dict[str, Any], streaming: bool
) -> None:
    stalled = Reply(200, [("content-type", "application/json")], [b"{"], fault="stall", fault_at=1)
    s = await stack([stalled], openai_keys=["sk-k1-aaaa1111"], timeouts=UpstreamTimeouts(read=0.2))
    async with httpx.AsyncClient() as http:
        response = await http.post(s.proxy_url + path, json={**body, "stream": streaming})
    assert_openai_error(response, 504, "timeout_error", "timed out")
