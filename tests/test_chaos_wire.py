"""``serve --chaos`` on the wire: each fault kind x API, through the proxy over loopback,
with the official SDKs raising their own error types on what they get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.anthropic_replies import (
    message,
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.proxy.chaos import parse_spec
from aibridge_cli.proxy.chaos_wire import is_tool_arguments
from aibridge_cli.sessions.recording import load_fixture, open_recorder
from aibridge_cli.sessions.replay import replay_fixture
from aibridge_cli.sse import SSEDecoder

from .conftest import Stack, StackFactory
from .mcp_util import calls, mcp_stack, stdio_entry, write_tools
from .openai_scripts import (
    SDK_GENERATORS,
    chat_text,
    client_for,
    close_sdk_clients,  # noqa: F401 (an autouse fixture)
    function_item,
    message_item,
    responses_stream,
)
from .sdkutil import collect_sdk_garbage
from .test_anthropic_e2e import CLIENT_KEY, HELLO, one_request, sdk
from .test_anthropic_e2e import http as http_fixture


def hello_stream() -> Reply:
    return stream(message_start(), text_block(0, "Hel", "lo"), message_end("end_turn", 2))


def hello_message() -> Reply:
    return message([{"type": "text", "text": "Hello"}], "end_turn", 2)


def chaos(s: Stack, *specs: str) -> None:
    for spec in specs:
        s.app.env.chaos.add(parse_spec(spec), trio.current_time())


# test_anthropic_e2e.py's client and fixture, under their names here
claude = sdk
http = http_fixture


async def post_anthropic(http: httpx.AsyncClient, s: Stack, streaming: bool) -> httpx.Response:
    body = {"model": "claude-test", "max_tokens": 50, "stream": streaming, "messages": HELLO}
    return await http.post(
        s.proxy_url + "/anthropic/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY}
    )


async def openai_asks(client: openai.AsyncOpenAI, route: str) -> object:
    if route == "chat":
        return await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    return await client.responses.create(model="gpt-test", input="hi")


# -- status faults: the provider's status, body and headers; the SDK's own error type ----------
ANTHROPIC_STATUS = [
    ("429,retry-after=2,should-retry=true", 429, "rate_limit_error", anthropic.RateLimitError),
    ("401", 401, "authentication_error", anthropic.AuthenticationError),
    ("403", 403, "permission_error", anthropic.PermissionDeniedError),
    ("500", 500, "api_error", anthropic.InternalServerError),
    ("529", 529, "overloaded_error", anthropic.OverloadedError),
]


@pytest.mark.parametrize(("spec", "status", "error_type", "raised"), ANTHROPIC_STATUS)
@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
async def test_anthropic_status_faults_are_anthropics_own(
    stack: StackFactory,
    http: httpx.AsyncClient,
    spec: str,
    status: int,
    error_type: str,
    raised: type[anthropic.APIStatusError],
    streaming: bool,
) -> None:
    s = await stack([hello_stream() if streaming else hello_message()] * 2)
    chaos(s, spec + ",first=1,name=r")
    with pytest.raises(raised) as caught:
        await one_request(s, streaming)
    assert caught.value.status_code == status
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == "req_chaos_r_1" == caught.value.response.headers["request-id"]
    assert s.upstream.seen == []  # a status fault answers in the upstream's place
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "2"
        assert caught.value.response.headers["x-should-retry"] == "true"
    # first=1: the next request goes through untouched
    response = await post_anthropic(http, s, streaming)
    assert response.status_code == 200
    assert len(s.upstream.seen) == 1


OPENAI_STATUS = [
    ("429,retry-after=1", 429, "requests", "rate_limit_exceeded", openai.RateLimitError),
    ("401", 401, "invalid_request_error", "invalid_api_key", openai.AuthenticationError),
    ("403", 403, "permission_error", None, openai.PermissionDeniedError),
    ("500", 500, "server_error", None, openai.InternalServerError),
    ("529", 503, "server_error", None, openai.InternalServerError),  # OpenAI has no 529
]


@SDK_GENERATORS
@pytest.mark.parametrize(("spec", "status", "error_type", "code", "raised"), OPENAI_STATUS)
@pytest.mark.parametrize("route", ["chat", "responses"])
async def test_openai_status_faults_are_openais_own(
    stack: StackFactory,
    spec: str,
    status: int,
    error_type: str,
    code: str | None,
    raised: type[openai.APIStatusError],
    route: str,
) -> None:
    s = await stack([])
    chaos(s, spec + ",api=openai")
    client = client_for(s)
    with pytest.raises(raised) as caught:
        await openai_asks(client, route)
    assert caught.value.status_code == status
    assert caught.value.body == {
        "message": caught.value.body["message"],  # type: ignore[index]
        "type": error_type,
        "param": None,
        "code": code,
    }
    assert caught.value.response.headers["x-request-id"] == "req_chaos_chaos-1_1"
    assert s.upstream.seen == []


# -- in-stream faults ------------------------------------------------------------------------
def events_of(body: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for event in SSEDecoder().feed(body):
        try:
            out.append((event.event, json.loads(event.data)))
        except ValueError:
            out.append((event.event, event.data))
    return out


async def test_anthropic_overload_event_after_n_events(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    """error-event@2: two events relayed, then Anthropic's own overload event, the end."""
    s = await stack([hello_stream(), hello_stream()])
    chaos(s, "error-event@2")
    response = await post_anthropic(http, s, True)
    events = events_of(response.content)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "error"]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }

    async def iterate() -> tuple[list[str], Any]:
        seen: list[str] = []
        async with claude(s) as client:
            async with client.messages.stream(
                model="claude-test", max_tokens=5, messages=HELLO
            ) as st:
                try:
                    async for event in st:
                        seen.append(event.type)
                except anthropic.APIStatusError as exc:
                    return seen, exc.body
        return seen, None

    seen, body = await collect_sdk_garbage(iterate())
    assert seen == ["message_start", "content_block_start"]
    assert body["error"]["type"] == "overloaded_error"


async def test_anthropic_cut_inside_tool_arguments_ends_in_the_proxys_error_event(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    """reset-in-body@tool-args: the first arguments delta goes out, then the connection
    breaks; the proxy ends the stream as for a real break (an ``api_error`` event)."""
    client_tool = stream(
        message_start(),
        tool_block(0, "get_time", {"tz": "Europe/Paris"}),
        message_end("tool_use", 9),
    )
    s = await stack([client_tool])
    chaos(s, "reset-in-body@tool-args")
    response = await post_anthropic(http, s, True)
    events = events_of(response.content)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[2][1]["delta"]["type"] == "input_json_delta"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "upstream connection lost" in events[-1][1]["error"]["message"]


async def test_early_end_and_malformed_event(stack: StackFactory, http: httpx.AsyncClient) -> None:
    s = await stack([hello_stream(), hello_stream()])
    chaos(s, "early-end@3,first=1")
    ended = events_of((await post_anthropic(http, s, True)).content)
    chaos(s, "malformed-sse@1,first=1")
    assert [n for n, _ in ended][:3] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert "message_stop" not in [n for n, _ in ended]
    malformed = events_of((await post_anthropic(http, s, True)).content)
    assert [n for n, _ in malformed] == ["message_start", "error"]
    assert "not JSON" in malformed[-1][1]["error"]["message"]


async def test_stall_pauses_then_the_stream_goes_on(
    stack: StackFactory, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    s = await stack([hello_stream()])
    chaos(s, "stall@2,seconds=45")
    started = trio.current_time()
    response = await post_anthropic(http, s, True)
    assert trio.current_time() - started >= 45
    assert [n for n, _ in events_of(response.content)][-1] == "message_stop"


async def test_stall_past_the_read_timeout_is_the_proxys_timeout(
    stack: StackFactory, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    s = await stack([hello_stream()])
    chaos(s, "stall@2,seconds=1000")
    response = await post_anthropic(http, s, True)
    events = [e for e in events_of(response.content) if e[0] != "ping"]  # the proxy's pings
    assert [n for n, _ in events] == ["message_start", "content_block_start", "error"]
    assert "timed out" in events[-1][1]["error"]["message"]


async def test_reset_before_body_is_a_502(stack: StackFactory, http: httpx.AsyncClient) -> None:
    s = await stack([])
    chaos(s, "reset-before-body")
    response = await post_anthropic(http, s, False)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"


@SDK_GENERATORS
async def test_openai_chat_error_event_raises_in_the_sdk(stack: StackFactory) -> None:
    s = await stack([chat_text("Hello there", usage=3)])
    chaos(s, "error-event@1")
    client = client_for(s)

    async def iterate() -> str:
        got = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for _ in got:
                pass
        return caught.value.message

    assert "had an error while processing" in await collect_sdk_garbage(iterate())


@SDK_GENERATORS
async def test_openai_responses_error_event_reaches_the_sdk(stack: StackFactory) -> None:
    """The Responses API's ``error`` event, as OpenAI sends it: the SDK hands it over as its
    own typed ``ResponseErrorEvent`` (it raises only on one carrying an ``error`` object)."""
    s = await stack([responses_stream("resp_1", [message_item("msg_1", "Hello")])])
    chaos(s, "error-event@1")
    client = client_for(s)

    async def iterate() -> list[Any]:
        got = await client.responses.create(model="gpt-test", input="hi", stream=True)
        return [event async for event in got]

    events = await collect_sdk_garbage(iterate())
    assert [e.type for e in events] == ["response.created", "error"]
    assert isinstance(events[-1], openai.types.responses.ResponseErrorEvent)
    assert (events[-1].code, events[-1].sequence_number) == ("server_error", 1)
    assert "had an error while processing" in events[-1].message


async def test_openai_function_call_arguments_are_a_tool_args_point(stack: StackFactory) -> None:
    s = await stack([responses_stream("resp_1", [function_item("get_time")])])
    chaos(s, "early-end@tool-args")
    async with httpx.AsyncClient(timeout=100) as http:
        response = await http.post(
            s.proxy_url + "/openai/v1/responses",
            json={"model": "gpt-test", "input": "hi", "stream": True},
        )
    # Responses streams with injected tools offered as the other APIs do: the client's own
    # call goes out as it comes, so a stream that ends inside its arguments ends in the
    # proxy's error event after the first arguments delta (docs: the Responses API).
    assert response.status_code == 200
    events = events_of(response.content)
    names = [name for name, _ in events]
    assert names[-2:] == ["response.function_call_arguments.delta", "error"]
    assert "ended before response.completed" in events[-1][1]["error"]["message"]
    assert s.app.env.chaos.status()["rules"][0]["struck"] == 1


async def test_tool_argument_pieces_of_each_api() -> None:
    pieces = [
        b'event: content_block_delta\ndata: {"delta":{"type":"input_json_delta"}}\n\n',
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"a"}}]}}]}\n\n',
        b'event: response.function_call_arguments.delta\ndata: {"delta":"{"}\n\n',
    ]
    others = [
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":""}}]}}]}\n\n',
        b'event: content_block_delta\ndata: {"delta":{"type":"text_delta"}}\n\n',
    ]
    assert [is_tool_arguments(e) for p in pieces for e in SSEDecoder().feed(p)] == [True] * 3
    assert [is_tool_arguments(e) for p in others for e in SSEDecoder().feed(p)] == [False] * 2


# -- with a key pool: the fault reaches the pool as the upstream's answer would ---------------
K0, K1 = "sk-ant-chaos-pool-zero-0000AAAA", "sk-ant-chaos-pool-one-1111BBBB"


async def test_429_one_cools_the_key_in_use_and_the_proxy_fails_over(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([hello_message()], keys=[K0, K1])
    chaos(s, "429-one,retry-after=30,first=1")
    response = await post_anthropic(http, s, False)
    assert response.status_code == 200
    assert [r.header("x-api-key") for r in s.upstream.seen] == [K1]
    states = [k["state"] for k in s.app.status()["providers"]["anthropic"]["keys"]]
    assert states == ["cooling", "valid"]


async def test_429_all_strikes_every_key_and_the_client_gets_the_pools_429(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    s = await stack([], keys=[K0, K1])
    chaos(s, "429-all,retry-after=7,first=1")
    response = await post_anthropic(http, s, False)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert s.upstream.seen == []


async def same_seed_run(stack: StackFactory, http: httpx.AsyncClient, seed: int) -> list[int]:
    s = await stack([hello_message()] * 30)
    s.app.env.chaos.seed = seed
    chaos(s, "500,p=0.4")
    return [(await post_anthropic(http, s, False)).status_code for _ in range(30)]


async def test_the_same_seed_and_traffic_strike_the_same_requests(
    stack: StackFactory, http: httpx.AsyncClient
) -> None:
    first = await same_seed_run(stack, http, 11)
    assert first == await same_seed_run(stack, http, 11)
    assert first != await same_seed_run(stack, http, 12)
    assert 3 < first.count(500) < 24


# -- every body fault on every API: the client gets an error its SDK understands -------------
BODY_FAULTS = ["reset-in-body@1", "early-end@1", "malformed-sse@1", "reset-before-body"]


async def anthropic_stream(s: Stack) -> None:
    async with claude(s) as client:
        async with client.messages.stream(model="claude-test", max_tokens=5, messages=HELLO) as st:
            async for _ in st:
                pass


async def chat_stream(s: Stack) -> None:
    got = await client_for(s).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    async for _ in got:
        pass


class ErrorEvent(Exception):
    """A Responses ``error`` event the SDK handed over without raising."""


async def responses_stream_read(s: Stack) -> None:
    """The SDK raises on an ``error`` event carrying an ``error`` object (the proxy's own)
    and hands OpenAI's plain one over as a ``ResponseErrorEvent``: either is an error."""
    got = await client_for(s).responses.create(model="gpt-test", input="hi", stream=True)
    async for event in got:
        if event.type == "error":
            raise ErrorEvent(event.message)


@SDK_GENERATORS
@pytest.mark.parametrize("spec", BODY_FAULTS)
@pytest.mark.parametrize("api", ["anthropic", "openai-chat", "openai-responses"])
async def test_every_body_fault_on_every_api_ends_in_an_error_the_sdk_raises(
    stack: StackFactory, api: str, spec: str
) -> None:
    replies = {
        "anthropic": hello_stream(),
        "openai-chat": chat_text("Hello there", usage=3),
        "openai-responses": responses_stream("resp_1", [message_item("msg_1", "Hello")]),
    }
    s = await stack([replies[api]])
    chaos(s, spec)
    read = {
        "anthropic": anthropic_stream,
        "openai-chat": chat_stream,
        "openai-responses": responses_stream_read,
    }[api]
    raised = anthropic.APIStatusError if api == "anthropic" else (openai.APIError, ErrorEvent)
    with pytest.raises(raised):
        await collect_sdk_garbage(read(s))
    assert s.app.env.chaos.status()["rules"][0]["struck"] == 1


async def test_turn_tool_strikes_the_continuation_after_an_injected_tool(
    stack: StackFactory, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """``turn=tool``: the loop's continuation after the proxy ran bmcp_weather gets the
    429; the first request does not. The stream was initiated for the continuation, so
    the client gets the 429 as an in-stream ``rate_limit_error`` event, and one log line
    names the rule and the request."""
    tool_turn = stream(
        message_start(),
        tool_block(0, "bmcp_weather", {"city": "Paris"}),
        message_end("tool_use", 9),
    )
    s = await stack([tool_turn, hello_stream()])
    chaos(s, "429,retry-after=3,turn=tool,name=after-tool")
    caplog.set_level("INFO", logger="aibridge.bridge")
    events = events_of((await post_anthropic(http, s, True)).content)
    assert [name for name, _ in events] == ["message_start", "error"]
    assert events[-1][1]["error"]["type"] == "rate_limit_error"
    assert len(s.upstream.seen) == 1  # the continuation was answered in its place
    assert s.app.env.chaos.status()["rules"][0] == {
        "kind": "429-one",
        "name": "after-tool",
        "retry_after": "3",
        "turn": "tool",
        "matched": 1,
        "struck": 1,
    }
    lines = [r.getMessage() for r in caplog.records if "chaos" in r.getMessage()]
    assert lines == [
        "chaos rule after-tool strikes POST /anthropic/v1/messages (429-one, strike 1)"
    ]


# -- mcp-*: an MCP tool call of the loop, struck as the fuzzer strikes it ----------------------
@pytest.mark.parametrize(
    ("spec", "result"),
    [
        ("mcp-error", "simulated MCP tool error"),
        ("mcp-dies@0", "mcp server wx went down during forecast"),
        ("mcp-slow,first=1", "mcp server wx: forecast timed out after 0.2 s"),
    ],
)
async def test_mcp_faults_answer_the_model_as_the_live_proxy_would(
    nursery: trio.Nursery, tmp_path: Path, spec: str, result: str
) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log, timeout=0.2))
    call = tool_block(0, "bmcp_wx_forecast", {"city": "Paris"})
    turn = stream(message_start(), call, message_end("tool_use", 9))
    s = await mcp_stack(nursery, [turn, hello_stream()], tools)
    chaos(s, spec)
    async with httpx.AsyncClient(timeout=100) as http:
        response = await post_anthropic(http, s, True)
    assert response.status_code == 200
    sent = s.upstream.seen[-1].json()["messages"][-1]["content"][0]
    assert (sent["is_error"], sent["content"]) == (True, result)
    assert calls(log) == []  # the server was never asked
    assert s.app.env.chaos.status()["rules"][0]["struck"] == 1


async def test_mcp_faults_strike_the_call_at_their_index(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """``mcp-error@1``: the second MCP call of a request; the first one runs."""
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    turns = [
        stream(
            message_start(),
            tool_block(0, "bmcp_wx_forecast", {"city": c}),
            message_end("tool_use", 9),
        )
        for c in ("Paris", "Lyon")
    ]
    s = await mcp_stack(nursery, [*turns, hello_stream()], tools)
    chaos(s, "mcp-error@1")
    async with httpx.AsyncClient(timeout=100) as http:
        assert (await post_anthropic(http, s, True)).status_code == 200
    assert calls(log) == [{"tool": "forecast", "input": {"city": "Paris"}}]
    results = [
        m["content"][0] for m in s.upstream.seen[-1].json()["messages"] if m["role"] == "user"
    ][1:]
    assert [r.get("is_error", False) for r in results] == [False, True]


async def test_a_recorded_mcp_fault_replays_to_a_match(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    path = tmp_path / "session.jsonl"
    call = tool_block(0, "bmcp_wx_forecast", {"city": "Paris"})
    replies = [stream(message_start(), call, message_end("tool_use", 9)), hello_stream()]
    async with trio.open_nursery() as servers:
        s = await mcp_stack(servers, replies, tools, recorder=open_recorder(path, ServeOptions()))
        chaos(s, "mcp-dies,name=gone")
        async with httpx.AsyncClient(timeout=100) as http:
            assert (await post_anthropic(http, s, True)).status_code == 200
        servers.cancel_scope.cancel()
    fixture = load_fixture(path)
    (struck,) = fixture.interceptions[0].tool_calls
    assert struck.chaos == {"rule": "gone", "kind": "mcp-dies", "strike": 1}
    assert struck.result == "mcp server wx went down during forecast"
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [("match", [])]
