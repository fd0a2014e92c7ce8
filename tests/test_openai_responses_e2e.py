"""Responses end to end: the official openai SDK, the proxy and a scripted upstream, all
on loopback sockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import trio
import trio.testing

from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.tools import ToolSet

from .conftest import WEATHER, Stack, StackFactory
from .openai_scripts import (
    SDK_GENERATORS,
    client_for,
    close_sdk_clients,  # noqa: F401 (an autouse fixture)
    function_item,
    keys_seen,
    message_item,
    openai_error_reply,
    response_object,
    responses_stream,
    stalled_after_created,
)

pytestmark = SDK_GENERATORS

KEYS = ["sk-first-1111aaaa", "sk-second-2222bbbb"]
CLIENT_TOOL: Any = {
    "type": "function",
    "name": "read_file",
    "parameters": {"type": "object"},
    "strict": False,
}


def blocking(response_id: str, items: list[Any]) -> Reply:
    return Reply.json(response_object(response_id, items))


async def stream_final(stack: Stack, **kwargs: Any) -> tuple[list[Any], Any]:
    """Run the SDK's streaming helper (strict about ids and indexes); events and result."""
    async with client_for(stack).responses.stream(
        model="gpt-x", input="weather?", **kwargs
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    return events, final


async def test_streaming_text_relayed(stack: StackFactory) -> None:
    s = await stack(
        [responses_stream("resp_1", [message_item("msg_1", "Hello.")])], openai_keys=KEYS
    )
    events, final = await stream_final(s)
    assert final.id == "resp_1"
    assert final.output_text == "Hello."
    assert [e.sequence_number for e in events] == list(range(len(events)))
    sent = s.upstream.seen[0].json()
    assert sent["tools"] == [
        {
            "type": "function",
            "name": "bmcp_weather",
            "description": WEATHER.description,
            "parameters": dict(WEATHER.input_schema),
            "strict": False,
        }
    ]
    assert sent["parallel_tool_calls"] is False


async def test_blocking_text_relayed(stack: StackFactory) -> None:
    s = await stack([blocking("resp_1", [message_item("msg_1", "Hello.")])], openai_keys=KEYS)
    done = await client_for(s).responses.create(model="gpt-x", input="hi")
    assert (done.id, done.output_text) == ("resp_1", "Hello.")


@pytest.mark.parametrize("preamble", [False, True])
async def test_streaming_injected_tool_turn_is_invisible(
    stack: StackFactory, preamble: bool
) -> None:
    first = (
        [message_item("msg_0", "Checking."), function_item("bmcp_weather")]
        if preamble
        else [function_item("bmcp_weather")]
    )
    s = await stack(
        [
            responses_stream("resp_1", first),
            responses_stream("resp_2", [message_item("msg_2", "Sunny.")]),
        ],
        openai_keys=KEYS,
    )
    events, final = await stream_final(s)
    assert all(getattr(getattr(e, "item", None), "type", None) != "function_call" for e in events)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    indexes = {e.output_index for e in events if hasattr(e, "output_index")}
    if preamble:
        # The preamble went out as it came, under the first response's id; the client
        # continues from that id and the proxy sends the stored one upstream.
        assert (final.id, final.output_text) == ("resp_1", "Checking.Sunny.")
        assert indexes == {0, 1}
        s.upstream.replies.append(responses_stream("resp_3", [message_item("m3", "Bye.")]))
        await stream_final(s, previous_response_id="resp_1")
        assert s.upstream.seen[2].json()["previous_response_id"] == "resp_2"
    else:
        assert final.id == "resp_2"  # the stored response the client can continue from
        assert final.output_text == "Sunny."
        assert indexes == {0}
    follow_up = s.upstream.seen[1].json()["input"]
    assert follow_up[0] == {"role": "user", "content": "weather?"}
    assert follow_up[-2] == function_item("bmcp_weather")
    assert follow_up[-1] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "sunny, 21 C",
    }
    assert len(follow_up) == (4 if preamble else 3)


async def test_blocking_injected_tool_turn_is_invisible(stack: StackFactory) -> None:
    s = await stack(
        [
            blocking("resp_1", [function_item("bmcp_weather")]),
            blocking("resp_2", [message_item("m", "Sunny.")]),
        ],
        openai_keys=KEYS,
    )
    done = await client_for(s).responses.create(
        model="gpt-x", input=[{"role": "user", "content": "weather?"}]
    )
    assert (done.id, done.output_text) == ("resp_2", "Sunny.")
    assert [item.type for item in done.output] == ["message"]
    assert [i.get("type", "message") for i in s.upstream.seen[1].json()["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]


@pytest.mark.parametrize(
    ("field", "value"), [("previous_response_id", "resp_prev"), ("conversation", "conv_1")]
)
async def test_continuations_passed_through_across_a_tool_turn(
    stack: StackFactory, field: str, value: str
) -> None:
    s = await stack(
        [
            blocking("resp_1", [function_item("bmcp_weather")]),
            blocking("resp_2", [message_item("m", "Sunny.")]),
        ],
        openai_keys=KEYS,
    )
    extra: dict[str, Any] = {field: value}
    await client_for(s).responses.create(model="gpt-x", input="weather?", **extra)
    first, second = (r.json() for r in s.upstream.seen)
    assert first[field] == second[field] == value
    output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"}
    if field == "conversation":
        # The upstream already added the input and the call to the conversation.
        assert second["input"] == [output]
    else:
        assert second["input"] == [
            {"role": "user", "content": "weather?"},
            function_item("bmcp_weather"),
            output,
        ]


@pytest.mark.parametrize("streaming", [True, False])
async def test_client_tool_relayed_untouched(stack: StackFactory, streaming: bool) -> None:
    call = function_item("read_file", "call_c", '{"path": "x"}')
    reply = responses_stream("resp_1", [call]) if streaming else blocking("resp_1", [call])
    s = await stack([reply], openai_keys=KEYS)
    if streaming:
        _, final = await stream_final(s, tools=[CLIENT_TOOL])
    else:
        final = await client_for(s).responses.create(model="gpt-x", input="x", tools=[CLIENT_TOOL])
    assert [i.model_dump(exclude_none=True) for i in final.output] == [call]
    assert len(s.upstream.seen) == 1
    assert [t["name"] for t in s.upstream.seen[0].json()["tools"]] == ["read_file", "bmcp_weather"]


@pytest.mark.parametrize("status", [429, 401, 403])
@pytest.mark.parametrize("streaming", [True, False])
async def test_failover_to_next_key(stack: StackFactory, status: int, streaming: bool) -> None:
    items = [message_item("m", "Hi.")]
    ok = responses_stream("resp_1", items) if streaming else blocking("resp_1", items)
    s = await stack([openai_error_reply(status, retry_after="5"), ok], openai_keys=KEYS)
    if streaming:
        _, final = await stream_final(s)
    else:
        final = await client_for(s).responses.create(model="gpt-x", input="x")
    assert final.output_text == "Hi."
    assert keys_seen(s) == [f"Bearer {KEYS[0]}", f"Bearer {KEYS[1]}"]


async def test_all_keys_unauthorized_is_502(stack: StackFactory) -> None:
    s = await stack([openai_error_reply(401), openai_error_reply(403)], openai_keys=KEYS)
    with pytest.raises(openai.InternalServerError) as caught:
        await client_for(s).responses.create(model="gpt-x", input="x", stream=True)
    assert caught.value.status_code == 502


@pytest.mark.parametrize("streaming", [True, False])
async def test_500_relayed_without_failover(stack: StackFactory, streaming: bool) -> None:
    s = await stack([openai_error_reply(500, "boom")], openai_keys=KEYS)
    with pytest.raises(openai.InternalServerError) as caught:
        await client_for(s).responses.create(model="gpt-x", input="x", stream=streaming)
    assert caught.value.status_code == 500
    assert keys_seen(s) == [f"Bearer {KEYS[0]}"]


async def test_seed_case_ends_in_an_in_stream_error(stack: StackFactory) -> None:
    s = await stack(
        [
            responses_stream("resp_1", [function_item("bmcp_weather")]),
            openai_error_reply(429, retry_after="3"),
            openai_error_reply(429, retry_after="4"),
        ],
        openai_keys=KEYS,
    )
    stream = await client_for(s).responses.create(model="gpt-x", input="x", stream=True)
    with pytest.raises(openai.APIError, match="all configured keys are rate-limited"):
        async for _ in stream:
            pass
    assert keys_seen(s) == [f"Bearer {k}" for k in (KEYS[0], KEYS[0], KEYS[1])]


async def test_seed_case_raw_stream_is_one_error_event(stack: StackFactory) -> None:
    s = await stack(
        [
            responses_stream("resp_1", [function_item("bmcp_weather")]),
            openai_error_reply(429, retry_after="3"),
            openai_error_reply(429, retry_after="4"),
        ],
        openai_keys=KEYS,
    )
    async with (
        httpx.AsyncClient() as http,
        http.stream(
            "POST",
            s.proxy_url + "/openai/v1/responses",
            json={"model": "gpt-x", "input": "x", "stream": True},
        ) as response,
    ):
        body = (await response.aread()).decode()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    head, data = body.rstrip("\n").split("\n")
    assert head == "event: error"
    event = json.loads(data.removeprefix("data: "))
    assert event["type"] == "error"
    assert event["message"] == event["error"]["message"] == "all configured keys are rate-limited"
    assert event["code"] == event["error"]["code"] == "rate_limit_exceeded"


async def test_client_disconnect_closes_upstream_within_a_second(stack: StackFactory) -> None:
    stalled = stalled_after_created()
    s = await stack([stalled], openai_keys=KEYS, tools=ToolSet())  # no tools: events flow live
    client = client_for(s)
    stream = await client.responses.create(model="gpt-x", input="x", stream=True)
    first = await stream.__anext__()
    assert first.type == "response.created"
    assert s.upstream.open_responses == 1
    await stream.close()
    await client.close()
    with trio.fail_after(1):
        await s.upstream.all_closed.wait()
    assert s.upstream.closed_early == 1


async def test_client_disconnect_while_an_iteration_is_held(stack: StackFactory) -> None:
    """With injected tools the proxy holds the events back; a client that gives up still
    gets the upstream connection closed."""
    stalled = stalled_after_created()
    s = await stack([], openai_keys=KEYS)
    arrived = trio.Event()

    def script(seen: Any, index: int) -> Reply:
        arrived.set()
        return stalled

    s.upstream.script = script

    async def give_up_when_upstream_is_open(cancel: trio.CancelScope) -> None:
        await arrived.wait()
        await trio.testing.wait_all_tasks_blocked()
        cancel.cancel()

    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(give_up_when_upstream_is_open, scope)
            await http.post(
                s.proxy_url + "/openai/v1/responses",
                json={"model": "gpt-x", "input": "x", "stream": True},
            )
    assert arrived.is_set()
    with trio.fail_after(1):
        await s.upstream.all_closed.wait()
    assert s.upstream.closed_early == 1
