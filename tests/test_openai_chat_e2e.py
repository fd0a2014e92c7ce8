"""Chat Completions end to end: the official openai SDK, the proxy and a scripted upstream,
all on loopback sockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply

from .conftest import WEATHER, StackFactory
from .openai_scripts import (
    RATE_LIMITED,
    SDK_GENERATORS,
    chat_body,
    chat_stream,
    chat_text,
    chat_tool_turn,
    chunk,
    client_for,
    close_sdk_clients,  # noqa: F401 (an autouse fixture)
    keys_seen,
    openai_error_reply,
    tool_call_part,
    tool_delta,
)

pytestmark = SDK_GENERATORS

KEYS = ["sk-first-1111aaaa", "sk-second-2222bbbb"]
MESSAGES: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
CLIENT_TOOL = {
    "type": "function",
    "function": {"name": "read_file", "parameters": {"type": "object"}},
}


async def collect(stream: Any) -> list[Any]:
    return [c async for c in stream]


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_streaming_text_relayed(stack: StackFactory) -> None:
    s = await stack([chat_text("Hello there.")], openai_keys=KEYS)
    chunks = await collect(
        await client_for(s).chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
    )
    assert text_of(chunks) == "Hello there."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert keys_seen(s) == [f"Bearer {KEYS[0]}"]
    tools = s.upstream.seen[0].json()["tools"]
    assert tools == [
        {
            "type": "function",
            "function": {
                "name": "bmcp_weather",
                "description": WEATHER.description,
                "parameters": dict(WEATHER.input_schema),
            },
        }
    ]


async def test_blocking_text_relayed(stack: StackFactory) -> None:
    s = await stack([chat_body({"content": "Hello."}, "stop")], openai_keys=KEYS)
    done = await client_for(s).chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert done.choices[0].message.content == "Hello."
    assert done.usage is not None
    assert done.usage.completion_tokens == 3


@pytest.mark.parametrize(("index", "preamble"), [(0, None), (1, "Let me check. "), (3, None)])
async def test_streaming_injected_tool_turn_is_invisible(
    stack: StackFactory, index: int, preamble: str | None
) -> None:
    s = await stack(
        [
            chat_tool_turn("bmcp_weather", index=index, preamble=preamble),
            chat_text("Sunny.", id="chatcmpl-2"),
        ],
        openai_keys=KEYS,
    )
    chunks = await collect(
        await client_for(s).chat.completions.create(
            model="gpt-x", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert text_of(chunks) == (preamble or "") + "Sunny."
    assert all(not c.choices or not c.choices[0].delta.tool_calls for c in chunks)
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert {c.id for c in chunks} == {"chatcmpl-t1"}
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(10, 10)]
    follow_up = s.upstream.seen[1].json()["messages"]
    assert follow_up[1] == {
        "role": "assistant",
        "content": preamble,
        "tool_calls": [tool_call_part("bmcp_weather")],
    }
    assert follow_up[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}


async def test_streaming_with_sdk_helper_accumulates_one_completion(stack: StackFactory) -> None:
    s = await stack(
        [chat_tool_turn("bmcp_weather", index=1, preamble="A. "), chat_text("B.")], openai_keys=KEYS
    )
    async with client_for(s).chat.completions.stream(model="gpt-x", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "A. B."
    assert not final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "stop"


async def test_blocking_injected_tool_turn_is_invisible(stack: StackFactory) -> None:
    s = await stack(
        [
            chat_body(
                {"content": None, "tool_calls": [tool_call_part("bmcp_weather")]},
                "tool_calls",
                id="c1",
                completion=7,
            ),
            chat_body({"content": "Sunny."}, "stop", id="c2"),
        ],
        openai_keys=KEYS,
    )
    done = await client_for(s).chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert done.id == "c1"
    assert done.choices[0].message.content == "Sunny."
    assert not done.choices[0].message.tool_calls
    assert done.usage is not None
    assert done.usage.completion_tokens == 10
    follow_up = s.upstream.seen[1].json()["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "tool"]


async def test_streaming_client_tool_relayed_untouched(stack: StackFactory) -> None:
    reply = chat_stream(
        chunk({"role": "assistant", "content": None}),
        chunk(tool_delta(0, "read_file", "", "call_c")),
        chunk(tool_delta(0, arguments='{"path": "README.md"}')),
        chunk({}, "tool_calls"),
    )
    s = await stack([reply], openai_keys=KEYS)
    async with client_for(s).chat.completions.stream(
        model="gpt-x",
        messages=MESSAGES,
        tools=[CLIENT_TOOL],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_c",
        "read_file",
        '{"path": "README.md"}',
    )
    assert final.choices[0].finish_reason == "tool_calls"
    assert len(s.upstream.seen) == 1
    assert [t["function"]["name"] for t in s.upstream.seen[0].json()["tools"]] == [
        "read_file",
        "bmcp_weather",
    ]


async def test_blocking_client_tool_relayed_untouched(stack: StackFactory) -> None:
    part = tool_call_part("read_file", "call_c", '{"path": "x"}')
    s = await stack(
        [chat_body({"content": None, "tool_calls": [part]}, "tool_calls")], openai_keys=KEYS
    )
    done = await client_for(s).chat.completions.create(
        model="gpt-x",
        messages=MESSAGES,
        tools=[CLIENT_TOOL],  # type: ignore[list-item]
    )
    assert done.choices[0].message.tool_calls[0].model_dump() == part  # type: ignore[index]
    assert len(s.upstream.seen) == 1


@pytest.mark.parametrize("status", [429, 401, 403])
@pytest.mark.parametrize("streaming", [True, False])
async def test_failover_to_next_key(stack: StackFactory, status: int, streaming: bool) -> None:
    ok = chat_text("Hi.") if streaming else chat_body({"content": "Hi."}, "stop")
    s = await stack([openai_error_reply(status, retry_after="5"), ok], openai_keys=KEYS)
    client = client_for(s)
    if streaming:
        text = text_of(
            await collect(
                await client.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
            )
        )
    else:
        text = (await client.chat.completions.create(model="gpt-x", messages=MESSAGES)).choices[
            0
        ].message.content or ""
    assert text == "Hi."
    assert keys_seen(s) == [f"Bearer {KEYS[0]}", f"Bearer {KEYS[1]}"]


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_all_keys_rate_limited_gives_smallest_retry_after(
    stack: StackFactory, api: str, streaming: bool
) -> None:
    """Both OpenAI APIs share the key pool's answer (the Responses tests lean on this one)."""
    s = await stack(
        [openai_error_reply(429, retry_after="30"), openai_error_reply(429, retry_after="7")],
        openai_keys=KEYS,
    )
    client = client_for(s)
    call = (
        client.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=streaming)
        if api == "chat"
        else client.responses.create(model="gpt-x", input="x", stream=streaming)
    )
    with pytest.raises(openai.RateLimitError) as caught:
        await call
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body == RATE_LIMITED  # the SDK hands over the inner error object


async def test_all_keys_unauthorized_is_502(stack: StackFactory) -> None:
    s = await stack([openai_error_reply(401), openai_error_reply(403)], openai_keys=KEYS)
    with pytest.raises(openai.InternalServerError) as caught:
        await client_for(s).chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "api_error"
    assert len(s.upstream.seen) == 2


@pytest.mark.parametrize("streaming", [True, False])
async def test_500_relayed_without_failover(stack: StackFactory, streaming: bool) -> None:
    s = await stack([openai_error_reply(500, "boom"), chat_text("never")], openai_keys=KEYS)
    with pytest.raises(openai.InternalServerError) as caught:
        await client_for(s).chat.completions.create(
            model="gpt-x", messages=MESSAGES, stream=streaming
        )
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"] == "boom"
    assert keys_seen(s) == [f"Bearer {KEYS[0]}"]


async def test_without_keys_the_client_token_is_forwarded(stack: StackFactory) -> None:
    s = await stack([openai_error_reply(429, retry_after="9")])
    with pytest.raises(openai.RateLimitError) as caught:
        await client_for(s).chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "9"
    assert keys_seen(s) == ["Bearer sk-client"]


async def test_seed_case_ends_in_an_in_stream_error(stack: StackFactory) -> None:
    """Tool turn on key 0, then every key 429: one well-formed stream ending in an error."""
    s = await stack(
        [
            chat_tool_turn("bmcp_weather"),
            openai_error_reply(429, retry_after="3"),
            openai_error_reply(429, retry_after="4"),
        ],
        openai_keys=KEYS,
    )
    stream = await client_for(s).chat.completions.create(
        model="gpt-x", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError, match="all configured keys are rate-limited") as caught:
        await collect(stream)
    assert caught.value.body == RATE_LIMITED
    assert keys_seen(s) == [f"Bearer {k}" for k in (KEYS[0], KEYS[0], KEYS[1])]


async def test_seed_case_raw_stream_is_well_formed(stack: StackFactory) -> None:
    """SSE headers, then only whole ``data:`` frames, the last one the error; no [DONE]."""
    s = await stack(
        [
            chat_tool_turn("bmcp_weather"),
            openai_error_reply(429, retry_after="3"),
            openai_error_reply(429, retry_after="4"),
        ],
        openai_keys=KEYS,
    )
    async with (
        httpx.AsyncClient() as http,
        http.stream(
            "POST",
            s.proxy_url + "/openai/v1/chat/completions",
            json={"model": "gpt-x", "messages": MESSAGES, "stream": True},
        ) as response,
    ):
        body = (await response.aread()).decode()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    frames = [f for f in body.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    parsed = [json.loads(f[len("data: ") :]) for f in frames]
    assert parsed[-1] == {"error": RATE_LIMITED}
    # Before it, only the first iteration's visible chunk (the role), no injected call.
    assert [p["choices"][0]["delta"] for p in parsed[:-1]] == [
        {"role": "assistant", "content": None}
    ]


async def test_client_disconnect_closes_upstream_within_a_second(stack: StackFactory) -> None:
    stalled = Reply(
        200,
        [("content-type", "text/event-stream")],
        [b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'],
        fault="stall",
        fault_at=1,
    )
    s = await stack([stalled], openai_keys=KEYS)
    client = client_for(s)
    stream = await client.chat.completions.create(model="gpt-x", messages=MESSAGES, stream=True)
    first = await stream.__anext__()
    assert first.choices[0].delta.content == "x"
    assert s.upstream.open_responses == 1
    await stream.close()
    await client.close()
    with trio.fail_after(1):
        await s.upstream.all_closed.wait()
    assert s.upstream.closed_early == 1


JSON_TYPE = {"content-type": "application/json"}  # as SDKs send; other types get 415


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": "gpt-x"}', 400, "messages"),
    ],
)
async def test_bad_requests_answered_in_openai_shape(
    stack: StackFactory, body: bytes, status: int, fragment: str
) -> None:
    s = await stack([])
    async with httpx.AsyncClient() as http:
        response = await http.post(
            s.proxy_url + "/openai/v1/chat/completions", content=body, headers=JSON_TYPE
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert not s.upstream.seen
