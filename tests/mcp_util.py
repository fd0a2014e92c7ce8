"""MCP servers for the tests (``mcp_servers/weather.py``, written with the ``mcp`` SDK) and a
proxy that runs them, as ``serve`` does, over real loopback sockets.

These tests run on the real clock: an MCP server is a real process, and under the autojump
clock its startup would look like an unanswered ``initialize``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.interception import Recorder
from aibridge_cli.proxy.run import build_app

from .conftest import Stack, start_server

WEATHER_SERVER = str(Path(__file__).parent / "mcp_servers" / "weather.py")


def stdio_entry(name: str, log: Path, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "command": [sys.executable, WEATHER_SERVER],
        "env": {"MCP_CALL_LOG": str(log)},
        **fields,
    }


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, numbers and lists of strings read the same in TOML


def write_tools(path: Path, *servers: dict[str, Any]) -> Path:
    """A tools file with one ``[[mcp]]`` table per server."""
    lines = []
    for server in servers:
        lines.append("[[mcp]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in server.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def calls(log: Path) -> list[dict[str, Any]]:
    """What the MCP server's tools received, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@asynccontextmanager
async def http_weather_server(log: Path) -> AsyncIterator[str]:
    """The weather server on streamable HTTP; yields its URL."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, WEATHER_SERVER, "http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MCP_CALL_LOG": str(log)},
    )
    assert proc.stdout is not None
    try:
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                data = await proc.stdout.receive_some(100)
                assert data, "the MCP HTTP server exited before announcing its port"
                line += data
        port = int(line.split()[1])
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        with trio.move_on_after(10):
            await proc.wait()
        await proc.stdout.aclose()


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (20 s at most) until ``check()`` holds: the state belongs to another process."""
    with trio.fail_after(20):
        while not check():  # noqa: ASYNC110 - polled: no event to wait on across processes
            await trio.sleep(0.02)


async def _close_at_the_end(client: httpx.AsyncClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def mcp_stack(
    nursery: trio.Nursery,
    replies: list[Reply],
    tools_path: Path,
    recorder: Recorder | None = None,
    **options: Any,
) -> Stack:
    """A scripted upstream and a proxy whose MCP servers run in ``nursery`` (as in serve)."""
    upstream = ScriptedUpstream(list(replies))
    upstream_server, upstream_url = await start_server(nursery, upstream)
    app = build_app(
        ServeOptions(
            anthropic_base_url=upstream_url,
            openai_base_url=upstream_url + "/v1",
            anthropic_keys=["sk-ant-mcp-test-key-0000AAAA"],
            openai_keys=["sk-openai-mcp-test-key-0000AAAA"],
            tools_path=tools_path,
            **options,
        ),
        recorder=recorder,
    )
    assert app.env.servers is not None
    nursery.start_soon(_close_at_the_end, app.env.client)
    await nursery.start(app.env.servers.serve)
    proxy_server, proxy_url = await start_server(nursery, app)
    return Stack(upstream, upstream_server, upstream_url, app, proxy_server, proxy_url)
