"""What a campaign computes once and keeps (``fuzz/memo.py``): the oracles' parses of a
response give what parsing afresh gives, a session's replies are built once per plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aibridge_cli.fuzz import parses
from aibridge_cli.fuzz import session as fuzz_session
from aibridge_cli.fuzz.catalog import builtin_scenarios, from_file
from aibridge_cli.fuzz.grammar import Response, response_problems
from aibridge_cli.fuzz.memo import Memo
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Draw, Judge
from aibridge_cli.fuzz.signature import body_shape
from aibridge_cli.sessions.normalize import normalize_response


def _responses() -> list[tuple[str, Response]]:
    """Every built-in scenario's upstream answers as responses, whole and cut short."""
    out = []
    for scenario in builtin_scenarios():
        for x in scenario.exchanges:
            whole = Response(x.status, list(x.headers), x.body, complete=True)
            cut = Response(x.status, list(x.headers), x.body[: len(x.body) // 2], complete=False)
            left = Response(x.status, list(x.headers), x.body[:7], complete=False, truncated=True)
            out += [(scenario.api, whole), (scenario.api, cut), (scenario.api, left)]
    return out


def test_each_parse_is_the_fresh_one_asked_twice() -> None:
    for api, response in _responses():
        for _ in range(2):  # a miss, then a hit
            assert parses.shape(response) == body_shape(response)
            for strict in (True, False):
                for injected in ((), ("bmcp_search",)):
                    kept = parses.problems(
                        api, response, streaming=True, injected=injected, strict=strict
                    )
                    fresh = response_problems(
                        api, response, streaming=True, injected=injected, strict=strict
                    )
                    assert kept == fresh
            status, headers, body = response.status, response.headers, response.body
            fresh_shape = normalize_response(api, status, headers, body)
            assert parses.normalized(api, status, headers, body) == fresh_shape


def test_what_tells_responses_apart_is_in_the_key() -> None:
    json = [("content-type", "application/json")]
    whole = Response(200, json, b'{"a": 1}', complete=True)
    cut = Response(200, json, b'{"a": 1}', complete=False)
    assert parses.shape(whole) == "JSON 200"
    assert parses.shape(cut) == "JSON 200, message cut"
    half = Response(200, json, b'{"a": ', complete=False)
    left = Response(200, json, b'{"a": ', complete=False, truncated=True)
    assert parses.shape(half) == "200 with truncated JSON"
    assert parses.shape(left) == "JSON 200, the client left"
    assert parses.problems("anthropic", cut, streaming=False, injected=()) != parses.problems(
        "anthropic", whole, streaming=False, injected=()
    )


def test_a_caller_may_change_the_problems_it_got() -> None:
    response = Response(200, [("content-type", "application/json")], b"{", complete=False)
    first = parses.problems("anthropic", response, streaming=False, injected=())
    assert first
    first.clear()
    assert parses.problems("anthropic", response, streaming=False, injected=())


def test_a_memo_drops_its_oldest_entry_when_full() -> None:
    memo: Memo[int, int] = Memo(size=2)
    made: list[int] = []

    def get(n: int) -> int:
        def make() -> int:
            made.append(n)
            return n * 10

        return memo.get(n, make)

    assert [get(n) for n in (1, 2, 1, 3, 2, 1)] == [10, 20, 10, 30, 20, 10]
    assert made == [1, 2, 3, 1]  # 3 pushed 1 out; 2 stayed


def test_a_campaign_judges_as_it_would_parsing_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    draw = Draw(builtin_scenarios(), seed=7)
    indexes = list(range(60))
    kept = Judge("eager")
    outcomes = kept.iterations(draw, indexes)
    monkeypatch.setattr(parses, "normalized", normalize_response)
    monkeypatch.setattr(parses, "problems", response_problems)
    monkeypatch.setattr(parses, "shape", body_shape)
    fresh = Judge("eager")
    assert fresh.iterations(draw, indexes) == outcomes
    assert fresh.canonical == kept.canonical  # the meanings schedule-dependence compares
    assert len(kept.canonical) > 10


def test_a_session_world_builds_its_replies_once(monkeypatch: pytest.MonkeyPatch) -> None:
    (scenario,) = from_file(Path(__file__).parent / "sessions" / "claude-code-session.jsonl")
    built: list[Any] = []
    real = fuzz_session.upstream_replies  # type: ignore[attr-defined]

    def counted(part: Any, plan: Plan) -> Any:
        built.append(part.name)
        return real(part, plan)

    monkeypatch.setattr(fuzz_session, "upstream_replies", counted)
    plan = Plan(faults=(Fault(FaultKind.SERVER_ERROR, 0),), read_size=64)  # a canonical run too
    Judge("eager").evaluate(scenario, plan)
    # two worlds (the plan's and its canonical run), each request's answers built once each
    assert len(built) == 2 * len(scenario.parts)
