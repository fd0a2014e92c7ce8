"""The guard over real loopback sockets: what a web page can send never reaches the upstream,
and the official SDKs pass it unchanged."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aibridge_cli.config import GuardConfig
from aibridge_cli.fakes.scripted_upstream import Reply

from .anthropic_script import message
from .conftest import Stack, StackFactory
from .openai_scripts import client_for, close_sdk_clients

__all__ = ["close_sdk_clients"]  # the fixture closes what client_for opened

POOL_KEY = "sk-ant-guard-pool-key-0123456789-KLMN"
OPENAI_POOL_KEY = "sk-openai-guard-pool-key-0123456789-OPQR"
TOKEN = "aibridge-guard-token-0123456789-STUV"
BODY = {"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
HELLO = message([{"type": "text", "text": "hello"}], "end_turn", 1)
EVIL = "https://evil.example.com"
CHAT = Reply.json(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi there"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def post(
    http: httpx.AsyncClient, stack: Stack, headers: dict[str, str], path: str = "/anthropic"
) -> httpx.Response:
    return await http.post(
        f"{stack.proxy_url}{path}/v1/messages", content=json.dumps(BODY), headers=headers
    )


async def test_the_cross_site_simple_request_is_refused_before_any_key_is_spent(
    stack: StackFactory, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The request from the issue: a page's text/plain POST with its own Host and Origin."""
    s = await stack([HELLO], keys=[POOL_KEY])
    with caplog.at_level(logging.INFO, "aibridge"):
        response = await post(
            http,
            s,
            {"host": "evil.example.com", "origin": EVIL, "content-type": "text/plain"},
        )
    assert response.status_code == 403
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "host 'evil.example.com' is not served here; allow it with --allowed-host",
        },
    }
    assert s.upstream.seen == []
    assert s.app.status()["providers"]["anthropic"]["keys"][0]["attempts"] == 0
    refusals = [r.getMessage() for r in caplog.records if r.name == "aibridge.server"]
    client = re.escape(s.proxy_url.removeprefix("http://").split(":")[0])
    assert len(refusals) == 1
    assert re.fullmatch(
        rf"refused POST /anthropic/v1/messages from {client}:\d+: 403 host 'evil.example.com'"
        r" is not served here; allow it with --allowed-host",
        refusals[0],
    )


async def test_dns_rebinding_the_pages_name_on_our_port_is_refused(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([HELLO], keys=[POOL_KEY])
    port = s.proxy_url.rsplit(":", 1)[1]
    for path in ("/anthropic/v1/messages", "/aibridge/status"):
        response = await http.request(
            "POST" if "messages" in path else "GET",
            s.proxy_url + path,
            content=json.dumps(BODY),
            headers={"host": f"attacker.example:{port}", "content-type": "application/json"},
        )
        assert response.status_code == 403, path
    assert s.upstream.seen == []


async def test_an_origin_is_refused_until_allowed_then_cors_lets_the_page_read(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    json_headers = {"content-type": "application/json"}
    closed = await stack([HELLO], keys=[POOL_KEY])
    refused = await post(http, closed, {**json_headers, "origin": "http://localhost:3000"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert closed.upstream.seen == []

    allowed = GuardConfig(allowed_origins=("http://localhost:3000",))
    s = await stack([HELLO], keys=[POOL_KEY], guard=allowed)
    answered = await post(http, s, {**json_headers, "origin": "http://localhost:3000"})
    assert answered.status_code == 200
    assert answered.json()["content"] == [{"type": "text", "text": "hello"}]
    assert answered.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert len(s.upstream.seen) == 1
    # Another page is still refused.
    assert (await post(http, s, {**json_headers, "origin": EVIL})).status_code == 403
    assert len(s.upstream.seen) == 1


async def test_a_pages_get_without_origin_is_refused_and_spends_nothing(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    """What Chrome sends for ``<img src=".../anthropic/v1/models">`` on another site."""
    s = await stack([HELLO], keys=[POOL_KEY])
    response = await http.get(
        s.proxy_url + "/anthropic/v1/models",
        headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},
    )
    assert response.status_code == 403
    assert s.upstream.seen == []


async def test_a_preflight_is_answered_for_an_allowed_origin_only(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    allowed = GuardConfig(allowed_origins=("http://localhost:3000",))
    s = await stack([], keys=[POOL_KEY], guard=allowed)

    async def preflight(origin: str) -> httpx.Response:
        return await http.options(
            s.proxy_url + "/anthropic/v1/messages",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-api-key",
            },
        )

    ok = await preflight("http://localhost:3000")
    assert ok.status_code == 204
    assert ok.content == b""
    assert "content-length" not in ok.headers
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert ok.headers["access-control-allow-methods"] == "POST"
    assert ok.headers["access-control-allow-headers"] == "content-type,x-api-key"
    assert (await preflight(EVIL)).status_code == 403
    assert s.upstream.seen == []


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_json_gets_415_in_the_providers_shape(
    stack: StackFactory, http: httpx.AsyncClient, media: str | None
) -> None:
    s = await stack([], keys=[POOL_KEY], openai_keys=[OPENAI_POOL_KEY])
    headers = {"content-type": media} if media else {}
    anthropic_answer = await post(http, s, headers)
    assert anthropic_answer.status_code == 415
    assert anthropic_answer.json()["error"]["type"] == "invalid_request_error"
    openai_answer = await http.post(
        s.proxy_url + "/openai/v1/chat/completions",
        content=json.dumps({"model": "gpt-test", "messages": []}),
        headers=headers,
    )
    assert openai_answer.status_code == 415
    error = openai_answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", None)
    assert s.upstream.seen == []


async def test_a_refused_head_has_no_body_and_the_connection_goes_on(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([HELLO], keys=[POOL_KEY])
    head = await http.head(s.proxy_url + "/healthz", headers={"host": "evil.example.com"})
    assert (head.status_code, head.content) == (403, b"")
    # The same keep-alive connection serves the next request.
    ok = await post(http, s, {"content-type": "application/json"})
    assert ok.status_code == 200


async def test_the_sdks_pass_unchanged_on_loopback(stack: StackFactory) -> None:
    s = await stack([HELLO, CHAT], keys=[POOL_KEY], openai_keys=[OPENAI_POOL_KEY])
    client = anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="sk-ant-dummy-client-key", max_retries=0
    )
    async with client:
        reply = await client.messages.create(
            model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.content[0].type == "text"
    chat = await client_for(s).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "hi there"
    assert [r.header("x-api-key") or r.header("authorization") for r in s.upstream.seen] == [
        POOL_KEY,
        f"Bearer {OPENAI_POOL_KEY}",
    ]


async def test_with_a_token_clients_send_it_as_their_key_and_it_goes_no_further(
    stack: StackFactory,
) -> None:
    s = await stack(
        [HELLO, CHAT],
        keys=[POOL_KEY],
        openai_keys=[OPENAI_POOL_KEY],
        guard=GuardConfig(auth_token=TOKEN),
    )

    async def ask(key: str) -> Any:
        client = anthropic.AsyncAnthropic(
            base_url=s.proxy_url + "/anthropic", api_key=key, max_retries=0
        )
        async with client:
            return await client.messages.create(
                model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )

    with pytest.raises(anthropic.AuthenticationError) as refused:
        await ask("sk-ant-not-the-token-0000")
    assert refused.value.status_code == 401
    assert s.upstream.seen == []
    assert (await ask(TOKEN)).content[0].text == "hello"  # x-api-key
    openai_client = openai.AsyncOpenAI(
        base_url=s.proxy_url + "/openai/v1", api_key=TOKEN, max_retries=0
    )
    async with openai_client:  # bearer
        chat = await openai_client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat.choices[0].message.content == "hi there"
    seen = [(r.header("x-api-key"), r.header("authorization")) for r in s.upstream.seen]
    assert seen == [(POOL_KEY, None), (None, f"Bearer {OPENAI_POOL_KEY}")]
    assert all(TOKEN.encode() not in repr(r).encode() for r in s.upstream.seen)


async def test_with_a_token_and_no_pool_the_clients_own_key_still_goes_up(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    """Bring-your-own-key behind a token: the token in one header, the key in the other."""
    s = await stack([HELLO], guard=GuardConfig(auth_token=TOKEN))
    own = "sk-ant-client-own-key-0123456789"
    response = await post(
        http,
        s,
        {"content-type": "application/json", "authorization": f"Bearer {TOKEN}", "x-api-key": own},
    )
    assert response.status_code == 200
    (seen,) = s.upstream.seen
    assert (seen.header("x-api-key"), seen.header("authorization")) == (own, None)


async def test_the_host_check_holds_for_the_loopback_names(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([HELLO, HELLO], keys=[POOL_KEY])
    port = s.proxy_url.rsplit(":", 1)[1]
    for name in ("localhost", "127.0.0.1"):
        response = await post(
            http, s, {"host": f"{name}:{port}", "content-type": "application/json"}
        )
        assert response.status_code == 200, name
    other_port = await post(http, s, {"host": "localhost:1", "content-type": "application/json"})
    assert other_port.status_code == 403
    assert len(s.upstream.seen) == 2


WEBSOCKET_HANDSHAKE = {
    "upgrade": "websocket",
    "connection": "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
}


async def test_a_websocket_upgrade_passes_the_same_guard(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    """A page can open a WebSocket to 127.0.0.1 without a preflight: the upgrade is checked
    as every request is, before the Responses WebSocket handler sees it."""
    s = await stack([], openai_keys=[OPENAI_POOL_KEY])
    url = f"{s.proxy_url}/openai/v1/responses"
    port = url.split(":")[2].split("/")[0]
    cross_site = await http.get(url, headers={**WEBSOCKET_HANDSHAKE, "origin": EVIL})
    rebound = await http.get(
        url, headers={**WEBSOCKET_HANDSHAKE, "host": f"attacker.example:{port}"}
    )
    assert (cross_site.status_code, rebound.status_code) == (403, 403)
    assert cross_site.json()["error"]["type"] == "permission_error"  # OpenAI's shape

    locked = await stack([], openai_keys=[OPENAI_POOL_KEY], guard=GuardConfig(auth_token=TOKEN))
    no_token = await http.get(
        f"{locked.proxy_url}/openai/v1/responses", headers=WEBSOCKET_HANDSHAKE
    )
    assert no_token.status_code == 401
    assert s.upstream.seen == locked.upstream.seen == []
