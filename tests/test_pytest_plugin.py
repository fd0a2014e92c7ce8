"""The pytest plugin, used as a user would: a test module run by ``pytester``.

The user's module calls the anthropic SDK (sync, a tool loop), the openai SDK (async, on
asyncio) and the anthropic SDK again from trio. Recording reaches a scripted upstream on
a loopback thread, pointed at with the plugin's upstream options; replay runs with that
upstream stopped and no key in the environment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.fakes import anthropic_replies as ar
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.pytest_plugin.loop_thread import LoopThread
from aibridge_cli.sessions.recording import load_fixture

from .keywatch import fragments

pytest_plugins = ("pytester",)

ANTHROPIC_KEY = "sk-ant-api03-" + "plugin-secret-" * 4 + "AAAA"
OPENAI_KEY = "sk-proj-" + "plugin-openai-" * 4 + "BBBB"

USER_MODULE = '''
import asyncio
import os

import anthropic
import openai
import pytest

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def get_weather(city):
    return f"sunny, 21 C in {city}"


def run_agent(client, question):
    """Ask, run the tools the model calls, ask again, until it answers."""
    messages = [{"role": "user", "content": question}]
    while True:
        reply = client.messages.create(
            model="claude-test", max_tokens=256, tools=[WEATHER_TOOL], messages=messages
        )
        if reply.stop_reason != "tool_use":
            return "".join(block.text for block in reply.content if block.type == "text")
        messages.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": get_weather(**b.input)}
            for b in reply.content if b.type == "tool_use"
        ]})


@pytest.mark.aibridge
def test_agent_answers_with_the_weather():
    with anthropic.Anthropic(max_retries=0) as client:
        assert run_agent(client, "PROMPT") == "It is sunny in Paris."
        EXTRA


def test_openai_async(aibridge_openai_url):
    async def ask():
        key = os.environ.get("OPENAI_API_KEY", "unused-in-replay")
        async with openai.AsyncOpenAI(
            base_url=aibridge_openai_url, api_key=key, max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "Say hi"}]
            )
        return reply.choices[0].message.content

    assert asyncio.run(ask()) == "hi there"


@pytest.mark.trio
async def test_trio_streaming(aibridge_anthropic_url):
    key = os.environ.get("ANTHROPIC_API_KEY", "unused-in-replay")
    async with anthropic.AsyncAnthropic(
        base_url=aibridge_anthropic_url, api_key=key, max_retries=0
    ) as client:
        page = await client.models.list(limit=2)
        async with client.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            text = await stream.get_final_text()
    assert [model.id for model in page.data] == ["claude-test"]
    assert text == "Hello"
'''


def user_module(prompt: str = "What is the weather in Paris?", extra: str = "") -> str:
    return USER_MODULE.replace("PROMPT", prompt).replace("EXTRA", extra or "pass")


def answer(seen: SeenRequest, index: int) -> Reply:
    """A scripted provider: a tool call, then a final answer; streams say Hello; one model,
    listed only when asked with ``limit``."""
    if seen.method == "GET" and seen.target == "/v1/models?limit=2":
        model = {"type": "model", "id": "claude-test", "display_name": "Test"}
        listing = {"data": [{**model, "created_at": "2025-01-01T00:00:00Z"}], "has_more": False}
        return Reply.json({**listing, "first_id": "claude-test", "last_id": "claude-test"})
    body = seen.json()
    if seen.path.startswith("/v1/chat/completions"):
        message = {"role": "assistant", "content": "hi there"}
        return Reply.json(
            {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": 1_700_000_000 + index,
                "model": "gpt-test",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        )
    if body.get("stream"):
        return ar.stream(
            ar.message_start(), ar.text_block(0, "Hel", "lo"), ar.message_end("end_turn", 2)
        )
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and last[0].get("type") == "tool_result":
        return ar.message([{"type": "text", "text": "It is sunny in Paris."}], "end_turn", 6)
    city = "Rome" if "Rome" in json.dumps(body["messages"]) else "Paris"
    call = {
        "type": "tool_use",
        "id": f"toolu_{index}",
        "name": "get_weather",
        "input": {"city": city},
    }
    return ar.message([call], "tool_use", 9, msg_id=f"msg_{index}")


@dataclass
class Upstream:
    app: ScriptedUpstream
    thread: LoopThread
    url: str

    def options(self) -> list[str]:
        return [
            f"--aibridge-anthropic-upstream={self.url}",
            f"--aibridge-openai-upstream={self.url}/v1",
        ]

    def keys_seen(self) -> set[str]:
        """The credential of each request, whichever header the SDK put it in."""
        return {
            (r.header("x-api-key") or r.header("authorization") or "").removeprefix("Bearer ")
            for r in self.app.seen
        }


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    """The "real" API for recording, with the real keys in the environment."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    app = ScriptedUpstream(script=answer)
    thread = LoopThread(app, name="scripted-upstream")
    url = thread.start()
    yield Upstream(app, thread, url)
    thread.stop()


def gone(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI: no upstream to reach, no key to use."""
    upstream.thread.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")


def recordings(pytester: pytest.Pytester) -> dict[str, Path]:
    return {p.stem: p for p in sorted((pytester.path / "aibridge").rglob("*.jsonl"))}


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    # the server thread is gone when the run is over, and with it its sockets
    assert not [t for t in threading.enumerate() if t.name == "aibridge-pytest"]
    return result


def test_record_once_then_replay_with_no_upstream_and_no_keys(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=user_module())
    recorded = run(pytester, "--aibridge-record=once", *upstream.options())
    recorded.assert_outcomes(passed=3)
    recorded.stdout.fnmatch_lines(
        ["*recorded 2 interception(s) to *test_agent_answers_with_the_weather.jsonl"]
    )
    files = recordings(pytester)
    assert set(files) == {
        "test_agent_answers_with_the_weather",
        "test_openai_async",
        "test_trio_streaming",
    }
    assert [len(load_fixture(p).interceptions) for p in files.values()] == [2, 1, 2]
    # the upstream got the real keys; the files have none of them, whole or in part
    assert upstream.keys_seen() == {ANTHROPIC_KEY, OPENAI_KEY}
    for path in files.values():
        text = path.read_text()
        assert not [p for key in (ANTHROPIC_KEY, OPENAI_KEY) for p in fragments(key) if p in text]
        assert "[redacted]" in text
    served = len(upstream.app.seen)
    # a recorded test is a fuzz target as it is
    out = pytester.path / "fuzz-out"
    for path in files.values():
        fuzzed = CliRunner().invoke(
            app, ["fuzz", str(path), "--iterations", "20", "--seed", "7", "--out", str(out)]
        )
        assert fuzzed.exit_code == 0, fuzzed.output
        assert "no failures" in fuzzed.output

    gone(upstream, monkeypatch)
    replayed = run(pytester, "--aibridge-record=none", "-v")
    replayed.assert_outcomes(passed=3)
    assert len(upstream.app.seen) == served
    # once, with every file there, replays too
    run(pytester, "--aibridge-record=once").assert_outcomes(passed=3)


def test_a_changed_prompt_fails_with_a_diff_of_the_closest_recorded_request(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=user_module())
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=3)
    gone(upstream, monkeypatch)
    pytester.makepyfile(test_agent=user_module("What is the weather in Rome?"))
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*aibridge: 1 request(s) matched nothing recorded in *"
            "test_agent_answers_with_the_weather.jsonl (record mode 'none')",
            "  POST /anthropic/v1/messages",
            "    closest recorded request: interception #1, upstream exchange #1",
            "    request body messages[0].content: "
            "expected 'What is the weather in Paris?', got 'What is the weather in Rome?'",
            "*--aibridge-record=new adds the new requests*",
        ]
    )
    # the report replaces the SDK's error: no traceback of the plugin or the SDK
    assert "Error code: 400" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


def test_new_appends_only_the_new_exchange(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_agent=user_module())
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=3)
    path = recordings(pytester)["test_agent_answers_with_the_weather"]
    before = path.read_bytes()
    served = len(upstream.app.seen)

    extra = 'assert run_agent(client, "And in Rome?") == "It is sunny in Paris."'
    pytester.makepyfile(test_agent=user_module(extra=extra))
    run(pytester, "--aibridge-record=new", *upstream.options()).assert_outcomes(passed=3)
    after = path.read_bytes()
    assert after.startswith(before)
    added = after[len(before) :].decode().splitlines()
    assert len(added) == 2  # the second question's tool call and answer; nothing replayed
    assert len(upstream.app.seen) == served + 2
    assert "And in Rome?" in added[0]

    gone(upstream, monkeypatch)
    run(pytester).assert_outcomes(passed=3)


def test_all_records_afresh_and_none_without_a_recording_says_how_to_make_one(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makepyfile(test_agent=user_module())
    missing = run(pytester, "-k", "openai")
    missing.assert_outcomes(errors=1, deselected=2)
    missing.stdout.fnmatch_lines(
        [
            "*aibridge: no recording at *test_openai_async.jsonl: record it once with "
            "--aibridge-record=once*"
        ]
    )
    run(pytester, "--aibridge-record=once", *upstream.options()).assert_outcomes(passed=3)
    run(pytester, "--aibridge-record=all", *upstream.options()).assert_outcomes(passed=3)
    assert [len(load_fixture(p).interceptions) for p in recordings(pytester).values()] == [2, 1, 2]
    assert len(upstream.app.seen) == 10


MATCHING_MODULE = """
import anthropic
import pytest


def ask(url, max_tokens, user_id):
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        reply = client.messages.create(
            model="claude-test", max_tokens=max_tokens, metadata={"user_id": user_id},
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        )
    return reply.content[0].name


@pytest.mark.aibridge(fixture="recorded/shared.jsonl", ignore=["max_tokens"])
def test_ignores_what_it_is_told_to_and_ids(aibridge_anthropic_url):
    assert ask(aibridge_anthropic_url, MAX_TOKENS, "USER") == "get_weather"


@pytest.mark.aibridge(fixture="recorded/shared.jsonl", match_on=["method", "path"])
def test_matches_on_route_alone(aibridge_anthropic_url):
    assert ask(aibridge_anthropic_url, MAX_TOKENS + 1, "other") == "get_weather"
"""


def test_match_rules_come_from_the_marker(
    pytester: pytest.Pytester, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def module(max_tokens: int, user: str) -> str:
        return MATCHING_MODULE.replace("MAX_TOKENS", str(max_tokens)).replace("USER", user)

    pytester.makepyfile(test_match=module(100, "session-1"))
    recorded = run(pytester, "--aibridge-record=once", *upstream.options(), "-k", "ignores")
    recorded.assert_outcomes(passed=1, deselected=1)
    assert (pytester.path / "recorded" / "shared.jsonl").exists()
    gone(upstream, monkeypatch)
    # another max_tokens (ignored), another metadata.user_id (an id): still a match
    pytester.makepyfile(test_match=module(200, "session-2"))
    run(pytester).assert_outcomes(passed=2)
    pytester.makepyfile(
        test_match=module(200, "x").replace('ignore=["max_tokens"]', 'match_on=["bodies"]')
    )
    result = run(pytester, "-k", "ignores")
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(
        ["*match_on: unknown field 'bodies' (known: method, path, query, body)"]
    )


def test_an_unused_plugin_starts_nothing_and_imports_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys, threading

        def test_plain():
            loaded = sorted(m for m in sys.modules if m.startswith("aibridge_cli."))
            assert loaded == ["aibridge_cli.pytest_plugin", "aibridge_cli.pytest_plugin.plugin"]
            assert [t.name for t in threading.enumerate()] == ["MainThread"]
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
