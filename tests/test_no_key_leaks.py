"""A varied run of the proxy, with recording on and every log line captured: no key in
any of it, neither a pool key nor a client's own key, whole or in part."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream
from aibridge_cli.proxy.run import build_app
from aibridge_cli.sessions.recording import FixtureWriter
from aibridge_cli.tools import ToolSet

from .anthropic_script import (
    FINAL_TURN,
    TOOL_TURN,
    error_reply,
    message,
    message_start,
    rate_limited,
    stream,
    text_block,
)
from .conftest import WEATHER, start_server
from .test_anthropic_e2e import CLIENT_KEY, HELLO, K0, K1


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    """Upstream clients of the proxies a test starts, closed at its end."""
    opened: list[httpx.AsyncClient] = []
    yield opened
    for client in opened:
        await client.aclose()


async def _proxy(
    nursery: trio.Nursery,
    clients: list[httpx.AsyncClient],
    replies: list[Reply],
    keys: list[str],
    recording: Path,
) -> tuple[str, FixtureWriter]:
    _, upstream_url = await start_server(nursery, ScriptedUpstream(replies))
    options = ServeOptions(anthropic_base_url=upstream_url, anthropic_keys=keys)
    writer = FixtureWriter(recording, secrets=keys)
    app = build_app(options, tools=ToolSet.of([WEATHER]), recorder=writer)
    clients.append(app.env.client)
    _, url = await start_server(nursery, app)
    return url + "/anthropic/v1/messages", writer


async def test_logs_and_recordings_of_a_varied_run_hold_no_key(
    nursery: trio.Nursery,
    clients: list[httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    # the upstream that echoes a key back in an error is the worst case for a recording
    echo = error_reply(401, "authentication_error", f"invalid x-api-key: {K0}")
    pooled, pooled_writer = await _proxy(
        nursery,
        clients,
        [
            stream(message_start(), text_block(0, "hi")),  # ends early: in-stream error
            rate_limited("3"),
            FINAL_TURN,  # 429, failover to K1
            TOOL_TURN,
            FINAL_TURN,  # injected tool turn
            message([{"type": "text", "text": "ok"}], "end_turn", 1),
            echo,  # K1 refused for good
        ],
        [K0, K1],
        tmp_path / "pooled.jsonl",
    )
    byok, byok_writer = await _proxy(
        nursery,
        clients,
        [
            error_reply(401, "authentication_error", f"invalid x-api-key: {CLIENT_KEY}"),
            message([{"type": "text", "text": "ok"}], "end_turn", 1),
        ],
        [],
        tmp_path / "byok.jsonl",
    )

    body = {"model": "claude-test", "max_tokens": 9, "messages": HELLO}
    async with httpx.AsyncClient(timeout=60, headers={"x-api-key": CLIENT_KEY}) as http:
        statuses = [
            (await http.post(pooled, json={**body, "stream": True})).status_code,
            (await http.post(pooled, json={**body, "stream": True})).status_code,
            (await http.post(pooled, json={**body, "stream": True})).status_code,
            (await http.post(pooled, json=body)).status_code,
            (await http.post(pooled, json=body)).status_code,
            (await http.post(byok, json=body)).status_code,
            (
                await http.post(byok, json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
            ).status_code,
        ]
    assert statuses == [200, 200, 200, 200, 429, 401, 200]  # K1 refused, K0 still cooling
    pooled_writer.close()
    byok_writer.close()

    recorded = (tmp_path / "pooled.jsonl").read_text() + (tmp_path / "byok.jsonl").read_text()
    assert recorded.count("\n") == 2 + 7  # two headers, seven interceptions
    logged = caplog.text
    assert "POST /anthropic/v1/messages" in logged
    for secret in (K0, K1, CLIENT_KEY):
        middle = secret[4:-4]  # a mask shows at most the ends
        assert middle not in recorded, secret
        assert middle not in logged, secret
