"""End to end over real sockets: serve --record with the anthropic SDK, replay, kill, record."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import anthropic
import httpx
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.sessions.recording import load_fixture
from aibridge_cli.sessions.scripted_sessions import stop_servers

from .anthropic_script import (
    message,
    message_end,
    message_start,
    stream,
    text_block,
    tool_block,
)
from .cli_process import run_cli, start_cli, stop_cli
from .conftest import start_server

KEYS = ["sk-ant-api03-firstsecretkey-AAAA1111", "sk-ant-api03-secondsecretkey-BBBB2222"]
CLIENT_KEY = "sk-ant-api03-clientsecret-CCCC3333"
TOOLS = textwrap.dedent(
    """
    [[tool]]
    name = "bmcp_weather"
    description = "Current weather for a city"
    input_schema = { type = "object", properties = { city = { type = "string" } } }
    result = "sunny, 21 C"
    """
)


RATE_LIMITED = Reply.json(
    {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
    429,
    [("retry-after", "30")],
)


async def start_recording_proxy(
    fixture: Path, upstream_url: str, *extra: str
) -> tuple[trio.Process, str]:
    """``aibridge serve --record`` in a subprocess, in front of ``upstream_url``."""
    args = ["--port", "0", "--record", str(fixture), "--anthropic-base-url", upstream_url]
    return await start_cli("serve", *args, "--log-level", "warning", *extra)


# A streamed turn calling the injected tool, a 429 on the first key, the answer, then a
# blocking turn: what the anthropic SDK session below (and test_client_mock's) asks for.
WEATHER_SESSION = [
    stream(
        message_start(),
        text_block(0, "Let me ", "check."),
        tool_block(1, "bmcp_weather", {"city": "Paris"}),
        message_end("tool_use", 7),
    ),
    RATE_LIMITED,
    stream(
        message_start("msg_2"),
        text_block(0, "Sunny ", "in Paris."),
        message_end("end_turn", 7),
    ),
    message([{"type": "text", "text": "Hello!"}], "end_turn", 2),
]


async def record_with_sdk(tmp_path: Path, nursery: trio.Nursery) -> Path:
    upstream = ScriptedUpstream(list(WEATHER_SESSION))
    upstream_server, upstream_url = await start_server(nursery, upstream)
    (tmp_path / "tools.toml").write_text(TOOLS)
    fixture = tmp_path / "session.jsonl"
    proc, url = await start_recording_proxy(
        fixture,
        upstream_url,
        "--anthropic-key",
        KEYS[0],
        "--anthropic-key",
        KEYS[1],
        "--tools",
        str(tmp_path / "tools.toml"),
    )
    try:
        client = anthropic.AsyncAnthropic(
            base_url=url + "/anthropic", api_key=CLIENT_KEY, max_retries=0
        )
        async with client.messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "Weather in Paris?"}]
        ) as sdk_stream:
            final = await sdk_stream.get_final_message()
        assert [b.text for b in final.content if b.type == "text"] == [
            "Let me check.",
            "Sunny in Paris.",
        ]
        answer = await client.messages.create(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.content[0].type == "text"
        await client.close()
    finally:
        assert await stop_cli(proc) == 0
        await stop_servers(upstream_server)
    return fixture


async def test_record_with_the_sdk_then_replay_matches_and_a_changed_chunk_does_not(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    fixture = await record_with_sdk(tmp_path, nursery)
    loaded = load_fixture(fixture)
    assert len(loaded.interceptions) == 2
    assert [e.response.status for e in loaded.interceptions[0].upstream] == [200, 429, 200]
    assert loaded.interceptions[0].tool_calls[0].result == "sunny, 21 C"

    done = await run_cli("replay", str(fixture))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"1/1 fixtures match" in done.stdout

    changed = tmp_path / "changed.jsonl"
    text = fixture.read_text()
    # the upstream's chunk (block 0 of its second message; the client saw it as block 1)
    sunny = '\\"index\\":0,\\"delta\\":{\\"type\\":\\"text_delta\\",\\"text\\":\\"Sunny \\"'
    assert text.count(sunny) == 1
    changed.write_text(text.replace(sunny, sunny.replace("Sunny", "Rainy")))
    done = await run_cli("replay", str(changed))
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert "mismatch" in out
    assert "(content_block_delta).data.delta.text: expected 'Sunny ', got 'Rainy '" in out

    done = await run_cli("replay", "--json", str(changed))
    report = json.loads(done.stdout)
    assert report[0]["ok"] is False
    assert report[0]["interceptions"][1]["status"] == "match"


async def test_a_recorded_file_holds_no_key(tmp_path: Path, nursery: trio.Nursery) -> None:
    fixture = await record_with_sdk(tmp_path, nursery)
    data = fixture.read_bytes()
    for secret in [*KEYS, CLIENT_KEY]:
        assert secret.encode() not in data
        assert secret[8:-4].encode() not in data  # not even the middle of a key
    assert b"sk-a\xe2\x80\xa61111" in data  # masked keys are kept: the failover pattern
    assert b"sk-a\xe2\x80\xa62222" in data


async def test_sigkill_mid_stream_leaves_a_loadable_file(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    upstream = ScriptedUpstream(
        [
            stream(message_start(), text_block(0, "Complete."), message_end("end_turn", 2)),
            stream(
                message_start("msg_2"),
                text_block(0, "cut ", "here"),
                message_end("end_turn", 2),
                fault="stall",
                fault_at=3,
            ),
        ]
    )
    upstream_server, upstream_url = await start_server(nursery, upstream)
    fixture = tmp_path / "killed.jsonl"
    proc, url = await start_recording_proxy(fixture, upstream_url, "--anthropic-key", KEYS[0])
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.post(url + "/anthropic/v1/messages", json=body)
            assert b"Complete." in first.content
            seen = bytearray()

            async def read_until_killed() -> None:
                async with client.stream(
                    "POST", url + "/anthropic/v1/messages", json=body
                ) as response:
                    async for chunk in response.aiter_raw():
                        seen.extend(chunk)
                        if b"cut " in seen and proc.returncode is None:
                            os.kill(proc.pid, signal.SIGKILL)
                            assert await proc.wait() == -signal.SIGKILL

            with pytest.raises(httpx.RemoteProtocolError):
                await read_until_killed()
            assert b"cut " in seen
    finally:
        if proc.stdout is not None:
            await proc.stdout.aclose()
        await stop_servers(upstream_server)
    loaded = load_fixture(fixture)
    assert (len(loaded.interceptions), loaded.warnings) == (1, [])
    assert b"Complete." in loaded.interceptions[0].response.body

    with fixture.open("a") as f:  # a crash in the middle of a write
        f.write(fixture.read_text().splitlines()[1][:100])
    loaded = load_fixture(fixture)
    assert len(loaded.interceptions) == 1
    assert loaded.warnings == [f"{fixture}:3: truncated last line skipped (a crash mid-write?)"]
    done = await run_cli("replay", str(fixture))
    assert done.returncode == 0, done.stdout.decode()
    assert b"truncated last line skipped" in done.stdout


async def test_record_runs_a_script_using_the_sdk_and_exits_with_its_status(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    upstream = ScriptedUpstream(
        [stream(message_start(), text_block(0, "Hi from ", "upstream"), message_end("end_turn", 2))]
    )
    upstream_server, upstream_url = await start_server(nursery, upstream)
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
        import sys, anthropic
        client = anthropic.Anthropic(api_key={CLIENT_KEY!r}, max_retries=0)
        with client.messages.stream(model="m", max_tokens=5,
                                    messages=[{{"role": "user", "content": "hi"}}]) as stream:
            print("".join(stream.text_stream))
        sys.exit(3)
        """
        )
    )
    fixture = tmp_path / "f.jsonl"
    try:
        done = await run_cli(
            "record",
            "-o",
            str(fixture),
            "--anthropic-base-url",
            upstream_url,
            "--anthropic-key",
            KEYS[0],
            "--",
            sys.executable,
            str(script),
        )
    finally:
        await stop_servers(upstream_server)
    assert done.returncode == 3, done.stderr.decode()
    assert done.stdout.decode().strip() == "Hi from upstream"
    loaded = load_fixture(fixture)
    assert len(loaded.interceptions) == 1
    assert loaded.interceptions[0].request.path == "/anthropic/v1/messages"
    assert KEYS[0].encode() not in fixture.read_bytes()
    assert (await run_cli("replay", str(fixture))).returncode == 0


async def test_mock_upstream_side_serves_the_recorded_exchanges(tmp_path: Path) -> None:
    from aibridge_cli.sessions.builtin import load_builtin
    from aibridge_cli.sessions.fixture import dump_fixture

    (fixture,) = load_builtin("anthropic/failover-after-429")
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(fixture))
    proc, url = await start_cli("mock", str(path), "--upstream-side", "--timing", "fast")
    try:
        body = fixture.interceptions[0].upstream[0].request_body
        async with httpx.AsyncClient() as client:
            first = await client.post(url + "/v1/messages", json=body)
            second = await client.post(url + "/v1/messages", json=body)
            third = await client.post(url + "/v1/messages", json=body)
    finally:
        await stop_cli(proc)
    assert (first.status_code, first.headers["retry-after"]) == (429, "30")
    assert second.status_code == 200
    assert b"key 2." in second.content
    assert third.status_code == 400
    assert "no recorded exchange left" in third.json()["error"]["message"]


async def test_replay_reports_fixture_errors_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"aibridge_fixture": 1}\n{"api": 3}\n')
    done = await run_cli("replay", str(bad))
    assert done.returncode == 2
    assert f"{bad}:2: field 'api' has the wrong type" in " ".join(done.stderr.decode().split())
    assert (await run_cli("replay")).returncode == 2
    assert (await run_cli("replay", "--builtin", "no-such")).returncode == 2


async def test_replay_against_a_target_proxy_pointed_at_the_mock_port() -> None:
    import socket

    with socket.socket() as probe:  # a free port for the mock, known before the proxy starts
        probe.bind(("127.0.0.1", 0))
        mock_port = probe.getsockname()[1]
    proc, url = await start_cli(
        "serve",
        "--port",
        "0",
        "--anthropic-base-url",
        f"http://127.0.0.1:{mock_port}",
        "--anthropic-key",
        KEYS[0],
        "--anthropic-key",
        KEYS[1],
        "--log-level",
        "warning",
    )
    try:
        done = await run_cli(
            "replay",
            "--builtin",
            "anthropic/simple",
            "anthropic/failover-after-429",
            "--target",
            url,
            "--upstream-port",
            str(mock_port),
        )
    finally:
        await stop_cli(proc)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"2/2 fixtures match" in done.stdout


async def test_record_of_a_missing_command_says_so_and_exits_127(tmp_path: Path) -> None:
    done = await run_cli("record", "-o", str(tmp_path / "f.jsonl"), "--", "/no/such/command")
    assert done.returncode == 127
    assert "cannot run /no/such/command" in " ".join(done.stderr.decode().split())


async def test_every_built_in_fixture_replays_to_a_match() -> None:
    """The README's first command: a change that alters what clients get (usage summed over
    the loop, say) must come with regenerated fixtures (scripts/make_builtin_fixtures.py)."""
    done = await run_cli("replay", "--builtin", "--json")
    results = json.loads(done.stdout)
    assert len(results) >= 28
    mismatched = [(r["fixture"], i) for r in results if not r["ok"] for i in r["interceptions"]]
    assert mismatched == []
    assert done.returncode == 0
