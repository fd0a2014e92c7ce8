"""The WebSocket route keeps the HTTP routes' promises: a pool key the upstream echoes
reaches the client masked, and every upstream handshake answer other than 101 becomes
one ``error`` event, with the upstream connection closed, never a client left waiting.
Real sockets: the proxy on loopback, websockets as the client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, SeenRequest
from aibridge_cli.proxy.run import build_app, proxy_guard
from aibridge_cli.tools import ToolSet

from .conftest import StackFactory, start_server
from .openai_scripts import openai_error_reply

pytest.importorskip("websockets", reason="the WebSocket client is websockets")

POOL = "sk-proj-ws-parity-0000SECRET"
CREATE = json.dumps({"type": "response.create", "model": "gpt-x", "input": "hi"})


async def _events(url: str, count: int, per_message: int = 1) -> list[list[dict[str, Any]]]:
    """Send ``count`` response.creates on one socket, reading ``per_message`` events each."""
    import websockets

    answers = []
    async with websockets.connect(url, max_size=None) as ws:
        for _ in range(count):
            await ws.send(CREATE)
            events = []
            for _ in range(per_message):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            answers.append(events)
    return answers


def exchange(url: str, count: int = 1, per_message: int = 1) -> Any:
    return trio.to_thread.run_sync(lambda: asyncio.run(_events(url, count, per_message)))


def ws_url(proxy_url: str) -> str:
    return proxy_url.replace("http://", "ws://") + "/openai/v1/responses"


def leaked(events: Any) -> bool:
    return "SECRET" in json.dumps(events)


async def test_a_refused_upgrade_echoing_the_key_is_masked(stack: StackFactory) -> None:
    echo = openai_error_reply(400, f"bad request for key {POOL}")
    sent: list[str | None] = []

    def refuse(seen: SeenRequest) -> Reply:
        sent.append(seen.header("authorization"))
        return echo

    s = await stack([], openai_keys=[POOL])
    s.upstream.refuse = refuse
    ((event,),) = await exchange(ws_url(s.proxy_url))
    assert sent == [f"Bearer {POOL}"]  # the key the echo holds is the one that went up
    assert (event["type"], event["status"]) == ("error", 400)
    assert not leaked(event)
    assert "sk-p…CRET" in event["error"]["message"]


@pytest.mark.parametrize("position", ["first", "mid-response"])
async def test_an_error_event_echoing_the_key_is_masked(stack: StackFactory, position: str) -> None:
    inner = {"type": "invalid_request_error", "message": f"key {POOL} may not do that"}
    error = {"type": "error", "status": 400, "error": inner}
    created = {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    messages = [created, error] if position == "mid-response" else [error]
    reply = Reply(101, [], [json.dumps(m).encode() for m in messages])
    s = await stack([reply], openai_keys=[POOL], tools=ToolSet())
    (events,) = await exchange(ws_url(s.proxy_url), per_message=len(messages))
    assert events[-1]["type"] == "error"
    assert not leaked(events)
    assert "sk-p…CRET" in events[-1]["error"]["message"]


class RawAnswer:
    """An upstream that answers every handshake with the same raw bytes, then waits for
    the proxy to close the connection; ``all_closed`` once ``expected`` were."""

    def __init__(self, answer: bytes, expected: int) -> None:
        self.answer = answer
        self.expected = expected
        self.closed = 0
        self.all_closed = trio.Event()

    async def serve(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        task_status.started(f"http://127.0.0.1:{port}")
        await trio.serve_listeners(self._answer, listeners)

    async def _answer(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(65536)
                if not data:
                    return
                head += data
            await stream.send_all(self.answer)
            try:
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            self.closed += 1
            if self.closed == self.expected:
                self.all_closed.set()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n<html>no length: read to close",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere/\r\n"
        b"content-length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["200", "200-until-close", "204", "301", "100"],
)
async def test_a_handshake_answered_other_than_101_is_one_error_event(
    nursery: trio.Nursery, answer: bytes
) -> None:
    upstream = RawAnswer(answer, expected=2)
    upstream_url = await nursery.start(upstream.serve)
    options = ServeOptions(openai_base_url=upstream_url + "/v1", openai_keys=[POOL])
    app = build_app(options, tools=ToolSet())
    proxy, proxy_url = await start_server(nursery, app, proxy_guard(options))
    first, second = await exchange(ws_url(proxy_url), count=2)
    status = answer.split(b" ")[1].decode()
    for (event,) in (first, second):  # one event each, and the socket still serves
        assert (event["type"], event["status"]) == ("error", 502)
        assert f"answered the WebSocket upgrade with {status}" in event["error"]["message"]
    with trio.fail_after(5):
        await upstream.all_closed.wait()  # each upstream connection was closed by the proxy
    await app.env.client.aclose()
    proxy.shutdown()
