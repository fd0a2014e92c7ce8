"""The catch-all pass-through: any method on any path under the provider prefixes that is
not intercepted reaches the upstream as sent, and its answer comes back as it came."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.interception import Interception
from aibridge_cli.proxy.run import build_app
from aibridge_cli.sessions.fixture import Fixture, dump_fixture, parse_fixture
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.replay import replay_fixture
from aibridge_cli.tools import ToolSet

from .anthropic_script import error_reply, message
from .conftest import StackFactory, start_server

POOL = "sk-ant-pool-key-0000SECRET"
OPENAI_POOL = "sk-proj-pool-key-1111SECRET"


@pytest.mark.parametrize(
    ("method", "path", "upstream_target"),
    [
        ("GET", "/anthropic/v1/models/claude-x", "/v1/models/claude-x"),
        (
            "POST",
            "/anthropic/v1/messages/count_tokens?beta=true",
            "/v1/messages/count_tokens?beta=true",
        ),
        ("GET", "/anthropic/v1/messages", "/v1/messages"),
        ("GET", "/openai/v1/models/gpt-x", "/v1/models/gpt-x"),
        ("GET", "/openai/v1/responses/resp_1?include=x", "/v1/responses/resp_1?include=x"),
        ("DELETE", "/openai/v1/responses/resp_1", "/v1/responses/resp_1"),
        ("GET", "/openai/v1/responses/resp_1/input_items", "/v1/responses/resp_1/input_items"),
        ("POST", "/openai/v1/responses/resp_1/cancel", "/v1/responses/resp_1/cancel"),
        ("POST", "/openai/v1/responses/input_tokens", "/v1/responses/input_tokens"),
        ("POST", "/openai/v1/responses/compact", "/v1/responses/compact"),
        ("PUT", "/openai/v1/files/abc?purpose=batch", "/v1/files/abc?purpose=batch"),
    ],
)
async def test_any_path_under_a_provider_prefix_reaches_the_upstream_unchanged(
    stack: StackFactory, method: str, path: str, upstream_target: str
) -> None:
    answer = Reply(
        201,
        [("content-type", "application/json"), ("x-request-id", "req_9")],
        [b'{"ok":', b"true}"],
    )
    s = await stack([answer])
    body = b'{"input": "some text"}' if method in ("POST", "PUT") else b""
    async with httpx.AsyncClient() as http:
        response = await http.request(
            method,
            s.proxy_url + path,
            content=body,
            headers={
                "x-api-key": "sk-client-own-1234",
                "x-custom": "kept",
                "content-type": "application/json",
            },
        )
    assert (response.status_code, response.content) == (201, b'{"ok":true}')
    assert response.headers["x-request-id"] == "req_9"
    (seen,) = s.upstream.seen
    assert (seen.method, seen.target, seen.body) == (method, upstream_target, body)
    assert seen.header("x-custom") == "kept"
    assert seen.header("x-api-key") == "sk-client-own-1234"  # no pool: the client's own key


@pytest.mark.parametrize("path", ["/nowhere", "/openai/models", "/anthropicx/v1/models"])
async def test_only_paths_outside_the_provider_prefixes_are_404(
    stack: StackFactory, path: str
) -> None:
    s = await stack()
    async with httpx.AsyncClient() as http:
        response = await http.get(s.proxy_url + path)
    assert response.status_code == 404
    assert not s.upstream.seen


async def test_bodies_stream_both_ways(stack: StackFactory) -> None:
    """A large upload reaches the upstream whole and the answer's chunks come as sent."""
    chunks = [b"x" * 1000 for _ in range(5)]
    s = await stack([Reply(200, [("content-type", "application/octet-stream")], chunks)])
    upload = b"".join(bytes([i % 251]) for i in range(200_000))

    async def parts() -> AsyncIterator[bytes]:
        for i in range(0, len(upload), 7000):
            yield upload[i : i + 7000]

    async with httpx.AsyncClient() as http:
        response = await http.post(s.proxy_url + "/openai/v1/files", content=parts())
    assert response.content == b"".join(chunks)
    (seen,) = s.upstream.seen
    assert seen.body == upload


async def test_a_streamed_upload_is_not_held_to_the_body_limit(stack: StackFactory) -> None:
    from aibridge_cli.config import ServerConfig

    s = await stack([Reply.json({"id": "file-1"})])
    s.proxy_server.config = ServerConfig(max_body_size=1000)
    async with httpx.AsyncClient() as http:
        response = await http.post(s.proxy_url + "/openai/v1/files", content=b"z" * 5000)
    assert response.json() == {"id": "file-1"}
    assert len(s.upstream.seen[0].body) == 5000


async def test_pool_key_is_used_and_its_429_cools_it(stack: StackFactory) -> None:
    s = await stack([error_reply(429, "rate_limit_error", "slow", "30")], keys=[POOL])
    async with httpx.AsyncClient() as http:
        response = await http.get(
            s.proxy_url + "/anthropic/v1/models", headers={"x-api-key": "sk-client-own-1234"}
        )
        status = (await http.get(s.proxy_url + "/aibridge/status")).json()
    assert response.status_code == 429  # no failover: relayed as it came
    assert s.upstream.seen[0].header("x-api-key") == POOL
    assert status["providers"]["anthropic"]["keys"][0]["state"] == "cooling"


async def test_a_pool_key_echoed_by_the_upstream_never_reaches_the_client(
    stack: StackFactory,
) -> None:
    echo = Reply.json(
        {"type": "error", "error": {"type": "authentication_error", "message": f"bad key {POOL}"}},
        401,
        [("x-echo", f"key={POOL}")],
    )
    ok = Reply(200, [("content-type", "application/json"), ("x-echo", POOL)], [b"{}"])
    s = await stack([echo, ok], keys=[POOL, POOL + "2"])
    async with httpx.AsyncClient() as http:
        rejected = await http.get(s.proxy_url + "/anthropic/v1/models")
        fine = await http.get(s.proxy_url + "/anthropic/v1/models")
    for response in (rejected, fine):
        assert "SECRET" not in response.text
        assert "SECRET" not in str(response.headers)
    assert "sk-a…CRET" in rejected.text


async def test_pass_through_is_recorded_and_mock_and_replay_serve_it(
    nursery: trio.Nursery,
) -> None:
    upstream = ScriptedUpstream(
        [
            Reply.json({"data": [{"id": "claude-x"}]}, headers=[("request-id", "req_1")]),
            Reply.json({"input_tokens": 12}),
            Reply(204, [("x-deleted", "yes")]),
        ]
    )
    _, url = await start_server(nursery, upstream)
    records: list[Interception] = []
    app = build_app(
        ServeOptions(anthropic_base_url=url, openai_base_url=url + "/v1"),
        tools=ToolSet(),
        recorder=records.append,
    )
    _, proxy_url = await start_server(nursery, app)
    async with httpx.AsyncClient() as http:
        await http.get(proxy_url + "/anthropic/v1/models?limit=1")
        await http.post(
            proxy_url + "/anthropic/v1/messages/count_tokens?beta=true",
            json={"model": "m", "messages": []},
        )
        await http.delete(proxy_url + "/openai/v1/responses/resp_1")
    await app.env.client.aclose()
    assert [r.api for r in records] == [
        "anthropic-passthrough",
        "anthropic-passthrough",
        "openai-passthrough",
    ]
    first = records[0]
    assert first.request.path == "/anthropic/v1/models?limit=1"
    assert first.upstream[0].path == "/v1/models?limit=1"
    assert first.response.body == b'{"data":[{"id":"claude-x"}]}'
    assert records[1].request.body == {"model": "m", "messages": []}

    text = dump_fixture(Fixture("<mem>", records, ["#1", "#2", "#3"]))
    fixture = parse_fixture(text)
    assert [r.api for r in fixture.interceptions] == [r.api for r in records]
    mock = MockUpstream([fixture], "fast")
    assert mock.remaining == 3
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [("match", [])] * 3


async def test_replay_notices_a_different_query(nursery: trio.Nursery) -> None:
    upstream = ScriptedUpstream([Reply.json({"data": []})])
    _, url = await start_server(nursery, upstream)
    records: list[Interception] = []
    app = build_app(ServeOptions(anthropic_base_url=url), tools=ToolSet(), recorder=records.append)
    _, proxy_url = await start_server(nursery, app)
    async with httpx.AsyncClient() as http:
        await http.get(proxy_url + "/anthropic/v1/models?limit=1")
    await app.env.client.aclose()
    records[0].upstream[0].path = "/v1/models?limit=2"  # as if the proxy had changed it
    fixture = parse_fixture(dump_fixture(Fixture("<mem>", records, ["#1"])))
    result = await replay_fixture(fixture)
    assert result.results[0].status == "mismatch"
    assert any("limit=2" in p for p in result.results[0].problems)


@pytest.mark.parametrize("path", ["/anthropic/v1/models", "/anthropic/v1/messages"])
async def test_a_header_byte_outside_ascii_goes_upstream_as_it_came(
    stack: StackFactory, path: str
) -> None:
    s = await stack([message([], "end_turn", 1) if path.endswith("messages") else Reply.json({})])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            s.proxy_url + path,
            json={"model": "m", "max_tokens": 5, "messages": []},
            headers=[(b"x-latin", b"caf\xe9")],
        )
    assert response.status_code == 200
    assert s.upstream.seen[0].header("x-latin") == "caf\xe9"


async def test_a_client_gone_mid_upload_costs_only_its_connection(
    stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    s = await stack([Reply.json({"id": "file-1"})])
    host, port = s.proxy_url.removeprefix("http://").split(":")
    conn = await trio.open_tcp_stream(host, int(port))
    # The Host a real client sends: the guard refuses any other before the app sees it.
    head = f"POST /openai/v1/files HTTP/1.1\r\nhost: {host}:{port}\r\n".encode()
    head += b"content-length: 100000\r\n\r\n"
    await conn.send_all(head + b"only the start")
    await conn.aclose()
    with trio.fail_after(10):
        while not s.app.requests_served:  # noqa: ASYNC110  (the app has no event for it)
            await trio.sleep(0.01)
    async with httpx.AsyncClient() as http:
        assert (await http.get(s.proxy_url + "/healthz")).status_code == 200
    # the upstream got a cut request, never a complete one; the proxy logged no failure
    assert not s.upstream.seen
    assert "POST /openai/v1/files - " in caplog.text
    assert "failed" not in caplog.text
