"""``serve --chaos`` over the Responses API's WebSocket mode (Codex CLI's built-in
provider): the official SDK's ``responses.connect()`` gets the faults at a message."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy.chaos import parse_spec
from aibridge_cli.sessions.recording import load_fixture

from .cli_process import run_cli, start_cli, stop_cli
from .conftest import Stack, StackFactory, start_server
from .openai_scripts import function_item, message_item, responses_stream
from .test_openai_responses_websocket import KEYS, _run_async, converse, create, text_of

pytest.importorskip("websockets", reason="responses.connect() needs openai[realtime]")


def chaos(s: Stack, spec: str) -> None:
    s.app.env.chaos.add(parse_spec(spec), trio.current_time())


def hello(n: int = 1) -> list[Reply]:
    return [responses_stream(f"resp_{i}", [message_item("msg_1", "Hello.")]) for i in range(n)]


async def test_a_status_fault_is_openais_error_message_with_its_status(
    stack: StackFactory,
) -> None:
    s = await stack(hello())
    chaos(s, "529,first=1")
    failed, answered = await converse(s, _run_async, create(), create("again?"))
    assert failed == [
        {
            "type": "error",
            "status": 503,
            "error": {
                "message": "The server is overloaded or not ready yet.",
                "type": "server_error",
                "param": None,
                "code": None,
            },
        }
    ]
    assert text_of(answered) == "Hello."
    assert len(s.upstream.seen) == 1  # the struck response.create never went up


async def test_a_429_on_the_socket_fails_over_to_the_next_key(stack: StackFactory) -> None:
    s = await stack(hello(), openai_keys=KEYS)
    chaos(s, "429,retry-after=30,first=1")
    (events,) = await converse(s, _run_async, create())
    assert text_of(events) == "Hello."
    assert [r.header("authorization") for r in s.upstream.seen] == [f"Bearer {KEYS[1]}"]
    states = [k["state"] for k in s.app.upstreams["openai"].pool.snapshot(trio.current_time())]
    assert states == ["cooling", "valid"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("error-event@2", "had an error while processing"),
        ("reset-in-body@tool-args", "upstream closed the WebSocket mid-response (1006)"),
        ("early-end@1", "upstream closed the WebSocket mid-response (1000)"),
        ("malformed-sse@1", "not JSON"),
    ],
)
async def test_body_faults_end_the_response_in_an_error_message(
    stack: StackFactory, spec: str, says: str
) -> None:
    s = await stack([responses_stream("resp_1", [function_item("read_file")])])
    chaos(s, spec)
    (events,) = await converse(s, _run_async, create())
    assert events[-1]["type"] == "error"
    assert says in str(events[-1])
    assert "response.completed" not in [e["type"] for e in events]
    assert s.app.env.chaos.status()["rules"][0]["struck"] == 1


async def test_a_struck_socket_session_is_recorded_and_replays_to_a_match(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = ScriptedUpstream(
        [responses_stream(f"resp_{i}", [message_item("msg_1", "Hello.")]) for i in range(3)]
    )
    _, upstream_url = await start_server(nursery, upstream)
    fixture = tmp_path / "ws.jsonl"
    proc, proxy = await start_cli(
        "serve", "--port", "0", "--openai-base-url", upstream_url + "/v1",
        "--record", str(fixture), "--chaos", "529,first=1", "--chaos", "error-event@2,every=2",
    )  # fmt: skip
    try:
        url = proxy + "/openai/v1"
        creates = [create(), create("again?"), create("once more?")]
        answers = await trio.to_thread.run_sync(_run_async, url, creates)
    finally:
        await stop_cli(proc)
    assert [a[-1]["type"] for a in answers] == ["error", "error", "response.completed"]
    # the third gets its own response, not the rest of the one the error event cut
    assert answers[2][0]["type"] == "response.created"
    assert answers[2][-1]["response"]["id"] == "resp_1"
    notes = [
        ex.chaos["kind"]
        for r in load_fixture(fixture).interceptions
        for ex in r.upstream
        if ex.chaos
    ]
    assert notes == ["529", "error-event"]
    replayed = await run_cli("replay", str(fixture))
    assert replayed.returncode == 0, replayed.stdout.decode()[-3000:]
    fuzzed = await run_cli(
        "fuzz", str(fixture), "--iterations", "40", "--seed", "2", cwd=str(tmp_path)
    )
    assert fuzzed.returncode == 0, fuzzed.stdout.decode()[-3000:]
