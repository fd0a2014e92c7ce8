"""The upstream connection pool under a burst: each idle connection goes to one request."""

from __future__ import annotations

import httpcore
import httpx
import trio
import trio.testing

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy.httpcore_fence import FairPool
from aibridge_cli.proxy.upstream_client import make_client

from .conftest import StackFactory, start_server

BURST = 20
REQUEST = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


async def test_a_burst_on_a_warm_pool_takes_each_idle_connection_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # every reply takes a second, so a burst's requests are all in flight together
    slow = Reply(200, [("content-type", "application/json")], [b"{}"], delays=[1.0])
    upstream = ScriptedUpstream([slow] * (2 * BURST))
    server, url = await start_server(nursery, upstream)
    client = make_client()
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, FairPool)
    passes = 0
    assign = pool._assign_requests_to_connections

    def counted() -> list[httpcore.AsyncConnectionInterface]:
        nonlocal passes
        passes += 1
        return assign()

    pool._assign_requests_to_connections = counted  # type: ignore[method-assign]

    async def burst() -> list[float]:
        done: list[float] = []

        async def one() -> None:
            response = await client.post(url + "/v1/messages", content=b"{}")
            assert response.status_code == 200
            done.append(trio.current_time())

        start = trio.current_time()
        async with trio.open_nursery() as requests:
            for _ in range(BURST):
                requests.start_soon(one)
        return [t - start for t in done]

    async with client:
        await burst()  # opens BURST connections; they stay idle in the pool
        passes = 0
        took = await burst()
        assert len(pool.connections) == BURST  # every request reused one: none was opened
    # one pass per request arriving and one per response closing, no retries: httpcore's
    # own pool handed every request the same first idle connection, then retried them
    assert passes <= 2 * BURST + 1
    assert max(took) < 1.1  # all in flight together, none waited for another
    server.shutdown()


async def test_pool_keeps_at_most_the_keep_alive_limit_of_idle_connections(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    slow = Reply(200, [("content-type", "application/json")], [b"{}"], delays=[1.0])
    server, url = await start_server(nursery, ScriptedUpstream([slow] * 10))
    client = httpx.AsyncClient(transport=make_client()._transport)
    pool = client._transport._pool  # type: ignore[attr-defined]
    pool._max_keepalive_connections = 3
    async with client:
        async with trio.open_nursery() as requests:
            for _ in range(10):
                requests.start_soon(client.post, url + "/v1/messages")
        assert len([c for c in pool.connections if c.is_idle()]) == 3
    server.shutdown()


async def test_upstream_cookies_are_not_kept_across_requests(stack: StackFactory) -> None:
    """The upstream client is shared by every user: a Set-Cookie must not leak onward."""
    reply = Reply.json(ANTHROPIC_MESSAGE, headers=[("set-cookie", "session=secret; Path=/")])
    s = await stack([reply, Reply.json(ANTHROPIC_MESSAGE)], keys=["sk-ant-cookie-0000"])
    async with httpx.AsyncClient() as http:
        for _ in range(2):
            response = await http.post(s.proxy_url + "/anthropic/v1/messages", json=REQUEST)
            assert response.status_code == 200
    assert [r.header("cookie") for r in s.upstream.seen] == [None, None]
