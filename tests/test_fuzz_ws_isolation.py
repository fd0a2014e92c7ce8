"""Sockets with several responses in the simulated world, and the ws-isolation oracle:
each response's events are its own (docs/fuzzing.md, "WebSocket mode")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aibridge_cli.errors import ConfigError
from aibridge_cli.fakes.scripted_upstream import Reply
from aibridge_cli.fuzz.campaign import Campaign, Settings, load_repro, run_campaign, write_repro
from aibridge_cli.fuzz.catalog import builtin, from_file
from aibridge_cli.fuzz.plan import Fault, FaultKind, Plan
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.scenario import Exchange, Scenario
from aibridge_cli.fuzz.signature import Signature
from aibridge_cli.fuzz.socket_scenario import distinct_ids, message_ids
from aibridge_cli.fuzz.ws_isolation import AFTER_END, BEGUN, OTHERS, isolation_problems
from aibridge_cli.providers.openai_responses_ws import message_type
from aibridge_cli.proxy.ws_bridge import WebSocketInterceptor

SCENARIOS = Path(__file__).parent / "scenarios"
SESSION = SCENARIOS / "codex-session-socket.toml"


def scenario(path: Path) -> Scenario:
    return from_file(path)[0]


def test_an_upstream_that_goes_on_after_its_error_does_not_reach_the_next_response() -> None:
    # The upstream answers response 0 with two error events; the proxy relays the first
    # and ends the response. Reusing the socket handed the second to response 1, and each
    # later response the answer before its own; the socket is closed after a failed answer.
    twice = Plan(faults=(Fault(FaultKind.ERROR_EVENT, 0, 0), Fault(FaultKind.ERROR_EVENT, 0, 1)))
    violations, world = Judge("eager").evaluate(scenario(SESSION), twice)
    assert violations == []
    assert [a.response for a in world.attempts] == [0, 1, 1, 2, 3]
    last = [message_type(r.messages[-1])[0] for r in world.client.responses]
    # mid-stream-error's own error event ends response 2
    assert last == ["error", "response.completed", "error", "response.completed"]


# -- the planted bug: the upstream socket kept after a cut response ------------------------


def keep_the_socket_after_a_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plant, a bug of the class a chaos strike once had: a response cut by the proxy
    (a malformed event, a read timeout) leaves its upstream socket open, the rest of the
    upstream's answer unread, and the next response.create goes out on it."""
    original = WebSocketInterceptor._answer

    async def kept(code: int = 1000) -> None:
        pass  # neither drained nor closed

    async def answer(self: WebSocketInterceptor, *args: Any) -> bool:
        monkeypatch.setattr(self.session, "close", kept)
        try:
            return await original(self, *args)
        finally:
            monkeypatch.delattr(self.session, "close")

    monkeypatch.setattr(WebSocketInterceptor, "_answer", answer)


CUT = Plan(faults=(Fault(FaultKind.MALFORMED_SSE, 0, 3),))  # response 0 cut at its 4th event


def campaign(iterations: int) -> Campaign:
    return run_campaign(Settings((scenario(SESSION),), 1, iterations))


def test_the_unplanted_proxy_keeps_each_response_its_own() -> None:
    violations, world = Judge("eager").evaluate(scenario(SESSION), CUT)
    assert violations == []
    assert len(world.client.responses) == 4
    assert campaign(20).failures == []


def test_a_socket_kept_after_a_cut_response_is_a_ws_isolation_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keep_the_socket_after_a_cut(monkeypatch)
    violations, _ = Judge("eager").evaluate(scenario(SESSION), CUT)
    leak = [v for v in violations if v.oracle == "ws-isolation"]
    # response 1 got the rest of response 0's answer: its deltas, named by its item
    assert [(v.message, v.shape) for v in leak][:1] == [
        (
            "response 1 got 'response.output_text.delta' (message 0) naming 'msg_fixture0', "
            "from the upstream's answer to response 0",
            OTHERS,
        )
    ]
    found = campaign(20)  # the first ws-isolation failure is iteration 17
    signatures = {f.signature for f in found.findings}
    assert Signature("codex-session-socket", "ws-isolation", OTHERS) in signatures
    # its repro file keeps the socket's responses and replays to the same violation
    finding = next(f for f in found.findings if f.signature.oracle == "ws-isolation")
    _, again, plan = load_repro(write_repro(finding, tmp_path))
    assert again.creates == scenario(SESSION).creates
    replayed, _ = Judge("eager").evaluate(again, plan)
    assert finding.signature.shape in {v.shape for v in replayed if v.oracle == "ws-isolation"}


# -- the oracle, sans-io --------------------------------------------------------------------


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def answer(response_id: str, item_id: str) -> Reply:
    """An upstream's answer on a socket: created, one delta, completed."""
    messages = [
        event("response.created", response={"id": response_id}),
        event("response.output_text.delta", item_id=item_id, delta="Hi"),
        event("response.completed", response={"id": response_id, "output": [{"id": item_id}]}),
    ]
    return Reply(101, [], [m.encode() for m in messages])


def shapes(responses: list[list[str]], served: list[tuple[int, Reply]]) -> list[str]:
    return [shape for _, shape in isolation_problems(responses, served)]


def test_each_response_of_its_own_answer_is_isolated() -> None:
    a, b = answer("resp_a", "msg_a"), answer("resp_b", "msg_b")
    mine = [[m.decode() for m in a.chunks], [m.decode() for m in b.chunks]]
    assert shapes(mine, [(0, a), (1, b)]) == []
    # a response that is one error event (a refusal, all keys cooling) is whole too
    assert shapes([mine[0], [event("error", status=429)]], [(0, a)]) == []


def test_another_response_s_event_a_late_start_and_an_event_after_the_end_are_findings() -> None:
    a, b = answer("resp_a", "msg_a"), answer("resp_b", "msg_b")
    first, second = [m.decode() for m in a.chunks], [m.decode() for m in b.chunks]
    # response 1 got response 0's last delta and terminal, then its own answer
    leaked = [first[:2], [*first[1:], *second]]
    assert shapes(leaked, [(0, a), (1, b)]) == [OTHERS, AFTER_END]
    # no id tells where it came from: only its start and its end say so
    late = event("response.output_text.delta", delta="x")
    assert shapes([[event("error")], [late, *second]], [(0, a), (1, b)]) == [BEGUN]
    assert shapes([first, [*second, late]], [(0, a), (1, b)]) == [AFTER_END]
    # an upstream's error event names no id: word for word, it is still its answer's
    failure = event("error", code="server_error", message="The server had an error")
    failed = Reply(101, [], [a.chunks[0], failure.encode()])
    assert shapes([[first[0]], [failure]], [(0, failed), (1, b)]) == [OTHERS]
    # an id both responses' answers carry tells nothing
    same = [[m.decode() for m in a.chunks]] * 2
    assert shapes(same, [(0, a), (1, a)]) == []


def test_an_answer_played_twice_gets_ids_of_its_own() -> None:
    a = Exchange(101, (), tuple(answer("resp_a", "msg_a").chunks))
    b = Exchange(101, (), tuple(answer("resp_b", "msg_b").chunks))
    first, other, again = distinct_ids([a, b, a])
    assert (first, other) == (a, b)
    assert {i for m in again.chunks for i in message_ids(m)} == {"resp_a-2", "msg_a-2"}


# -- scenarios ------------------------------------------------------------------------------


def test_a_socket_of_fixtures_sends_each_response_create_once_the_previous_ended() -> None:
    session = scenario(SESSION)
    assert len(session.creates) == 3  # four fixtures, four response.create
    assert session.describe().startswith("4 responses on one socket, streaming, 1 key(s)")
    violations, world = Judge("eager").evaluate(session, Plan())
    assert violations == []
    # the tool turn's continuation is response 1's second upstream request
    assert [(a.response, a.status) for a in world.attempts] == [
        (0, 101),
        (1, 101),
        (1, 101),
        (2, 101),
        (3, 101),
    ]
    firsts = [message_type(r.messages[0])[0] for r in world.client.responses]
    assert firsts == ["response.created"] * 4
    assert world.recording is not None
    assert len(world.recording.lines) == 4


def test_toml_turns_answer_a_socket_s_responses_in_order_failing_over_on_it() -> None:
    turns = scenario(SCENARIOS / "socket-turns.toml")
    assert (turns.transport, len(turns.creates), turns.keys) == ("websocket", 2, 2)
    violations, world = Judge("eager").evaluate(turns, Plan())
    assert violations == []
    # response 1's 429 on key 0's socket: the same response.create on key 1's new socket
    assert [(a.response, a.key, a.status) for a in world.attempts] == [
        (0, 0, 101),
        (0, 0, 101),
        (1, 0, 429),
        (1, 1, 101),
        (2, 1, 101),
    ]


def test_a_socket_scenario_survives_a_repro_file() -> None:
    session = scenario(SESSION)
    assert Scenario.from_json(json.loads(json.dumps(session.to_json()))) == session
    # a one-response scenario's repro file keeps its bytes
    assert "creates" not in builtin("openai-responses-ws/simple")[0].to_json()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('transport = "websocket"\napi = "anthropic"\n[[turn]]\ntext = "x"', "Responses API"),
        ('transport = "carrier-pigeon"\n[[turn]]\ntext = "x"', "Responses API"),
        ('transport = "websocket"\nresponses = 0\n[[turn]]\ntext = "x"', "1 to 16"),
        ('transport = "websocket"\nstream = false\n[[turn]]\ntext = "x"', "unknown key 'stream'"),
        ('transport = "websocket"\nrequests = 2\n[[turn]]\ntext = "x"', "unknown key 'requests'"),
        (
            'transport = "websocket"\nfixtures = ["openai-responses-ws/simple"]\n'
            '[[turn]]\ntext = "x"',
            "either fixtures or turns",
        ),
        ('transport = "websocket"\nfixtures = ["anthropic/simple"]', "not a WebSocket scenario"),
        ('transport = "websocket"\nfixtures = "openai-responses-ws/simple"', "a list of"),
    ],
)
def test_bad_socket_settings_are_one_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "socket.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        from_file(path)
