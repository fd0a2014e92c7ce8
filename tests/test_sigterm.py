"""SIGTERM during streams: in-flight streams finish within the grace period, later ones are
cut at its end with an SSE error event, and the recording holds one complete line per
interception."""

from __future__ import annotations

import json
import os
import signal
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions, ServerConfig
from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.proxy.run import build_app, serve_proxy
from aibridge_cli.sessions.recording import FixtureWriter, load_fixture
from aibridge_cli.tools import ToolSet

from .anthropic_script import message_end, message_start, stream, text_block
from .conftest import start_server
from .test_anthropic_e2e import HELLO, K0, parse_sse_strictly
from .test_load_faults import settle

SLOW = stream(
    message_start(),
    text_block(0, "a", "b", "c", "d"),
    message_end("end_turn", 4),
    delays=[0, 0, 1, 1, 1, 1, 0, 0, 0],
)  # 4 s of deltas, a second apart
STUCK = stream(message_start(), text_block(0, "a"), fault="stall", fault_at=3)


def _options(upstream_url: str) -> ServeOptions:
    return ServeOptions(
        host="127.0.0.1",
        port=0,
        anthropic_base_url=upstream_url,
        anthropic_keys=[K0],
        server=ServerConfig(grace_period=10.0),
    )


async def _post(url: str, results: dict[str, httpx.Response | Exception], name: str) -> None:
    """One streaming request; its response, or the error, in ``results[name]``."""
    body = {"model": "claude-test", "max_tokens": 9, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient(timeout=1000) as http:
        try:
            results[name] = await http.post(url, json=body)
        except httpx.HTTPError as exc:
            results[name] = exc


async def test_sigterm_lets_streams_finish_within_the_grace_and_records_them_whole(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    upstream = ScriptedUpstream([SLOW, STUCK])
    upstream_server, upstream_url = await start_server(nursery, upstream)
    options = _options(upstream_url)
    recording = tmp_path / "run.jsonl"
    writer = FixtureWriter(recording, secrets=[K0])
    app = build_app(options, tools=ToolSet(), recorder=writer)
    host, port = await nursery.start(
        lambda task_status: serve_proxy(app, options, announce=False, task_status=task_status)
    )
    url = f"http://{host}:{port}/anthropic/v1/messages"
    results: dict[str, httpx.Response | Exception] = {}
    post = partial(_post, url, results)

    nursery.start_soon(post, "slow")
    await settle(lambda: upstream.open_responses == 1)
    nursery.start_soon(post, "stuck")
    await settle(lambda: upstream.open_responses == 2)
    await trio.testing.wait_all_tasks_blocked()
    # the proxy's signal receiver is in place, or this would end the test run
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    sigterm_at = trio.current_time()
    os.kill(os.getpid(), signal.SIGTERM)

    await settle(lambda: len(results) == 2, seconds=60)
    slow = results["slow"]
    assert isinstance(slow, httpx.Response)
    assert slow.status_code == 200
    assert [e.event for e in parse_sse_strictly(slow.content)][-1] == "message_stop"
    stuck = results["stuck"]  # cut at the end of the grace, told why in its own shape
    assert isinstance(stuck, httpx.Response)
    events = parse_sse_strictly(stuck.content)
    assert events[-1].event == "error"
    assert json.loads(events[-1].data) == {
        "type": "error",
        "error": {"type": "api_error", "message": "proxy shutting down"},
    }
    assert trio.current_time() - sigterm_at == pytest.approx(10.0, abs=0.1)

    writer.close()
    fixture = load_fixture(recording)
    outcomes = sorted(i.outcome for i in fixture.interceptions)
    assert outcomes == ["cancelled", "ok"]
    lines = recording.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # whole lines only
    assert K0 not in recording.read_text()
    upstream_server.shutdown()


async def test_a_second_signal_cuts_at_once_and_cut_streams_still_get_their_error_event(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    upstream = ScriptedUpstream([SLOW, STUCK])
    upstream_server, upstream_url = await start_server(nursery, upstream)
    options = _options(upstream_url)
    app = build_app(options, tools=ToolSet())
    stopped = trio.Event()

    async def serve(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        await serve_proxy(app, options, announce=False, task_status=task_status)
        stopped.set()  # returned: no KeyboardInterrupt out of the second signal

    host, port = await nursery.start(serve)
    url = f"http://{host}:{port}/anthropic/v1/messages"
    results: dict[str, httpx.Response | Exception] = {}
    post = partial(_post, url, results)

    nursery.start_soon(post, "slow")
    nursery.start_soon(post, "stuck")
    await settle(lambda: upstream.open_responses == 2)
    await trio.testing.wait_all_tasks_blocked()
    os.kill(os.getpid(), signal.SIGTERM)
    await trio.sleep(1.0)  # within the grace period: both still running
    second_at = trio.current_time()
    os.kill(os.getpid(), signal.SIGINT)

    await settle(lambda: len(results) == 2 and stopped.is_set(), seconds=60)
    assert trio.current_time() - second_at < 0.5  # not the rest of the grace period
    for name in ("slow", "stuck"):  # both cut, both told why in their own shape
        response = results[name]
        assert isinstance(response, httpx.Response), response
        events = parse_sse_strictly(response.content)
        assert events[-1].event == "error"
        assert json.loads(events[-1].data)["error"]["message"] == "proxy shutting down"
    upstream_server.shutdown()
