"""Claude Code and Codex CLI through ``aibridge serve --chaos`` against the scripted
upstream (a turn that calls the injected weather tool, then the answer): what each does
after a 529 on its first attempt, an overload event mid-stream, a stream cut inside the
tool call's arguments, and a 429 with ``Retry-After: 2``, read from the reaction report.

How the suite runs the clients (pinned versions, no internet, a sentinel behind every
proxy variable) is ``test_real_clients.py``'s; each test skips when its client is absent.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.sessions.recording import load_fixture

from .test_real_clients import (
    CLAUDE,
    CLIENT_KEY,
    CODEX,
    QUIET_CLAUDE,
    QUIET_CODEX,
    Sentinel,
    aibridge_serve,
    anthropic_script,
    base_env,
    claude_home,
    codex_home,
    needs_claude,
    needs_codex,
    responses_script,
    run_client,
)
from .test_real_clients import sentinel as sentinel_fixture
from .test_real_clients import tools_file as tools_file_fixture

# The fixtures of test_real_clients.py, under their own names here.
sentinel = sentinel_fixture
tools_file = tools_file_fixture


@dataclass
class Run:
    done: subprocess.CompletedProcess[bytes]
    upstream: ScriptedUpstream
    report: dict[str, Any]

    @property
    def answered(self) -> bool:
        return self.done.returncode == 0 and "Sunny in Paris." in self.done.stdout.decode()

    def fault(self) -> dict[str, Any]:
        faults = self.report["reactions"]["faults"]
        assert len(faults) == 1, faults
        return dict(faults[0])


async def through_chaos(
    client: str,
    spec: str,
    nursery: trio.Nursery,
    sentinel: Sentinel,
    tmp_path: Path,
    tools: Path,
) -> Run:
    """One client session through ``serve --chaos SPEC --chaos-report``."""
    report = tmp_path / "report.json"
    chaos = ("--chaos", spec, "--chaos-report", str(report))
    env = base_env(sentinel) | claude_home(tmp_path)
    if client == "claude":
        assert CLAUDE is not None
        upstream = anthropic_script(tool_turn=True)
        async with aibridge_serve(
            nursery, upstream, "--anthropic-base-url", "", tools, *chaos
        ) as proxy:
            env |= QUIET_CLAUDE
            env |= {"ANTHROPIC_BASE_URL": proxy + "/anthropic", "ANTHROPIC_API_KEY": CLIENT_KEY}
            done = await run_client([CLAUDE, "-p", "What is the weather in Paris?"], env, tmp_path)
    else:
        assert CODEX is not None
        upstream = responses_script(tool_turn=True)
        async with aibridge_serve(
            nursery, upstream, "--openai-base-url", "/v1", tools, *chaos
        ) as proxy:
            env |= codex_home(tmp_path, proxy, retries=2)  # bounded, and on
            argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "What is the weather?"]
            done = await run_client(argv, env, tmp_path)
    return Run(done, upstream, json.loads(report.read_text()))


CLIENTS = [
    pytest.param("claude", marks=needs_claude, id="claude-code"),
    pytest.param("codex", marks=needs_codex, id="codex-cli"),
]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_529_on_the_first_attempt_is_retried_and_the_session_answers(
    client: str, nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """Claude Code gets Anthropic's 529 ``overloaded_error`` (its SDK retries after about
    0.5 s); Codex gets OpenAI's 503 (it retries after about 0.2 s). Both then answer."""
    run = await through_chaos(client, "529,first=1", nursery, sentinel, tmp_path, tools_file)
    assert run.answered, run.done.stderr.decode()[-2000:]
    fault = run.fault()
    assert fault["retries"] == 1
    assert fault["recovered"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_an_overload_event_mid_stream_is_retried_and_the_session_answers(
    client: str, nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """The upstream's overload event after two events: both clients send the same request
    again (Claude Code after about 0.6 s, Codex 0.2 s) and answer."""
    spec = "error-event@2,first=1"
    run = await through_chaos(client, spec, nursery, sentinel, tmp_path, tools_file)
    assert run.answered, run.done.stderr.decode()[-2000:]
    fault = run.fault()
    assert (fault["kind"], fault["retries"]) == ("error-event", 1)
    assert fault["recovered"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_stream_cut_inside_tool_call_arguments_is_retried(
    client: str, nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """The connection breaks after the injected call's first arguments delta. Claude Code
    gets ``message_start`` and the proxy's ``api_error`` event and falls back to a
    blocking request (``stream`` false, ``max_tokens`` halved): a retry by the report's
    rule. Codex gets a 502 (the Responses stream is held while tools run) and retries."""
    spec = "reset-in-body@tool-args,first=1"
    run = await through_chaos(client, spec, nursery, sentinel, tmp_path, tools_file)
    assert run.answered, run.done.stderr.decode()[-2000:]
    fault = run.fault()
    assert (fault["kind"], fault["retries"]) == ("reset-in-body", 1)
    assert fault["recovered"]
    retry = run.upstream.seen[1].json()
    assert retry.get("stream", False) is (client == "codex")


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_429_with_retry_after_2_is_retried_after_it(
    client: str, nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """Both clients wait out ``Retry-After: 2`` (about 2.04 s) and retry once."""
    spec = "429,retry-after=2,first=1"
    run = await through_chaos(client, spec, nursery, sentinel, tmp_path, tools_file)
    assert run.answered, run.done.stderr.decode()[-2000:]
    fault = run.fault()
    assert fault["retries"] == 1
    assert fault["retry_delays_s"][0] >= 2 * 0.9
    assert fault["retry_after_honoured"] is True
    assert fault["recovered"]


@needs_codex
@pytest.mark.parametrize("spec", ["529,first=1", "error-event@2,first=1"], ids=["529", "overload"])
async def test_codex_over_websocket_mode_goes_on_after_a_fault_on_its_prewarm(
    spec: str, nursery: trio.Nursery, sentinel: Sentinel, tmp_path: Path, tools_file: Path
) -> None:
    """Codex's built-in provider speaks WebSocket mode, and its first ``response.create``
    is a prewarm (``generate: false``, no input): that is the first request a rule sees.
    Struck there, Codex does not send it again; it goes on with its real request and
    answers (after a 503, 0.09 s later; after an overload event, about 15 s later)."""
    assert CODEX is not None
    report, recording = tmp_path / "report.json", tmp_path / "r.jsonl"
    upstream = responses_script(tool_turn=True)
    chaos = ("--chaos", spec, "--chaos-report", str(report), "--record", str(recording))
    url_option = "--openai-base-url"
    async with aibridge_serve(nursery, upstream, url_option, "/v1", tools_file, *chaos) as proxy:
        env = base_env(sentinel) | claude_home(tmp_path)
        env["OPENAI_API_KEY"] = "sk-codex-client-key-0000"
        base_url = f'openai_base_url="{proxy}/openai/v1"'
        argv = [CODEX, "exec", "--skip-git-repo-check", *QUIET_CODEX, "-c", base_url, "Weather?"]
        done = await run_client(argv, env, tmp_path)
    run = Run(done, upstream, json.loads(report.read_text()))
    assert run.answered, done.stderr.decode()[-2000:]
    assert {r.method for r in upstream.seen} == {"WEBSOCKET"}
    prewarm = load_fixture(recording).interceptions[0]
    assert (prewarm.request.body["generate"], prewarm.request.body["input"]) == (False, [])
    assert [ex.chaos is not None for ex in prewarm.upstream] == [True]
    fault = run.fault()
    assert (fault["retries"], fault["session_went_on"], fault["recovered"]) == (0, True, True)
