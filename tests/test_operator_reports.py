"""What the operator reads of a request: the log line of a stream that broke after its
200, each key's last status, a 400 for a malformed ``stream``; and the mock as an SDK
sees it (``stream`` left out, a wrong request that uses nothing up)."""

from __future__ import annotations

import logging

import anthropic
import httpx
import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.scripted_sessions import stop_servers
from aibridge_cli.tools import ToolSet

from .anthropic_script import message, message_start, stream, text_block
from .conftest import StackFactory

KEY = "sk-ant-api03-operator-reports-key-0001"
BODY = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_stream_that_breaks_after_its_200_is_logged_as_an_error_with_its_cause(
    stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broken = stream(message_start(), text_block(0, "a", "b"), fault="reset-in-body", fault_at=3)
    s = await stack([broken], keys=[KEY])
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            s.proxy_url + "/anthropic/v1/messages", json={**BODY, "stream": True}
        )
    assert response.status_code == 200
    assert b"event: error" in response.content
    (record,) = [r for r in caplog.records if r.name == "aibridge.requests"]
    assert record.levelno == logging.ERROR
    line = record.getMessage()
    assert line.startswith("POST /anthropic/v1/messages 200 ")
    assert 'error="upstream connection lost: ' in line, line  # was "200 59ms", no cause


async def test_status_shows_the_last_status_of_each_key_after_a_success(
    stack: StackFactory,
) -> None:
    s = await stack([message([{"type": "text", "text": "hi"}], "end_turn", 2)], keys=[KEY])
    async with httpx.AsyncClient() as client:
        before = (await client.get(s.proxy_url + "/aibridge/status")).json()
        answer = await client.post(s.proxy_url + "/anthropic/v1/messages", json=BODY)
        after = (await client.get(s.proxy_url + "/aibridge/status")).json()
    assert answer.status_code == 200
    assert before["providers"]["anthropic"]["keys"][0]["last_status"] is None
    assert after["providers"]["anthropic"]["keys"][0]["last_status"] == 200


@pytest.mark.parametrize("value", ["yes", 1, {}])
async def test_a_stream_field_that_is_not_a_boolean_is_a_400(
    stack: StackFactory, value: object
) -> None:
    s = await stack([])
    async with httpx.AsyncClient() as client:
        response = await client.post(
            s.proxy_url + "/anthropic/v1/messages", json={**BODY, "stream": value}
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "stream: must be true or false" in response.json()["error"]["message"]
    assert s.upstream.seen == []  # refused before any upstream request


async def test_the_mock_reads_a_missing_stream_as_false_and_a_mismatch_uses_nothing_up(
    nursery: trio.Nursery,
) -> None:
    (fixture,) = load_builtin("anthropic/simple")  # a streaming, then a blocking exchange
    mock = MockUpstream([fixture], "fast")
    server = Server(mock.app)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    client = anthropic.AsyncAnthropic(
        base_url=f"http://{host}:{port}", api_key="sk-ant-fake", max_retries=0
    )
    model, max_tokens = "claude-sonnet-4-5", 256
    hello: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Say hello."}]
    try:
        with pytest.raises(anthropic.BadRequestError, match="does not match the fixture"):
            await client.messages.create(
                model=model,
                max_tokens=max_tokens,
                messages=[{"role": "user", "content": "Say goodbye."}],
                stream=True,
            )
        # the streaming exchange is still there for the right request
        async with client.messages.stream(
            model=model, max_tokens=max_tokens, messages=hello
        ) as streamed:
            text = await streamed.get_final_text()
        assert text == "Hello, world!"
        # the SDK leaves ``stream`` out of a blocking request: recorded as false, it matches
        blocking = await client.messages.create(model=model, max_tokens=max_tokens, messages=hello)
        assert blocking.content[0].type == "text"
        assert blocking.content[0].text == "Hello, world!"
        assert mock.remaining == 0
    finally:
        await client.close()
        await stop_servers(server)


async def test_a_stream_cut_at_shutdown_ends_with_an_api_error_in_its_apis_shape() -> None:
    app = build_app(ServeOptions(), tools=ToolSet())
    async with app.env.client:
        frames = {
            path: app.stream_error_frame(path, "proxy shutting down")
            for path in (
                "/anthropic/v1/messages?beta=true",
                "/openai/v1/chat/completions",
                "/openai/v1/responses",
                "/anthropic/v1/models",
            )
        }
    anthropic_frame = frames["/anthropic/v1/messages?beta=true"]
    assert anthropic_frame is not None
    assert anthropic_frame.startswith(b"event: error\n")
    for path in ("/openai/v1/chat/completions", "/openai/v1/responses"):
        frame = frames[path]
        assert frame is not None
        assert b'"message":"proxy shutting down"' in frame
        assert b"api_error" in frame or b"server_error" in frame, frame
    assert frames["/anthropic/v1/models"] is None  # a pass-through's stream is not ours
