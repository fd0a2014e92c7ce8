"""The Anthropic bridge end to end: the official SDK, real loopback sockets, a scripted upstream."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpcore
import httpx
import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Fault, Reply
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sse import SSEDecoder, SSEEvent
from aibridge_cli.tools import InjectedTool, ToolSet

from .anthropic_script import (
    FINAL_TURN,
    TOOL_ONLY_TURN,
    TOOL_TURN,
    error_reply,
    message,
    message_end,
    message_start,
    rate_limited,
    stream,
    text_block,
    tool_block,
)
from .conftest import Stack, StackFactory
from .rawhttp import RawClient
from .sdkutil import collect_sdk_garbage

K0, K1 = "sk-ant-test-key-zero-0000AAAA", "sk-ant-test-key-one-1111BBBB"
CLIENT_KEY = "sk-ant-client-own-key-CCCC"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
CLIENT_TOOL: anthropic.types.ToolParam = {
    "name": "get_time",
    "description": "The local time",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
}


def sdk(s: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key=CLIENT_KEY, max_retries=0
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Longer than any proxy timeout, which tests under the autojump clock let fire first.
    async with httpx.AsyncClient(timeout=1000) as client:
        yield client


async def raw_stream(http: httpx.AsyncClient, s: Stack, **body: Any) -> httpx.Response:
    """POST a streaming request and read the whole response, keeping the raw body."""
    payload = {"model": "claude-test", "max_tokens": 50, "stream": True, "messages": HELLO, **body}
    response = await http.post(
        s.proxy_url + "/anthropic/v1/messages", json=payload, headers={"x-api-key": CLIENT_KEY}
    )
    return response


def parse_sse_strictly(body: bytes) -> list[SSEEvent]:
    """Every byte of ``body`` must belong to an SSE frame whose data is JSON."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    assert not decoder.pending(), f"trailing bytes that are not an SSE frame: {body[-80:]!r}"
    assert body.startswith(b"event:"), f"body does not start with an SSE frame: {body[:80]!r}"
    for event in events:
        json.loads(event.data)
    return events


@dataclass
class StreamFailure:
    """What the SDK saw before it raised on an in-stream error event."""

    seen: list[str]
    error_type: str
    message: str


async def sdk_stream_until_it_raises(s: Stack) -> StreamFailure:
    """Iterate a stream with the SDK until it raises ``APIStatusError``."""
    failure = await collect_sdk_garbage(_iterate(s))
    assert failure is not None, "the SDK did not raise"
    return failure


async def _iterate(s: Stack) -> StreamFailure | None:
    seen: list[str] = []
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=5, messages=HELLO) as st:
            try:
                async for event in st:
                    seen.append(event.type)
            except anthropic.APIStatusError as exc:
                body: Any = exc.body
                return StreamFailure(seen, body["error"]["type"], body["error"]["message"])
    return None


async def one_request(s: Stack, streaming: bool) -> anthropic.types.Message:
    """One SDK request, streamed (read to its final message) or blocking."""
    async with sdk(s) as client:
        if not streaming:
            return await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
        async with client.messages.stream(model="claude-test", max_tokens=5, messages=HELLO) as st:
            return await st.get_final_message()


def hello_cut_after_first_delta(fault: Fault) -> Reply:
    """'Hello' streamed in two deltas; ``fault`` strikes before the second."""
    return stream(
        message_start(),
        text_block(0, "Hel", "lo"),
        message_end("end_turn", 1),
        fault=fault,
        fault_at=3,
    )


def upstream_keys(s: Stack) -> list[str | None]:
    return [seen.header("x-api-key") for seen in s.upstream.seen]


# -- the happy paths ---------------------------------------------------------------------


async def test_streamed_text(stack: StackFactory) -> None:
    s = await stack(
        [stream(message_start(), text_block(0, "Hello", " world"), message_end("end_turn", 3))],
        keys=[K0],
    )
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=HELLO) as st:
            texts = [text async for text in st.text_stream]
            final = await st.get_final_message()
    assert texts == ["Hello", " world"]
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 3)
    assert upstream_keys(s) == [K0]
    sent = s.upstream.seen[0].json()
    assert sent["stream"] is True
    assert [t["name"] for t in sent["tools"]] == ["bmcp_weather"]  # the injected tool is offered


async def test_blocking(stack: StackFactory) -> None:
    s = await stack([message([{"type": "text", "text": "Hi there"}], "end_turn", 2)], keys=[K0])
    async with sdk(s) as client:
        reply = await client.messages.create(model="claude-test", max_tokens=50, messages=HELLO)
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "Hi there"
    assert reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 2)


async def test_injected_tool_turn_streams_as_one_message(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([TOOL_TURN, FINAL_TURN], keys=[K0])
    response = await raw_stream(http, s)
    assert response.status_code == 200
    events = parse_sse_strictly(response.content)
    kinds = [e.event for e in events]
    assert kinds.count("message_start") == 1
    assert kinds.count("message_delta") == 1
    assert kinds.count("message_stop") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"]
    blocks = [json.loads(e.data) for e in events if e.event == "content_block_start"]
    assert [b["index"] for b in blocks] == [0, 1]  # contiguous across iterations
    assert all(b["content_block"]["type"] == "text" for b in blocks)
    assert b"bmcp_weather" not in response.content  # no injected tool_use reaches the client
    indexes = [
        json.loads(e.data)["index"] for e in events if (e.event or "").startswith("content_block")
    ]
    assert indexes == sorted(indexes)
    delta = json.loads(events[-2].data)
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 14  # 10 + 4
    assert delta["usage"]["input_tokens"] == 12  # 5 + 7
    # The loop ran the tool and sent its result back upstream.
    follow_up = s.upstream.seen[1].json()["messages"]
    assert follow_up[-2]["role"] == "assistant"
    assert follow_up[-2]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "bmcp_weather",
        "input": {"city": "Paris"},
    }
    assert follow_up[-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"}],
    }


async def test_injected_tool_turn_through_the_sdk(stack: StackFactory) -> None:
    s = await stack([TOOL_TURN, FINAL_TURN], keys=[K0])
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=HELLO) as st:
            seen = [event.type async for event in st]
            final = await st.get_final_message()
    assert seen.count("message_start") == 1
    assert [b.type for b in final.content] == ["text", "text"]
    assert [b.text for b in final.content] == ["Let me check.", "Sunny in Paris."]  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 14)


async def test_injected_tool_turn_blocking(stack: StackFactory) -> None:
    s = await stack(
        [
            message(
                [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "bmcp_weather",
                        "input": {"city": "Oslo"},
                    },
                ],
                "tool_use",
                10,
                msg_id="msg_a",
            ),
            message(
                [{"type": "text", "text": "Cold."}], "end_turn", 3, input_tokens=9, msg_id="msg_b"
            ),
        ],
        keys=[K0],
    )
    async with sdk(s) as client:
        reply = await client.messages.create(model="claude-test", max_tokens=50, messages=HELLO)
    assert [(b.type, getattr(b, "text", None)) for b in reply.content] == [
        ("text", "Checking."),
        ("text", "Cold."),
    ]
    assert reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (14, 13)
    tool_result = s.upstream.seen[1].json()["messages"][-1]["content"][0]
    assert tool_result == {
        "type": "tool_result",
        "tool_use_id": "toolu_9",
        "content": "sunny, 21 C",
    }


async def test_client_defined_tool_is_relayed_unchanged(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    reply = stream(
        message_start(),
        text_block(0, "Checking the time."),
        tool_block(1, "get_time", {"tz": "UTC"}, "toolu_c"),
        message_end("tool_use", 6),
    )
    s = await stack([reply, reply], keys=[K0])
    response = await raw_stream(http, s, tools=[CLIENT_TOOL])
    assert response.content == b"".join(reply.chunks)  # byte for byte
    async with sdk(s) as client:
        async with client.messages.stream(
            model="claude-test", max_tokens=50, messages=HELLO, tools=[CLIENT_TOOL]
        ) as st:
            final = await st.get_final_message()
    assert final.stop_reason == "tool_use"
    tool_use = final.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input, tool_use.id) == ("get_time", {"tz": "UTC"}, "toolu_c")
    assert len(s.upstream.seen) == 2  # the client runs its own tool: no loop
    assert [t["name"] for t in s.upstream.seen[0].json()["tools"]] == ["get_time", "bmcp_weather"]


# -- the key pool ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "state"),
    [
        (429, "rate_limit_error", "cooling"),
        (401, "authentication_error", "disabled"),
        (403, "permission_error", "disabled"),
    ],
)
@pytest.mark.parametrize("streaming", [True, False])
async def test_failover_to_the_next_key(
    stack: StackFactory,
    http: httpx.AsyncClient,
    status: int,
    error_type: str,
    state: str,
    streaming: bool,
) -> None:
    ok = (
        stream(message_start(), text_block(0, "ok"), message_end("end_turn", 1))
        if streaming
        else message([{"type": "text", "text": "ok"}], "end_turn", 1)
    )
    s = await stack([error_reply(status, error_type), ok], keys=[K0, K1])
    final = await one_request(s, streaming)
    assert final.content[0].text == "ok"  # type: ignore[union-attr]
    assert upstream_keys(s) == [K0, K1]
    status_doc = (await http.get(s.proxy_url + "/aibridge/status")).json()
    keys = status_doc["providers"]["anthropic"]["keys"]
    assert [k["state"] for k in keys] == [state, "valid"]
    assert keys[0]["last_status"] == status


async def test_each_loop_iteration_fails_over_on_its_own(stack: StackFactory) -> None:
    s = await stack([TOOL_TURN, rate_limited("7"), FINAL_TURN], keys=[K0, K1])
    final = await one_request(s, streaming=True)
    assert [b.text for b in final.content] == ["Let me check.", "Sunny in Paris."]  # type: ignore[union-attr]
    assert upstream_keys(s) == [K0, K0, K1]


@pytest.mark.parametrize("streaming", [True, False])
async def test_all_keys_rate_limited_is_429_with_the_smallest_retry_after(
    stack: StackFactory, streaming: bool
) -> None:
    s = await stack([rate_limited("30"), rate_limited("3")], keys=[K0, K1])
    with pytest.raises(anthropic.RateLimitError) as caught:
        await one_request(s, streaming)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "3"
    assert error.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "all configured keys are rate-limited"},
    }
    assert upstream_keys(s) == [K0, K1]
    # A new request while both cool: no upstream attempt at all.
    async with sdk(s) as client:
        with pytest.raises(anthropic.RateLimitError) as again:
            await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
    assert int(again.value.response.headers["retry-after"]) in (2, 3)
    assert len(s.upstream.seen) == 2


async def test_all_keys_unauthorized_is_502(stack: StackFactory) -> None:
    s = await stack(
        [error_reply(401, "authentication_error"), error_reply(403, "permission_error")],
        keys=[K0, K1],
    )
    async with sdk(s) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert upstream_keys(s) == [K0, K1]


@pytest.mark.parametrize("streaming", [True, False])
async def test_500_is_relayed_without_failover(stack: StackFactory, streaming: bool) -> None:
    s = await stack([error_reply(500, "api_error", "upstream broke")], keys=[K0, K1])
    with pytest.raises(anthropic.InternalServerError) as caught:
        await one_request(s, streaming)
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream broke"},
    }
    assert upstream_keys(s) == [K0]


async def test_no_keys_forwards_the_clients_key_and_relays_its_429(stack: StackFactory) -> None:
    s = await stack(
        [
            stream(message_start(), text_block(0, "ok"), message_end("end_turn", 1)),
            rate_limited("9"),
        ]
    )
    async with sdk(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=5, messages=HELLO) as st:
            await st.get_final_message()
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
    # This SDK sends its key as a bearer token; the proxy forwards it as it came.
    assert [seen.header("authorization") for seen in s.upstream.seen] == [
        f"Bearer {CLIENT_KEY}"
    ] * 2
    assert caught.value.response.headers["retry-after"] == "9"
    assert caught.value.body["error"]["message"] == "slow down"  # type: ignore[index]
    assert len(s.upstream.seen) == 2  # no failover


async def test_no_keys_forwards_an_x_api_key(stack: StackFactory, http: httpx.AsyncClient) -> None:
    s = await stack([message([{"type": "text", "text": "ok"}], "end_turn", 1)])
    response = await http.post(
        s.proxy_url + "/anthropic/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": HELLO},
        headers={"x-api-key": CLIENT_KEY},
    )
    assert response.status_code == 200
    assert upstream_keys(s) == [CLIENT_KEY]
    assert s.upstream.seen[0].header("authorization") is None


async def test_pool_keys_replace_the_clients_credentials(stack: StackFactory) -> None:
    s = await stack([message([{"type": "text", "text": "ok"}], "end_turn", 1)], keys=[K0])
    async with sdk(s) as client:
        await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
    assert upstream_keys(s) == [K0]
    assert s.upstream.seen[0].header("authorization") is None
    assert CLIENT_KEY not in repr(s.upstream.seen[0].headers)


# -- the seed case and other in-stream errors -------------------------------------------


async def test_seed_case_tool_turn_then_every_key_429_is_one_sse_error(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([TOOL_ONLY_TURN, rate_limited("7"), rate_limited("3")], keys=[K0, K1])
    response = await raw_stream(http, s)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = parse_sse_strictly(response.content)
    assert [e.event for e in events] == ["message_start", "error"]
    assert json.loads(events[1].data) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "all configured keys are rate-limited"},
    }
    assert upstream_keys(s) == [K0, K0, K1]


async def test_seed_case_through_the_sdk_raises_while_iterating(stack: StackFactory) -> None:
    s = await stack([TOOL_ONLY_TURN, rate_limited("7"), rate_limited("3")], keys=[K0, K1])
    failure = await sdk_stream_until_it_raises(s)
    assert failure.seen == ["message_start"]
    assert failure.error_type == "rate_limit_error"


async def test_upstream_error_event_mid_stream_is_relayed(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    reply = stream(
        message_start(),
        [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ),
        ],
    )
    s = await stack([reply, reply], keys=[K0])
    response = await raw_stream(http, s)
    events = parse_sse_strictly(response.content)
    assert [e.event for e in events] == ["message_start", "content_block_start", "error"]
    assert json.loads(events[-1].data)["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }
    failure = await sdk_stream_until_it_raises(s)
    assert failure.seen == ["message_start", "content_block_start"]
    assert (failure.error_type, failure.message) == ("overloaded_error", "Overloaded")


async def test_upstream_connection_lost_mid_stream_is_an_sse_api_error(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    broken = hello_cut_after_first_delta("reset-in-body")
    s = await stack([broken], keys=[K0])
    response = await raw_stream(http, s)
    assert response.status_code == 200
    events = parse_sse_strictly(response.content)
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    error = json.loads(events[-1].data)["error"]
    assert error["type"] == "api_error"
    assert "upstream" in error["message"]


async def test_upstream_stream_that_ends_early_is_an_sse_api_error(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([stream(message_start(), text_block(0, "Hel"))], keys=[K0])
    response = await raw_stream(http, s)
    events = parse_sse_strictly(response.content)
    assert events[-1].event == "error"
    assert (
        json.loads(events[-1].data)["error"]["message"]
        == "upstream stream ended before message_stop"
    )


async def test_client_disconnect_mid_stream_closes_the_upstream_within_a_second(
    stack: StackFactory,
) -> None:
    stalling = hello_cut_after_first_delta("stall")
    s = await stack([stalling], keys=[K0])
    host, port = s.proxy_url.removeprefix("http://").split(":")
    client = RawClient(await trio.open_tcp_stream(host, int(port)))
    body = json.dumps({"model": "m", "max_tokens": 5, "stream": True, "messages": HELLO})
    await client.send_request(
        "POST", "/anthropic/v1/messages", body.encode(), [("content-type", "application/json")]
    )
    got = b""
    while b"content_block_delta" not in got:
        got += await client.stream.receive_some(65536)
    assert s.upstream.open_responses == 1
    await client.stream.aclose()
    # The client's connection is closed here; the proxy must drop its upstream request.
    with trio.fail_after(1):
        await s.upstream.all_closed.wait()
    assert s.upstream.closed_early == 1


# -- bad input, unreachable and slow upstreams -------------------------------------------


async def test_upstream_unreachable_is_502(stack: StackFactory) -> None:
    s = await stack(keys=[K0])
    dead = trio.socket.socket()
    await dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    s.app.upstreams["anthropic"].base_url = f"http://127.0.0.1:{port}"
    async with sdk(s) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "unreachable" in caught.value.body["error"]["message"]  # type: ignore[index]


async def test_upstream_idle_read_timeout_before_the_stream_is_504(
    stack: StackFactory, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    from aibridge_cli.config import UpstreamTimeouts

    s = await stack(
        [Reply(200, [("content-type", "text/event-stream")], [], fault="stall")],
        keys=[K0],
        timeouts=UpstreamTimeouts(read=300.0),
    )
    start = trio.current_time()
    response = await raw_stream(http, s)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "api_error"
    assert trio.current_time() - start == pytest.approx(300.0, abs=1)


async def test_upstream_idle_read_timeout_after_the_stream_began_is_an_sse_error(
    stack: StackFactory, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    from aibridge_cli.config import UpstreamTimeouts

    s = await stack(
        [stream(message_start(), text_block(0, "Hel"), fault="stall", fault_at=2)],
        keys=[K0],
        timeouts=UpstreamTimeouts(read=300.0),
    )
    response = await raw_stream(http, s)
    assert response.status_code == 200
    events = parse_sse_strictly(response.content)
    kinds = [e.event for e in events]
    assert [k for k in kinds if k != "ping"] == ["message_start", "content_block_start", "error"]
    # The relay kept the idle client alive with a ping every 10 s of the 300 s wait.
    assert kinds.count("ping") in (29, 30)
    assert kinds[-1] == "error"
    assert "timed out" in json.loads(events[-1].data)["error"]["message"]


# -- pass-through, status, masking -------------------------------------------------------


async def test_models_and_count_tokens_pass_through_unchanged(stack: StackFactory) -> None:
    models = {
        "data": [
            {
                "type": "model",
                "id": "claude-test",
                "display_name": "Test",
                "created_at": "2025-01-01T00:00:00Z",
            }
        ],
        "has_more": False,
        "first_id": "claude-test",
        "last_id": "claude-test",
    }
    s = await stack(
        [Reply.json(models, headers=[("x-upstream", "yes")]), Reply.json({"input_tokens": 42})],
        keys=[K0],
    )
    async with sdk(s) as client:
        page = await client.models.list(limit=5)
        count = await client.messages.count_tokens(model="claude-test", messages=HELLO)
    assert [m.id for m in page.data] == ["claude-test"]
    assert count.input_tokens == 42
    listing, counting = s.upstream.seen
    assert (listing.method, listing.path) == ("GET", "/v1/models")
    assert (counting.method, counting.path) == ("POST", "/v1/messages/count_tokens")
    assert counting.json() == {
        "model": "claude-test",
        "messages": HELLO,
    }  # untouched: no tools added
    assert counting.header("content-type") == "application/json"
    assert upstream_keys(s) == [K0, K0]


async def test_a_pass_through_429_cools_its_key(stack: StackFactory) -> None:
    limited = Reply.json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
        429,
        [("retry-after", "30")],
    )
    s = await stack([limited], keys=[K0, K1])
    async with httpx.AsyncClient() as http:
        response = await http.get(s.proxy_url + "/anthropic/v1/models")
        status = (await http.get(s.proxy_url + "/aibridge/status")).json()
    assert response.status_code == 429  # relayed as it came: no failover on a pass-through
    assert [k["state"] for k in status["providers"]["anthropic"]["keys"]] == ["cooling", "valid"]


async def test_status_and_logs_show_keys_masked_only(
    stack: StackFactory, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aibridge")
    s = await stack([TOOL_ONLY_TURN, rate_limited("7"), rate_limited("3")], keys=[K0, K1])
    await raw_stream(http, s)
    status = await http.get(s.proxy_url + "/aibridge/status")
    doc = status.json()
    keys = doc["providers"]["anthropic"]["keys"]
    assert [k["key"] for k in keys] == ["sk-a…AAAA", "sk-a…BBBB"]
    assert [k["state"] for k in keys] == ["cooling", "cooling"]
    assert doc["stream_initiation"] == "eager"
    assert doc["tools"] == ["bmcp_weather"]
    request_lines = [r.getMessage() for r in caplog.records if r.name == "aibridge.requests"]
    assert any(
        "POST /anthropic/v1/messages 200" in line
        and "attempts=3" in line
        and "keys=sk-a…AAAA,sk-a…AAAA,sk-a…BBBB" in line
        for line in request_lines
    )
    everything = caplog.text + status.text
    for secret in (K0, K1, CLIENT_KEY):
        assert secret not in everything
        assert secret[4:-4] not in everything


# -- the agentic loop's edges -------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
async def test_agentic_loop_is_bounded(
    stack: StackFactory, http: httpx.AsyncClient, streaming: bool
) -> None:
    call = (
        TOOL_ONLY_TURN
        if streaming
        else message(
            [{"type": "tool_use", "id": "toolu_1", "name": "bmcp_weather", "input": {}}],
            "tool_use",
            1,
        )
    )
    s = await stack([call] * 5, keys=[K0], max_iterations=3)
    payload = {"model": "m", "max_tokens": 5, "stream": streaming, "messages": HELLO}
    response = await http.post(s.proxy_url + "/anthropic/v1/messages", json=payload)
    message_text = "the agentic loop did not finish in 3 iterations"
    if streaming:  # the stream was initiated before iteration 2: an SSE error
        assert response.status_code == 200
        events = parse_sse_strictly(response.content)
        assert [e.event for e in events] == ["message_start", "error"]
        assert json.loads(events[1].data)["error"] == {"type": "api_error", "message": message_text}
    else:
        assert response.status_code == 502
        assert response.json()["error"] == {"type": "api_error", "message": message_text}
    assert len(s.upstream.seen) == 3


async def test_failing_injected_tool_sends_an_error_result_upstream(stack: StackFactory) -> None:
    failing = InjectedTool(
        "bmcp_weather",
        "Weather",
        {"type": "object"},
        command=(sys.executable, "-c", "import sys; sys.stderr.write('no data'); sys.exit(1)"),
    )
    s = await stack([TOOL_TURN, FINAL_TURN], keys=[K0], tools=ToolSet.of([failing]))
    final = await one_request(s, streaming=True)
    assert final.stop_reason == "end_turn"
    result = s.upstream.seen[1].json()["messages"][-1]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "no data",
        "is_error": True,
    }


async def test_upstream_connect_timeout_is_504(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    class Blackhole(httpcore.AsyncNetworkBackend):
        """A network where connecting never completes."""

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                with trio.fail_after(float("inf") if timeout is None else timeout):
                    await trio.sleep_forever()
            except trio.TooSlowError:
                raise httpcore.ConnectTimeout("connect timed out") from None

    app = build_app(
        ServeOptions(anthropic_base_url="http://upstream.test", anthropic_keys=[K0]),
        tools=ToolSet(),
        network_backend=Blackhole(),
    )
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(Server(app).serve_stream, server_stream)
    client = RawClient(client_stream)
    start = trio.current_time()
    body = json.dumps({"model": "m", "max_tokens": 5, "stream": True, "messages": HELLO})
    response = await client.request("POST", "/anthropic/v1/messages", body.encode())
    await app.env.client.aclose()
    assert response.status == 504
    assert json.loads(response.body)["error"] == {
        "type": "api_error",
        "message": "upstream did not accept a connection in time",
    }
    assert trio.current_time() - start == pytest.approx(10.0)  # the default connect timeout
