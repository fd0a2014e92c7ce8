"""A request path never leaves the route it names (proxy/paths.py): dot segments, plain or
percent-encoded, are refused with a 400 in the provider's shape before routing, over a
real socket (raw requests: every client library resolves dot segments itself)."""

from __future__ import annotations

import json

import pytest

from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.proxy.paths import dot_segment_problem

from .conftest import StackFactory
from .rawhttp import WEBSOCKET_UPGRADE, RawResponse
from .test_load_faults import open_client

POOL = "sk-ant-paths-pool-0000SECRET"
OPENAI_POOL = "sk-proj-paths-pool-1111SECRET"

ANTHROPIC_PATHS = [
    ("GET", "/anthropic/../aibridge/status"),
    ("GET", "/anthropic/v1/../../healthz"),
    ("GET", "/anthropic/%2e%2e/aibridge/status"),
    ("GET", "/anthropic/v1/%2E%2e/%2e%2E/x"),
    ("GET", "/anthropic/v1/.%2e/.%2E/x"),
    ("GET", "/anthropic/v1/..%2f..%2fv2/x"),
    ("GET", "/anthropic/v1/..%5c..%5cx"),
    ("GET", "/anthropic/v1/%252e%252e/%252e%252e/x"),
    ("GET", "/anthropic/v1/models/../../../x?beta=true"),
    ("POST", "/anthropic/v1/./messages"),  # would skip the interception
    ("POST", "/anthropic/v1/x/../messages"),
    ("POST", "/anthropic/v1/messages/.."),
]
OPENAI_PATHS = [
    ("GET", "/openai/v1/../../v2/x"),
    ("GET", "/openai/v1/%2e%2e/%2e%2e/v2/x"),
    ("POST", "/openai/v1/./chat/completions"),
    ("POST", "/openai/v1/responses/%2e"),
    ("DELETE", "/openai/v1/files/..%2F..%2Fv2"),
]


async def raw(url: str, method: str, target: str, body: bytes = b"") -> RawResponse:
    client = await open_client(url)
    try:
        return await client.request(
            method, target, body, [("content-type", "application/json"), ("x-api-key", "sk-c")]
        )
    finally:
        await client.stream.aclose()


@pytest.mark.parametrize(("method", "target"), ANTHROPIC_PATHS + OPENAI_PATHS)
async def test_a_dot_segment_is_refused_before_routing(
    stack: StackFactory, method: str, target: str
) -> None:
    s = await stack([Reply.json({"ok": True})], keys=[POOL], openai_keys=[OPENAI_POOL])
    body = b'{"model": "m", "max_tokens": 5, "messages": []}' if method == "POST" else b""
    response = await raw(s.proxy_url, method, target, body)
    assert response.status == 400, response
    assert response.header("x-should-retry") == "false"
    error = json.loads(response.body)
    if target.startswith("/openai/"):
        assert error["error"]["type"] == "invalid_request_error"
        assert "dot segment" in error["error"]["message"]
    else:
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        assert "dot segment" in error["error"]["message"]
    assert s.upstream.seen == []  # nothing left with the pool key
    assert "requests_served" not in response.body.decode()  # not the status page


async def test_a_dot_segment_on_the_websocket_route_is_refused(stack: StackFactory) -> None:
    s = await stack([], openai_keys=[OPENAI_POOL])
    client = await open_client(s.proxy_url)
    await client.send_request("GET", "/openai/v1/x/../responses", headers=WEBSOCKET_UPGRADE)
    response = await client.read_response()
    await client.stream.aclose()
    assert response.status == 400
    assert "dot segment" in json.loads(response.body)["error"]["message"]
    assert s.upstream.seen == []


@pytest.mark.parametrize(
    ("target", "upstream_target"),
    [
        ("/anthropic/v1/files/a%2Fb", "/v1/files/a%2Fb"),  # an encoded slash alone stays
        ("/anthropic/v1/.well-known/x", "/v1/.well-known/x"),
        ("/anthropic/v1/models/..x", "/v1/models/..x"),
        ("/anthropic/v1/models/x?q=../..", "/v1/models/x?q=../.."),  # the query is not a path
    ],
)
async def test_paths_that_only_look_like_dot_segments_pass(
    stack: StackFactory, target: str, upstream_target: str
) -> None:
    s = await stack([Reply.json({"ok": True})], keys=[POOL])
    response = await raw(s.proxy_url, "GET", target)
    assert response.status == 200, response
    (seen,) = s.upstream.seen
    assert seen.target == upstream_target


@pytest.mark.parametrize(
    "path",
    [
        "/a/./b",
        "/a/../b",
        "/a/%2e/b",
        "/a/%2E%2e",
        "/a/..%2Fb",
        "/a/..%5Cb",
        "/a/%25%32%65%25%32%65",
    ],
)
def test_dot_segment_problem_finds_every_spelling(path: str) -> None:
    assert dot_segment_problem(path) is not None


@pytest.mark.parametrize("path", ["/a/b", "/a/...", "/a/.b", "/a/b.", "/a/%2Fb", "/a/%25", "/"])
def test_dot_segment_problem_passes_plain_paths(path: str) -> None:
    assert dot_segment_problem(path) is None
