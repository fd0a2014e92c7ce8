"""``aibridge serve --chaos`` as a user runs it: the faults struck on an SDK's traffic,
logged, counted in ``/aibridge/status``, recorded so that ``replay`` matches and ``fuzz``
starts from the recording, switched at runtime with ``aibridge chaos``, and the reaction
report written when serve stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import trio

from aibridge_cli.fakes.anthropic_replies import (
    message,
    message_end,
    message_start,
    stream,
    text_block,
)
from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.fuzz.catalog import from_file
from aibridge_cli.sessions.recording import load_fixture

from .cli_process import run_cli, start_cli, stop_cli
from .conftest import start_server
from .sdkutil import collect_sdk_garbage

HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]


def hello(seen: SeenRequest, index: int) -> Reply:
    if seen.json().get("stream"):
        return stream(message_start(), text_block(0, "Hel", "lo"), message_end("end_turn", 2))
    return message([{"type": "text", "text": "Hello"}], "end_turn", 2)


async def stream_until_error(client: anthropic.AsyncAnthropic) -> str | None:
    again: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi again"}]
    async with client.messages.stream(model="claude-test", max_tokens=5, messages=again) as st:
        try:
            async for _ in st:
                pass
        except anthropic.APIStatusError as exc:
            body: Any = exc.body
            return str(body["error"]["type"])
    return None


async def status_of(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        return dict((await http.get(url + "/aibridge/status")).json())


@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_faults_are_logged_counted_recorded_replayed_fuzzed_and_reported(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = ScriptedUpstream(script=hello)
    _, upstream_url = await start_server(nursery, upstream)
    fixture, report = tmp_path / "chaos.jsonl", tmp_path / "report.json"
    proc, proxy = await start_cli(
        "serve", "--port", "0", "--anthropic-base-url", upstream_url,
        "--record", str(fixture), "--chaos-report", str(report), "--chaos-seed", "3",
        "--chaos", "429,retry-after=0.5,first=1,name=limit",
        "--chaos", "error-event@2,first=1,name=overload",
    )  # fmt: skip
    try:
        client = anthropic.AsyncAnthropic(
            base_url=proxy + "/anthropic", api_key="sk-ant-client-0000", max_retries=2
        )
        async with client:
            # blocking: the 429, then the SDK's retry after Retry-After, which succeeds
            answer = await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
            assert answer.content[0].type == "text"
            # streaming: the overload event mid-stream (no SDK retries that), then again
            assert await collect_sdk_garbage(stream_until_error(client)) == "overloaded_error"
            assert await collect_sdk_garbage(stream_until_error(client)) is None
        status = await status_of(proxy)
        counts = {r["name"]: (r["matched"], r["struck"]) for r in status["chaos"]["rules"]}
        assert counts == {"limit": (4, 1), "overload": (2, 1)}
        assert status["chaos"]["seed"] == 3
    finally:
        await stop_cli(proc)
    assert len(upstream.seen) == 3  # the 429 answered in the upstream's place

    reactions = json.loads(report.read_text())["reactions"]
    limit, overload = reactions["faults"]
    assert (limit["rule"], limit["retries"], limit["retry_after_honoured"]) == ("limit", 1, True)
    assert limit["retry_delays_s"][0] >= 0.45
    assert limit["recovered"]
    assert limit["session_went_on"]
    assert (overload["kind"], overload["retries"]) == ("error-event", 1)

    recorded = load_fixture(fixture)
    notes = [ex.chaos for r in recorded.interceptions for ex in r.upstream if ex.chaos]
    assert [(n["rule"], n["kind"]) for n in notes] == [
        ("limit", "429-one"),
        ("overload", "error-event"),
    ]
    replayed = await run_cli("replay", str(fixture))
    assert replayed.returncode == 0, replayed.stdout.decode()[-3000:]
    assert "1/1 fixtures match" in replayed.stdout.decode()
    # fuzzed as one session (its four interceptions in one world), then one by one
    (session,) = from_file(fixture)
    assert len(session.parts) == 4
    for each, count in (((), 1), (("--each",), 4)):
        fuzzed = await run_cli(
            "fuzz", str(fixture), *each, "--iterations", "60", "--seed", "1", "--json",
            cwd=str(tmp_path),
        )  # fmt: skip
        assert fuzzed.returncode == 0, fuzzed.stdout.decode()[-3000:]
        scenarios = json.loads(fuzzed.stdout)["scenarios"]
        assert sum(1 for s in scenarios if s.startswith("chaos")) == count


async def test_rules_switched_at_runtime_with_aibridge_chaos(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = ScriptedUpstream(script=hello)
    _, upstream_url = await start_server(nursery, upstream)
    proc, proxy = await start_cli("serve", "--port", "0", "--anthropic-base-url", upstream_url)
    try:
        added = await run_cli("chaos", "add", "529,first=1,name=once", "--url", proxy)
        assert added.returncode == 0, added.stderr.decode()
        assert added.stdout.decode().strip() == "once: 529,first=1"
        async with anthropic.AsyncAnthropic(
            base_url=proxy + "/anthropic", api_key="sk-ant-client-0000", max_retries=0
        ) as client:
            with pytest.raises(anthropic.OverloadedError):
                await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
            await client.messages.create(model="claude-test", max_tokens=5, messages=HELLO)
        listed = await run_cli("chaos", "list", "--url", proxy)
        assert "once: 529,first=1 matched=2 struck=1" in listed.stdout.decode()
        bad = await run_cli("chaos", "add", "529,p=7", "--url", proxy)
        assert (bad.returncode, bad.stderr.decode().strip()) == (
            2,
            "error: chaos spec '529,p=7': bad p '7'",
        )
        cleared = await run_cli("chaos", "clear", "--url", proxy)
        assert cleared.stdout.decode().strip() == "cleared 1 rule(s)"
        assert (await status_of(proxy))["chaos"]["rules"] == []
        missing = await run_cli("chaos", "clear", "--name", "nope", "--url", proxy)
        assert missing.returncode == 2
        assert "404: no chaos rule named 'nope'" in missing.stderr.decode()
    finally:
        await stop_cli(proc)


async def test_the_chaos_endpoint_takes_json_and_the_guards_token(nursery: trio.Nursery) -> None:
    upstream = ScriptedUpstream(script=hello)
    _, upstream_url = await start_server(nursery, upstream)
    token = "chaos-endpoint-token-0123456789"
    proc, proxy = await start_cli(
        "serve", "--port", "0", "--anthropic-base-url", upstream_url, "--auth-token", token
    )
    try:
        async with httpx.AsyncClient() as http:
            url = proxy + "/aibridge/chaos"
            assert (await http.get(url)).status_code == 401
            auth = {"authorization": f"Bearer {token}"}
            form = await http.post(url, content=b"spec=529", headers=auth)
            assert form.status_code == 415
            posted = await http.post(url, json={"rule": {"kind": "500", "every": 2}}, headers=auth)
            assert posted.status_code == 201
            assert posted.json() == {"added": [{"kind": "500", "name": "chaos-1", "every": 2}]}
            bad = await http.post(url, json={"spec": "nope"}, headers=auth)
            assert bad.status_code == 400
            assert bad.json()["error"]["message"].startswith("chaos spec 'nope': bad kind")
            assert (await http.put(url, headers=auth)).status_code == 405
    finally:
        await stop_cli(proc)


async def test_a_bad_chaos_option_or_file_is_one_error_line(tmp_path: Path) -> None:
    bad = await run_cli("serve", "--chaos", "529,every=0")
    assert (bad.returncode, bad.stderr.decode()) == (
        2,
        "error: chaos spec '529,every=0': bad every '0' (at least 1)\n",
    )
    empty = tmp_path / "c.toml"
    empty.write_text("seed = 1\n")
    done = await run_cli("serve", "--chaos-file", str(empty))
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"error: {empty}: no [[chaos]] rule")
