"""Whole recorded sessions fuzzed as one world (``fuzz/session.py``, ``sim/session.py``).

The session is ``tests/sessions/claude-code-session.jsonl``: Claude Code 2.1.332 asking
for the weather in Paris through ``aibridge record`` with an injected tool
(``tests/sessions/record_claude_code.py`` re-records it): its main request (the injected
tool, then two ``Agent`` calls), two subagents at once (each the injected tool, then its
report), and the answer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.fuzz.campaign import (
    Case,
    Origin,
    Settings,
    load_repro,
    replay,
    run_campaign,
    write_repro,
)
from aibridge_cli.fuzz.catalog import from_file
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Scenario
from aibridge_cli.fuzz.session import session_problems, world_spec_of
from aibridge_cli.fuzz.shrink import candidates
from aibridge_cli.fuzz.signature import Signature
from aibridge_cli.sessions.normalize import normalize_response
from aibridge_cli.sessions.recording import load_fixture

SESSION = Path(__file__).parent / "sessions" / "claude-code-session.jsonl"
RACE = {"JSON 502 then SSE", "SSE then JSON", "JSON 429 then SSE"}


@pytest.fixture(scope="module")
def session() -> Scenario:
    (scenario,) = from_file(SESSION)
    return scenario


def _text(api: str, status: int | None, headers: object, body: bytes) -> str:
    return str(normalize_response(api, status or 0, headers, body)["text"] or "")  # type: ignore[arg-type]


def test_a_recording_is_one_session_at_its_recorded_offsets(session: Scenario) -> None:
    recorded = load_fixture(SESSION).interceptions
    assert len(session.parts) == len(recorded) == 4
    first = recorded[0].started_at
    assert session.starts == tuple(round(r.started_at - first, 3) for r in recorded)
    assert session.starts[1] < session.starts[2] < session.starts[3]  # the subagents overlap
    assert [len(p.exchanges) for p in session.parts] == [2, 2, 2, 1]
    assert session.exchanges == tuple(x for p in session.parts for x in p.exchanges)
    assert len(from_file(SESSION, each=True)) == 4  # --each: one by one, as before


def test_the_session_runs_in_one_world_each_request_at_its_offset(session: Scenario) -> None:
    spec = world_spec_of(session, Plan(), "eager")
    assert spec.session is not None
    assert spec.requests == 4
    violations, world = Judge("eager").evaluate(session, Plan())
    assert violations == []
    assert [a.request for a in world.attempts] == [0, 0, 1, 1, 2, 2, 3]
    for attempt in world.attempts:
        assert attempt.time >= session.starts[attempt.request]
    # the two subagents were open at once: the second began before the first's answer ended
    first_sub = [a for a in world.answers if world.attempts[a.index].request == 1]
    second_start = min(a.time for a in world.attempts if a.request == 2)
    assert max(a.closed for a in first_sub) > second_start
    assert len(world.clients) == 4
    assert all(c.status == 200 and c.complete for c in world.clients)
    assert world.recording is not None
    assert len(world.recording.lines) == 4


def test_each_request_gets_its_own_answers(session: Scenario) -> None:
    """Told by what the upstream request says, not by when it comes: each client's text
    is what its own interception's last answer said."""
    _, world = Judge("eager").evaluate(session, Plan(starts=(0.0, 0.5, 0.0, 0.0)))
    recorded = load_fixture(SESSION).interceptions
    for client, record in zip(world.clients, recorded, strict=True):
        own = record.response
        want = _text(record.api, own.status, own.headers, b"".join(c.data for c in own.chunks))
        assert _text(record.api, client.status, client.headers, client.body) == want
    texts = [_text("anthropic", c.status, c.headers, c.body) for c in world.clients]
    assert texts[3] == "It is sunny in Paris and in Lyon, 21 C." != texts[1]


def test_the_per_request_oracles_judge_each_request_on_its_own_answers(
    session: Scenario,
) -> None:
    """A 500 on the first subagent's report: that request, and only that one, shows the
    error the differential oracle wants; a content check against another request's answers
    would fail the others."""
    plan = Plan(faults=(Fault(FaultKind.SERVER_ERROR, 3),))
    judge = Judge("eager")
    run = judge.evaluate(session, plan)
    violations, world = run
    assert violations == []
    assert [c.status for c in world.clients] == [200, 200, 200, 200]
    sub = world.clients[1]
    assert b"api_error" in sub.body or b"error" in sub.body
    assert all(b'"type":"error"' not in c.body for i, c in enumerate(world.clients) if i != 1)


def test_a_crossed_answer_is_a_per_request_finding(session: Scenario) -> None:
    """The control: the same world with two clients' results swapped fails the
    per-request oracles, naming the request."""
    from aibridge_cli.fuzz.oracles import Run

    plan = Plan()
    judge = Judge("eager")
    spec = world_spec_of(session, plan, "eager")
    _, world = judge.evaluate(session, plan)
    world.clients[1], world.clients[3] = world.clients[3], world.clients[1]
    run = Run(session, plan, world, spec.replies, "eager")
    found = session_problems(run, None, {"content", "differential"})
    assert {v.message.split(":")[0] for v in found} == {"request #1", "request #3"}


def test_lazy_finds_the_seed_race_on_the_session(session: Scenario) -> None:
    settings = Settings((session,), seed=1, iterations=4, stream_initiation="lazy")
    campaign = run_campaign(settings, investigate=False)
    shapes = {(o.iteration, v.shape) for o in campaign.outcomes for v in o.violations}
    assert (3, "JSON 502 then SSE") in shapes


def test_a_session_finding_replays_from_its_repro_file(session: Scenario, tmp_path: Path) -> None:
    settings = Settings((session,), seed=1, iterations=4, stream_initiation="lazy")
    failing = [o for o in run_campaign(settings, investigate=False).outcomes if o.failed]
    outcome = failing[0]
    judge = settings.judge()
    signature = Signature(session.name, "malformed-body", "JSON 502 then SSE")
    assert outcome.plan is not None
    origin = Origin(1, outcome.iteration, outcome.seed)
    finding = replay(judge, Case(session, outcome.plan, signature), origin)
    assert (finding.violation.oracle, finding.violation.shape) == (
        "malformed-body",
        "JSON 502 then SSE",
    )
    path = write_repro(finding, tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines[1]["parts"]) == 4
    assert lines[1]["starts"] == list(session.starts)
    header, scenario, plan = load_repro(path)
    assert scenario == session
    assert plan == outcome.plan
    again = replay(Judge(header["stream_initiation"]), Case(scenario, plan, signature), origin)
    assert again.violation == finding.violation


def test_a_session_repro_runs_no_command_without_the_flag(
    session: Scenario, tmp_path: Path
) -> None:
    tool = replace(session.tools[0], command=("echo", "hi"), result=None)
    part = replace(session.parts[1], tools=(tool,))
    crafted = replace(session, parts=(session.parts[0], part, *session.parts[2:]))
    path = tmp_path / "repro.jsonl"
    head = {"kind": "fuzz-repro", "version": 1}
    lines = [head, {"kind": "scenario", **crafted.to_json()}, {"kind": "plan", **Plan().to_json()}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ConfigError, match="--allow-commands"):
        load_repro(path)


def test_the_shrinker_leaves_requests_unsent_but_never_all() -> None:
    dropped = [c.drop for c in candidates(Plan(), 3) if c.drop]
    assert dropped == [(0,), (1,), (2,)]
    assert not [c for c in candidates(Plan(drop=(0, 1)), 3) if len(c.drop) > 2]
    assert not [c for c in candidates(Plan(), 1) if c.drop]  # one request: nothing to drop


def test_a_dropped_request_is_not_sent(session: Scenario) -> None:
    _, world = Judge("eager").evaluate(session, Plan(drop=(1, 2)))
    assert len(world.clients) == 2
    assert len(world.attempts) == 3  # request 0's two, request 3's one


def test_fuzz_file_is_a_session_and_each_keeps_one_by_one() -> None:
    from typer.testing import CliRunner

    from aibridge_cli.cli import app

    runner = CliRunner()
    whole = runner.invoke(app, ["fuzz", str(SESSION), "--list"], terminal_width=400)
    assert whole.exit_code == 0
    assert "session of 4 requests at 0, 0.166, 0.181, 2.727 s" in whole.output
    each = runner.invoke(app, ["fuzz", str(SESSION), "--list", "--each"], terminal_width=400)
    assert each.exit_code == 0
    assert "session of" not in each.output
    assert all(f"claude-code-session##{i}" in each.output for i in range(1, 5))  # labels #N
    assert "--each" in runner.invoke(app, ["fuzz", "--help"], terminal_width=400).output
