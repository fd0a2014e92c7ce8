"""The client-side mock: ``aibridge mock FILE`` answers each client with what that client got
when recorded, on serve's routes, with no upstream, key, tools file or MCP server.

Sessions are recorded in-process through the real proxy (an injected tool, a key failover,
a pass-through, the Responses WebSocket) and then served to the same clients: the
official SDKs over loopback, and the ``aibridge mock`` command itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import trio

from aibridge_cli.config import GuardConfig, ServeOptions, ServerConfig
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.interception import Interception
from aibridge_cli.proxy.guard import Guard
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture, body_limit, dump_fixture, parse_fixture
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.recording import load_fixture, open_recorder
from aibridge_cli.sessions.replay import replay_fixture
from aibridge_cli.sessions.ws_client import websocket_exchange
from aibridge_cli.tools import ToolSet

from .cli_process import run_cli, start_cli, stop_cli
from .conftest import WEATHER, start_server
from .mcp_util import calls, mcp_stack, stdio_entry, write_tools
from .openai_scripts import SDK_GENERATORS, chat_text, message_item, responses_stream
from .test_mcp_e2e import FINAL, HELLO, ask, tool_turn
from .test_sessions_cli import WEATHER_SESSION

KEYS = ["sk-ant-api03-mockfirst-AAAA1111", "sk-ant-api03-mocksecond-BBBB2222"]
Session = Callable[[str], Awaitable[Any]]


async def record(
    nursery: trio.Nursery, replies: list[Reply], session: Session
) -> tuple[Fixture, Any]:
    """Run ``session`` against a recording proxy (the weather tool injected, two keys)
    in front of ``replies``; what it answered, and the fixture as a file holds it."""
    _, upstream_url = await start_server(nursery, ScriptedUpstream(replies))
    records: list[Interception] = []
    app = build_app(
        ServeOptions(
            anthropic_base_url=upstream_url,
            openai_base_url=upstream_url + "/v1",
            anthropic_keys=KEYS,
        ),
        tools=ToolSet.of([WEATHER]),
        recorder=records.append,
    )
    _, proxy_url = await start_server(nursery, app)
    try:
        answered = await session(proxy_url)
    finally:
        await app.env.client.aclose()
    labels = [f"#{n + 1}" for n in range(len(records))]
    return parse_fixture(dump_fixture(Fixture("<mem>", records, labels))), answered


async def serve_client_side(nursery: trio.Nursery, fixture: Fixture) -> tuple[MockUpstream, str]:
    """The client-side mock as ``aibridge mock`` serves it: guarded, JSON-only routes."""
    mock = MockUpstream([fixture], "fast", side="client")
    guard = Guard(GuardConfig(), json_routes=mock.json_routes)
    _, url = await start_server(nursery, mock.app, guard)
    return mock, url


async def anthropic_session(url: str) -> list[str]:
    """A streamed turn that runs the injected tool after a 429, then a blocking one."""
    client = anthropic.AsyncAnthropic(base_url=url + "/anthropic", api_key="sk-c", max_retries=0)
    try:
        async with client.messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "Weather in Paris?"}]
        ) as sdk_stream:
            final = await sdk_stream.get_final_message()
        answer = await client.messages.create(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        await client.close()
    texts = [b.text for b in final.content if b.type == "text"]
    return [*texts, *(b.text for b in answer.content if b.type == "text")]


async def test_a_session_with_an_injected_tool_is_served_without_the_tool(
    nursery: trio.Nursery,
) -> None:
    fixture, answered = await record(nursery, WEATHER_SESSION, anthropic_session)
    recorded = ["Let me check.", "Sunny in Paris.", "Hello!"]
    assert answered == recorded
    assert [len(r.upstream) for r in fixture.interceptions] == [3, 1]  # tool turn, 429

    mock, url = await serve_client_side(nursery, fixture)
    assert await anthropic_session(url) == recorded
    assert [(h.expected is not None, h.problems) for h in mock.hits] == [(True, [])] * 2
    assert mock.remaining == 0


async def openai_session(url: str) -> list[Any]:
    """Chat with the SDK, a pass-through GET, and one response.create on a WebSocket."""
    client = openai.AsyncOpenAI(base_url=url + "/openai/v1", api_key="sk-c", max_retries=0)
    try:
        chat = await client.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chat if c.choices])
    finally:
        await client.close()
    async with httpx.AsyncClient() as http:
        models = (await http.get(url + "/openai/v1/models?limit=1")).json()
    create = {"type": "response.create", "model": "m", "input": "hi"}
    status, _, body = await websocket_exchange(
        url + "/openai/v1/responses", [], json.dumps(create).encode()
    )
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line[:6] == "data: "]
    done = [e["response"]["output"][0]["content"][0]["text"] for e in events[-1:]]
    return [text, models, status, done]


@SDK_GENERATORS
async def test_openai_chat_a_pass_through_and_a_websocket_response_are_served(
    nursery: trio.Nursery,
) -> None:
    replies = [
        chat_text("Hello there"),
        Reply.json({"data": [{"id": "gpt-x"}]}),
        responses_stream("resp_1", [message_item("msg_1", "Hi on a socket")]),
    ]
    fixture, answered = await record(nursery, replies, openai_session)
    recorded = ["Hello there", {"data": [{"id": "gpt-x"}]}, 200, ["Hi on a socket"]]
    assert answered == recorded
    assert [r.api for r in fixture.interceptions] == [
        "openai-chat",
        "openai-passthrough",
        "openai-responses",
    ]
    mock, url = await serve_client_side(nursery, fixture)
    assert await openai_session(url) == recorded
    assert [h.problems for h in mock.hits] == [[], [], []]


async def test_a_request_that_matches_nothing_gets_a_400_in_the_providers_shape(
    nursery: trio.Nursery,
) -> None:
    fixture, _ = await record(nursery, WEATHER_SESSION, anthropic_session)
    mock, url = await serve_client_side(nursery, fixture)
    body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "bye"}]}
    async with httpx.AsyncClient() as http:
        anthropic_miss = await http.post(url + "/anthropic/v1/messages", json=body)
        openai_miss = await http.post(url + "/openai/v1/chat/completions", json=body)
    assert anthropic_miss.status_code == 400
    error = anthropic_miss.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "closest recorded request: interception #2" in error["message"]
    assert "'bye'" in error["message"]
    assert openai_miss.status_code == 400
    assert openai_miss.json()["error"]["code"] == "fixture_mismatch"  # OpenAI's shape
    assert mock.remaining == 2  # a miss uses nothing up


async def test_the_mock_command_serves_the_client_side_and_the_upstream_side_on_a_flag(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fixture, _ = await record(nursery, WEATHER_SESSION, anthropic_session)
    path = tmp_path / "session.jsonl"
    path.write_text(dump_fixture(fixture))
    proc, url = await start_cli("mock", str(path), "--timing", "fast", "--log-level", "warning")
    try:
        assert await anthropic_session(url) == ["Let me check.", "Sunny in Paris.", "Hello!"]
    finally:
        await stop_cli(proc)

    proc, url = await start_cli("mock", str(path), "--upstream-side", "--timing", "fast")
    try:
        first = fixture.interceptions[0].upstream[0].request_body
        async with httpx.AsyncClient() as http:
            answer = await http.post(url + "/v1/messages", json=first)
    finally:
        await stop_cli(proc)
    assert answer.status_code == 200
    assert "bmcp_weather" in answer.text  # the upstream's own turn, injected call and all


UPLOAD_SIZE = 40 * 1024 * 1024


def upload_body() -> bytes:
    """A 40 MiB multipart upload, as a file upload through the pass-through sends it."""
    head = b'--b\r\ncontent-disposition: form-data; name="file"; filename="f.jsonl"\r\n\r\n'
    return head + b"x" * UPLOAD_SIZE + b"\r\n--b--\r\n"


async def test_a_40_mib_upload_recorded_through_serve_replays_and_mocks(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """serve streams a pass-through body past its --max-body-size; replay and mock take
    their limit from the recording, so what was recorded plays back."""
    upstream = ScriptedUpstream([Reply.json({"id": "file-1", "object": "file"})])
    upstream_server = Server(upstream, ServerConfig(max_body_size=2 * UPLOAD_SIZE))
    host, port = await nursery.start(upstream_server.serve_tcp, "127.0.0.1", 0)
    options = ServeOptions(openai_base_url=f"http://{host}:{port}/v1")
    path = tmp_path / "upload.jsonl"
    writer = open_recorder(path, options)
    app = build_app(options, tools=ToolSet(), recorder=writer)
    _, proxy_url = await start_server(nursery, app)
    body = upload_body()
    headers = {"content-type": "multipart/form-data; boundary=b"}
    async with httpx.AsyncClient(timeout=60) as http:
        sent = await http.post(proxy_url + "/openai/v1/files", content=body, headers=headers)
    await app.env.client.aclose()
    writer.close()
    assert sent.status_code == 200
    assert len(upstream.seen[0].body) == len(body) > ServerConfig.max_body_size

    fixture = load_fixture(path)
    assert body_limit([fixture], ServerConfig.max_body_size) > len(body)
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [("match", [])]

    mock = MockUpstream([fixture], "fast", side="client")
    mock_server = Server(mock.app, ServerConfig(max_body_size=body_limit([fixture], 0)))
    mhost, mport = await nursery.start(mock_server.serve_tcp, "127.0.0.1", 0)
    async with httpx.AsyncClient(timeout=60) as http:
        mocked = await http.post(
            f"http://{mhost}:{mport}/openai/v1/files", content=body, headers=headers
        )
    assert (mocked.status_code, mocked.json()) == (200, {"id": "file-1", "object": "file"})


async def test_max_body_size_sets_the_replay_limit(tmp_path: Path) -> None:
    """--max-body-size overrides the limit taken from the recording: below the recorded
    bodies, the replayed request is refused (413) and the replay says so."""
    (fixture,) = load_builtin("anthropic/simple")
    path = tmp_path / "simple.jsonl"
    path.write_text(dump_fixture(fixture))
    assert (await run_cli("replay", str(path))).returncode == 0
    done = await run_cli("replay", "--max-body-size", "64B", str(path))
    out = " ".join(done.stdout.decode().split())
    assert done.returncode == 1, out
    assert "expected 200, got 413" in out


async def test_a_session_with_mcp_tools_is_served_without_the_server(tmp_path: Path) -> None:
    """Recorded with an MCP server behind the proxy's loop; served to the same SDK call with
    the server stopped, no tools file and no key: the answer the client got, and no call."""
    log = tmp_path / "calls.jsonl"
    tools = write_tools(tmp_path / "tools.toml", stdio_entry("wx", log))
    path = tmp_path / "session.jsonl"
    async with trio.open_nursery() as servers:
        s = await mcp_stack(
            servers,
            [tool_turn("bmcp_wx_forecast"), FINAL],
            tools,
            recorder=open_recorder(path, ServeOptions()),
        )
        recorded = await ask(s)
        servers.cancel_scope.cancel()  # the MCP server stops here
    assert [c["tool"] for c in calls(log)] == ["forecast"]

    async with trio.open_nursery() as nursery:
        _, url = await serve_client_side(nursery, load_fixture(path))
        client = anthropic.AsyncAnthropic(base_url=url + "/anthropic", api_key="x", max_retries=0)
        async with client.messages.stream(model="claude-test", max_tokens=50, messages=HELLO) as st:
            mocked = await st.get_final_message()
        await client.close()
        nursery.cancel_scope.cancel()
    assert [b.model_dump() for b in mocked.content] == [b.model_dump() for b in recorded.content]
    assert len(calls(log)) == 1  # the mock called no MCP server
