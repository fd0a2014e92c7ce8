"""``GET /metrics``: the text format read back by prometheus-client's own parser, the
families fed by real sessions through the proxy (official SDKs, scripted upstream)."""

from __future__ import annotations

import json
import math
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio
import trio.testing

from aibridge_cli.config import BreakerConfig
from aibridge_cli.fakes.anthropic_replies import (
    error_reply,
    message_end,
    stream,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.openai_replies import chat_answer, responses_answer
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.providers.openai_chat import OpenAIChat
from aibridge_cli.providers.openai_responses import OpenAIResponses
from aibridge_cli.proxy.exposition import MAX_SERIES, OVERFLOW, Family, render
from aibridge_cli.proxy.metrics import is_prompt, tokens
from aibridge_cli.sse import SSEDecoder
from aibridge_cli.tools import ToolOutcome, ToolSet

from .conftest import WEATHER, Stack, StackFactory
from .openai_scripts import chat_body
from .rawhttp import RawClient

parser = pytest.importorskip("prometheus_client.parser", reason="the test reads with it")

K0, K1 = "sk-ant-metrics-key-zero-0000AAAA", "sk-ant-metrics-key-one-1111BBBB"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, by name and labels, as prometheus-client reads the text."""
    out: Samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(s: Stack) -> tuple[str, Samples]:
    async with httpx.AsyncClient() as http:
        response = await http.get(s.proxy_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, parse(response.text)


def test_the_encoder_escapes_labels_and_writes_cumulative_buckets() -> None:
    counter = Family("x_requests", "counter", 'help with "quotes" \\ and\nlines', ("model",))
    counter.inc(('odd "model"\\\nname',), 2)
    histogram = Family("x_seconds", "histogram", "h", ("a",), (0.5, 1.0))
    for value in (0.2, 0.7, 3.0):
        histogram.observe(("b",), value)
    gauge = Family("x_state", "gauge", "g")
    gauge.set((), 0.5)
    samples = parse(render([counter, histogram, gauge]))
    assert samples["x_requests_total", frozenset({("model", 'odd "model"\\\nname')})] == 2
    buckets = {dict(ls)["le"]: v for (n, ls), v in samples.items() if n == "x_seconds_bucket"}
    assert buckets == {"0.5": 1, "1": 2, "+Inf": 3}
    assert samples["x_seconds_sum", frozenset({("a", "b")})] == pytest.approx(3.9)
    assert samples["x_seconds_count", frozenset({("a", "b")})] == 3
    assert samples["x_state", frozenset()] == 0.5


def test_tokens_by_type_from_each_apis_usage() -> None:
    anthropic_usage = {
        "input_tokens": 10,
        "output_tokens": 4,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 3,
    }
    assert tokens(anthropic_usage) == {
        "input": 10,
        "output": 4,
        "cache_read": 7,
        "cache_write": 3,
    }
    chat = {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert tokens(chat) == {"input": 9, "output": 2, "cache_read": 5}
    responses = {
        "input_tokens": 8,
        "output_tokens": 1,
        "input_tokens_details": {"cached_tokens": 2},
    }
    assert tokens(responses) == {"input": 8, "output": 1, "cache_read": 2}


def test_a_prompt_is_a_request_whose_last_turn_is_the_users_words() -> None:
    user = {"role": "user", "content": "hi"}
    results = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
    assert is_prompt("anthropic", {"messages": [user]})
    assert not is_prompt("anthropic", {"messages": [user, {"role": "assistant"}, results]})
    assert is_prompt("openai-responses", {"input": "hi"})
    assert not is_prompt("openai-responses", {"input": [{"type": "function_call_output"}]})
    assert not is_prompt("openai-chat", {"messages": [{"role": "tool", "content": "x"}]})


def usage_start(input_tokens: int, cache_read: int, cache_write: int) -> list[Any]:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }
    return [("message_start", {"type": "message_start", "message": message})]


async def test_a_session_through_the_proxy_is_counted_as_the_client_saw_it(
    stack: StackFactory,
) -> None:
    client_tool = {"name": "read_file", "input_schema": {"type": "object"}}
    s = await stack(
        [
            error_reply(429, "rate_limit_error", "slow down", "60"),  # K0 cools, K1 goes on
            stream(
                usage_start(100, 40, 10),
                tool_block(0, "bmcp_weather", {"city": "Paris"}),
                message_end("tool_use", 7),
            ),
            stream(usage_start(130, 50, 0), text_block(0, "Sunny."), message_end("end_turn", 5)),
            stream(
                usage_start(20, 0, 0),
                tool_block(0, "read_file", {"path": "a"}),
                message_end("tool_use", 3),
            ),
        ],
        keys=[K0, K1],
    )
    seen: list[dict[str, int]] = []
    async with anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="sk-client", max_retries=0
    ) as client:
        for content in ("Weather in Paris?", "Read a."):
            async with client.messages.stream(
                model="claude-m",
                max_tokens=64,
                messages=[{"role": "user", "content": content}],
                tools=[client_tool],  # type: ignore[list-item]
            ) as events:
                final = await events.get_final_message()
            usage = final.usage
            seen.append(
                {
                    "input": usage.input_tokens,
                    "output": usage.output_tokens,
                    "cache_read": usage.cache_read_input_tokens or 0,
                    "cache_write": usage.cache_creation_input_tokens or 0,
                }
            )
    text, samples = await scrape(s)
    who = {"provider": "anthropic", "endpoint": "anthropic", "model": "claude-m"}
    for kind in ("input", "output", "cache_read", "cache_write"):
        assert total(samples, "aibridge_tokens_total", type=kind, **who) == sum(
            u[kind] for u in seen
        )
    assert seen[0] == {"input": 230, "output": 12, "cache_read": 90, "cache_write": 10}
    assert total(samples, "aibridge_interceptions_total", outcome="ok", **who) == 2
    assert total(samples, "aibridge_prompts_total", **who) == 2
    assert total(samples, "aibridge_interceptions_in_flight", **who) == 0
    assert total(samples, "aibridge_interception_duration_seconds_count", **who) == 2
    assert total(samples, "aibridge_injected_tool_invocations_total", tool="bmcp_weather") == 1
    assert total(samples, "aibridge_client_tool_selections_total", tool="read_file") == 1
    assert total(samples, "aibridge_keypool_failovers_total", status="429") == 1
    assert total(samples, "aibridge_keypool_transitions_total", to="cooling") == 1
    assert total(samples, "aibridge_keypool_key_state", state="cooling") == 1
    assert total(samples, "aibridge_keypool_key_state", state="valid") == 1
    assert total(samples, "aibridge_interceptions_total", client="anthropic-sdk-python") == 2
    for key in (K0, K1):  # masked only, in labels and anywhere else
        assert key not in text
        assert key[:4] + "…" + key[-4:] in text


async def test_breaker_and_exhaustion_families(
    stack: StackFactory, autojump_clock: trio.testing.MockClock
) -> None:
    limited = error_reply(429, "rate_limit_error", "slow down", "5")
    overloaded = error_reply(529, "overloaded_error", "Overloaded")
    s = await stack(
        [limited, limited, overloaded],
        keys=[K0, K1],
        breaker=BreakerConfig(threshold=2, open_time=30),
    )
    async with anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="sk-client", max_retries=0
    ) as client:
        statuses = []
        for _ in range(3):
            try:
                await client.messages.create(
                    model="claude-m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                )
            except anthropic.APIStatusError as error:
                statuses.append(error.status_code)
            await trio.sleep(6)  # the keys cool down in between
    assert statuses == [429, 529, 503]
    _, samples = await scrape(s)
    who = {"provider": "anthropic", "endpoint": "anthropic", "model": "claude-m"}
    assert total(samples, "aibridge_keypool_exhaustions_total", reason="rate_limited") == 1
    assert total(samples, "aibridge_breaker_trips_total", **who) == 1
    assert total(samples, "aibridge_breaker_rejects_total", **who) == 1
    assert total(samples, "aibridge_breaker_state", **who) == 1.0
    # the cooled keys came back by the clock: seen at the scrape
    assert total(samples, "aibridge_keypool_transitions_total", to="valid") == 2
    await trio.sleep(30)
    _, samples = await scrape(s)
    assert total(samples, "aibridge_breaker_state", **who) == 0.5


async def test_chat_and_pass_through_are_counted(stack: StackFactory) -> None:
    models = Reply.json({"object": "list", "data": []})
    s = await stack([chat_body({"content": "hello"}, "stop"), models], openai_keys=[K0])
    async with openai.AsyncOpenAI(
        base_url=s.proxy_url + "/openai/v1", api_key="sk-client", max_retries=0
    ) as client:
        await client.chat.completions.create(
            model="gpt-m", messages=[{"role": "user", "content": "hi"}]
        )
        async with httpx.AsyncClient() as http:
            await http.get(s.proxy_url + "/openai/v1/models")
    _, samples = await scrape(s)
    who = {"provider": "openai", "endpoint": "openai-chat", "model": "gpt-m"}
    assert total(samples, "aibridge_tokens_total", type="output", **who) == 3
    assert total(samples, "aibridge_tokens_total", type="input", **who) == 5
    assert total(samples, "aibridge_interceptions_total", client="openai-sdk-python") == 1
    assert total(samples, "aibridge_passthrough_requests_total", provider="openai") == 1
    assert not math.isnan(total(samples, "aibridge_interception_duration_seconds_sum", **who))


async def test_a_client_that_leaves_mid_stream_is_counted_as_it_ended(
    stack: StackFactory, autojump_clock: trio.testing.MockClock
) -> None:
    parts = [usage_start(10, 0, 0), text_block(0, "a", "b"), message_end("end_turn", 2)]
    count = sum(len(p) for p in parts)
    s = await stack([stream(*parts, delays=[0.0] + [5.0] * (count - 1))], keys=[K0])
    body = {
        "model": "claude-m",
        "max_tokens": 8,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    host, port = s.proxy_url.removeprefix("http://").split(":")
    client = RawClient(await trio.open_tcp_stream(host, int(port)))
    await client.send_request(
        "POST",
        "/anthropic/v1/messages",
        json.dumps(body).encode(),
        [("content-type", "application/json")],
    )
    got = b""
    while b"message_start" not in got:
        got += await client.stream.receive_some(65536)
    await client.stream.aclose()  # the first event, then the client goes
    await trio.sleep(1)
    _, samples = await scrape(s)
    who = {"provider": "anthropic", "endpoint": "anthropic", "model": "claude-m"}
    # the server cancels the handler of a client that left: the log line says so too
    assert total(samples, "aibridge_interceptions_total", outcome="cancelled", **who) == 1
    assert total(samples, "aibridge_interceptions_in_flight", **who) == 0


def test_endless_label_values_add_up_in_one_overflow_series() -> None:
    family = Family("x_requests", "counter", "h", ("model",))
    for i in range(MAX_SERIES + 500):
        family.inc((f"model-{i}",))
    family.inc(("model-0",))  # a series already kept goes on counting
    samples = parse(render([family]))
    assert len(samples) == MAX_SERIES + 1
    assert samples["x_requests_total", frozenset({("model", OVERFLOW)})] == 500
    assert samples["x_requests_total", frozenset({("model", "model-0")})] == 2
    assert sum(samples.values()) == MAX_SERIES + 501


def _play(conversation: Any, reply: Reply, stream: bool) -> list[Any]:
    """One upstream answer through a conversation; the injected calls it asks for."""
    if not stream:
        return list(conversation.on_body(json.loads(b"".join(reply.chunks))))
    decoder = SSEDecoder()
    for part in reply.chunks:
        for event in decoder.feed(part):
            conversation.on_event(event)
    return list(conversation.end_stream())


TOOLS = ToolSet.of([WEATHER])
CALL = ("bmcp_weather", {"city": "Paris"}, "call_1")
CLIENT_CALL = ("read_file", {"path": "a"}, "call_2")


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "blocking"])
@pytest.mark.parametrize("api", ["openai-chat", "openai-responses"])
def test_openai_conversations_tell_the_usage_summed_and_the_client_calls(
    api: str, stream: bool
) -> None:
    """Two iterations (an injected call, then a client call): the usage both carried,
    and the client's call, as the metrics read them when the interception ends."""
    answer = chat_answer if api == "openai-chat" else responses_answer
    if api == "openai-chat":
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        tool = {"type": "function", "function": {"name": "read_file", "parameters": {}}}
        conversation: Any = OpenAIChat().conversation({**body, "tools": [tool]}, TOOLS)
    else:
        body = {"model": "m", "input": "hi"}
        tool = {"type": "function", "name": "read_file", "parameters": {}}
        conversation = OpenAIResponses().conversation({**body, "tools": [tool]}, TOOLS)
    calls = _play(conversation, answer(None, CALL, stream=stream), stream)
    assert [c.name for c in calls] == ["bmcp_weather"]
    conversation.add_results(calls, [ToolOutcome("sunny")])
    assert _play(conversation, answer(None, CLIENT_CALL, stream=stream), stream) == []
    assert conversation.client_calls == ["read_file"]
    told = tokens(conversation.client_usage())
    assert (told["input"], told["output"], told.get("cache_read", 0)) == (10, 6, 0)
