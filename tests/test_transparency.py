"""The intercepted routes change nothing a client relies on: query strings reach the
upstream, upstream response headers reach the client, usage adds up over the loop, chat
choices stay apart, and no pool key comes back."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio
from openai.types.chat import ChatCompletionToolParam

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.interception import Interception
from aibridge_cli.proxy.run import build_app
from aibridge_cli.sse import SSEDecoder
from aibridge_cli.tools import ToolSet

from .anthropic_script import (
    FINAL_TURN,
    TOOL_ONLY_TURN,
    error_reply,
    message,
    message_end,
    message_start,
    stream,
    text_block,
)
from .conftest import StackFactory, start_server
from .openai_scripts import (
    SDK_GENERATORS,
    chat_body,
    chat_stream,
    chat_text,
    client_for,
    close_sdk_clients,  # noqa: F401  (closes the clients a test opened)
    function_item,
    message_item,
    response_object,
    responses_stream,
)

POOL = "sk-ant-pool-key-0000SECRET"
OPENAI_POOL = "sk-proj-pool-key-1111SECRET"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]


def with_headers(reply: Reply, *headers: tuple[str, str]) -> Reply:
    return dataclasses.replace(reply, headers=[*reply.headers, *headers])


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=url + "/anthropic", api_key="sk-ant-client-1234", max_retries=0
    )


# -- query strings -----------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [True, False])
async def test_query_string_reaches_the_upstream_and_the_recording(
    nursery: trio.Nursery, streaming: bool
) -> None:
    upstream = ScriptedUpstream([FINAL_TURN if streaming else message([], "end_turn", 1)])
    _, url = await start_server(nursery, upstream)
    records: list[Interception] = []
    app = build_app(ServeOptions(anthropic_base_url=url), tools=ToolSet(), recorder=records.append)
    _, proxy_url = await start_server(nursery, app)
    body = {"model": "m", "max_tokens": 5, "messages": HELLO, "stream": streaming}
    async with httpx.AsyncClient() as http:
        await http.post(proxy_url + "/anthropic/v1/messages?beta=true", json=body)
    await app.env.client.aclose()
    assert upstream.seen[0].target == "/v1/messages?beta=true"
    (record,) = records
    assert record.request.path == "/anthropic/v1/messages?beta=true"
    assert record.upstream[0].path == "/v1/messages?beta=true"


@SDK_GENERATORS
async def test_openai_extra_query_reaches_the_upstream(stack: StackFactory) -> None:
    s = await stack(
        [
            chat_body({"content": "hi"}, "stop"),
            Reply.json(response_object("resp_1", [message_item("m1", "hi")])),
        ]
    )
    client = client_for(s)
    await client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        extra_query={"api-version": "2024-10-21"},
    )
    await client.responses.create(model="gpt-x", input="hi", extra_query={"api-version": "v"})
    assert [r.target for r in s.upstream.seen] == [
        "/v1/chat/completions?api-version=2024-10-21",
        "/v1/responses?api-version=v",
    ]


# -- response headers --------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [True, False])
async def test_upstream_response_headers_reach_the_client_from_the_first_iteration(
    stack: StackFactory, streaming: bool
) -> None:
    if streaming:
        first, last = TOOL_ONLY_TURN, FINAL_TURN
    else:
        first = message(
            [{"type": "tool_use", "id": "t1", "name": "bmcp_weather", "input": {"city": "P"}}],
            "tool_use",
            3,
        )
        last = message([{"type": "text", "text": "Sunny"}], "end_turn", 2)
    s = await stack(
        [
            with_headers(
                first, ("request-id", "req_first"), ("anthropic-ratelimit-requests-remaining", "9")
            ),
            with_headers(
                last, ("request-id", "req_last"), ("anthropic-ratelimit-requests-remaining", "8")
            ),
        ]
    )
    client = sdk(s.proxy_url)
    reply: anthropic.types.Message
    if streaming:
        async with client.messages.stream(model="m", max_tokens=5, messages=HELLO) as events:
            reply = await events.get_final_message()
            headers = events.response.headers
        request_id = events.request_id
    else:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=5, messages=HELLO
        )
        reply = await raw.parse()
        headers = raw.headers
        request_id = reply._request_id
    await client.close()
    assert request_id == "req_first"
    assert headers["anthropic-ratelimit-requests-remaining"] == "9"
    assert headers["content-type"].startswith(
        "text/event-stream" if streaming else "application/json"
    )
    assert len(headers.get_list("content-type")) == 1
    assert reply.content[-1].type == "text"


@SDK_GENERATORS
@pytest.mark.parametrize("streaming", [True, False])
async def test_openai_response_headers_reach_the_client(
    stack: StackFactory, streaming: bool
) -> None:
    reply = (
        chat_text("hi")
        if streaming
        else Reply.json(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-x",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
    )
    s = await stack(
        [with_headers(reply, ("x-request-id", "req_oa"), ("openai-processing-ms", "12"))]
    )
    client = client_for(s)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=streaming
    )
    assert raw.headers["x-request-id"] == "req_oa"
    assert raw.headers["openai-processing-ms"] == "12"
    if streaming:
        chunks = raw.parse()
        assert isinstance(chunks, openai.AsyncStream)
        async for _ in chunks:
            pass


# -- usage -------------------------------------------------------------------------------
def _responses_usage(input_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": 3,
        "total_tokens": input_tokens + 3,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens_details": {"reasoning_tokens": 1},
    }


def _with_usage(reply: Reply, usage: dict[str, Any]) -> Reply:
    """A Responses reply (stream or body) whose response carries ``usage``."""
    chunks = []
    for chunk in reply.chunks:
        text = chunk.decode()
        if '"usage"' in text and ("response.completed" in text or not text.startswith("event")):
            prefix, _, data = (
                text.partition("data: ") if text.startswith("event") else ("", "", text)
            )
            obj = json.loads(data)
            target = obj["response"] if "response" in obj else obj
            target["usage"] = usage
            text = (prefix + "data: " + json.dumps(obj) + "\n\n") if prefix else json.dumps(obj)
        chunks.append(text.encode())
    return dataclasses.replace(reply, chunks=chunks)


@SDK_GENERATORS
@pytest.mark.parametrize("streaming", [True, False])
async def test_responses_usage_is_summed_over_the_loop(
    stack: StackFactory, streaming: bool
) -> None:
    call, answer = function_item("bmcp_weather"), message_item("m1", "Sunny")
    if streaming:
        replies = [responses_stream("resp_1", [call]), responses_stream("resp_2", [answer])]
    else:
        replies = [
            Reply.json(response_object("resp_1", [call])),
            Reply.json(response_object("resp_2", [answer])),
        ]
    replies = [
        _with_usage(replies[0], _responses_usage(10, 4)),
        _with_usage(replies[1], _responses_usage(30, 20)),
    ]
    s = await stack(replies)
    client = client_for(s)
    if streaming:
        events = await client.responses.create(model="gpt-x", input="hi", stream=True)
        usage = [e async for e in events][-1].response.usage  # type: ignore[union-attr]
    else:
        usage = (await client.responses.create(model="gpt-x", input="hi")).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (40, 6, 46)
    assert usage.input_tokens_details.cached_tokens == 24
    assert usage.output_tokens_details.reasoning_tokens == 2


def _cache_start(msg_id: str) -> list[tuple[str, dict[str, Any]]]:
    ((name, data),) = message_start(msg_id, input_tokens=5)
    data["message"]["usage"].update(
        cache_creation_input_tokens=4,
        cache_read_input_tokens=2,
        cache_creation={"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 0},
        server_tool_use={"web_search_requests": 1},
        service_tier="standard",
    )
    return [(name, data)]


@pytest.mark.parametrize("streaming", [True, False])
async def test_anthropic_nested_usage_is_summed_over_the_loop(
    stack: StackFactory, streaming: bool
) -> None:
    nested = {
        "cache_creation_input_tokens": 4,
        "cache_read_input_tokens": 2,
        "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 1},
        "service_tier": "standard",
    }
    if streaming:
        replies = [
            stream(_cache_start("msg_a"), TOOL_ONLY_TURN_EVENTS, message_end("tool_use", 10)),
            stream(_cache_start("msg_b"), text_block(0, "Sunny"), message_end("end_turn", 4)),
        ]
    else:

        def body(content: list[dict[str, Any]], stop: str, out: int) -> Reply:
            reply = message(content, stop, out)
            obj = json.loads(reply.chunks[0])
            obj["usage"].update(nested)
            return Reply.json(obj)

        replies = [
            body(
                [{"type": "tool_use", "id": "t1", "name": "bmcp_weather", "input": {}}],
                "tool_use",
                10,
            ),
            body([{"type": "text", "text": "Sunny"}], "end_turn", 4),
        ]
    s = await stack(replies)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            s.proxy_url + "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": HELLO, "stream": streaming},
        )
    if streaming:
        # The SDK reads only some fields of message_delta's usage: look at the wire.
        deltas = [e for e in SSEDecoder().feed(response.content) if e.event == "message_delta"]
        usage = json.loads(deltas[-1].data)["usage"]
    else:
        usage = response.json()["usage"]
    assert usage["input_tokens"] == 10
    assert usage["output_tokens"] == 14
    assert usage["cache_creation_input_tokens"] == 8
    assert usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 8,
        "ephemeral_1h_input_tokens": 0,
    }
    assert usage["server_tool_use"] == {"web_search_requests": 2}
    if not streaming:
        assert usage["service_tier"] == "standard"  # not a number: the last answer's


TOOL_ONLY_TURN_EVENTS = [
    e
    for e in (
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "bmcp_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    )
]


# -- chat n>1 ----------------------------------------------------------------------------
def _two_choice_chunk(
    delta0: dict[str, Any], delta1: dict[str, Any], finish: str | None = None
) -> tuple[None, dict[str, Any]]:
    return (
        None,
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": [
                {"index": 0, "delta": delta0, "finish_reason": finish},
                {"index": 1, "delta": delta1, "finish_reason": finish},
            ],
        },
    )


@SDK_GENERATORS
async def test_chat_n2_keeps_each_choices_tool_calls_apart(stack: StackFactory) -> None:
    def call(args: str, first: bool) -> dict[str, Any]:
        tc: dict[str, Any] = {"index": 0, "function": {"arguments": args}}
        if first:
            tc.update(id="call_x", type="function")
            tc["function"]["name"] = "get_time"
        return {"tool_calls": [tc]}

    reply = chat_stream(
        _two_choice_chunk({"role": "assistant"}, {"role": "assistant"}),
        _two_choice_chunk(call("", True), call("", True)),
        _two_choice_chunk(call('{"q":"life"}', False), call('{"q":"life"}', False)),
        _two_choice_chunk({}, {}, "tool_calls"),
    )
    s = await stack([reply])
    client = client_for(s)
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object"}},
    }
    chunks = await client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        n=2,
        stream=True,
        tools=[tool],
    )
    args: dict[int, str] = {}
    async for c in chunks:
        for choice in c.choices:
            for tc in choice.delta.tool_calls or []:
                args[choice.index] = args.get(choice.index, "") + (tc.function.arguments or "")  # type: ignore[union-attr]
    assert args == {0: '{"q":"life"}', 1: '{"q":"life"}'}
    # Injected tools are not offered on n>1: the loop could not answer each choice apart.
    sent = s.upstream.seen[0].json()
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"]
    assert len(s.upstream.seen) == 1


# -- pool keys ---------------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [True, False])
async def test_a_pool_key_echoed_in_an_intercepted_error_never_reaches_the_client(
    stack: StackFactory, streaming: bool
) -> None:
    echo = with_headers(
        error_reply(400, "invalid_request_error", f"key {POOL} is not allowed here"),
        ("x-echo", POOL),
    )
    s = await stack([echo], keys=[POOL])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            s.proxy_url + "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": HELLO, "stream": streaming},
        )
    assert response.status_code == 400
    assert POOL not in response.text
    assert POOL not in str(response.headers)
    assert "sk-a…CRET" in response.text


async def test_a_pool_key_in_an_error_event_or_success_headers_never_reaches_the_client(
    stack: StackFactory,
) -> None:
    error_event = (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": f"k={POOL}"}},
    )
    reply = with_headers(stream(message_start("m"), [error_event]), ("x-echo", f"used {POOL}"))
    s = await stack([reply], keys=[POOL])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            s.proxy_url + "/anthropic/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": HELLO, "stream": True},
        )
    assert POOL not in response.text
    assert POOL not in str(response.headers)
    events = SSEDecoder().feed(response.content)
    assert events[-1].event == "error"
    assert "sk-a…CRET" in events[-1].data
    assert response.headers["x-echo"] == "used sk-a...CRET"
