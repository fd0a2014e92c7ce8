"""Black-box mode: fuzz any proxy over real sockets, in wall-clock time.

The fault-injecting mock upstream (``ScriptedUpstream`` on the real server) listens on
``--upstream-port``; each iteration's client request goes to ``--target`` over a fresh TCP
connection. Iterations are drawn as in the simulation, minus what a running proxy does
not let us control or would carry over to later iterations: no scheduler, checkpoints or
tool latency; no stalls (the target's read timeout is its own); no 401/403 (a disabled key
stays disabled); every Retry-After is 0, so each iteration starts with every key usable.
Delays are scaled down to milliseconds, except in the leak probe below.

Before the first iteration a canary (each API's first scenario, a plan that changes
nothing) must reach the mock upstream: a target that answers everything itself would
pass every oracle (``_Campaign._canaries``; a ``ConfigError`` otherwise).

Isolation, so one iteration never counts against another:
* Each iteration's client request carries a marker (``aibridge-fuzz-<run>-<i>``) at the
  end of its last user message, which every gateway relays unchanged. The mock upstream
  reads it from each request (``blackbox_upstream.py``: retries and fallbacks within an
  iteration are answered by its retry rule); a request marked with an earlier iteration
  is answered 500 and reported apart as late, one with no marker as unmarked. Neither is
  judged.
* Keys are numbered per provider, in the order the target first uses them.
* The next iteration starts once every upstream answer is closed, or after ``DRAIN``
  seconds (then the iteration fails hygiene: an answer of a few milliseconds was held).

Leak probe: in a third of the iterations whose client hangs up, the last answer goes out
in ``LEAK_PIECES`` pieces ``LEAK_DELAY`` apart (about 2 s), and the target must close that
upstream answer within ``LEAK_WINDOW`` of its client leaving (``after-hang-up``). A proxy
that notices a gone client only when its next write fails still does so within a piece
or two. Every iteration whose client hung up is watched ``HANG_UP_WAIT`` more for a
request the target still sends.

Reproduction is statistical: the same seed gives the same plans, not the same interleavings.
The target declares its tools (``--target-tools``: scenarios follow it, ``target.py``);
otherwise it must be configured like the scenarios. It needs as many pool keys per
provider as a scenario was recorded with for that scenario's failover to happen.
"""

from __future__ import annotations

import json
import random
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import trio

from ..errors import ConfigError
from ..fakes.scripted_upstream import ScriptedUpstream
from ..headers import FrozenHeaders, header, media_type
from ..proxy.server import Server
from ..proxy.target_probe import UNFORWARDABLE_REQUEST, probe_http
from ..sim.client import ClientResult, Pace, exchange
from ..sim.world import WorldResult
from .blackbox_findings import iteration_marks
from .blackbox_oracles import HANG_UP_WAIT, LEAK_WINDOW, Observed, blackbox_violations
from .blackbox_upstream import (
    CANARY,
    Counters,
    Framing,
    IterationScript,
    LateRequest,
    marker,
)
from .oracles import Run, Violation, client_response, judge
from .plan import (
    ChunkDelay,
    Cut,
    FaultKind,
    Plan,
    ReadDelay,
    draw_plan,
    iteration_seed,
    upstream_replies,
)
from .scenario import Scenario
from .signature import Signature, first_signatures
from .target import BlackBoxSettings, Target, as_configured, parse_target, skip_reason

EXCLUDED_FAULTS = frozenset(k for k in FaultKind if not k.black_box)


def excluded_faults(stalls: bool) -> frozenset[FaultKind]:
    """The kinds a black-box campaign never draws; a stall only past a read timeout the
    target declared (``--stall-past``), which ends each stall in seconds."""
    return EXCLUDED_FAULTS - {FaultKind.STALL} if stalls else EXCLUDED_FAULTS


_MAX_DELAY = 0.02
_PAD = 1 << 20
_LEVER_DELAY = 0.1
_CLIENT_RCVBUF = 4096
# Upstream answers chunked (as most streaming providers do), with a content-length, or
# gzipped (when the gateway's request accepts it; a whole 2xx answer only).
_FRAMINGS: tuple[Framing, ...] = ("chunked",) * 12 + ("length",) * 5 + ("gzip",) * 3
_REQUEST_PAD = 256 * 1024
_REQUEST_PAD_SHARE = 0.05
ITERATION_BOUND = 20.0
DRAIN = 5.0
LEAK_SHARE = 1 / 3
LEAK_PIECES = 12
LEAK_DELAY = 0.2
CONNECT_TIMEOUT = 5.0


def blackbox_scenario(scenario: Scenario) -> Scenario:
    """The scenario with every recorded Retry-After made 0."""
    exchanges = tuple(
        replace(e, headers=tuple((k, "0" if k == "retry-after" else v) for k, v in e.headers))
        for e in scenario.exchanges
    )
    return replace(scenario, exchanges=exchanges)


class BlackBoxPlan(NamedTuple):
    plan: Plan
    leak_probe: bool
    framing: Framing = "chunked"  # how the upstream frames its answers
    request_pad: int = 0  # bytes of text added to the client's request (a large body)


def blackbox_plan(
    plan: Plan, rng: random.Random, scenario: Scenario, stalls: bool = False
) -> BlackBoxPlan:
    """What of ``plan`` a black-box run can honour, plus the socket-buffer lever and the
    leak probe (``stalls``: the target's read timeout was declared short, so stall faults
    are kept).

    Over loopback a write rarely blocks; a megabyte in the first batch and a client that
    waits 100 ms before its first read (with a small receive buffer) make the relay's first
    write block, as a slow client on a real network would.
    """
    faults = tuple(
        replace(f, retry_after="0" if f.retry_after is not None or f.kind.rate_limits else None)
        for f in plan.faults
        if f.kind not in excluded_faults(stalls)
    )
    plan = Plan(
        faults=faults,
        cuts=plan.cuts,
        delays=tuple(d._replace(seconds=min(d.seconds, _MAX_DELAY)) for d in plan.delays),
        read_delays=tuple(r._replace(seconds=min(r.seconds, _MAX_DELAY)) for r in plan.read_delays),
        read_size=plan.read_size,
    )
    if rng.random() < 0.3:
        later = tuple(r for r in plan.read_delays if r.read)
        first = ReadDelay(0, _LEVER_DELAY)
        plan = replace(plan, pad=_PAD, read_delays=(first, *later), read_size=65536)
    probe = plan.disconnects and rng.random() < LEAK_SHARE
    if probe:
        plan = _slow_last_answer(plan, scenario)
    # Drawn last, so a seed's earlier choices stay what they were.
    framing: Framing = rng.choice(_FRAMINGS)
    pad = _REQUEST_PAD if rng.random() < _REQUEST_PAD_SHARE else 0
    return BlackBoxPlan(plan, probe, framing, pad)


def _slow_last_answer(plan: Plan, scenario: Scenario) -> Plan:
    last = len(scenario.exchanges) - 1
    size = len(scenario.exchanges[last].body)
    step = max(1, size // LEAK_PIECES)
    offsets = tuple(range(step, size, step))
    delays = tuple(ChunkDelay(last, k, LEAK_DELAY) for k in range(1, len(offsets) + 1))
    cuts = (*(c for c in plan.cuts if c.exchange != last), Cut(last, offsets))
    kept = tuple(d for d in plan.delays if d.exchange != last)
    return replace(plan, cuts=cuts, delays=(*kept, *delays))


def mark(body: bytes, marker: str) -> bytes:
    """``body`` with ``marker`` at the end of its last user message (or input)."""
    data = json.loads(body)
    messages = data.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            _append(users[-1], marker)
    elif isinstance(data.get("input"), str):
        data["input"] += f"\n{marker}"
    elif isinstance(data.get("input"), list):
        data["input"].append({"role": "user", "content": marker})
    return json.dumps(data).encode()


def _append(message: dict[str, Any], marker: str) -> None:
    content = message.get("content")
    if isinstance(content, list):
        message["content"] = [*content, {"type": "text", "text": marker}]
    else:
        message["content"] = f"{content or ''}\n{marker}"


@dataclass(frozen=True)
class BlackBoxOutcome:
    iteration: int
    seed: int
    scenario: str
    plan: Plan
    violations: tuple[Violation, ...]
    client: ClientResult
    leak_probe: bool = False
    world: WorldResult | None = None  # a failing iteration's, with its marks (for its page)
    framing: Framing = "chunked"
    request_pad: int = 0

    @property
    def signatures(self) -> tuple[Signature, ...]:
        """One per behaviour: the oracle and the shape; the scenarios are counted apart."""
        return first_signatures("", self.violations)


@dataclass
class BlackBoxRun:
    settings: BlackBoxSettings
    outcomes: list[BlackBoxOutcome] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (scenario, why)

    @property
    def late(self) -> list[LateRequest]:
        return self.counters.late

    @property
    def unmarked(self) -> int:
        return self.counters.unmarked


class _Exchanged(NamedTuple):
    """The client's side of one request: what it got, and when."""

    result: ClientResult
    live: bool
    hygiene: list[str]
    sent: bytes  # the client's body
    started: float
    reads: list[tuple[float, bytes]]  # what each of the client's reads gave, and when
    left: float

    @property
    def first_byte(self) -> float | None:
        return next((t for t, data in self.reads if data), None)


class _Campaign:
    def __init__(self, settings: BlackBoxSettings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.report = BlackBoxRun(settings)
        self.script = IterationScript(secrets.token_hex(4), self.report.counters)
        self.app = ScriptedUpstream(script=self.script)
        self.scenarios: list[Scenario] = []
        for scenario in settings.scenarios:
            why = skip_reason(scenario, settings.target_tools)
            if why is None:
                self.scenarios.append(scenario)
            else:
                self.report.skipped.append((scenario.name, why))

    async def run(
        self, listeners: Sequence[trio.SocketListener], case: Rerun | None = None
    ) -> BlackBoxRun:
        if not self.scenarios:
            for listener in listeners:
                await listener.aclose()
            raise ConfigError(
                "no scenario applies to the target: "
                + "; ".join(f"{name}: {why}" for name, why in self.report.skipped[:3])
            )
        server = Server(self.app)
        refused: str | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_listeners, listeners)
            refused = await self._canaries()
            if refused is None and case is not None:
                self.report.outcomes.append(await self.play(*case))
            elif refused is None:
                for i in range(self.settings.iterations):
                    self.report.outcomes.append(await self._iteration(i))
            server.shutdown()
            nursery.cancel_scope.cancel()
        if refused is not None:
            raise ConfigError(refused)
        return self.report

    async def _canaries(self) -> str | None:
        """One plain request per API before the campaign; why the target failed, if it did.

        A target that never calls the upstream (its own auth refuses us, a wrong route, a
        wrong upstream base URL) would pass every oracle: nothing is relayed, nothing is
        wrong. The canary is the scenario's request with the plan that changes nothing.
        """
        seen: set[str] = set()
        for scenario in self.scenarios:
            if scenario.api in seen:
                continue
            seen.add(scenario.api)
            scenario = blackbox_scenario(scenario)
            self.script.start(CANARY, scenario.api, upstream_replies(scenario, Plan()))
            got = await self._exchange(scenario, CANARY, Pace())
            await self._closed_within(DRAIN)
            if not self.script.requests:
                return self._canary_failure(scenario, got)
        return None

    def _canary_failure(self, scenario: Scenario, got: _Exchanged) -> str:
        s = self.settings
        path = self.target.prefix + s.client.path(scenario)
        answer = _answer_line(got.result) if got.live else "nothing within the time bound"
        others = self.report.counters.unmarked
        extra = f"; the upstream got {others} request(s) without the marker" if others else ""
        return (
            f"--target {s.url}: the canary (POST {path}, {scenario.name}) never reached the "
            f"upstream on 127.0.0.1:{s.upstream_port}; the target answered {answer}{extra}. "
            "Check the target's upstream base URL (http://127.0.0.1:"
            f"{s.upstream_port}), its routes (--target URL's path, --client-path) and "
            "its client auth (--client-header)"
        )

    async def _closed_within(self, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            while self.app.open_responses:
                await self.app.all_closed.wait()
        return not self.app.open_responses

    async def _exchange(
        self, scenario: Scenario, i: int, pace: Pace, pad: int = 0, extra: FrozenHeaders = ()
    ) -> _Exchanged:
        """The client's request of iteration ``i`` to the target (``pad`` bytes of text
        more in it), read at ``pace``."""
        client = self.settings.client
        text = marker(self.script.run_id, i) + (" " + "lorem " * (pad // 6) if pad else "")
        body = mark(client.body(scenario), text)
        started = trio.current_time()
        reads: list[tuple[float, bytes]] = []

        def note(_: str, data: bytes) -> None:
            reads.append((trio.current_time(), data))

        result, live, hygiene = ClientResult(), False, []
        with trio.move_on_after(ITERATION_BOUND + (self.settings.stall_past or 0.0)):
            try:
                stream = await _connect(self.target.host, self.target.port)
            except OSError as exc:
                hygiene.append(f"the target refused a connection: {exc.strerror or exc}")
            else:
                try:
                    path = self.target.prefix + client.path(scenario)
                    result = await exchange(
                        stream,
                        "POST",
                        path,
                        body,
                        pace,
                        note,
                        host=self.target.authority,
                        extra_headers=(*client.headers, *extra),
                    )
                    live = True
                finally:
                    await stream.aclose()
        left = trio.current_time()
        decoded(result)
        return _Exchanged(result, live, hygiene, body, started, reads, left)

    async def _iteration(self, i: int) -> BlackBoxOutcome:
        s = self.settings
        this_seed = iteration_seed(s.seed, i)
        rng = random.Random(this_seed)
        scenario = blackbox_scenario(self.scenarios[rng.randrange(len(self.scenarios))])
        stalls = s.stall_past is not None
        allowed = s.faults - excluded_faults(stalls)
        drawn = blackbox_plan(draw_plan(rng, scenario, allowed), rng, scenario, stalls)
        return await self.play(i, this_seed, scenario, drawn)

    async def play(
        self, i: int, this_seed: int, scenario: Scenario, drawn: BlackBoxPlan
    ) -> BlackBoxOutcome:
        """Iteration ``i`` with ``drawn`` (drawn, or read from a repro file), judged."""
        s = self.settings
        plan, probe = drawn.plan, drawn.leak_probe
        replies = upstream_replies(scenario, plan)
        self.script.start(i, scenario.api, replies, drawn.framing)
        disconnect = next(
            (f.at for f in plan.faults if f.kind is FaultKind.CLIENT_DISCONNECT), None
        )
        pace = Pace(dict(plan.read_delays), plan.read_size, disconnect)
        # A gzip iteration's client asks for gzip, as the official SDKs (httpx) do.
        coding = (("accept-encoding", "gzip, deflate"),) if drawn.framing == "gzip" else ()
        got = await self._exchange(scenario, i, pace, drawn.request_pad, coding)
        hygiene = got.hygiene
        read_on = probe and not await self._closed_within(LEAK_WINDOW)
        if plan.disconnects:
            await trio.sleep_until(got.left + HANG_UP_WAIT)  # a request sent after it comes now
        if not await self._closed_within(DRAIN):
            hygiene.append(f"an upstream answer was still open {DRAIN:g} s after the client left")
        world = WorldResult(
            client=got.result,
            attempts=self.script.attempts,
            pool=[],
            end_time=got.left - got.started,
            live=got.live,
            hygiene=hygiene,
            deviations=0,
        )
        judged = as_configured(scenario, s.target_tools)
        run = Run(judged, plan, world, list(self.script.served), strict=s.strict)
        violations = judge(run, None, s.oracles - {"schedule-dependence"})
        observed = Observed(
            requests=tuple(self.script.requests),
            response=client_response(world, plan),
            first_byte=got.first_byte,
            left=got.left,
            hung_up_at_once=disconnect == 0,
            hung_up=plan.disconnects,
            leak_probe=probe,
            read_on=read_on,
            api=scenario.api,
            streaming=scenario.streaming,
            client_body=got.sent,
            client_headers=(("content-type", "application/json"), *s.client.headers),
            served=tuple(self.script.served),
        )
        violations = blackbox_violations(observed, s.oracles) + violations
        if violations:  # kept for its page: what the client read and the upstream got
            keys = [a.key for a in self.script.attempts]
            marks = iteration_marks(got.started, got.reads, self.script.requests, keys, got.left)
            world = replace(world, marks=marks)
        kept = world if violations else None
        return BlackBoxOutcome(
            i,
            this_seed,
            scenario.name,
            plan,
            tuple(violations),
            got.result,
            probe,
            kept,
            drawn.framing,
            drawn.request_pad,
        )


def decoded(result: ClientResult) -> None:
    """A gzipped body the target passed on, decoded in place (as far as it goes: a cut one
    gives what came). A client that sends no Accept-Encoding accepts any coding."""
    if (header(result.headers, "content-encoding") or "").strip().lower() != "gzip":
        return
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        result.body = inflate.decompress(result.body)
    except zlib.error:
        return  # not gzip after all: judged as it came


def _answer_line(result: ClientResult) -> str:
    """The target's answer in one line: status, content type, the start of the body."""
    if result.status is None:
        return "no HTTP response (the connection closed)"
    media = media_type(result.headers) or "no content-type"
    text = result.body[:120].decode("utf-8", "replace").replace("\n", " ").strip()
    return f"{result.status} ({media}) {text!r}"


async def _connect(host: str, port: int) -> trio.SocketStream:
    """A client connection with a small receive buffer: a late reader fills it quickly."""
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, _CLIENT_RCVBUF)
    try:
        await sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def _probe_or_forwarded(
    probe: trio.SocketStream, listeners: Sequence[trio.SocketListener]
) -> str | None:
    """``probe_http`` with the unforwardable request, or None as soon as the target
    forwards it to the mock upstream: a reverse proxy that forwards even a request
    without a host (mitmproxy does) waits on an upstream that is not serving yet, and
    never answers; that it forwarded is proof enough that an HTTP proxy is there."""
    problem: str | None = None

    async def forwarded(listener: trio.SocketListener) -> None:
        nonlocal problem
        stream = await listener.accept()
        await stream.aclose()
        problem = None
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(forwarded, listener)
        problem = await probe_http(probe, UNFORWARDABLE_REQUEST, CONNECT_TIMEOUT, allow_close=True)
        nursery.cancel_scope.cancel()
    return problem


async def _set_up(settings: BlackBoxSettings) -> tuple[Target, list[trio.SocketListener]]:
    """Bind the mock upstream and reach the target once: both are setup errors (exit 2)."""
    target = parse_target(settings.url)
    try:
        listeners = await trio.open_tcp_listeners(settings.upstream_port, host="127.0.0.1")
    except OSError as exc:
        raise ConfigError(
            f"--upstream-port {settings.upstream_port}: cannot listen: {exc.strerror or exc}"
        ) from None
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            probe = await _connect(target.host, target.port)
    except (OSError, trio.TooSlowError) as exc:
        for listener in listeners:
            await listener.aclose()
        reason = getattr(exc, "strerror", None) or f"no answer in {CONNECT_TIMEOUT:g} s"
        raise ConfigError(f"--target {settings.url}: cannot connect: {reason}") from None
    async with probe:
        problem = await _probe_or_forwarded(probe, listeners)
    if problem is not None:
        for listener in listeners:
            await listener.aclose()
        raise ConfigError(f"--target {settings.url} {problem}; is the proxy on that port?")
    return target, listeners


async def run_campaign(settings: BlackBoxSettings) -> BlackBoxRun:
    """Every iteration of ``settings`` against the target; ``ConfigError`` on setup."""
    target, listeners = await _set_up(settings)
    return await _Campaign(settings, target).run(listeners)


class Rerun(NamedTuple):
    """One black-box iteration from a repro file."""

    iteration: int
    iteration_seed: int
    scenario: Scenario
    drawn: BlackBoxPlan


async def rerun(settings: BlackBoxSettings, case: Rerun) -> BlackBoxRun:
    """``case`` against the target once more (after the canary); ``ConfigError`` on setup."""
    target, listeners = await _set_up(settings)
    return await _Campaign(settings, target).run(listeners, case)


__all__ = [
    "BlackBoxPlan",
    "BlackBoxRun",
    "BlackBoxSettings",
    "Rerun",
    "mark",
    "parse_target",
    "rerun",
    "run_campaign",
]
