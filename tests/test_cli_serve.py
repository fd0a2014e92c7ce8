"""``aibridge serve`` as a real process: the ready line, a request, SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy.server import Server

SECRET = "sk-ant-cli-secret-key-0123456789-WXYZ"


async def _read_line(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


async def open_serve(*options: str, stderr: bool = False) -> trio.Process:
    """``aibridge serve --port 0`` with ``options``, as a child process."""
    command = [sys.executable, "-m", "aibridge_cli", "serve", "--port", "0", *options]
    return await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE if stderr else None
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_serve_announces_serves_and_stops_on_a_signal(stop: signal.Signals) -> None:
    process = await open_serve(
        "--anthropic-base-url", "http://127.0.0.1:9", "--anthropic-key", SECRET, stderr=True
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = b""
    try:
        with trio.fail_after(30):
            line = await _read_line(process.stdout)
        match = re.fullmatch(rb"listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        url = f"http://127.0.0.1:{int(match.group(1))}"
        async with httpx.AsyncClient() as client:
            health = await client.get(url + "/healthz")
            status = await client.get(url + "/aibridge/status")
            unreachable = await client.post(
                url + "/anthropic/v1/messages",
                json={"model": "m", "max_tokens": 5, "messages": []},
            )
        assert unreachable.status_code == 502
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert status.json()["providers"]["anthropic"]["keys"][0]["key"] == "sk-a…WXYZ"
        process.send_signal(stop)
        with trio.fail_after(30):
            code = await process.wait()
            rest = b"".join([chunk async for chunk in process.stdout])
            errors = b"".join([chunk async for chunk in process.stderr])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
    assert code == 0, errors.decode(errors="replace")
    assert rest == b""  # exactly one line on stdout
    log = errors.decode()
    assert re.search(r"GET /healthz 200 \d+ms", log), log
    # One line per request, however long, with route, status, duration, attempts, keys,
    # and for a failure its cause, as an error.
    assert re.search(
        r"\n\S+ ERROR +POST /anthropic/v1/messages 502 \d+ms attempts=1 keys=sk-a…WXYZ "
        r'error="upstream unreachable: [^"]+"\n',
        log,
    ), log
    assert re.search(rf"INFO +{stop.name}: shutting down; \d+ request\(s\) in flight", log), log
    assert log.endswith(" INFO    stopped\n"), log
    assert SECRET not in log
    assert SECRET[4:-4] not in log
    assert SECRET not in status.text


def test_serve_help_documents_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "TERM": "dumb"},
    )
    assert done.returncode == 0
    for option in (
        "--host",
        "--port",
        "--anthropic-base-url",
        "--anthropic-key",
        "--tools",
        "--stream-initiation",
        "--log-level",
        "--max-body-size",
        "--connect-timeout",
        "--read-timeout",
        "--grace-period",
        "--max-iterations",
    ):
        assert option in done.stdout, option
    assert "eager" in done.stdout
    assert "lazy" in done.stdout


def test_bad_tools_file_is_a_one_line_error(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "tools.toml"
    path.write_text("[[tool]]\nname = 'x'\n")
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "serve", "--port", "0", "--tools", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "TERM": "dumb"},
    )
    assert done.returncode == 2
    assert "exactly one of result, command, error" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


async def test_sigterm_past_the_grace_ends_the_stream_with_an_sse_error_event(
    nursery: trio.Nursery,
) -> None:
    # An upstream that starts a stream and then never finishes it.
    stalled = Reply.sse(
        [("message_start", {"type": "message_start", "message": {"usage": {}}})],
        fault="stall",
        fault_at=1,
    )
    upstream = ScriptedUpstream([stalled])
    upstream_server = Server(upstream)
    host, port = await nursery.start(upstream_server.serve_tcp, "127.0.0.1", 0)
    process = await open_serve(
        "--anthropic-base-url", f"http://{host}:{port}", "--grace-period", "1", stderr=True
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        with trio.fail_after(30):
            line = await _read_line(process.stdout)
        url = line.decode().strip().removeprefix("listening on ")
        async with httpx.AsyncClient(timeout=30) as client:
            body = {
                "model": "m",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            async with client.stream("POST", url + "/anthropic/v1/messages", json=body) as response:
                assert response.status_code == 200
                chunks = response.aiter_raw()
                assert b"message_start" in await chunks.__anext__()
                process.send_signal(signal.SIGTERM)
                signalled = trio.current_time()
                rest = b"".join([chunk async for chunk in chunks])  # ends cleanly
                cut_after = trio.current_time() - signalled
        with trio.fail_after(30):
            code = await process.wait()
            log = b"".join([chunk async for chunk in process.stderr]).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
        upstream_server.shutdown()
    assert code == 0
    assert 0.9 < cut_after < 5
    # the client reads why its stream ended, as Anthropic would say it
    assert rest == (
        b"event: error\n"
        b'data: {"type":"error","error":{"type":"api_error","message":"proxy shutting down"}}\n\n'
    )
    assert re.search(r"WARNING POST /anthropic/v1/messages 200 \d+ms .*cancelled\n", log), log
    assert "stream cut at the end of the 1 s grace period; sent an error event" in log, log
