"""The release oracle: an upstream answer outliving its client is found, planted and not."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from aibridge_cli.fuzz import plan as plan_module
from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin, builtin_scenarios
from aibridge_cli.fuzz.plan import HANG_UP_PACE, ChunkDelay, Cut, Fault, FaultKind, Plan, draw_plan
from aibridge_cli.fuzz.release import release_problems
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.proxy.server import HTTPConnection
from aibridge_cli.proxy.ws_server import ResponsesSocket
from aibridge_cli.sim.raw_upstream import Answer

SIMPLE = "anthropic/simple#streaming"
CHAT = "openai-chat/simple#streaming"
WS = "openai-responses-ws/simple"


def test_only_an_answer_closed_over_a_second_after_the_client_left_is_late() -> None:
    answers = [Answer(0, 0.0, 2.0), Answer(1, 2.0, 3.0), Answer(2, 2.5, 3.5)]
    assert release_problems(answers, 2.5) == []  # 1 s after: within the bound
    assert release_problems(answers, 2.4) == [
        "upstream answer #2 was closed 1.1 s after the client left (bound 1 s)"
    ]


def hang_up_mid_answer() -> Plan:
    """The client leaves after 10 bytes; the rest of the answer comes 3 s later."""
    whole = len(builtin(SIMPLE)[0].exchanges[0].body)
    return Plan(
        faults=(Fault(FaultKind.CLIENT_DISCONNECT, 0, 10),),
        cuts=(Cut(0, (whole // 2,)),),
        delays=(ChunkDelay(0, 1, 3.0),),
    )


def run(name: str, plan: Plan) -> tuple[set[str], list[Answer]]:
    violations, world = Judge("eager").evaluate(builtin(name)[0], plan)
    return {v.oracle for v in violations}, world.answers


def found_in_campaign(name: str) -> set[str]:
    only_hang_ups = frozenset({FaultKind.CLIENT_DISCONNECT})
    settings = Settings(tuple(builtin(name)), 1, 10, faults=only_hang_ups)
    campaign = run_campaign(settings, investigate=False)
    return {v.oracle for outcome in campaign.failures for v in outcome.violations}


def test_a_cancelled_handler_lets_the_answer_go_at_once() -> None:
    oracles, answers = run(SIMPLE, hang_up_mid_answer())
    assert oracles == set()
    assert [(a.opened, a.closed) for a in answers] == [(0.0, 0.0)]
    assert found_in_campaign(CHAT) == set()


def no_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plant (bench/mutants.py's server-no-cancel): the watcher sees the client go and
    cancels nothing, so the handler reads the upstream's answer to its end."""
    original = HTTPConnection._watch_peer

    async def watch_peer(self: HTTPConnection, handler_scope: trio.CancelScope) -> None:
        await original(self, trio.CancelScope())

    monkeypatch.setattr(HTTPConnection, "_watch_peer", watch_peer)


def test_a_handler_not_cancelled_when_its_client_leaves_is_a_release_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_cancel(monkeypatch)
    oracles, answers = run(SIMPLE, hang_up_mid_answer())
    assert oracles == {"release"}  # nothing else sees it: the world closes all at teardown
    assert [(a.opened, a.closed) for a in answers] == [(0.0, 3.0)]
    assert "release" in found_in_campaign(CHAT)


def released_in_default_campaign() -> set[str]:
    """A campaign with every fault kind, as ``aibridge fuzz`` draws them."""
    settings = Settings(tuple(builtin("openai-responses")), 1, 40)
    campaign = run_campaign(settings, investigate=False)
    return {v.oracle for outcome in campaign.failures for v in outcome.violations}


def test_plans_with_a_hang_up_pace_its_answer_so_a_default_campaign_finds_no_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert released_in_default_campaign() == set()
    no_cancel(monkeypatch)
    assert released_in_default_campaign() == {"release"}
    # the pacing is what shows it: without it the same campaign passes
    monkeypatch.setattr(plan_module, "_slow_after_hang_up", lambda scenario, plan: plan)
    assert released_in_default_campaign() == set()


def test_only_half_the_plans_with_a_hang_up_are_paced_and_no_other() -> None:
    scenarios = builtin_scenarios()
    paced = hung_up = 0
    for i in range(600):
        scenario = scenarios[i % len(scenarios)]
        plan = draw_plan(random.Random(i), scenario)
        slow = {(d.exchange, d.chunk) for d in plan.delays if d.seconds == HANG_UP_PACE}
        hang_ups = {f.exchange for f in plan.faults if f.kind is FaultKind.CLIENT_DISCONNECT}
        if not hang_ups or plan.schedule_seed & 1:
            assert not slow
            continue
        hung_up += 1
        due = {e for e in hang_ups if scenario.exchanges[e].status < 400}
        assert {e for e, _ in slow} == due
        paced += bool(due)
    assert hung_up > 10
    assert paced > 5


def test_a_socket_that_leaves_its_response_running_is_a_release_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client leaves after the first message; the upstream's next one comes 3 s later.
    plan = Plan(
        faults=(Fault(FaultKind.CLIENT_DISCONNECT, 0, 10),), delays=(ChunkDelay(0, 1, 3.0),)
    )
    assert run(WS, plan) == (set(), [Answer(0, 0.0, 0.0)])
    # The plant: the socket's reader sees the client's close and cancels nothing.
    original = ResponsesSocket._read

    async def read(self: ResponsesSocket, socket: Any, queue: Any, scope: trio.CancelScope) -> None:
        await original(self, socket, queue, trio.CancelScope())

    monkeypatch.setattr(ResponsesSocket, "_read", read)
    assert run(WS, plan) == ({"release"}, [Answer(0, 0.0, 3.0)])
