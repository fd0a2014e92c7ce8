"""Replay: built-in fixtures through the in-process proxy, mismatches and the mock's 400."""

from __future__ import annotations

import copy

import httpx
import pytest
import trio

from aibridge_cli.errors import FixtureError
from aibridge_cli.interception import Chunk
from aibridge_cli.proxy.server import Server
from aibridge_cli.sessions.builtin import list_builtin, load_builtin
from aibridge_cli.sessions.fixture import Fixture
from aibridge_cli.sessions.mock import MockUpstream
from aibridge_cli.sessions.replay import replay_fixture
from aibridge_cli.sessions.scripted_sessions import stop_servers

SEED_CASES = [
    "simple",
    "injected-tool",
    "client-tool",
    "failover-after-429",
    "all-keys-rate-limited",
    "mid-stream-error",
    "rate-limit-after-tool-turn",
]


def test_builtins_cover_the_required_cases_for_anthropic() -> None:
    names = list_builtin()
    assert {f"anthropic/{n}" for n in SEED_CASES} <= set(names)
    assert [f.path for f in load_builtin("simple")] == [
        f"builtin:{n}" for n in names if n.endswith("/simple")
    ]
    with pytest.raises(FixtureError, match="no built-in fixture 'nope'"):
        load_builtin("nope")


def test_seed_builtin_is_an_injected_turn_then_429_on_every_key() -> None:
    (fixture,) = load_builtin("anthropic/rate-limit-after-tool-turn")
    (record,) = fixture.interceptions
    assert [e.response.status for e in record.upstream] == [200, 429, 429]
    assert [c.name for c in record.tool_calls] == ["bmcp_weather"]
    assert fixture.keys_count("anthropic") == 2
    assert record.response.status == 200  # eager initiation: the error comes in-stream
    assert b"rate_limit_error" in record.response.body


@pytest.mark.parametrize("name", [f"anthropic/{n}" for n in SEED_CASES])
async def test_every_builtin_replays_to_a_match(name: str) -> None:
    (fixture,) = load_builtin(name)
    result = await replay_fixture(fixture)
    assert [(r.status, r.problems) for r in result.results] == [
        ("match", []) for _ in fixture.interceptions
    ]


def changed_chunk(fixture: Fixture, old: bytes, new: bytes) -> Fixture:
    changed = copy.deepcopy(fixture)
    for record in changed.interceptions:
        for exchange in record.upstream:
            chunks = exchange.response.chunks
            for i, chunk in enumerate(chunks):
                if old in chunk.data:
                    chunks[i] = Chunk(chunk.offset_ms, chunk.data.replace(old, new))
                    return changed
    raise AssertionError("chunk not found")


async def test_a_changed_upstream_chunk_is_a_mismatch_naming_the_event() -> None:
    (fixture,) = load_builtin("anthropic/simple")
    result = await replay_fixture(changed_chunk(fixture, b'"Hel"', b'"Help"'))
    assert not result.ok
    streaming = result.results[0]
    assert streaming.status == "mismatch"
    assert (
        "response: events[2] (content_block_delta).data.delta.text: expected 'Hel', got 'Help'"
        in streaming.problems
    )
    assert result.results[1].status == "match"


async def test_mock_answers_a_request_that_does_not_match_with_400_and_a_diff(
    nursery: trio.Nursery,
) -> None:
    (fixture,) = load_builtin("anthropic/simple")
    mock = MockUpstream([fixture], "fast")
    server = Server(mock.app)
    host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
    async with httpx.AsyncClient() as client:
        body = copy.deepcopy(fixture.interceptions[0].upstream[0].request_body)
        body["messages"][0]["content"] = "Say goodbye."
        response = await client.post(f"http://{host}:{port}/v1/messages", json=body)
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert (
            "request body messages[0].content: expected 'Say hello.', got 'Say goodbye.'" in message
        )
        response = await client.post(f"http://{host}:{port}/v1/chat/completions", json={})
        assert response.status_code == 400
        assert "no recorded exchange left for POST /v1/chat/completions" in response.text
    await stop_servers(server)
