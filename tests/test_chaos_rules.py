"""The chaos rules, sans-io: the spec grammar, the TOML form, which requests a rule takes,
when it strikes, and the same strikes for the same seed and traffic."""

from __future__ import annotations

import tomllib

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.faults import FaultKind
from aibridge_cli.proxy.chaos import (
    Chaos,
    Facts,
    Rule,
    carries_tool_results,
    parse_spec,
    request_facts,
    rules_from_toml,
)
from aibridge_cli.proxy.chaos_report import Reactions, Seen

ANTHROPIC = Facts(api="anthropic", path="/anthropic/v1/messages", model="claude-sonnet-4-0")


def test_a_spec_names_kind_point_when_which_and_the_faults_own_settings() -> None:
    rule = parse_spec(
        "error-event@3, api=anthropic, p=0.25, first=2, every=3, window=10-60, "
        "model=claude-*, ua=claude-cli/*, session=s1, turn=tool, route=/anthropic/*, "
        "name=overload, message=Overloaded"
    )
    assert rule == Rule(
        FaultKind.ERROR_EVENT,
        name="overload",
        at=3,
        p=0.25,
        first=2,
        every=3,
        window=(10.0, 60.0),
        api="anthropic",
        route="/anthropic/*",
        model="claude-*",
        user_agent="claude-cli/*",
        session="s1",
        turn="tool",
        message="Overloaded",
    )
    assert parse_spec("429,retry-after=2,should-retry=false") == Rule(
        FaultKind.RATE_LIMIT_ONE, retry_after="2", should_retry=False
    )
    assert parse_spec("reset-in-body@tool-args").at == "tool-args"
    assert parse_spec("stall@1,seconds=2.5,window=30-").window == (30.0, None)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nope", "bad kind 'nope'"),
        ("client-disconnect", "simulated world only"),
        ("529,p=1.5", "bad p '1.5'"),
        ("529,first=0", "bad first '0' (at least 1)"),
        ("529,window=9-3", "the end comes before the start"),
        ("529,api=gemini", "bad api 'gemini'"),
        ("529,colour=red", "unknown setting 'colour'"),
        ("529,first", "'first' is not NAME=VALUE"),
        ("429,retry-after=soon", "bad retry-after 'soon'"),
        ("529@tool-args", "@tool-args needs a kind that strikes inside a body"),
        ("error-event@-1", "bad at '-1'"),
    ],
)
def test_a_bad_spec_is_one_error_naming_the_bad_part(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match="chaos spec") as caught:
        parse_spec(spec)
    assert says in str(caught.value)


def test_the_toml_form_takes_the_same_names_and_a_seed() -> None:
    data = tomllib.loads(
        """
        seed = 7
        [[chaos]]
        kind = "529"
        api = "anthropic"
        first = 1
        [[chaos]]
        kind = "error-event"
        at = 3
        retry_after = "2"
        p = 0.5
        """
    )
    rules, seed = rules_from_toml(data, "c.toml")
    assert seed == 7
    assert rules == [
        Rule(FaultKind.OVERLOADED, api="anthropic", first=1),
        Rule(FaultKind.ERROR_EVENT, at=3, retry_after="2", p=0.5),
    ]
    with pytest.raises(ConfigError, match=r"c.toml: \[\[chaos\]\] #1: unknown setting 'kynd'"):
        rules_from_toml({"chaos": [{"kynd": "529"}]}, "c.toml")


def test_which_requests_a_rule_takes() -> None:
    streaming = Facts(
        api="openai-chat",
        path="/openai/v1/chat/completions",
        model="gpt-4.1",
        user_agent="OpenAI/Python 1.0",
        session="abc",
        streaming=True,
    )
    assert parse_spec("529,api=openai").matches(streaming)
    assert parse_spec("529,api=openai-chat").matches(streaming)
    assert not parse_spec("529,api=openai-responses").matches(streaming)
    assert not parse_spec("529,api=anthropic").matches(streaming)
    assert parse_spec("529,model=gpt-4*").matches(streaming)
    assert not parse_spec("529,model=gpt-5*").matches(streaming)
    assert parse_spec("529,ua=openai/python*").matches(streaming)  # case-insensitive
    assert parse_spec("529,session=abc").matches(streaming)
    assert not parse_spec("529,session=abd").matches(streaming)
    assert parse_spec("529,route=/openai/*").matches(streaming)
    assert not parse_spec("529,turn=tool").matches(streaming)
    assert parse_spec("529,turn=first").matches(streaming)
    # an error event or a malformed one needs an event stream
    assert not parse_spec("error-event@1").matches(ANTHROPIC)
    assert parse_spec("reset-in-body@1").matches(ANTHROPIC)


def test_a_tool_turn_is_a_client_tool_result_or_an_agentic_continuation() -> None:
    anthropic_turn = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
        ]
    }
    chat_turn = {"messages": [{"role": "tool", "content": "ok", "tool_call_id": "c"}]}
    responses_turn = {"input": [{"type": "function_call_output", "output": "ok"}]}
    for body in (anthropic_turn, chat_turn, responses_turn):
        assert carries_tool_results(body)
    assert not carries_tool_results({"messages": [{"role": "user", "content": "hi"}]})
    assert not carries_tool_results({"input": "hi"})
    facts = request_facts("anthropic", "/anthropic/v1/messages?beta=true", [], {}, loop_turn=True)
    assert (facts.path, facts.after_tool_turn) == ("/anthropic/v1/messages", True)


def strikes(chaos: Chaos, requests: int, now: float = 0.0) -> list[str | None]:
    out = []
    for _ in range(requests):
        strike = chaos.decide(ANTHROPIC, now)
        out.append(strike.rule.name if strike else None)
    return out


def test_first_every_and_window() -> None:
    first = Chaos.of([parse_spec("529,first=2,name=a")])
    assert strikes(first, 4) == ["a", "a", None, None]
    every = Chaos.of([parse_spec("529,every=3,name=b")])
    assert strikes(every, 6) == [None, None, "b", None, None, "b"]
    window = Chaos.of([parse_spec("529,window=10-20,name=c")], now=100.0)
    assert [strikes(window, 1, t)[0] for t in (105.0, 110.0, 119.9, 120.0)] == [
        None,
        "c",
        "c",
        None,
    ]


def test_each_rule_counts_its_own_matches_and_the_first_that_holds_strikes() -> None:
    chaos = Chaos.of([parse_spec("529,every=2,name=a"), parse_spec("500,first=3,name=b")])
    assert strikes(chaos, 4) == ["b", "a", "b", "a"]
    assert [(r["name"], r["matched"], r["struck"]) for r in chaos.status()["rules"]] == [
        ("a", 4, 2),
        ("b", 4, 2),
    ]


def test_the_same_seed_and_traffic_give_the_same_strikes() -> None:
    spec = "529,p=0.3,name=r"
    runs = [strikes(Chaos.of([parse_spec(spec)], seed=7), 200) for _ in range(2)]
    assert runs[0] == runs[1]
    struck = sum(1 for s in runs[0] if s)
    assert 40 < struck < 80  # about 30% of 200
    other = strikes(Chaos.of([parse_spec(spec)], seed=8), 200)
    assert other != runs[0]


def test_rules_are_named_and_cleared() -> None:
    chaos = Chaos.of([parse_spec("529"), parse_spec("500,name=mine")])
    assert [s.rule.name for s in chaos.states] == ["chaos-1", "mine"]
    with pytest.raises(ConfigError, match="already set"):
        chaos.add(parse_spec("401,name=mine"), 0.0)
    assert chaos.clear("mine") == 1
    assert chaos.clear() == 1
    assert chaos.states == []
    assert chaos.watching  # the reactions go on being read


def test_reactions_retries_delay_retry_after_and_recovery() -> None:
    chaos = Chaos.of([parse_spec("429,retry-after=2,first=1,name=r")])
    facts = Facts(api="anthropic", path="/p", digest="d1", client="cli s1")
    assert chaos.decide(facts, 10.0) is not None
    reactions: Reactions = chaos.reactions
    reactions.finished(Seen("d1", "cli s1", arrived=10.0, finished=10.1, ok=False, struck=True))
    reactions.finished(Seen("zz", "other", arrived=10.5, finished=11.0, ok=True, struck=False))
    reactions.finished(Seen("d1", "cli s1", arrived=12.2, finished=13.0, ok=True, struck=False))
    [fault] = reactions.report()["faults"]
    assert fault["retries"] == 1
    assert fault["retry_delays_s"] == [2.1]
    assert fault["retry_after_honoured"] is True
    assert fault["session_went_on"] is True
    assert fault["recovery_s"] == 2.9
    assert "1 retry (2.1s); Retry-After 2s honoured" in "\n".join(reactions.lines())


def test_a_retry_sooner_than_retry_after_did_not_honour_it() -> None:
    chaos = Chaos.of([parse_spec("429,retry-after=5,name=r")])
    facts = Facts(api="anthropic", path="/p", digest="d1", client="c")
    chaos.decide(facts, 0.0)
    chaos.reactions.finished(Seen("d1", "c", arrived=0.0, finished=0.1, ok=False, struck=True))
    chaos.reactions.finished(Seen("d1", "c", arrived=0.6, finished=1.0, ok=True, struck=False))
    [fault] = chaos.reactions.report()["faults"]
    assert fault["retry_after_honoured"] is False
    assert fault["retry_delays_s"] == [0.5]
