"""The seed race (coder/coder#26139) under many schedules: lazy initiation can send a JSON
error followed by SSE frames on one response; eager initiation never does.

Everything runs in memory under the MockClock (``autojump_clock``) and trio's seeded
scheduler, so each schedule is exactly reproducible. What varies: when the client starts
reading and how much it takes per read (a client that is not reading yet keeps the relay
from writing the frame it already took off the channel: the window), how long the injected
tool takes, how slowly the upstream streams, and the scheduler's seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

from aibridge_cli.config import ServeOptions, StreamInitiation
from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.proxy.run import build_app
from aibridge_cli.proxy.server import Server
from aibridge_cli.sim.network import MemoryNetwork, Yields
from aibridge_cli.sim.sched import Scheduler, deterministic
from aibridge_cli.sse import SSEDecoder
from aibridge_cli.tools import InjectedTool, ToolOutcome, ToolSet

from .anthropic_script import TOOL_ONLY_TURN, rate_limited
from .conftest import WEATHER
from .rawhttp import RawClient, RawResponse

KEYS = ["sk-ant-seed-key-zero-0000", "sk-ant-seed-key-one-11111"]
RATE_LIMITED = {
    "type": "error",
    "error": {"type": "rate_limit_error", "message": "all configured keys are rate-limited"},
}


@dataclasses.dataclass(frozen=True)
class Schedule:
    seed: int
    read_delay: float  # seconds before the client reads anything of the response
    read_size: int  # bytes per read
    tool_delay: float
    upstream_delay: float  # before each upstream chunk


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    """trio's seeded scheduler hook (``aibridge_cli.sim.sched``), for this test's run."""
    with deterministic(Scheduler()) as installed:
        yield installed


async def run_seed_case(
    scheduler: Scheduler, mode: StreamInitiation, schedule: Schedule
) -> tuple[RawResponse, list[str | None]]:
    """One request through the seed case; the raw response and the keys upstream saw."""
    # Seed 0 is trio's FIFO order; other seeds reorder batches of runnable tasks freely.
    scheduler.configure(schedule.seed, budget=0 if schedule.seed == 0 else 10_000, rate=0.5)
    first = TOOL_ONLY_TURN
    first = dataclasses.replace(first, delays=[schedule.upstream_delay] * len(first.chunks))
    upstream = ScriptedUpstream([first, rate_limited("7"), rate_limited("3")])

    async def slow_tool(tool: InjectedTool, arguments: Any) -> ToolOutcome:
        await trio.sleep(schedule.tool_delay)
        return await tool.run(arguments)

    async with trio.open_nursery() as nursery:
        app = build_app(
            ServeOptions(
                anthropic_base_url="http://upstream.test",
                anthropic_keys=KEYS,
                stream_initiation=mode,
            ),
            tools=ToolSet.of([WEATHER]),
            network_backend=MemoryNetwork(nursery, Server(upstream).serve_stream, Yields({})),
        )
        app.env.run_tool = slow_tool
        client_side, server_side = trio.testing.lockstep_stream_pair()
        nursery.start_soon(Server(app).serve_stream, server_side)
        client = RawClient(client_side)
        body = {
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        await client.send_request(
            "POST",
            "/anthropic/v1/messages",
            json.dumps(body).encode(),
            [("content-type", "application/json")],
        )
        await trio.sleep(schedule.read_delay)
        response = await client.read_response(schedule.read_size)
        await client_side.aclose()
        await app.env.client.aclose()
        nursery.cancel_scope.cancel()
    return response, [seen.header("x-api-key") for seen in upstream.seen]


def classify(response: RawResponse) -> str:
    """``sse`` (the right shape), ``json-then-sse`` (the seed failure), ``sse-then-json``
    (its mirror: the loop's JSON error after the relay's first frame) or ``other: ...``."""
    body = response.body
    if body.startswith(b"event:"):
        decoder = SSEDecoder()
        events = decoder.feed(body)
        if (
            response.status == 200
            and response.header("content-type") == "text/event-stream"
            and not decoder.pending()
            and [e.event for e in events] == ["message_start", "error"]
            and json.loads(events[1].data) == RATE_LIMITED
        ):
            return "sse"
        if [e.event for e in events] == ["message_start"] and decoder.pending():
            tail = body[len(events[0].raw) :]
            if tail.startswith(b"{") and json.loads(tail) == RATE_LIMITED:
                return "sse-then-json"
        return f"other: {response.status} {body[:200]!r}"
    cut = body.find(b"event:")
    if body.startswith(b"{") and cut > 0:
        error = json.loads(body[:cut])
        rest = SSEDecoder().feed(body[cut:])
        if error["error"] == RATE_LIMITED["error"] and [e.event for e in rest] == ["message_start"]:
            return "json-then-sse"
    return f"other: {response.status} {body[:200]!r}"


SCHEDULES = [
    Schedule(seed, read_delay, read_size, tool_delay, upstream_delay)
    for seed, read_delay, read_size, tool_delay, upstream_delay in itertools.product(
        range(4), (0.0, 0.25, 3.0), (11, 65536), (0.0, 1.0), (0.0, 0.1)
    )
]


async def test_lazy_initiation_sends_json_then_sse_under_some_schedules(
    autojump_clock: trio.testing.MockClock, scheduler: Scheduler
) -> None:
    outcomes: Counter[str] = Counter()
    malformed: list[tuple[Schedule, RawResponse]] = []
    for schedule in SCHEDULES:
        response, keys = await run_seed_case(scheduler, "lazy", schedule)
        assert keys == [KEYS[0], KEYS[0], KEYS[1]]
        outcome = classify(response)
        outcomes[outcome] += 1
        if outcome == "json-then-sse":
            malformed.append((schedule, response))
    # The race goes both ways: some schedules answer correctly, some send the seed failure
    # (and a few its mirror image, the JSON error written after the relay's first frame).
    assert {"sse", "json-then-sse"} <= set(outcomes) <= {"sse", "json-then-sse", "sse-then-json"}, (
        outcomes
    )
    schedule, response = malformed[0]
    # The seed failure exactly: the loop's 429 JSON, then the relay's SSE on the same body.
    assert response.status == 429
    assert response.header("content-type") == "application/json"
    assert response.header("retry-after") == "3"
    assert response.body.startswith(json.dumps(RATE_LIMITED, separators=(",", ":")).encode())
    assert b"event: message_start" in response.body
    # Replaying that schedule gives that body again, byte for byte.
    again, _ = await run_seed_case(scheduler, "lazy", schedule)
    assert (again.status, again.body) == (response.status, response.body)


async def test_eager_initiation_never_sends_the_seed_failure(
    autojump_clock: trio.testing.MockClock, scheduler: Scheduler
) -> None:
    outcomes: Counter[str] = Counter()
    for schedule in SCHEDULES:
        response, keys = await run_seed_case(scheduler, "eager", schedule)
        assert keys == [KEYS[0], KEYS[0], KEYS[1]]
        outcomes[classify(response)] += 1
    assert outcomes == Counter({"sse": len(SCHEDULES)})
