"""The fence around httpcore's private names: checked at use, with a working fallback."""

from __future__ import annotations

import logging
import types

import httpcore
import httpx
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy import httpcore_fence
from aibridge_cli.proxy.httpcore_fence import FairPool, make_pool, missing_internals
from aibridge_cli.proxy.upstream_client import PoolTransport, body_chunks

from .conftest import start_server

SSE = [b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n", b"event: c\ndata: 3\n\n"]


def test_the_pinned_httpcore_has_every_private_name_the_fence_needs() -> None:
    assert missing_internals() == []
    assert isinstance(make_pool(), FairPool)


def test_a_class_without_a_needed_method_or_attribute_is_reported() -> None:
    class HTTP11(httpcore.AsyncHTTP11Connection):
        _receive_event = None  # type: ignore[assignment]

    class Connection:
        def __init__(self) -> None:
            self._connection = None

    namespace = types.SimpleNamespace(
        AsyncHTTP11Connection=HTTP11,
        AsyncHTTPConnection=Connection,
        AsyncConnectionPool=httpcore.AsyncConnectionPool,
    )
    missing = missing_internals(namespace)
    assert "AsyncHTTP11Connection._receive_event" not in missing  # present, if None
    assert "AsyncHTTPConnection.handle_async_request" in missing
    assert "AsyncHTTPConnection._request_lock" in missing
    assert "AsyncHTTPConnection._connection" not in missing
    assert not [m for m in missing if m.startswith("AsyncConnectionPool")]
    assert missing_internals(types.SimpleNamespace()) == list(httpcore_fence._NEEDED)


async def test_without_the_private_names_the_stock_pool_relays_the_same_bytes(
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpcore_fence, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="aibridge.upstream"):
        pool = make_pool(missing=["AsyncHTTP11Connection._receive_event"])
        make_pool(missing=["AsyncHTTP11Connection._receive_event"])
    assert type(pool) is httpcore.AsyncConnectionPool
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "_receive_event" in warnings[0]
    assert "stock connection pool" in warnings[0]

    upstream = ScriptedUpstream([Reply(200, [("content-type", "text/event-stream")], SSE)])
    _server, url = await start_server(nursery, upstream)
    async with httpx.AsyncClient(transport=PoolTransport(pool)) as client:
        request = client.build_request("POST", url + "/v1/messages", content=b"{}")
        response = await client.send(request, stream=True)
        received = b""
        async with body_chunks(response) as chunks:
            async for chunk in chunks:
                assert type(chunk) is bytes  # no joined BodyPart from the stock connection
                received += chunk
        await response.aclose()
    assert response.status_code == 200
    assert received == b"".join(SSE)
