"""The guard's flags on the real commands: ``serve`` beyond loopback, its token, ``mock``."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.sessions.fixture import dump_fixture

from .anthropic_script import message
from .cli_process import CLI, run_cli, start_cli, stop_cli
from .conftest import WATCH, start_server

POOL_KEY = "sk-ant-cli-guard-pool-key-0123456789-ABCD"
TOKEN = "aibridge-cli-guard-token-0123456789-EFGH"
BODY = {"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
HELLO = message([{"type": "text", "text": "hello"}], "end_turn", 1)


async def test_a_key_pool_on_every_interface_without_a_token_does_not_start() -> None:
    done = await run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--anthropic-key", "K")
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert lines == [
        "error: --host 0.0.0.0 is reachable from other machines and the key pool would be "
        "open to them: give --auth-token (or AIBRIDGE_AUTH_TOKEN) for clients to send, or "
        "--insecure-open if that is what you mean"
    ]
    assert done.stdout == b""


async def test_a_malformed_allow_list_does_not_start() -> None:
    done = await run_cli("serve", "--port", "0", "--allowed-host", "http://[box]")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: --allowed-host takes a host name, with :PORT if you like, not 'http://[box]'"
    ]


async def open_serve(*args: str, env: dict[str, str] | None = None) -> tuple[trio.Process, str]:
    """``aibridge serve --port 0 ARGS`` with stderr piped; its process and port."""
    process = await trio.lowlevel.open_process(
        [*CLI, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = b""
    with trio.fail_after(30):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"serve exited before listening: {line!r}"
            line += chunk
    match = re.fullmatch(rb"listening on http://\S+:(\d+)\n", line)
    assert match, line
    return process, match.group(1).decode()


async def stop_serve(process: trio.Process) -> str:
    """SIGTERM, then everything it wrote on stdout and stderr after the ready line."""
    assert process.stdout is not None
    assert process.stderr is not None
    process.terminate()
    with trio.fail_after(30):
        await process.wait()
        out = b"".join([chunk async for chunk in process.stdout])
        err = b"".join([chunk async for chunk in process.stderr])
    await process.stdout.aclose()
    await process.stderr.aclose()
    return (out + err).decode()


@pytest.mark.parametrize("given", ["flag", "env"])
async def test_beyond_loopback_the_token_is_required_and_never_leaves_the_guard(
    nursery: trio.Nursery, tmp_path: Path, given: str
) -> None:
    WATCH.note([TOKEN])
    upstream = ScriptedUpstream([HELLO])
    upstream_server, upstream_url = await start_server(nursery, upstream)
    recording = tmp_path / "f.jsonl"
    flag = ["--auth-token", TOKEN] if given == "flag" else []
    process, port = await open_serve(
        "--host",
        "0.0.0.0",
        "--anthropic-base-url",
        upstream_url,
        "--anthropic-key",
        POOL_KEY,
        "--allowed-host",
        "box.lan",
        "--record",
        str(recording),
        "--log-level",
        "debug",
        *flag,
        env={"AIBRIDGE_AUTH_TOKEN": TOKEN} if given == "env" else {},
    )
    url = f"http://127.0.0.1:{port}/anthropic/v1/messages"
    try:
        async with httpx.AsyncClient() as http:
            missing = await http.post(url, json=BODY)
            wrong = await http.post(url, json=BODY, headers={"x-api-key": "sk-ant-wrong-0000"})
            good = await http.post(url, json=BODY, headers={"x-api-key": TOKEN})
            named = await http.get(
                f"http://127.0.0.1:{port}/healthz",
                headers={"host": f"box.lan:{port}", "authorization": f"Bearer {TOKEN}"},
            )
            unnamed = await http.get(
                f"http://127.0.0.1:{port}/healthz",
                headers={"host": f"other.lan:{port}", "authorization": f"Bearer {TOKEN}"},
            )
    finally:
        log = await stop_serve(process)
        upstream_server.shutdown()
    assert (missing.status_code, wrong.status_code, good.status_code) == (401, 401, 200), log
    assert missing.json()["error"]["type"] == "authentication_error"
    assert (named.status_code, unnamed.status_code) == (200, 403)
    (seen,) = upstream.seen
    assert seen.header("x-api-key") == POOL_KEY
    assert TOKEN not in repr(seen)
    assert re.search(r"refused POST /anthropic/v1/messages from 127\.0\.0\.1:\d+: 401", log)
    assert TOKEN not in log
    assert TOKEN[8:-4] not in log
    recorded = recording.read_text()
    assert len(recorded.splitlines()) == 2  # the header line and the one admitted request
    assert TOKEN not in recorded
    assert TOKEN[8:-4] not in recorded


async def test_insecure_open_serves_a_pool_without_a_token_and_says_so() -> None:
    process, port = await open_serve(
        "--host", "0.0.0.0", "--anthropic-key", POOL_KEY, "--insecure-open"
    )
    try:
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        log = await stop_serve(process)
    assert health.status_code == 200
    assert "without a token (--insecure-open): anyone who can reach it spends your keys" in log


async def test_mock_checks_host_origin_and_json(tmp_path: Path) -> None:
    (fixture,) = load_builtin("anthropic/simple")
    path = tmp_path / "f.jsonl"
    path.write_text(dump_fixture(fixture))
    allowed = "http://localhost:3000"
    process, url = await start_cli(
        "mock", str(path), "--upstream-side", "--timing", "fast", "--allow-origin", allowed
    )
    body = json.dumps(fixture.interceptions[0].upstream[0].request_body)
    messages = url + "/v1/messages"
    json_type = {"content-type": "application/json"}
    try:
        async with httpx.AsyncClient() as http:
            evil_host = await http.post(
                messages, content=body, headers={**json_type, "host": "evil.example.com"}
            )
            evil_openai = await http.post(
                url + "/v1/chat/completions",
                content=body,
                headers={**json_type, "host": "evil.example.com"},
            )
            evil_origin = await http.post(
                messages, content=body, headers={**json_type, "origin": "https://evil.example"}
            )
            plain = await http.post(messages, content=body, headers={"content-type": "text/plain"})
            good = await http.post(messages, content=body, headers={**json_type, "origin": allowed})
    finally:
        await stop_cli(process)
    assert evil_host.status_code == 403
    assert evil_host.json()["error"]["type"] == "permission_error"
    assert evil_openai.status_code == 403
    assert set(evil_openai.json()["error"]) == {"message", "type", "param", "code"}
    assert evil_origin.status_code == 403
    assert plain.status_code == 415
    # Nothing refused used up the recorded exchange: the allowed page gets it.
    assert good.status_code == 200, good.text
    assert good.headers["access-control-allow-origin"] == allowed
