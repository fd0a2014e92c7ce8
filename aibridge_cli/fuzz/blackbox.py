"""Black-box mode: fuzz any proxy over real sockets, in wall-clock time.

The fault-injecting mock upstream (``ScriptedUpstream`` on the real server) listens on
``--upstream-port``; each iteration's client request goes to ``--target`` over a fresh TCP
connection. Iterations are drawn as in the simulation, minus what a running proxy does
not let us control or would carry over to later iterations: no scheduler, checkpoints or
tool latency; no stalls (the target's read timeout is its own); no 401/403 (a disabled key
stays disabled); every Retry-After is 0, so each iteration starts with every key usable.
Delays are scaled down to milliseconds, except in the leak probe below.

Isolation, so one iteration never counts against another:
* Each iteration's client request carries a marker (``aibridge-fuzz-<run>-<i>``) at the
  end of its last user message, which every gateway relays unchanged. The mock upstream
  reads it from each request: a request marked with an earlier iteration (a retry or a
  request the target sent after its client left) is answered 500 and reported apart as
  late; a request with no marker is reported apart as unmarked. Neither is judged.
* Keys are numbered per provider, in the order the target first uses them.
* The next iteration starts once every upstream answer is closed, or after ``DRAIN``
  seconds (then the iteration fails hygiene: an answer of a few milliseconds was held).

Leak probe: in a third of the iterations whose client hangs up, the last answer goes out
in ``LEAK_PIECES`` pieces ``LEAK_DELAY`` apart (about 2 s), and the target must close that
upstream answer within ``LEAK_WINDOW`` of its client leaving. A proxy that notices a gone
client only when its next write fails still does so within a piece or two.

Reproduction is statistical: the same seed gives the same plans, not the same interleavings.
The target must be configured like the scenarios: the same injected tools and as many
pool keys per provider (in any order) as the scenario was recorded with.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import trio

from ..errors import ConfigError
from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from ..headers import header, presented_key
from ..proxy.server import Server
from ..proxy.target_probe import UNFORWARDABLE_REQUEST, probe_http
from ..sim.client import ClientResult, Pace, exchange
from ..sim.world import Attempt, WorldResult
from .oracles import GENERIC_ORACLES, Run, Violation, judge
from .plan import (
    ALL_FAULTS,
    ChunkDelay,
    Cut,
    FaultKind,
    Plan,
    ReadDelay,
    draw_plan,
    error_body,
    iteration_seed,
    upstream_replies,
)
from .scenario import Scenario
from .signature import Signature, first_signatures

EXCLUDED_FAULTS = frozenset(k for k in FaultKind if not k.black_box)
_MAX_DELAY = 0.02
_PAD = 1 << 20
_LEVER_DELAY = 0.1
_CLIENT_RCVBUF = 4096
ITERATION_BOUND = 20.0
DRAIN = 5.0
LEAK_SHARE = 1 / 3
LEAK_PIECES = 12
LEAK_DELAY = 0.2
LEAK_WINDOW = 1.0
CONNECT_TIMEOUT = 5.0
_MARKER = re.compile(rb"aibridge-fuzz-([0-9a-f]{8})-(\d+)")


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


def blackbox_plan(plan: Plan, rng: random.Random, scenario: Scenario) -> BlackBoxPlan:
    """What of ``plan`` a black-box run can honour, plus the socket-buffer lever and the
    leak probe.

    Over loopback a write rarely blocks; a megabyte in the first batch and a client that
    waits 100 ms before its first read (with a small receive buffer) make the relay's first
    write block, as a slow client on a real network would.
    """
    faults = tuple(
        replace(f, retry_after="0" if f.retry_after is not None or f.kind.rate_limits else None)
        for f in plan.faults
        if f.kind not in EXCLUDED_FAULTS
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
    if plan.disconnects and rng.random() < LEAK_SHARE:
        return BlackBoxPlan(_slow_last_answer(plan, scenario), True)
    return BlackBoxPlan(plan, False)


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
class BlackBoxSettings:
    """A black-box campaign: the proxy at ``url``, our mock upstream on ``upstream_port``."""

    url: str
    upstream_port: int
    scenarios: Sequence[Scenario]
    seed: int
    iterations: int
    oracles: frozenset[str] = GENERIC_ORACLES
    faults: frozenset[FaultKind] = ALL_FAULTS


class Target(NamedTuple):
    """Where the proxy under test listens, and the path prefix of its routes."""

    host: str
    port: int
    prefix: str

    @property
    def authority(self) -> str:
        """The Host header a client dialling this address sends (a guarded proxy checks it)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BlackBoxOutcome:
    iteration: int
    seed: int
    scenario: str
    plan: Plan
    violations: tuple[Violation, ...]
    client: ClientResult

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return first_signatures(self.scenario, self.violations)


class LateRequest(NamedTuple):
    """A request of iteration ``marked`` that reached the upstream during ``during``."""

    marked: int
    during: int


@dataclass
class BlackBoxRun:
    settings: BlackBoxSettings
    outcomes: list[BlackBoxOutcome] = field(default_factory=list)
    late: list[LateRequest] = field(default_factory=list)
    unmarked: int = 0


class _Upstream:
    """The mock upstream's script: the current iteration's replies, and who asked."""

    def __init__(self, run_id: str, report: BlackBoxRun) -> None:
        self.run_id = run_id
        self.report = report
        self.iteration = -1
        self.api = "anthropic"
        self.replies: list[Reply] = []
        self.served: list[Reply] = []
        self.attempts: list[Attempt] = []
        self.secrets: dict[str, list[str]] = {}  # per provider, in order of first use

    def start(self, iteration: int, api: str, replies: list[Reply]) -> None:
        self.iteration, self.api, self.replies = iteration, api, replies
        self.served, self.attempts = [], []

    def __call__(self, seen: SeenRequest, index: int) -> Reply:
        found = _MARKER.search(seen.body)
        exhausted = Reply.json(error_body(self.api, 500, "not this iteration's request"), 500)
        if found is None or found.group(1).decode() != self.run_id:
            self.report.unmarked += 1
            return exhausted
        marked = int(found.group(2))
        if marked != self.iteration:
            self.report.late.append(LateRequest(marked, self.iteration))
            return exhausted
        n = len(self.served)
        reply = self.replies[n] if n < len(self.replies) else exhausted
        self.served.append(reply)
        status = None if reply.fault == "reset-before-body" else reply.status
        retry = header(reply.headers, "retry-after")
        key = self._key(seen)
        self.attempts.append(Attempt(trio.current_time(), key, status, retry))
        return reply

    def _key(self, seen: SeenRequest) -> int | None:
        secret = presented_key(seen.headers)
        if secret is None:
            return None
        provider = "anthropic" if seen.path.endswith("/messages") else "openai"
        known = self.secrets.setdefault(provider, [])
        if secret not in known:
            known.append(secret)
        return known.index(secret)


class _Campaign:
    def __init__(self, settings: BlackBoxSettings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.report = BlackBoxRun(settings)
        self.script = _Upstream(secrets.token_hex(4), self.report)
        self.app = ScriptedUpstream(script=self.script)

    async def run(self, listeners: Sequence[trio.SocketListener]) -> BlackBoxRun:
        server = Server(self.app)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_listeners, listeners)
            for i in range(self.settings.iterations):
                self.report.outcomes.append(await self._iteration(i))
            server.shutdown()
            nursery.cancel_scope.cancel()
        return self.report

    async def _closed_within(self, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            while self.app.open_responses:
                await self.app.all_closed.wait()
        return not self.app.open_responses

    async def _iteration(self, i: int) -> BlackBoxOutcome:
        s = self.settings
        this_seed = iteration_seed(s.seed, i)
        rng = random.Random(this_seed)
        scenario = blackbox_scenario(s.scenarios[rng.randrange(len(s.scenarios))])
        allowed = s.faults - EXCLUDED_FAULTS
        plan, probe = blackbox_plan(draw_plan(rng, scenario, allowed), rng, scenario)
        self.script.start(i, scenario.api, upstream_replies(scenario, plan))
        body = mark(scenario.body, f"aibridge-fuzz-{self.script.run_id}-{i}")
        disconnect = next(
            (f.at for f in plan.faults if f.kind is FaultKind.CLIENT_DISCONNECT), None
        )
        pace = Pace(dict(plan.read_delays), plan.read_size, disconnect)
        started = trio.current_time()
        result, live, hygiene = ClientResult(), False, []
        with trio.move_on_after(ITERATION_BOUND):
            try:
                stream = await _connect(self.target.host, self.target.port)
            except OSError as exc:
                hygiene.append(f"the target refused a connection: {exc.strerror or exc}")
            else:
                try:
                    path = self.target.prefix + scenario.path
                    result = await exchange(
                        stream, "POST", path, body, pace, host=self.target.authority
                    )
                    live = True
                finally:
                    await stream.aclose()
        left = trio.current_time()
        if probe and not await self._closed_within(LEAK_WINDOW):
            hygiene.append(
                f"the upstream answer was still being read {LEAK_WINDOW:g} s after the client left"
            )
        if not await self._closed_within(DRAIN):
            hygiene.append(f"an upstream answer was still open {DRAIN:g} s after the client left")
        world = WorldResult(
            client=result,
            attempts=self.script.attempts,
            pool=[],
            end_time=left - started,
            live=live,
            hygiene=hygiene,
            deviations=0,
        )
        run = Run(scenario, plan, world, list(self.script.served))
        violations = judge(run, None, s.oracles - {"schedule-dependence"})
        return BlackBoxOutcome(i, this_seed, scenario.name, plan, tuple(violations), result)


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


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"--target must be an http:// URL, not {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"--target {url!r}: the port is not a number") from None
    return Target(parts.hostname, port, parts.path.rstrip("/"))


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
        problem = await probe_http(probe, UNFORWARDABLE_REQUEST, CONNECT_TIMEOUT, allow_close=True)
    if problem is not None:
        for listener in listeners:
            await listener.aclose()
        raise ConfigError(f"--target {settings.url} {problem}; is the proxy on that port?")
    return target, listeners


async def run_campaign(settings: BlackBoxSettings) -> BlackBoxRun:
    """Every iteration of ``settings`` against the target; ``ConfigError`` on setup."""
    target, listeners = await _set_up(settings)
    return await _Campaign(settings, target).run(listeners)


__all__ = ["BlackBoxRun", "BlackBoxSettings", "mark", "run_campaign"]
