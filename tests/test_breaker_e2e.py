"""The circuit breaker in the proxy: the official SDKs over loopback, a scripted upstream,
virtual time for the open period; HTTP and the Responses API's WebSocket mode."""

from __future__ import annotations

import dataclasses
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio
import trio.testing

from aibridge_cli.config import BreakerConfig
from aibridge_cli.fakes.anthropic_replies import error_reply, message

from .conftest import Stack, StackFactory
from .openai_scripts import message_item, openai_error_reply, responses_stream
from .test_openai_responses_websocket import _run_async, converse

BREAKER = BreakerConfig(threshold=2, interval=10.0, open_time=30.0, probes=2)
KEY = "sk-ant-pool-key-0000AAAA"
OPENAI_KEY = "sk-openai-pool-key-1111BBBB"


def overloaded() -> Any:
    return error_reply(529, "overloaded_error", "Overloaded")


def ok(text: str = "hi") -> Any:
    return message([{"type": "text", "text": text}], "end_turn", 2)


def sdk(s: Stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=s.proxy_url + "/anthropic", api_key="sk-client", max_retries=0
    )


async def ask(client: anthropic.AsyncAnthropic, model: str = "claude-a") -> str:
    reply = await client.messages.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    block = reply.content[0]
    assert block.type == "text"
    return block.text


async def breakers(s: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        page = (await http.get(s.proxy_url + "/aibridge/status")).json()
    return {(row["endpoint"], row["model"]): row for row in page["breakers"]}


async def test_without_breaker_the_status_says_so(stack: StackFactory) -> None:
    s = await stack([overloaded()] * 3, keys=[KEY])
    async with httpx.AsyncClient() as http:
        assert (await http.get(s.proxy_url + "/aibridge/status")).json()["breakers"] is None
    async with sdk(s) as client:
        for _ in range(3):
            with pytest.raises(anthropic.APIStatusError) as failed:
                await ask(client)
            assert failed.value.status_code == 529
        assert len(s.upstream.seen) == 3


async def test_open_after_the_threshold_half_open_probes_then_closed(
    stack: StackFactory, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    s = await stack(
        [overloaded(), overloaded(), ok("one"), ok("two"), ok("three")], keys=[KEY], breaker=BREAKER
    )
    async with sdk(s) as client:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError) as failed:
                await ask(client)
            assert failed.value.status_code == 529
        # open: answered by the proxy in Anthropic's shape, the upstream never asked
        with pytest.raises(anthropic.APIStatusError) as rejected:
            await ask(client)
        assert rejected.value.status_code == 503
        assert rejected.value.response.headers["retry-after"] == "30"
        assert rejected.value.body == {
            "type": "error",
            "error": {
                "type": "overloaded_error",
                "message": "circuit breaker open for anthropic/anthropic/claude-a",
            },
        }
        assert len(s.upstream.seen) == 2
        assert (await breakers(s))["anthropic", "claude-a"]["state"] == "open"
        # the opening is a warning, and so is each rejection (not an error per request)
        levels = {r.getMessage().split(" (")[0]: r.levelname for r in caplog.records}
        assert levels["breaker anthropic/anthropic/claude-a: closed -> open"] == "WARNING"
        rejection = next(r for r in caplog.records if "circuit breaker open" in r.getMessage())
        assert rejection.levelname == "WARNING"
        assert rejection.getMessage().startswith("POST /anthropic/v1/messages 503")
        await trio.sleep(30)
        assert await ask(client) == "one"  # the first probe
        assert (await breakers(s))["anthropic", "claude-a"]["state"] == "half-open"
        assert await ask(client) == "two"  # the second: closed again
        row = (await breakers(s))["anthropic", "claude-a"]
        assert (row["state"], row["trips"], row["rejects"]) == ("closed", 1, 1)
        assert await ask(client) == "three"
        assert len(s.upstream.seen) == 5


async def test_half_open_admits_at_most_the_probes_at_once(
    stack: StackFactory, autojump_clock: trio.testing.MockClock
) -> None:
    slow = dataclasses.replace(ok("probe"), delays=[5.0])
    s = await stack([overloaded(), overloaded(), slow, slow, ok()], keys=[KEY], breaker=BREAKER)
    async with sdk(s) as client:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError):
                await ask(client)
        await trio.sleep(30)
        statuses: list[int] = []

        async def one() -> None:
            try:
                await ask(client)
                statuses.append(200)
            except anthropic.APIStatusError as error:
                statuses.append(error.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        assert sorted(statuses) == [200, 200, 503]
        assert len(s.upstream.seen) == 4


async def test_breakers_are_per_model(stack: StackFactory) -> None:
    s = await stack([overloaded(), overloaded(), ok("other model")], keys=[KEY], breaker=BREAKER)
    async with sdk(s) as client:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError):
                await ask(client, "claude-a")
        with pytest.raises(anthropic.APIStatusError) as rejected:
            await ask(client, "claude-a")
        assert rejected.value.status_code == 503
        assert await ask(client, "claude-b") == "other model"
        rows = await breakers(s)
        assert rows["anthropic", "claude-a"]["state"] == "open"
        assert rows["anthropic", "claude-b"]["state"] == "closed"


async def test_a_429_the_pool_fails_over_from_does_not_count(stack: StackFactory) -> None:
    limited = error_reply(429, "rate_limit_error", "slow down", "60")
    s = await stack(
        [limited, ok("a"), limited, ok("b")],
        keys=[KEY, "sk-ant-pool-key-2222CCCC", "sk-ant-pool-key-3333DDDD"],
        breaker=BREAKER,
    )
    # each request: its key answers 429, the next one answers: two 429s, no failure
    async with sdk(s) as client:
        assert await ask(client) == "a"
        assert await ask(client) == "b"
        assert (await breakers(s))["anthropic", "claude-a"]["failures"] == 0


async def test_a_stream_is_rejected_before_it_starts(stack: StackFactory) -> None:
    s = await stack([overloaded(), overloaded()], keys=[KEY], breaker=BREAKER)
    async with sdk(s) as client:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError):
                await ask(client)
        with pytest.raises(anthropic.APIStatusError) as rejected:
            async with client.messages.stream(
                model="claude-a", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            ) as events:
                await events.get_final_message()
        assert rejected.value.status_code == 503
        assert len(s.upstream.seen) == 2


def create(model: str = "gpt-x") -> dict[str, Any]:
    return {"model": model, "input": "weather?"}


async def test_websocket_and_http_share_one_breaker_per_model(stack: StackFactory) -> None:
    pytest.importorskip("websockets", reason="responses.connect() needs openai[realtime]")
    s = await stack(
        [
            openai_error_reply(503, "down"),
            openai_error_reply(503, "down"),
            responses_stream("resp_1", [message_item("msg_1", "other model")]),
        ],
        openai_keys=[OPENAI_KEY],
        breaker=BREAKER,
    )
    # two 503s over HTTP open the breaker of openai-responses / gpt-x
    async with openai.AsyncOpenAI(
        base_url=s.proxy_url + "/openai/v1", api_key="sk-client", max_retries=0
    ) as client:
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as failed:
                await client.responses.create(model="gpt-x", input="hi")
            assert failed.value.status_code == 503
    # over WebSocket the same model is refused with an error event carrying 503, and the
    # upstream is not dialled; another model goes through
    rejected, answered = await converse(s, _run_async, create(), create("gpt-y"))
    assert [e["type"] for e in rejected] == ["error"]
    assert rejected[0]["status"] == 503
    assert rejected[0]["error"]["headers"] == {"retry-after": "30"}
    assert "circuit breaker open" in rejected[0]["error"]["message"]
    assert answered[-1]["type"] == "response.completed"
    assert len(s.upstream.seen) == 3
    rows = await breakers(s)
    assert rows["openai-responses", "gpt-x"]["state"] == "open"
    assert rows["openai-responses", "gpt-y"]["state"] == "closed"
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(s.proxy_url + "/metrics")).text
    labels = 'provider="openai",endpoint="openai-responses",model="gpt-x"'
    assert f"aibridge_breaker_rejects_total{{{labels}}} 1" in metrics
    assert f"aibridge_breaker_trips_total{{{labels}}} 1" in metrics
    assert f"aibridge_breaker_state{{{labels}}} 1" in metrics


async def test_websocket_opening_errors_count_and_trip_it(stack: StackFactory) -> None:
    pytest.importorskip("websockets", reason="responses.connect() needs openai[realtime]")
    s = await stack(
        [
            responses_stream("resp_1", [message_item("msg_1", "fine")]),
            openai_error_reply(529, "overloaded"),
            openai_error_reply(529, "overloaded"),
        ],
        openai_keys=[OPENAI_KEY],
        breaker=BREAKER,
    )
    answers = await converse(s, _run_async, create(), create(), create(), create())
    assert answers[0][-1]["type"] == "response.completed"
    assert [a[0].get("status") for a in answers[1:]] == [529, 529, 503]
    assert len(s.upstream.seen) == 3


async def test_websocket_half_open_probe_closes_it(stack: StackFactory) -> None:
    """Over WebSocket too: open, rejected, a probe after the open time, closed. The SDK's
    socket runs in a thread on real time, so the open time is a real 0.2 s here."""
    pytest.importorskip("websockets", reason="responses.connect() needs openai[realtime]")
    s = await stack(
        [
            openai_error_reply(529, "overloaded"),
            responses_stream("resp_1", [message_item("msg_1", "probe")]),
            responses_stream("resp_2", [message_item("msg_2", "closed")]),
        ],
        openai_keys=[OPENAI_KEY],
        breaker=BreakerConfig(threshold=1, open_time=0.2, probes=1),
    )
    failed, rejected = await converse(s, _run_async, create(), create())
    assert failed[0]["status"] == 529
    assert rejected[0]["status"] == 503
    await trio.sleep(0.25)
    probe, after = await converse(s, _run_async, create(), create())
    assert [probe[-1]["type"], after[-1]["type"]] == ["response.completed"] * 2
    assert (await breakers(s))["openai-responses", "gpt-x"]["state"] == "closed"
    assert len(s.upstream.seen) == 3
