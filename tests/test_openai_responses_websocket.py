"""The Responses API's WebSocket mode end to end: the official openai SDK's
``responses.connect()`` (async on asyncio, and its sync form, each in a thread), the proxy
and a scripted upstream speaking WebSocket, all on loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import openai
import pytest
import trio

from aibridge_cli.config import WebSocketConfig
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.interception import Interception
from aibridge_cli.tools import ToolSet

from .conftest import Stack, StackFactory
from .mcp_util import calls, mcp_stack, stdio_entry, write_tools
from .openai_scripts import (
    function_item,
    message_item,
    openai_error_reply,
    responses_stream,
)

pytest.importorskip("websockets", reason="responses.connect() needs openai[realtime]")

KEYS = ["sk-first-1111aaaa", "sk-second-2222bbbb"]
Event = dict[str, Any]


def _until_done(events: list[Event]) -> bool:
    kind = events[-1].get("type") if events else None
    return kind in ("response.completed", "response.failed", "response.incomplete", "error")


async def _async_session(url: str, creates: list[Event]) -> list[list[Event]]:
    client = openai.AsyncOpenAI(base_url=url, api_key="sk-client-aaaa1111", max_retries=0)
    answers: list[list[Event]] = []
    try:
        async with client.responses.connect() as connection:
            for create in creates:
                # a plain dict, as a user writes it (the parameter type is a TypedDict union)
                await connection.send(cast(Any, {"type": "response.create", **create}))
                events: list[Event] = []
                while not _until_done(events):
                    event = await asyncio.wait_for(connection.recv(), 10)
                    events.append(event.to_dict())
                answers.append(events)
    finally:
        await client.close()
    return answers


def _sync_session(url: str, creates: list[Event]) -> list[list[Event]]:
    client = openai.OpenAI(base_url=url, api_key="sk-client-aaaa1111", max_retries=0)
    answers: list[list[Event]] = []
    with client, client.responses.connect() as connection:
        for create in creates:
            connection.send(cast(Any, {"type": "response.create", **create}))
            events: list[Event] = []
            while not _until_done(events):
                events.append(connection.recv().to_dict())
            answers.append(events)
    return answers


Session = Callable[[str, list[Event]], Any]


def _run_async(url: str, creates: list[Event]) -> list[list[Event]]:
    return asyncio.run(_async_session(url, creates))


SESSIONS = pytest.mark.parametrize("session", [_run_async, _sync_session], ids=["async", "sync"])


async def converse(stack: Stack, session: Session, *creates: Event) -> list[list[Event]]:
    """The SDK's events for each ``response.create``, over one socket, in a worker thread
    (the SDK's WebSocket client runs on asyncio or blocks)."""
    url = stack.proxy_url + "/openai/v1"
    result: list[list[Event]] = await trio.to_thread.run_sync(session, url, list(creates))
    return result


def create(text: str = "weather?", **fields: Any) -> Event:
    return {"model": "gpt-x", "input": text, **fields}


def text_of(events: list[Event]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


@SESSIONS
async def test_text_over_one_socket(stack: StackFactory, session: Session) -> None:
    s = await stack(
        [
            responses_stream("resp_1", [message_item("msg_1", "Hello.")]),
            responses_stream("resp_2", [message_item("msg_2", "Again.")]),
        ],
        openai_keys=KEYS,
    )
    first, second = await converse(s, session, create(), create("more?"))
    assert text_of(first) == "Hello."
    assert first[-1]["type"] == "response.completed"
    assert first[-1]["response"]["id"] == "resp_1"
    assert [e["sequence_number"] for e in first] == list(range(len(first)))
    assert text_of(second) == "Again."
    # both responses went over one upstream socket, with the first key as its bearer
    sent = [r.json() for r in s.upstream.seen]
    assert [m["type"] for m in sent] == ["response.create", "response.create"]
    assert sent[0]["tools"][0]["name"] == "bmcp_weather"  # the injected tool is offered
    assert all(r.header("authorization") == f"Bearer {KEYS[0]}" for r in s.upstream.seen)
    assert s.app.upstreams["openai"].pool.snapshot(0)[0]["attempts"] == 2


@SESSIONS
async def test_client_function_call_reaches_the_client(
    stack: StackFactory, session: Session
) -> None:
    tool = {"type": "function", "name": "read_file", "parameters": {"type": "object"}}
    s = await stack(
        [responses_stream("resp_1", [function_item("read_file", arguments='{"p": 1}')])],
        openai_keys=KEYS,
    )
    (events,) = await converse(s, session, create(tools=[tool]))
    done = events[-1]
    assert done["type"] == "response.completed"
    assert [i["name"] for i in done["response"]["output"]] == ["read_file"]
    assert len(s.upstream.seen) == 1


@SESSIONS
async def test_injected_tool_turn_is_invisible(stack: StackFactory, session: Session) -> None:
    s = await stack(
        [
            responses_stream("resp_1", [function_item("bmcp_weather")]),
            responses_stream("resp_2", [message_item("msg_1", "Sunny in Paris.")]),
        ],
        openai_keys=KEYS,
    )
    (events,) = await converse(s, session, create())
    assert text_of(events) == "Sunny in Paris."
    assert not [e for e in events if "bmcp_weather" in json.dumps(e)]
    assert [e["type"] for e in events].count("response.created") == 1
    assert events[-1]["response"]["id"] == "resp_2"
    # usage summed over both iterations (each upstream response reports 5 in, 3 out)
    usage = events[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (10, 6, 16)
    continuation = s.upstream.seen[1].json()
    assert continuation["type"] == "response.create"
    outputs = [i for i in continuation["input"] if i.get("type") == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"}
    ]
    # the loop's two requests went over the one upstream socket
    assert len(s.upstream.seen) == 2


@SESSIONS
async def test_an_mcp_servers_tool_is_offered_and_run_over_the_socket(
    nursery: trio.Nursery, tmp_path: Path, session: Session
) -> None:
    """Issue #16 item 5: a response.create is offered the MCP servers' tools (toolset()),
    not only the tools file's, and the loop runs them on the server."""
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    replies = [
        responses_stream("resp_1", [function_item("bmcp_wx_forecast")]),
        responses_stream("resp_2", [message_item("msg_1", "Sunny in Paris.")]),
    ]
    records: list[Interception] = []
    s = await mcp_stack(nursery, replies, tools, recorder=records.append)
    (events,) = await converse(s, session, create())
    assert text_of(events) == "Sunny in Paris."
    assert not [e for e in events if "bmcp_wx" in json.dumps(e)]
    first, continuation = (r.json() for r in s.upstream.seen)
    assert {"bmcp_wx_forecast", "bmcp_wx_radar"} <= {t["name"] for t in first["tools"]}
    assert continuation["type"] == "response.create"
    outputs = [i for i in continuation["input"] if i.get("type") == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C in Paris"}
    ]
    assert calls(log) == [{"tool": "forecast", "input": {"city": "Paris"}}]
    # the record lists what was offered and names the server that answered
    (record,) = records
    assert record.transport == "websocket"
    assert "bmcp_wx_forecast" in {t["name"] for t in record.tools}
    (call,) = record.tool_calls
    assert (call.server, call.server_tool) == ("wx", "forecast")


@SESSIONS
async def test_all_keys_limited_is_one_error_event(stack: StackFactory, session: Session) -> None:
    s = await stack(
        [openai_error_reply(429, "slow down", "7"), openai_error_reply(429, "slow down", "9")],
        openai_keys=KEYS,
    )
    (events,) = await converse(s, session, create())
    assert len(events) == 1
    (error,) = events
    assert error["type"] == "error"
    assert error["status"] == 429
    assert error["error"]["type"] == "rate_limit_error"
    assert error["error"]["headers"] == {"retry-after": "7"}
    # both handshakes were refused, each with its own key
    assert [r.header("authorization") for r in s.upstream.seen] == [
        f"Bearer {KEYS[0]}",
        f"Bearer {KEYS[1]}",
    ]


async def test_rate_limit_mid_connection_fails_over(stack: StackFactory) -> None:
    s = await stack(
        [
            responses_stream("resp_1", [message_item("msg_1", "One.")]),
            openai_error_reply(429, "slow down", "30"),
            responses_stream("resp_2", [message_item("msg_2", "Two.")]),
        ],
        openai_keys=KEYS,
    )
    first, second = await converse(s, _sync_session, create(), create("again?"))
    assert text_of(first) == "One."
    assert text_of(second) == "Two."
    assert [r.header("authorization") for r in s.upstream.seen] == [
        f"Bearer {KEYS[0]}",
        f"Bearer {KEYS[0]}",
        f"Bearer {KEYS[1]}",
    ]
    states = [row["state"] for row in s.app.upstreams["openai"].pool.snapshot(trio.current_time())]
    assert states == ["cooling", "valid"]


@SESSIONS
async def test_upstream_dropped_mid_response_is_an_error_event(
    stack: StackFactory, session: Session
) -> None:
    stream = responses_stream("resp_1", [message_item("msg_1", "Hello.")])
    dropped = Reply(stream.status, stream.headers, stream.chunks, fault="reset-in-body", fault_at=3)
    s = await stack(
        [dropped, responses_stream("resp_2", [message_item("msg_2", "Back.")])],
        openai_keys=KEYS,
        tools=ToolSet(),  # no injected tool: events flow as they come, none is held
    )
    first, second = await converse(s, session, create(), create("again?"))
    assert [e["type"] for e in first] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "error",
    ]
    assert "upstream closed the WebSocket mid-response" in first[-1]["message"]
    assert text_of(second) == "Back."  # a new upstream socket serves the next one


@pytest.mark.parametrize(
    ("item", "seen"),
    [
        # a visible item streams as it comes, injected tools offered or not
        (message_item("msg_1", "Hello."), ["response.created", "response.in_progress"]),
        # an injected call shows nothing, so nothing of its response was shown
        (function_item("bmcp_weather"), []),
    ],
)
async def test_dropped_with_injected_tools_offered(
    stack: StackFactory, item: dict[str, Any], seen: list[str]
) -> None:
    stream = responses_stream("resp_1", [item])
    dropped = Reply(stream.status, stream.headers, stream.chunks, fault="reset-in-body", fault_at=3)
    s = await stack([dropped], openai_keys=KEYS)
    (events,) = await converse(s, _sync_session, create())
    shown = [*seen, "response.output_item.added"] if seen else []
    assert [e["type"] for e in events] == [*shown, "error"]
    assert "upstream closed the WebSocket mid-response" in events[-1]["error"]["message"]


async def _raw_exchange(url: str, messages: list[str | bytes]) -> list[Event]:
    """Send raw messages with the websockets library; the events that answer each."""
    import websockets

    answers = []
    async with websockets.connect(url + "/responses", max_size=None) as ws:
        for message in messages:
            await ws.send(message)
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return answers


async def test_bad_input_gets_documented_errors_and_the_socket_keeps_serving(
    stack: StackFactory,
) -> None:
    s = await stack(
        [responses_stream("resp_1", [message_item("msg_1", "Still here.")])],
        openai_keys=KEYS,
        websocket=WebSocketConfig(max_message_size=1000),
    )
    url = s.proxy_url.replace("http://", "ws://") + "/openai/v1"
    messages: list[str | bytes] = [
        "{not json",
        json.dumps({"type": "session.update"}),
        json.dumps({"type": "response.create", "model": "gpt-x", "input": "x" * 5000}),
        json.dumps({"type": "response.create", "model": 3, "input": "hi"}),
        json.dumps({"type": "response.create", "model": "gpt-x", "input": "hi"}),
    ]
    answers = await trio.to_thread.run_sync(lambda: asyncio.run(_raw_exchange(url, messages)))
    errors = answers[:4]
    assert [e["type"] for e in errors] == ["error"] * 4
    assert [e["status"] for e in errors] == [400] * 4
    assert [e["error"]["code"] for e in errors[:3]] == [
        "invalid_json",
        "unknown_event_type",
        "message_too_large",
    ]
    assert errors[1]["error"]["param"] == "type"
    assert errors[3]["error"]["type"] == "invalid_request_error"
    assert "model" in errors[3]["error"]["message"]
    assert answers[4]["type"] == "response.created"  # and the socket still serves
    assert len(s.upstream.seen) == 1


async def _hang_up_after_first_event(url: str) -> None:
    import websockets

    ws = await websockets.connect(url + "/responses")
    await ws.send(json.dumps({"type": "response.create", "model": "gpt-x", "input": "hi"}))
    await asyncio.wait_for(ws.recv(), 10)
    ws.transport.abort()  # gone without a close frame


async def test_client_gone_closes_the_upstream_socket_within_a_second(
    stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    slow = responses_stream("resp_1", [message_item("msg_1", "Slow.")])
    delays = [0.0] * len(slow.chunks)
    delays[3] = 30.0
    s = await stack(
        [Reply(slow.status, slow.headers, slow.chunks, delays)], openai_keys=KEYS, tools=ToolSet()
    )
    url = s.proxy_url.replace("http://", "ws://") + "/openai/v1"
    await trio.to_thread.run_sync(lambda: asyncio.run(_hang_up_after_first_event(url)))
    gone = trio.current_time()
    with trio.fail_after(5):
        # polled: the log is the observable, the proxy runs on real sockets
        while not any("closed" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert trio.current_time() - gone < 1.0
    closed = next(r.getMessage() for r in caplog.records if "closed" in r.getMessage())
    assert "after 1 responses" in closed


async def _wait_for_close(url: str) -> int:
    import websockets

    async with websockets.connect(url + "/responses") as ws:
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return int(closed.rcvd.code) if closed.rcvd is not None else -1
    return -1


async def test_shutdown_closes_idle_sockets_with_going_away(stack: StackFactory) -> None:
    s = await stack([], openai_keys=KEYS)
    url = s.proxy_url.replace("http://", "ws://") + "/openai/v1"
    async with trio.open_nursery() as nursery:
        codes: list[int] = []

        async def client() -> None:
            codes.append(await trio.to_thread.run_sync(lambda: asyncio.run(_wait_for_close(url))))

        nursery.start_soon(client)
        with trio.fail_after(5):
            while not s.proxy_server.connections:  # noqa: ASYNC110 (a thread's client connects)
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # the upgrade is through
        s.proxy_server.shutdown()
    assert codes == [1001]


async def test_an_error_event_mid_response_is_logged_as_an_error_with_its_cause(
    stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """As on HTTP (tests/test_error_event_logged.py): a response that ended in the
    upstream's error event is no ``info`` success in the socket's log line."""
    caplog.set_level(logging.INFO, logger="aibridge")
    failing = Reply.sse(
        [
            ("response.created", {"type": "response.created", "response": {"id": "resp_1"}}),
            ("error", {"type": "error", "code": "server_error", "message": "stream broke"}),
        ]
    )
    s = await stack([failing], openai_keys=KEYS, tools=ToolSet())
    (events,) = await converse(s, _run_async, create())
    assert events[-1]["type"] == "error"
    (line,) = [r for r in caplog.records if "response.create" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert 'error="upstream error event: server_error: stream broke"' in line.getMessage()
