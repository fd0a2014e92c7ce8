"""One simulated run: client, proxy and mock upstream in one trio run, in virtual time.

The proxy is the real one (``proxy.run.build_app`` and ``Server.serve_stream``); only the
network underneath is swapped: the client talks to it over a lockstep stream (a send
blocks until the client reads, so a slow reader creates backpressure), and its upstream
client reaches a ``ScriptedUpstream`` through ``MemoryNetwork``. Time is a
``MockClock(autojump_threshold=0)``; the scheduler is a seeded ``sched.Scheduler``. One
``WorldSpec`` therefore gives one exact run.

After the client is done the world checks its own hygiene: the proxy must let go of the
client connection, closing the upstream client must close every upstream connection, and
no task may be left in the world's nursery.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import trio

from ..config import (
    BreakerConfig,
    ServeOptions,
    ServerConfig,
    StreamInitiation,
    UpstreamTimeouts,
)
from ..fakes.scripted_upstream import Reply
from ..fakes.scripted_websocket import answered_status
from ..headers import presented_key
from ..interception import Interception, Transport
from ..mcp_tools.results import fault_outcome
from ..providers.base import dumps
from ..proxy.breaker import BreakerEvent
from ..proxy.run import build_app
from ..proxy.server import Server
from ..tools import InjectedTool, ToolOutcome, ToolSet
from .client import ClientResult, Pace, exchange, websocket_exchange
from .lanes import REQUEST, SenderNetwork
from .marks import Lane, Mark, MarkKind, lane_of
from .network import MemoryNetwork
from .pipes import CheckpointPlan, Yields, stream_pair
from .raw_upstream import Answer, RawUpstream
from .recorder import MemoryRecorder
from .sched import MockClock, Scheduler, deterministic, rewind, settle
from .session import Session

# A fixed wall clock: Retry-After dates and records never read the real time.
WALL_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
UPSTREAM_URL = "http://upstream.sim"
READ_TIMEOUT = 30.0
GRACE = 5.0

_scheduler = Scheduler()
# A session: the client request the running task serves (the proxy's tasks inherit it)


class CommandResults:
    """Command tools' outputs, each run outside the simulated world once per distinct input.

    A real process inside a virtual-time run lets virtual time race ahead while it works
    (pings fire, read timeouts expire), so its answer would depend on the machine's speed.
    Run synchronously, it stops the world instead: no task runs and no virtual time passes;
    its duration in the world is the plan's tool latency. Kept for a campaign (per worker
    process): the same input gives the same output, so commands must be deterministic.
    """

    def __init__(self) -> None:
        self._outcomes: dict[tuple[str, str], ToolOutcome] = {}

    def outcome(self, tool: InjectedTool, arguments: Any) -> ToolOutcome:
        key = (tool.name, json.dumps(arguments, sort_keys=True))
        if key not in self._outcomes:
            self._outcomes[key] = tool.run_blocking(arguments)
        return self._outcomes[key]

    def only_outcome(self, name: str) -> ToolOutcome | None:
        """What the tool ``name`` gave, when it ran on one input only (a canned answer
        then stands for it exactly); None otherwise."""
        found = [outcome for (tool, _), outcome in self._outcomes.items() if tool == name]
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class WorldSpec:
    """Everything one run depends on."""

    path: str
    body: bytes
    replies: Sequence[Reply]
    keys: Sequence[str]
    tools: ToolSet
    stream_initiation: StreamInitiation = "eager"
    transport: Transport = "http"  # websocket: ``body`` is one message on a socket on ``path``
    pace: Pace = field(default_factory=Pace)
    tool_latency: Sequence[float] = ()
    tool_faults: Mapping[int, str] = field(default_factory=dict)  # MCP call index -> fault
    checkpoints: CheckpointPlan = field(default_factory=dict)
    schedule_seed: int = 0
    schedule_budget: int = 0
    schedule_rate: float = 0.0
    bound: float = 600.0
    # A load: ``requests`` clients send ``body``, one connection each, ``gap`` seconds
    # apart, to a proxy with this circuit breaker (None: none).
    requests: int = 1
    gap: float = 0.0
    starts: Sequence[float] = ()  # a load: how much later than its gap-spaced turn each starts
    breaker: BreakerConfig | None = None
    # websocket: the later response.create messages on the same socket, each sent once
    # the previous response ended (a socket with several responses)
    creates: Sequence[bytes] = ()
    # A session: each of the ``requests`` clients sends its own request, and the upstream
    # answers each upstream request with the answers of the request it was made for
    session: Session | None = None


@dataclass(frozen=True)
class Attempt:
    """One request as the upstream saw it."""

    time: float
    key: int | None  # index into the configured keys; None: no or unknown key
    status: int | None  # None: the connection was dropped before a status line
    retry_after: str | None
    response: int = 0  # on a socket with several responses: the one the client was in
    request: int = 0  # a session: the client request it was made for


@dataclass
class WorldResult:
    client: ClientResult
    attempts: list[Attempt]
    pool: list[dict[str, Any]]  # the key pool's snapshot when the client was done
    end_time: float
    live: bool  # the client was done within the bound
    hygiene: list[str]
    deviations: int
    timeline: list[str] | None = None
    marks: list[Mark] | None = None  # with the timeline: what a reproducer's page draws
    # tool results the loop got that the next upstream request did not carry
    lost_tool_results: list[str] = field(default_factory=list)
    clients: list[ClientResult] = field(default_factory=list)  # every client, in start order
    breaker_events: list[BreakerEvent] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)  # the upstream's, once closed
    # a load's recording: what the proxy handed its recorder, and the file it made
    handed: list[Interception] = field(default_factory=list)
    recording: MemoryRecorder | None = None
    # each client's span, from its turn to start to its last read: the proxy answered it then
    spans: list[tuple[float, float]] = field(default_factory=list)
    lost_requests: list[int] = field(default_factory=list)  # a session: whose result was lost


# Display names for the tasks a timeline shows; trio's internal tasks are left out.
TASK_NAMES = {
    "proxy-conn": "proxy handler/loop",
    "aibridge_cli.proxy.bridge.ClientStream.relay": "proxy relay",
    "aibridge_cli.proxy.server.HTTPConnection._watch_peer": "watch peer",
}
_HIDDEN = ("<init>", "<TrioToken.run_sync_soon task>")


class Timeline(trio.abc.Instrument):
    """Who ran when (virtual time, task, action), with notes from the world.

    Consecutive steps of one task make one line; two tasks handing control back and forth
    at one instant make one line too, so the interesting moments stand out.
    """

    def __init__(self, client: trio.lowlevel.Task) -> None:
        self.client = client  # the session's main task, which runs the world's client
        self.entries: list[list[Any]] = []  # [time, who, action, count]
        self.marks: list[Mark] = []

    def _add(self, who: str, action: str) -> None:
        now = trio.current_time()
        entries = self.entries
        if entries and entries[-1][:3] == [now, who, action] and action == "step":
            entries[-1][3] += 1
            return
        if (
            action == "step"
            and len(entries) >= 3
            and entries[-1][2] == "step"
            and entries[-2][:3] == [now, who, "step"]
            and entries[-3][:3] == [now, entries[-1][1], "step"]
        ):
            # A and B alternating at one instant: fold into "A <-> B".
            pair = f"{entries[-1][1]} <-> {who}"
            entries[-3:] = [
                [now, pair, "steps", entries[-3][3] + entries[-2][3] + entries[-1][3] + 1]
            ]
            return
        if action == "step" and entries and entries[-1][:3] == [now, f"{entries[-1][1]}", "steps"]:
            names = entries[-1][1].split(" <-> ")
            if who in names:
                entries[-1][3] += 1
                return
        entries.append([now, who, action, 1])

    def _who(self, task: trio.lowlevel.Task) -> str:
        if task is self.client:
            return "client"
        name = TASK_NAMES.get(task.name, task.name)
        if name == "watch peer" and task.parent_nursery is not None:
            owner = task.parent_nursery.parent_task.name
            name = "proxy watch peer" if owner == "proxy-conn" else f"{owner} watch peer"
        return name

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name not in _HIDDEN:
            self._add(self._who(task), "step")

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if task.name not in _HIDDEN:
            self._add(self._who(task), "spawned")

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        if task.name not in _HIDDEN:
            self._add(self._who(task), "exited")

    def note(self, text: str) -> None:
        self._add("--", text)

    def mark(self, kind: MarkKind, label: str, lane: Lane | None = None, **fields: Any) -> None:
        """A mark in the lane of ``lane``, or of the task running now."""
        if lane is None:
            lane = lane_of(self._who(trio.lowlevel.current_task()))
        when = trio.current_time()
        fields.setdefault("request", REQUEST.get())
        self.marks.append(Mark(len(self.marks), when, lane, kind, label, **fields))

    def render(self) -> list[str]:
        lines = []
        for now, who, action, count in self.entries:
            times = f" x{count}" if count > 1 else ""
            lines.append(f"{now:10.6f}  {who:<36} {action}{times}")
        return lines


REQUEST_LOG = "aibridge.requests"


class _ErrorLog(logging.Handler):
    """Keeps what the proxy logs at ERROR: a handler failure it survived is still a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == REQUEST_LOG:
            return  # a request's own line: an upstream failure the proxy answered, not a bug
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            inner = (
                exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else exc
            )
            text += f" ({type(inner).__name__}: {inner})"
        self.records.append(f"{record.name} logged an error: {text}")


_error_log = _ErrorLog()


def _quiet_logs() -> None:
    # The proxy logs superfluous starts and failovers; thousands of runs need silence,
    # except for errors, which the world keeps.
    logger = logging.getLogger("aibridge")
    if _error_log not in logger.handlers:
        logger.handlers[:] = [_error_log]
        logger.propagate = False


T = TypeVar("T")
_clock: MockClock | None = None  # the running session's


def session(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` in one trio run, in which it may ``simulate`` many worlds.

    Starting trio costs about a tenth of a world, so a campaign runs a batch of
    iterations in one session. Every world starts from the same state (see ``simulate``):
    a world alone in a session and the same world tenth in one are the same run.
    """
    global _clock
    assert _clock is None, "sessions do not nest"
    _quiet_logs()
    _clock = MockClock(autojump_threshold=0)
    try:
        with deterministic(_scheduler), warnings.catch_warnings():
            # Breaking out of a streamed httpx body leaves httpx's and httpcore's async
            # generators to trio's finalizer, which warns; it does close them, so that is
            # noise here, not a leak.
            warnings.filterwarnings("ignore", "Async generator", ResourceWarning)
            return trio.run(fn, clock=_clock, strict_exception_groups=True)
    finally:
        _clock = None


async def simulate(
    spec: WorldSpec, *, timeline: bool = False, commands: CommandResults | None = None
) -> WorldResult:
    """Run ``spec`` once in the current session; deterministic for a given spec.

    The world starts with the other tasks settled, virtual time at 0 and the scheduler
    seeded from the spec.
    """
    assert _clock is not None, "simulate() runs inside session()"
    await settle()
    rewind(_clock)
    _error_log.records.clear()
    _scheduler.configure(spec.schedule_seed, spec.schedule_budget, spec.schedule_rate)
    recorder = Timeline(trio.lowlevel.current_task()) if timeline else None
    if recorder is not None:
        trio.lowlevel.add_instrument(recorder)
    try:
        result = await _World(spec, recorder, commands or CommandResults()).run()
    finally:
        if recorder is not None:
            trio.lowlevel.remove_instrument(recorder)
    result.deviations = _scheduler.deviations
    if recorder is not None:
        result.timeline = recorder.render()
        result.marks = recorder.marks
    return result


def run_world(spec: WorldSpec, *, timeline: bool = False) -> WorldResult:
    """Run ``spec`` once in a session of its own."""
    return session(partial(simulate, spec, timeline=timeline))


class _World:
    def __init__(
        self, spec: WorldSpec, timeline: Timeline | None, commands: CommandResults
    ) -> None:
        self.spec = spec
        self.commands = commands
        self.timeline = timeline
        self.attempts: list[Attempt] = []
        self.errors: list[str] = []
        self.tool_calls = 0
        self.unsent: list[tuple[int, str, str]] = []  # (request, tool, result) not yet seen
        self.lost: list[str] = []
        self.lost_requests: list[int] = []
        self.owners: list[int] = []  # a session: the request of each upstream request
        self.taken = [0] * spec.requests  # a session: answers each request has had
        self.yields = Yields(spec.checkpoints)
        self.proxy_done = trio.Event()
        self.proxy_serving = 0
        self.breaker_events: list[BreakerEvent] = []
        self.upstream_serving = 0
        self.upstream_idle = trio.Event()
        self.upstream_idle.set()
        self.handed: list[Interception] = []
        # only a load or a socket of several responses records: one-request worlds run
        # as they always have
        several = spec.requests > 1 or bool(spec.creates)
        self.recording = MemoryRecorder() if several else None
        self.response = 0  # the response the client is in (a socket of several)
        self.spans = [(0.0, 0.0)] * spec.requests
        self.network: MemoryNetwork | None = None

    def _record(self, record: Interception) -> None:
        """The proxy's recorder: note what it was handed, then hand it on."""
        self.handed.append(record)
        self.mark("record", "recorded", "recorder")
        if self.recording is not None:
            self.recording(record)

    def note(self, text: str) -> None:
        if self.timeline is not None:
            self.timeline.note(text)

    def mark(self, kind: MarkKind, label: str, lane: Lane | None = None, **fields: Any) -> None:
        if self.timeline is not None:
            self.timeline.mark(kind, label, lane, **fields)

    def _downstream_sent(self, text: str, data: bytes) -> None:
        """The proxy wrote to the client: which task, and the bytes."""
        self.note(text)
        self.mark("write", f"wrote {len(data)} bytes", data=data)

    def _client_read(self, text: str, data: bytes) -> None:
        self.note(text)
        self.mark("read", f"read {len(data)} bytes", "client", data=data)

    def _body_seen(self, index: int, body: bytes) -> None:
        """The request after tool calls must carry their results (the tool-results oracle);
        in a session, the next upstream request of the same client request."""
        session = self.spec.session
        owner = session.owner(body, self.taken) if session is not None else 0
        self.owners.append(owner)
        for entry in [u for u in self.unsent if u[0] == owner]:
            _, tool, text = entry
            if dumps(text)[1:-1].encode() not in body:
                self.lost.append(f"upstream request #{index} lacks {tool}'s result {text!r}")
                self.lost_requests.append(owner)
            self.unsent.remove(entry)

    def _script(self, headers: list[tuple[str, str]], index: int) -> Reply:
        replies, owner, at = self.spec.replies, 0, index
        if self.spec.session is not None:
            owner = self.owners[index] if index < len(self.owners) else 0
            replies, at = self.spec.session.requests[owner].replies, self.taken[owner]
            self.taken[owner] += 1
        if at < len(replies):
            reply = replies[at]
        else:
            reply = Reply.json(
                {"type": "error", "error": {"type": "api_error", "message": "script exhausted"}},
                500,
            )
        secret = presented_key(headers)
        key = self.spec.keys.index(secret) if secret in self.spec.keys else None
        status: int | None
        status, retry = answered_status(reply)
        if reply.fault == "reset-before-body":
            status = None
        self.attempts.append(Attempt(trio.current_time(), key, status, retry, self.response, owner))
        if self.timeline is not None:
            of = f" (request {owner})" if self.spec.session is not None else ""
            self.note(
                f"upstream request #{index}{of} key={key} -> {reply.status} {reply.fault or ''}"
            )
            fault = f", then {reply.fault}" if reply.fault else ""
            network = self.network
            sender = network.sender() if isinstance(network, SenderNetwork) else None
            self.mark(
                "attempt",
                f"request #{index} with key {key}: {reply.status}{fault}",
                "upstream",
                data=b"".join(reply.chunks),
                status=status,
                key=key,
                exchange=index,
                request=sender,
            )
            if self.spec.requests > 1 and status in (401, 403, 429):
                change = f"cooling (Retry-After {retry})" if status == 429 else "disabled"
                label = f"key {key} {change}"
                self.mark("pool", label, "pool", status=status, key=key, request=sender)
        return reply

    def _guard(
        self, serve: Callable[[trio.abc.Stream], Any], what: str, upstream: bool
    ) -> Callable[[trio.abc.Stream], Any]:
        async def guarded(stream: trio.abc.Stream) -> None:
            if upstream:
                if not self.upstream_serving:
                    self.upstream_idle = trio.Event()
                self.upstream_serving += 1
            else:
                if not self.proxy_serving:
                    self.proxy_done = trio.Event()  # a load's next client after a lull
                self.proxy_serving += 1
            try:
                await serve(stream)
            except Exception as exc:  # the finding itself: an exception escaped a server
                self.errors.append(f"unhandled exception in {what}: {type(exc).__name__}: {exc}")
            finally:
                if upstream:
                    self.upstream_serving -= 1
                    if not self.upstream_serving:
                        self.upstream_idle.set()
                else:
                    self.proxy_serving -= 1
                    if not self.proxy_serving:
                        self.proxy_done.set()

        return guarded

    def _due(self, index: int) -> Reply | None:
        replies = self.spec.replies  # a session's requests are HTTP: never asked
        return replies[index] if index < len(replies) else None

    def _trace(self, decision: str) -> None:
        """The engine's decisions (``Environment.trace``), in the deciding task's lane."""
        self.note(decision)
        self.mark("decision", decision)

    async def _run_tool(self, tool: InjectedTool, arguments: Any) -> ToolOutcome:
        latency = self.spec.tool_latency
        index = self.tool_calls
        self.tool_calls += 1
        await self.yields.at("tool")
        if index < len(latency) and latency[index]:
            await trio.sleep(latency[index])
        outcome = await self._tool_outcome(tool, arguments, self.spec.tool_faults.get(index))
        self.note(f"tool {tool.name} ran")
        self.mark("tool", f"{tool.name} runs", "tool")
        # a session's tool results are its requests' own; a load's clients share one list
        request = (REQUEST.get() or 0) if self.spec.session is not None else 0
        self.unsent.append((request, tool.name, outcome.text))
        return outcome

    async def _tool_outcome(
        self, tool: InjectedTool, arguments: Any, fault: str | None
    ) -> ToolOutcome:
        """The tool's answer, or the MCP fault the plan put on this call."""
        if tool.mcp is not None and fault is not None:
            if fault == "mcp-slow":
                await trio.sleep(tool.timeout)
            return fault_outcome(tool.mcp.server, tool.mcp.tool, fault, tool.timeout)
        if tool.command is not None:
            return self.commands.outcome(tool, arguments)
        return await tool.run(arguments)

    async def run(self) -> WorldResult:
        spec = self.spec
        upstream = RawUpstream(self._script, self._due, self._body_seen)
        hygiene: list[str] = []
        async with trio.open_nursery() as services:
            # a load's page draws each request's lanes: note who sends on each connection
            lanes = self.timeline is not None and spec.requests > 1
            network = self.network = (SenderNetwork if lanes else MemoryNetwork)(
                services,
                self._guard(upstream.serve_stream, "the upstream", upstream=True),
                self.yields,
            )
            app = build_app(
                ServeOptions(
                    anthropic_base_url=UPSTREAM_URL,
                    openai_base_url=UPSTREAM_URL + "/v1",
                    anthropic_keys=list(spec.keys),
                    openai_keys=list(spec.keys),
                    stream_initiation=spec.stream_initiation,
                    timeouts=UpstreamTimeouts(read=READ_TIMEOUT),
                    breaker=spec.breaker,
                ),
                tools=spec.tools,
                network_backend=network,
                run_tool=self._run_tool,
                wall_clock=lambda: WALL_EPOCH + trio.current_time(),
                trace=self._trace if self.timeline else None,
                breaker_listeners=(self.breaker_events.append,),
                recorder=self._record if self.recording is not None else None,
            )
            proxy = Server(app, ServerConfig())
            clients = [ClientResult() for _ in range(spec.requests)]
            if spec.requests == 1:
                self.mark("request", f"POST {spec.path} ({len(spec.body)} bytes)", "client")
            with trio.move_on_after(spec.bound) as bound:
                if spec.requests == 1:
                    clients[0] = await self._client(proxy, services)
                    self.spans[0] = (0.0, trio.current_time())
                else:
                    async with trio.open_nursery() as load:
                        for i in range(spec.requests):
                            load.start_soon(self._load_client, proxy, services, clients, i)
            live = not bound.cancelled_caught
            client = clients[0]
            end_time = trio.current_time()
            provider = "openai" if spec.path.startswith("/openai") else "anthropic"
            pool = app.upstreams[provider].pool.snapshot(end_time)
            self.note("client done")
            if spec.requests == 1:
                self._done(client)
            with trio.move_on_after(GRACE):
                await self.proxy_done.wait()
            if proxy.connections:
                hygiene.append("the proxy kept the client connection open after the client left")
            with trio.move_on_after(GRACE):
                await app.env.client.aclose()
            if network.open_connections:
                hygiene.append(f"{network.open_connections} upstream connection(s) left open")
            with trio.move_on_after(GRACE):
                await self.upstream_idle.wait()
            if services.child_tasks:
                names = sorted(task.name for task in services.child_tasks)
                hygiene.append(f"task(s) left behind: {', '.join(names)}")
            if upstream.open_responses:
                hygiene.append(f"{upstream.open_responses} upstream response(s) never finished")
            services.cancel_scope.cancel()
        hygiene.extend(self.errors)
        hygiene.extend(_error_log.records)
        return WorldResult(
            client,
            self.attempts,
            pool,
            end_time,
            live,
            hygiene,
            0,
            lost_tool_results=self.lost,
            lost_requests=self.lost_requests,
            clients=clients,
            breaker_events=self.breaker_events,
            answers=upstream.answers,
            handed=self.handed,
            recording=self.recording,
            spans=self.spans,
        )

    def _done(self, client: ClientResult) -> None:
        ending = "complete" if client.complete else "incomplete"
        label = f"done: {client.status}, {len(client.body)} body bytes, {ending}"
        self.mark("done", label, "client")

    async def _client(
        self, proxy: Server, services: trio.Nursery, name: str = "", index: int = 0
    ) -> ClientResult:
        """One client's request (a session's ``index``-th) on a connection of its own; the
        connection is closed when the client is done, however it ended."""
        spec = self.spec
        path, body, pace = spec.path, spec.body, spec.pace
        if spec.session is not None:
            own = spec.session.requests[index]
            path, body, pace = own.path, own.body, own.pace
        near, far = stream_pair(
            lockstep=True,
            yields=self.yields,
            name="downstream" + name,
            note=self._downstream_sent if self.timeline else None,
        )
        services.start_soon(
            self._guard(proxy.serve_stream, "the proxy", upstream=False),
            far,
            name="proxy-conn" + name,
        )
        note = self._client_read if self.timeline else None
        try:
            if spec.transport == "websocket":
                return await websocket_exchange(
                    near,
                    path,
                    body,
                    pace,
                    note,
                    spec.creates,
                    self._create if spec.creates else None,
                )
            return await exchange(near, "POST", path, body, pace, note)
        finally:
            await near.aclose()

    def _create(self, response: int) -> None:
        """The client sends response ``response``'s ``response.create``: the upstream
        requests from now on are made for it."""
        self.response = response
        if response:  # the first is the world's request mark
            self.note(f"client sends response.create #{response}")
            self.mark("request", f"response.create #{response}", "client")

    async def _load_client(
        self, proxy: Server, services: trio.Nursery, results: list[ClientResult], index: int
    ) -> None:
        starts = self.spec.starts
        await trio.sleep(index * self.spec.gap + (starts[index] if index < len(starts) else 0.0))
        started = trio.current_time()
        REQUEST.set(index)  # this task's context, copied into the proxy's tasks for it
        session = self.spec.session
        path = session.requests[index].path if session is not None else self.spec.path
        self.mark("request", f"POST {path} at {started:g} s", "client")
        results[index] = await self._client(proxy, services, f"-{index}", index)
        self.spans[index] = (started, trio.current_time())
        self._done(results[index])
