"""Black-box mode: fuzz any proxy over real sockets, in wall-clock time.

The fault-injecting mock upstream (``ScriptedUpstream`` on the real server) listens on
``--upstream-port``; each iteration's client request goes to ``--target`` over a fresh TCP
connection. Iterations are drawn as in the simulation, minus what a running proxy does
not let us control or would carry over to later iterations: no scheduler, checkpoints or
tool latency; no stalls (the target's read timeout is its own); no 401/403 (a disabled key
stays disabled); every Retry-After is 0, so each iteration starts with every key usable.
Delays are scaled down to milliseconds. Oracles: malformed-body, key-pool (attempt order
and the final status; the pool itself is not visible), liveness and hygiene as wall-clock
bounds. Reproduction is statistical: the same seed gives the same plans, not the same
interleavings.

The target must be configured like the scenarios: the same injected tools and as many
pool keys (in any order) as the scenario was recorded with.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import trio
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..console import report_out, stderr
from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from ..proxy.server import Server
from ..sim.client import Pace, exchange
from ..sim.world import Attempt, WorldResult
from .oracles import ORACLES, Violation, judge
from .plan import Plan, draw_plan, error_body, iteration_seed, upstream_replies
from .report import describe_plan
from .scenario import Scenario

# (MCP faults: a target proxy runs its own tools)
_EXCLUDED_FAULTS = ("stall", "401", "403", "mcp-error", "mcp-slow", "mcp-dies")
_MAX_DELAY = 0.02
_PAD = 1 << 20
_LEVER_DELAY = 0.1
_CLIENT_RCVBUF = 4096
ITERATION_BOUND = 20.0
GRACE = 2.0


def blackbox_scenario(scenario: Scenario) -> Scenario:
    """The scenario with every recorded Retry-After made 0."""
    exchanges = tuple(
        replace(e, headers=tuple((k, "0" if k == "retry-after" else v) for k, v in e.headers))
        for e in scenario.exchanges
    )
    return replace(scenario, exchanges=exchanges)


def blackbox_plan(plan: Plan, rng: random.Random) -> Plan:
    """What of ``plan`` a black-box run can honour, plus the socket-buffer lever.

    Over loopback a write rarely blocks; a megabyte in the first batch and a client that
    waits 100 ms before its first read (with a small receive buffer) make the relay's first
    write block, as a slow client on a real network would.
    """
    faults = tuple(
        replace(
            f, retry_after="0" if f.retry_after is not None or f.kind.startswith("429") else None
        )
        for f in plan.faults
        if f.kind not in _EXCLUDED_FAULTS
    )
    plan = Plan(
        faults=faults,
        cuts=plan.cuts,
        delays=tuple((e, c, min(d, _MAX_DELAY)) for e, c, d in plan.delays),
        read_delays=tuple((i, min(d, _MAX_DELAY)) for i, d in plan.read_delays),
        read_size=plan.read_size,
    )
    if rng.random() < 0.3:
        later = tuple((i, d) for i, d in plan.read_delays if i)
        plan = replace(plan, pad=_PAD, read_delays=((0, _LEVER_DELAY), *later), read_size=65536)
    return plan


@dataclass
class BlackBoxOutcome:
    iteration: int
    seed: int
    scenario: str
    plan: Plan
    violations: list[Violation]


class _Upstream:
    """The mock upstream's script: the current iteration's replies, and who asked."""

    def __init__(self) -> None:
        self.api = "anthropic"
        self.replies: list[Reply] = []
        self.base = 0
        self.attempts: list[Attempt] = []
        self.secrets: list[str] = []  # in order of first use: the target's key order

    def start(self, api: str, replies: list[Reply], seen: int) -> None:
        self.api, self.replies, self.base, self.attempts = api, replies, seen, []

    def __call__(self, seen: SeenRequest, index: int) -> Reply:
        n = index - self.base
        if 0 <= n < len(self.replies):
            reply = self.replies[n]
        else:  # a request the plan did not foresee (or a late one from an earlier iteration)
            reply = Reply.json(error_body(self.api, 500, "script exhausted"), 500)
        secret = seen.header("x-api-key")
        bearer = seen.header("authorization") or ""
        if secret is None and bearer.startswith("Bearer "):
            secret = bearer[len("Bearer ") :]
        key = None
        if secret is not None:
            if secret not in self.secrets:
                self.secrets.append(secret)
            key = self.secrets.index(secret)
        status = None if reply.fault == "reset-before-body" else reply.status
        retry = next((v for k, v in reply.headers if k.lower() == "retry-after"), None)
        self.attempts.append(Attempt(trio.current_time(), key, status, retry))
        return reply


async def _iterate(
    target: tuple[str, int, str],
    upstream_port: int,
    scenarios: Sequence[Scenario],
    seed: int,
    iterations: int,
) -> list[BlackBoxOutcome]:
    host, port, prefix = target
    script = _Upstream()
    app = ScriptedUpstream(script=script)
    server = Server(app)
    outcomes = []
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_tcp, "127.0.0.1", upstream_port)
        for i in range(iterations):
            this_seed = iteration_seed(seed, i)
            rng = random.Random(this_seed)
            scenario = blackbox_scenario(scenarios[rng.randrange(len(scenarios))])
            plan = blackbox_plan(draw_plan(rng, scenario), rng)
            script.start(scenario.api, upstream_replies(scenario, plan), len(app.seen))
            disconnect = next((f.at for f in plan.faults if f.kind == "client-disconnect"), None)
            pace = Pace(dict(plan.read_delays), plan.read_size, disconnect)
            hygiene: list[str] = []
            started = trio.current_time()
            live = False
            with trio.move_on_after(ITERATION_BOUND):
                stream = await _connect(host, port)
                try:
                    result = await exchange(
                        stream, "POST", prefix + scenario.path, scenario.body, pace
                    )
                    live = True
                finally:
                    await stream.aclose()
            if not live:
                from ..sim.client import ClientResult

                result = ClientResult()
            with trio.move_on_after(GRACE):
                await app.all_closed.wait()
            if app.open_responses:
                hygiene.append(
                    f"an upstream response was still open {GRACE:g} s after the client left"
                )
            world = WorldResult(
                result, script.attempts, [], trio.current_time() - started, live, hygiene, 0
            )
            outcomes.append(
                BlackBoxOutcome(
                    i, this_seed, scenario.name, plan, judge(scenario, plan, world, None)
                )
            )
        server.shutdown()
        nursery.cancel_scope.cancel()
    return outcomes


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


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        from ..errors import ConfigError

        raise ConfigError(f"--target must be an http:// URL, not {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def run_blackbox(
    url: str,
    upstream_port: int,
    scenarios: Sequence[Scenario],
    seed: int,
    iterations: int,
    as_json: bool,
) -> int:
    """Fuzz the proxy at ``url``; 1 when anything failed."""
    started = time.monotonic()
    outcomes = trio.run(_iterate, _target(url), upstream_port, scenarios, seed, iterations)
    elapsed = time.monotonic() - started
    failures = [o for o in outcomes if o.violations]
    if as_json:
        print(json.dumps(_as_json(url, seed, outcomes), indent=2))
    else:
        report_out.print(_renderable(url, seed, outcomes))
    stderr.print(f"{len(outcomes)} black-box iterations in {elapsed:.1f} s", highlight=False)
    return 1 if failures else 0


def _as_json(url: str, seed: int, outcomes: list[BlackBoxOutcome]) -> dict[str, Any]:
    return {
        "mode": "black-box",
        "target": url,
        "seed": seed,
        "ran": len(outcomes),
        "reproduction": "statistical",
        "failures": [
            {
                "iteration": o.iteration,
                "iteration_seed": o.seed,
                "scenario": o.scenario,
                "oracle": o.violations[0].oracle,
                "message": o.violations[0].message,
                "plan": o.plan.to_json(),
            }
            for o in outcomes
            if o.violations
        ],
    }


def _renderable(url: str, seed: int, outcomes: list[BlackBoxOutcome]) -> Group:
    table = Table(title=f"black-box fuzz of {url}", title_justify="left")
    table.add_column("scenario")
    table.add_column("iterations", justify="right")
    for oracle in ORACLES:
        if oracle != "schedule-dependence":
            table.add_column(oracle, justify="right")
    runs = Counter(o.scenario for o in outcomes)
    failed = Counter((o.scenario, o.violations[0].oracle) for o in outcomes if o.violations)
    for name in sorted(runs):
        cells = [
            str(failed[(name, oracle)] or "-")
            for oracle in ORACLES
            if oracle != "schedule-dependence"
        ]
        table.add_row(name, str(runs[name]), *cells)
    parts: list[Any] = [
        Text(f"aibridge fuzz --target {url}: seed {seed}, {len(outcomes)} iterations"),
        table,
    ]
    seen: set[tuple[str, str]] = set()
    for o in outcomes:
        if not o.violations or (o.scenario, o.violations[0].oracle) in seen:
            continue
        seen.add((o.scenario, o.violations[0].oracle))
        lines = [
            f"iteration {o.iteration} (iteration seed {o.seed})",
            f"violated {o.violations[0].oracle}: {o.violations[0].message}",
            "plan:",
        ]
        lines += [f"  {line}" for line in describe_plan(o.plan)]
        parts += [
            Text(f"FAIL {o.violations[0].oracle}: {o.scenario}", style="bold red"),
            Text("\n".join(lines)),
        ]
    failures = sum(1 for o in outcomes if o.violations)
    parts.append(
        Text(
            f"{failures} failing iteration(s). Black-box reproduction is statistical: the seed "
            "fixes the plans, not the target's interleavings; rerun to retry.",
            style="bold red" if failures else "bold green",
        )
    )
    return Group(*parts)


__all__ = ["run_blackbox"]
