"""No silent skips. A client that hangs up right after its final event has its whole
answer: the interception is logged and recorded ``ok`` (and so replayed), not
``cancelled``. An interception a replay cannot check is counted, named, and fails it.

Each upstream sends its last event and then stays silent without ending its body, so the
proxy is still reading the upstream when the client leaves: without the rule, the
client's leaving cancels the handler and the record says ``cancelled``.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from aibridge_cli.config import BridgeConfig, ServeOptions
from aibridge_cli.errors import ClientDisconnected
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.headers import Headers
from aibridge_cli.interception import Interception
from aibridge_cli.proxy.bridge import ClientStream
from aibridge_cli.proxy.routes import ANTHROPIC
from aibridge_cli.proxy.run import build_app
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import Fixture, dump_fixture, parse_fixture
from aibridge_cli.sessions.mock import unserved
from aibridge_cli.sessions.replay import replay_fixture
from aibridge_cli.tools import ToolSet

from .anthropic_script import message_end, message_start, stream, text_block
from .cli_process import run_cli
from .conftest import start_server
from .openai_scripts import chat_text, message_item, responses_stream
from .rawhttp import RawClient


def silent_after_last_event(reply: Reply) -> Reply:
    """``reply``'s chunks, then the upstream neither sends nor ends its body."""
    return Reply(
        reply.status, reply.headers, reply.chunks, fault="stall", fault_at=len(reply.chunks)
    )


ANTHROPIC_BODY = {
    "model": "m",
    "max_tokens": 5,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
CHAT_BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES_BODY = {"model": "m", "stream": True, "input": "hi"}
CASES = [
    (
        "/anthropic/v1/messages",
        ANTHROPIC_BODY,
        stream(message_start(), text_block(0, "Hello"), message_end("end_turn", 2)),
        "event: message_stop",
    ),
    ("/openai/v1/chat/completions", CHAT_BODY, chat_text("Hello"), "data: [DONE]"),
    (
        "/openai/v1/responses",
        RESPONSES_BODY,
        responses_stream("resp_1", [message_item("msg_1", "Hello")]),
        "event: response.completed",
    ),
]


async def hang_up_after(url: str, path: str, body: dict[str, Any], last: str) -> list[str]:
    """Stream ``body`` and close the socket as soon as a line starting with ``last`` is in."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    client = RawClient(stream)
    headers = [("content-type", "application/json"), ("x-api-key", "sk-client-0000")]
    await client.send_request("POST", path, json.dumps(body).encode(), headers)
    received = b""
    async with stream:
        while f"\n{last}".encode() not in b"\n" + received:
            data = await stream.receive_some(65536)
            assert data, received
            received += data
    return received.decode().split("\n")


async def leave_after(
    nursery: trio.Nursery, reply: Reply, path: str, body: dict[str, Any], last: str
) -> tuple[list[str], Interception]:
    """A proxy in front of ``reply``; a client that leaves on
    ``last``: what it read, and the interception as the proxy recorded it."""
    _, upstream_url = await start_server(nursery, ScriptedUpstream([reply]))
    records: list[Interception] = []
    done = trio.Event()

    def recorder(record: Interception) -> None:
        records.append(record)
        done.set()

    app = build_app(
        ServeOptions(anthropic_base_url=upstream_url, openai_base_url=upstream_url + "/v1"),
        tools=ToolSet(),
        recorder=recorder,
    )
    _, proxy_url = await start_server(nursery, app)
    lines = await hang_up_after(proxy_url, path, body, last)
    with trio.fail_after(10):
        await done.wait()
    await app.env.client.aclose()
    (record,) = records
    return lines, record


@pytest.mark.parametrize(("path", "body", "reply", "last"), CASES)
async def test_a_client_leaving_after_its_final_event_is_an_ok_interception(
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
    reply: Reply,
    last: str,
) -> None:
    # Chat's [DONE] is the proxy's own, sent once the upstream ends: that upstream ends.
    silent = reply if "chat" in path else silent_after_last_event(reply)
    caplog.set_level(logging.INFO, "aibridge.requests")
    lines, record = await leave_after(nursery, silent, path, body, last)
    assert any(line.startswith(last) for line in lines)
    assert record.outcome == "ok"
    logged = [r for r in caplog.records if r.name == "aibridge.requests"]
    assert [(r.levelname, "cancelled" in r.getMessage()) for r in logged] == [("INFO", False)]

    # recorded as ok, it is replayed and checked: nothing skipped
    fixture = parse_fixture(dump_fixture(Fixture("<mem>", [record], ["#1"])))
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [("match", [])]


async def test_a_client_leaving_mid_stream_is_still_cancelled(nursery: trio.Nursery) -> None:
    """The control: before the final event, leaving cuts the answer short."""
    reply = stream(message_start(), text_block(0, "Hello"), message_end("end_turn", 2))
    cut = Reply(reply.status, reply.headers, reply.chunks[:2], fault="stall", fault_at=2)
    path, last = "/anthropic/v1/messages", "event: content_block_start"
    _, record = await leave_after(nursery, cut, path, ANTHROPIC_BODY, last)
    assert record.outcome == "cancelled"


async def test_replay_names_an_interception_it_did_not_check_and_fails(tmp_path: Path) -> None:
    (fixture,) = load_builtin("anthropic/simple")
    cut = copy.deepcopy(fixture.interceptions[0])
    cut.outcome = "cancelled"
    both = Fixture(str(tmp_path / "f.jsonl"), [fixture.interceptions[0], cut], ["whole", "cut"])
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(both))
    # the mock serves the rest and says which it leaves out
    assert unserved(both) == [f"{path}: interception cut not served (recorded outcome 'cancelled')"]

    done = await run_cli("replay", str(path))
    out = " ".join(done.stdout.decode().split())
    assert done.returncode == 1, out
    assert "cut: not checked: recorded outcome 'cancelled'" in out
    assert f"0/1 fixtures match; 1 interception(s) not checked: {path} cut" in out
    assert "(--allow-skips to accept)" in out

    done = await run_cli("replay", "--json", str(path))
    (report,) = json.loads(done.stdout)
    assert (done.returncode, report["ok"], report["skipped"]) == (1, False, 1)
    assert [i["status"] for i in report["interceptions"]] == ["match", "skipped"]

    done = await run_cli("replay", "--allow-skips", str(path))
    out = " ".join(done.stdout.decode().split())
    assert done.returncode == 0, out
    assert "1/1 fixtures match; 1 interception(s) not checked" in out
    assert "(allowed by --allow-skips)" in out


class GoneClient:
    """A ``ResponseSink`` whose client has left: every write fails."""

    started = False

    async def start(self, status: int, headers: Headers, data: bytes = b"") -> None:
        raise ClientDisconnected("client went away")

    async def send(self, data: bytes) -> None:
        raise ClientDisconnected("client went away")

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        raise ClientDisconnected("client went away")

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_final_frames_that_were_not_written_are_not_delivered() -> None:
    """The frames that end the response count only once written: a failed write leaves
    nothing queued, and still the client did not get its answer."""
    delivered: list[bool] = []
    client = ClientStream(
        ANTHROPIC, GoneClient(), BridgeConfig(), delivered=lambda: delivered.append(True)
    )
    await client.put([b"event: message_stop\ndata: {}\n\n"])
    with pytest.raises(ClientDisconnected):
        await client.relay()
    assert client.queued_bytes == 0
    client.end_here()
    assert delivered == []
