"""The proxy's own refusals that a retry cannot turn (400, 401, 403, 404, 405, 413, 415,
431) carry ``x-should-retry: false`` in every provider's shape, over HTTP and WebSocket;
what the upstream answered, and the proxy's own answers a retry can turn (429, 502), are
left as they are. Real sockets; raw requests where a client library would not send them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import httpx
import pytest
import trio

from aibridge_cli.config import GuardConfig
from aibridge_cli.fakes.scripted_upstream import Reply

from .anthropic_script import error_reply
from .conftest import StackFactory
from .openai_scripts import openai_error_reply
from .rawhttp import WEBSOCKET_UPGRADE
from .test_load_faults import open_client

TOKEN = "aibridge-retry-token-0123456789"
MESSAGES = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def check_refusal(response: httpx.Response, status: int, openai_shape: bool) -> None:
    assert response.status_code == status, response.text
    assert response.headers.get("x-should-retry") == "false"
    error = response.json()
    if openai_shape:
        assert set(error) == {"error"}
    else:
        assert error["type"] == "error"
    assert error["error"]["message"]


@pytest.mark.parametrize(
    ("status", "method", "path", "headers", "body"),
    [
        (401, "POST", "/anthropic/v1/messages", {}, MESSAGES),
        (401, "POST", "/openai/v1/chat/completions", {}, CHAT),
        (401, "GET", "/anthropic/v1/models", {}, None),  # the pass-through's refusal too
        (403, "POST", "/anthropic/v1/messages", {"origin": "https://evil.example"}, MESSAGES),
        (403, "POST", "/openai/v1/responses", {"host": "evil.example"}, CHAT),
        (415, "POST", "/openai/v1/chat/completions", {"content-type": "text/plain"}, CHAT),
    ],
)
async def test_the_guards_refusals_say_not_to_retry(
    stack: StackFactory,
    status: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
) -> None:
    s = await stack([], keys=["sk-ant-pool-0000"], guard=GuardConfig(auth_token=TOKEN))
    sent = {"x-api-key": TOKEN} if status != 401 else {}
    content = json.dumps(body).encode() if body is not None else None
    async with httpx.AsyncClient() as http:
        response = await http.request(
            method, s.proxy_url + path, content=content, headers={**sent, **headers}
        )
    check_refusal(response, status, path.startswith("/openai/"))
    assert s.upstream.seen == []


@pytest.mark.parametrize(
    ("status", "method", "path", "body"),
    [
        (400, "POST", "/anthropic/v1/messages", b"{not json"),
        (400, "POST", "/openai/v1/chat/completions", b'{"model": 3}'),
        (400, "POST", "/openai/v1/responses", b"[]"),
        (404, "GET", "/nowhere", b""),
        (405, "POST", "/aibridge/status", b"{}"),
    ],
)
async def test_the_apps_refusals_say_not_to_retry(
    stack: StackFactory, status: int, method: str, path: str, body: bytes
) -> None:
    s = await stack([])
    async with httpx.AsyncClient() as http:
        response = await http.request(
            method, s.proxy_url + path, content=body, headers={"content-type": "application/json"}
        )
    check_refusal(response, status, path.startswith("/openai/"))


async def test_the_servers_413_says_not_to_retry(stack: StackFactory) -> None:
    s = await stack([])
    client = await open_client(s.proxy_url)
    head = h11.Request(
        method="POST",
        target="/openai/v1/chat/completions",
        headers=[("host", client.host), ("content-length", str(10**12))],
    )
    await client.stream.send_all(client.h11.send(head))
    response = await client.read_response()
    await client.stream.aclose()
    assert response.status == 413
    assert response.header("x-should-retry") == "false"
    assert set(json.loads(response.body)) == {"error"}  # OpenAI's shape, from the path


async def test_a_malformed_request_is_told_not_to_retry(stack: StackFactory) -> None:
    s = await stack([])
    client = await open_client(s.proxy_url)
    await client.stream.send_all(b"GET /anthropic/v1/models HTTP/1.1\r\nno colon here\r\n\r\n")
    data = b""
    while chunk := await client.stream.receive_some(65536):
        data += chunk
    await client.stream.aclose()
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 400")
    assert b"\r\nx-should-retry: false" in head


@pytest.mark.parametrize("intercepted", [True, False], ids=["intercepted", "passthrough"])
async def test_an_upstream_refusal_is_relayed_as_it_came(
    stack: StackFactory, intercepted: bool
) -> None:
    s = await stack([error_reply(401, "authentication_error", "bad key")])
    async with httpx.AsyncClient() as http:
        if intercepted:
            response = await http.post(
                s.proxy_url + "/anthropic/v1/messages", json=MESSAGES, headers={"x-api-key": "k"}
            )
        else:
            response = await http.get(s.proxy_url + "/anthropic/v1/models")
    assert response.status_code == 401
    assert "x-should-retry" not in response.headers  # the upstream did not say so


async def test_the_proxys_answers_a_retry_can_turn_do_not_say_so(stack: StackFactory) -> None:
    limited = openai_error_reply(429, "slow down", "30")
    s = await stack([limited], openai_keys=["sk-one-1111"])
    async with httpx.AsyncClient() as http:
        first = await http.post(s.proxy_url + "/openai/v1/chat/completions", json=CHAT)
        pooled = await http.post(s.proxy_url + "/openai/v1/chat/completions", json=CHAT)
    assert first.status_code == 429  # the upstream's, relayed
    assert (pooled.status_code, pooled.headers["retry-after"]) == (429, "30")  # the pool's
    assert "x-should-retry" not in first.headers
    assert "x-should-retry" not in pooled.headers


async def _exchange(url: str, message: str) -> dict[str, Any]:
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(message)
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return answer


async def test_a_refused_response_create_on_a_socket_says_not_to_retry(
    stack: StackFactory,
) -> None:
    pytest.importorskip("websockets", reason="the raw WebSocket client is websockets")
    s = await stack([Reply.json({})], openai_keys=["sk-one-1111"])
    url = s.proxy_url.replace("http://", "ws://") + "/openai/v1/responses"
    bad = json.dumps({"type": "response.create", "model": 3, "input": "hi"})
    event = await trio.to_thread.run_sync(lambda: asyncio.run(_exchange(url, bad)))
    assert (event["type"], event["status"]) == ("error", 400)
    assert event["error"]["headers"] == {"x-should-retry": "false"}


async def test_a_refused_upgrade_says_not_to_retry(stack: StackFactory) -> None:
    s = await stack([], openai_keys=["sk-one-1111"], guard=GuardConfig(auth_token=TOKEN))
    client = await open_client(s.proxy_url)
    await client.send_request("GET", "/openai/v1/responses", headers=WEBSOCKET_UPGRADE)
    response = await client.read_response()
    await client.stream.aclose()
    assert response.status == 401
    assert response.header("x-should-retry") == "false"
