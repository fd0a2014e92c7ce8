"""Stream initiation on Chat Completions: ``lazy`` (the Go gateway before the fix)
reproduces the seed race's malformed body; ``eager`` never does.

Deterministic and in memory: the proxy serves over a lockstep stream, so a client that
does not read holds the relay inside its first write (the slow reader), and the upstream
is an httpx transport that plays scripted replies without sockets. When every task is
blocked, the loop has had its chance to fail; then the client reads the whole response.
"""

from __future__ import annotations

from collections.abc import Sequence

import h11
import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from aibridge_cli.config import ServeOptions, StreamInitiation
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.tools import ToolSet

from .conftest import WEATHER
from .openai_scripts import chat_text, chat_tool_turn, openai_error_reply

BODY = b'{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"hi"}]}'


class ScriptTransport(httpx.AsyncBaseTransport):
    """Answers the n-th upstream request with the n-th reply, in memory."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.seen: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("authorization"))
        await trio.lowlevel.checkpoint()  # a network round trip lets other tasks run
        reply = self.replies.pop(0)
        return httpx.Response(
            reply.status, headers=reply.headers, stream=httpx.ByteStream(b"".join(reply.chunks))
        )


async def exchange(
    mode: StreamInitiation, replies: Sequence[Reply], *, slow_reader: bool
) -> tuple[int, bytes, list[str | None]]:
    """One streaming request through the proxy; the status and body the client got."""
    app = build_app(
        ServeOptions(openai_keys=["sk-key0-0000aaaa", "sk-key1-1111bbbb"], stream_initiation=mode),
        tools=ToolSet.of([WEATHER]),
    )
    await app.env.client.aclose()
    transport = ScriptTransport(replies)
    app.env.client = httpx.AsyncClient(transport=transport)
    client_end, server_end = trio.testing.lockstep_stream_pair()
    client = h11.Connection(h11.CLIENT)
    status, body = 0, b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Server(app).serve_stream, server_end)
        request = h11.Request(
            method="POST",
            target="/openai/v1/chat/completions",
            headers=[
                ("host", "proxy"),
                ("content-type", "application/json"),
                ("content-length", str(len(BODY))),
            ],
        )
        await client_end.send_all(
            client.send(request)
            + client.send(h11.Data(data=BODY))
            + client.send(h11.EndOfMessage())
        )
        if slow_reader:
            await trio.testing.wait_all_tasks_blocked()
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(bytes(await client_end.receive_some(65536)))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        await client_end.aclose()
    await app.env.client.aclose()
    return status, body, transport.seen


def seed_replies() -> list[Reply]:
    """Iteration 1: the role chunk and an injected call; iteration 2: every key 429."""
    return [
        chat_tool_turn("bmcp_weather"),
        openai_error_reply(429, retry_after="3"),
        openai_error_reply(429, retry_after="4"),
    ]


def well_formed_sse(body: bytes) -> bool:
    frames = [f for f in body.split(b"\n\n") if f]
    return body.endswith(b"\n\n") and all(f.startswith(b"data: ") for f in frames)


async def test_lazy_mode_reproduces_the_malformed_body() -> None:
    status, body, seen = await exchange("lazy", seed_replies(), slow_reader=True)
    assert seen == ["Bearer sk-key0-0000aaaa", "Bearer sk-key0-0000aaaa", "Bearer sk-key1-1111bbbb"]
    # The relay took the first chunk off the channel but waits for the slow client; the
    # loop, seeing nothing initiated and nothing queued, answered 429 with a JSON error,
    # and the relay's SSE then joined the same body: the seed's JSON-then-SSE failure.
    assert status == 429
    error = (
        b'{"error":{"message":"all configured keys are rate-limited",'
        b'"type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}'
    )
    assert body.startswith(error)
    assert body[len(error) :].startswith(b'data: {"id":"chatcmpl-t1"')
    assert not well_formed_sse(body)


@pytest.mark.parametrize("slow_reader", [True, False])
async def test_eager_mode_always_gives_one_well_formed_stream(slow_reader: bool) -> None:
    status, body, seen = await exchange("eager", seed_replies(), slow_reader=slow_reader)
    assert status == 200
    assert well_formed_sse(body)
    frames = [f for f in body.split(b"\n\n") if f]
    assert frames[-1].startswith(
        b'data: {"error":{"message":"all configured keys are rate-limited"'
    )
    assert len(seen) == 3


async def test_lazy_mode_without_an_error_is_a_normal_stream() -> None:
    status, body, _ = await exchange(
        "lazy", [chat_tool_turn("bmcp_weather"), chat_text("Sunny.")], slow_reader=True
    )
    assert status == 200
    assert well_formed_sse(body)
    assert body.endswith(b"data: [DONE]\n\n")
