"""What one fuzz iteration does to a scenario: faults and perturbations, drawn from a seed.

A ``Plan`` is plain data (it goes into repro files). Faults change what the run means
(a 429, a reset, a client that hangs up); perturbations must not change what the client
sees: the scheduler's order, chunk delays and boundaries, the client's read pace, tool
latency and extra checkpoints. ``Plan.canonical()`` keeps the faults and drops every
perturbation: the reference run for the schedule-independence oracle.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import json
import random
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, NamedTuple, get_args

from ..config import StreamInitiation
from ..fakes.scripted_upstream import Fault as WireFault
from ..fakes.scripted_upstream import Reply
from ..faults import FaultKind, error_body, error_event, malformed_event
from ..sim.client import Pace
from ..sim.world import WALL_EPOCH, WorldSpec
from .scenario import Exchange, Scenario

RETRY_AFTER = ("0", "1", "5", "30", None, "date", "soon")
# The rare paths: every 429's Retry-After as seconds, fractions or HTTP dates ("date+N":
# N seconds after the simulation's epoch), read against a clock started at a fraction of
# a second, where rounding up matters; upstreams that end their lines in CRLF or CR.
RARE_RETRY_AFTER = ("7", "2.5", "0.4", "date", "date+3")
_SECONDS = re.compile(r"\d+(\.\d+)?")  # a Retry-After in seconds, not an HTTP date
START_AFTER = (0.3, 0.7, 1.5)
LINE_ENDINGS = ("\r\n", "\r")
CheckpointPoint = Literal[
    "downstream-send", "downstream-receive", "upstream-send", "upstream-receive", "tool"
]
_CHECKPOINT_POINTS: tuple[CheckpointPoint, ...] = get_args(CheckpointPoint)


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    exchange: int = 0
    at: int = 0
    retry_after: str | None = None

    def __post_init__(self) -> None:
        # A repro file or a test names the kind by its value; keep the enum either way.
        object.__setattr__(self, "kind", FaultKind(self.kind))

    def describe(self) -> str:
        where = f"exchange {self.exchange}"
        if self.kind.in_body:
            where += f" frame {self.at}"
        if self.kind is FaultKind.CLIENT_DISCONNECT:
            where = f"after {self.at} body bytes"
        if self.kind.mcp:
            where = f"tool call {self.at}"
        extra = f" Retry-After={self.retry_after}" if self.kind.rate_limits else ""
        return f"{self.kind} at {where}{extra}"

    def essential(self) -> Fault:
        """This fault without the fields its kind ignores (a 429's frame, a 500's Retry-After)."""
        at = self.at if self.kind.uses_at else 0
        retry = self.retry_after if self.kind.rate_limits else None
        return Fault(self.kind, self.exchange, at, retry)


class Cut(NamedTuple):
    """Byte offsets where exchange ``exchange``'s answer is cut into separate chunks."""

    exchange: int
    offsets: tuple[int, ...]


class HeadDelay(NamedTuple):
    """The upstream waits ``seconds`` before the status line of exchange ``exchange``."""

    exchange: int
    seconds: float


class ChunkDelay(NamedTuple):
    """The upstream waits ``seconds`` before chunk ``chunk`` of exchange ``exchange``."""

    exchange: int
    chunk: int
    seconds: float


class ReadDelay(NamedTuple):
    """The client waits ``seconds`` before its read number ``read``."""

    read: int
    seconds: float


class Checkpoint(NamedTuple):
    """``extra`` checkpoints before operation number ``operation`` at ``point``."""

    point: CheckpointPoint
    operation: int
    extra: int


@dataclass(frozen=True)
class Plan:
    faults: tuple[Fault, ...] = ()
    schedule_seed: int = 0
    schedule_budget: int = 0
    schedule_rate: float = 0.0
    cuts: tuple[Cut, ...] = ()
    delays: tuple[ChunkDelay, ...] = ()
    read_delays: tuple[ReadDelay, ...] = ()
    read_size: int = 65536
    tool_latency: tuple[float, ...] = ()  # seconds, by tool call
    checkpoints: tuple[Checkpoint, ...] = ()
    pad: int = 0  # bytes of padding in the first event of exchange 0 (black-box)
    # What the upstream and the clock are, so kept by the canonical run:
    line_ending: str = "\n"  # of the upstream's event streams
    retry_after: str | None = None  # every 429's Retry-After, the scenario's own included
    start_after: float = 0.0  # virtual seconds before the client sends its request
    starts: tuple[float, ...] = ()  # a load's clients: seconds each starts later than planned
    heads: tuple[HeadDelay, ...] = ()  # a breaker load's answers slow to start
    drop: tuple[int, ...] = ()  # a session's requests not sent (the shrinker's)

    def canonical(self) -> Plan:
        return replace(self._world(), faults=self.faults)

    def essential_canonical(self, scenario: Scenario) -> Plan:
        """``canonical()`` less what cannot change its run, so that plans that share it share
        their canonical run. Dropped: each fault's ignored fields; a fault's Retry-After
        where the plan's replaces it; the plan's Retry-After where no answer is a 429; the
        clock's start unless a Retry-After is an HTTP date (a cooldown in seconds runs from
        the moment of the 429, so only a date, in whole seconds of wall time, rounds
        otherwise on a fractional clock); the line ending where no answer streams."""
        faults = tuple(f.essential() for f in self.faults)
        if self.retry_after is not None:
            faults = tuple(replace(f, retry_after=None) for f in faults)
        plan = replace(self._world(), faults=faults)
        retry_afters = self._retry_afters(scenario)
        if self.retry_after not in retry_afters:
            plan = replace(plan, retry_after=None)
        if all(_SECONDS.fullmatch(value) for value in retry_afters):
            plan = replace(plan, start_after=0.0)
        if not any(x.streaming for x in scenario.exchanges):
            plan = replace(plan, line_ending="\n")  # it rewrites event streams only
        return plan

    def _retry_afters(self, scenario: Scenario) -> list[str]:
        """Every Retry-After the upstream sends in this plan's world."""
        rate_limits = [f for f in self.faults if f.kind.rate_limits]
        values = [
            value
            for x in scenario.exchanges
            if x.status != 429 or self.retry_after is None
            for name, value in x.headers
            if name == "retry-after"
        ]
        if self.retry_after is None:
            return values + [f.retry_after for f in rate_limits if f.retry_after is not None]
        if rate_limits or any(x.status == 429 for x in scenario.exchanges):
            return [*values, self.retry_after]
        return values

    def _world(self) -> Plan:
        return Plan(
            pad=self.pad,
            line_ending=self.line_ending,
            retry_after=self.retry_after,
            start_after=self.start_after,
            drop=self.drop,
        )

    @property
    def perturbs_only_the_schedule(self) -> bool:
        return (
            replace(self, schedule_seed=0, schedule_budget=0, schedule_rate=0.0) == self.canonical()
        )

    @property
    def disconnects(self) -> bool:
        return any(f.kind is FaultKind.CLIENT_DISCONNECT for f in self.faults)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("starts", "heads", "drop"):  # only when set: repro files of others
            if not data[name]:  # keep their bytes
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            faults=tuple(Fault(**f) for f in data.get("faults", ())),
            schedule_seed=data.get("schedule_seed", 0),
            schedule_budget=data.get("schedule_budget", 0),
            schedule_rate=data.get("schedule_rate", 0.0),
            cuts=tuple(Cut(e, tuple(c)) for e, c in data.get("cuts", ())),
            delays=tuple(ChunkDelay(*d) for d in data.get("delays", ())),
            read_delays=tuple(ReadDelay(*r) for r in data.get("read_delays", ())),
            read_size=data.get("read_size", 65536),
            tool_latency=tuple(data.get("tool_latency", ())),
            checkpoints=tuple(Checkpoint(*c) for c in data.get("checkpoints", ())),
            pad=data.get("pad", 0),
            line_ending=data.get("line_ending", "\n"),
            retry_after=data.get("retry_after"),
            start_after=data.get("start_after", 0.0),
            starts=tuple(data.get("starts", ())),
            heads=tuple(HeadDelay(*h) for h in data.get("heads", ())),
            drop=tuple(data.get("drop", ())),
        )


LOAD_STARTS = (0.0, 0.0, 0.001, 0.5, 2.0, 31.0)


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one iteration: a stable function of the run's seed and its index."""
    digest = hashlib.blake2b(f"{seed}:{iteration}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


ALL_FAULTS = frozenset(FaultKind)


def draw_plan(
    rng: random.Random, scenario: Scenario, allowed: frozenset[FaultKind] = ALL_FAULTS
) -> Plan:
    """A random plan for ``scenario`` with faults of the ``allowed`` kinds; every choice
    comes from ``rng``, so a narrower campaign draws other plans from the same seed."""
    exchanges = scenario.exchanges
    faults: list[Fault] = []
    if rng.random() < 0.5:
        for _ in range(1 if rng.random() < 0.8 else 2):
            # Body faults strike answers that have a body worth breaking (2xx).
            ok = [i for i, x in enumerate(exchanges) if x.status < 400]
            kinds = [
                k
                for k in FaultKind
                if k in allowed and not k.rare and not k.mcp and (ok or not k.in_body)
            ]
            if not kinds:
                break
            kind = rng.choice(kinds)
            e = rng.choice(ok if kind.in_body else range(len(exchanges)))
            # In-body faults strike inside the message: after its last frame the upstream
            # has nothing left to break.
            at = rng.randrange(len(exchanges[e].chunks))
            if kind is FaultKind.CLIENT_DISCONNECT:
                at = rng.choice([0, 1, 40, 200, 700])
            retry = rng.choice(RETRY_AFTER) if kind.rate_limits else None
            faults.append(Fault(kind, e, at, retry))
    # Drawn only for a scenario with MCP tools, so no other scenario's plans change.
    mcp_kinds = [k for k in FaultKind if k.mcp and k in allowed]
    if mcp_kinds and any(tool.mcp for tool in scenario.tools) and rng.random() < 0.3:
        calls = max(1, len(exchanges) - 1)
        faults.append(Fault(rng.choice(mcp_kinds), 0, rng.randrange(calls)))
    plan = Plan(
        faults=tuple(faults),
        schedule_seed=rng.getrandbits(32),
        schedule_budget=rng.choice([0, 2, 8, 64, 1_000_000]),
        schedule_rate=rng.choice([0.05, 0.3, 1.0]),
    )
    if rng.random() < 0.5:
        cuts = []
        for e, exchange in enumerate(exchanges):
            size = len(exchange.body)
            if size > 1 and rng.random() < 0.6:
                if rng.random() < 0.3:
                    offsets = _recorded_offsets(exchange)
                else:
                    offsets = sorted({rng.randrange(1, size) for _ in range(rng.randint(1, 8))})
                cuts.append(Cut(e, tuple(offsets)))
        plan = replace(plan, cuts=tuple(cuts))
    if rng.random() < 0.4:
        delays = []
        for _ in range(rng.randint(1, 4)):
            e = rng.randrange(len(exchanges))
            chunk = rng.randrange(8)  # drawn before the delay: a seed's plans never change
            delays.append(ChunkDelay(e, chunk, rng.choice([0.001, 0.05, 0.5, 3.0, 12.0])))
        plan = replace(plan, delays=tuple(sorted(set(delays))))
    if rng.random() < 0.4:
        reads = {
            rng.randrange(6): rng.choice([0.001, 0.01, 0.2, 2.0, 15.0])
            for _ in range(rng.randint(1, 3))
        }
        plan = replace(plan, read_delays=tuple(ReadDelay(*r) for r in sorted(reads.items())))
    if rng.random() < 0.15:
        plan = replace(plan, read_size=rng.choice([7, 64, 512]))
    if rng.random() < 0.3:
        plan = replace(
            plan, tool_latency=tuple(rng.choice([0.0, 0.001, 0.5, 5.0, 40.0]) for _ in range(2))
        )
    if rng.random() < 0.3:
        points = {
            (rng.choice(_CHECKPOINT_POINTS), rng.randrange(6)): rng.randint(1, 30)
            for _ in range(rng.randint(1, 4))
        }
        checkpoints = sorted(Checkpoint(p, i, n) for (p, i), n in points.items())
        plan = replace(plan, checkpoints=tuple(checkpoints))
    return draw_rare(rng, scenario, plan, allowed)


def draw_rare(
    rng: random.Random, scenario: Scenario, plan: Plan, allowed: frozenset[FaultKind]
) -> Plan:
    """The rare paths, weighted so that each comes up in every 1,000-iteration campaign.

    Drawn after everything else, so a seed's other choices stay what they were.
    """
    if rng.random() < 0.15:
        plan = replace(plan, line_ending=rng.choice(LINE_ENDINGS))
    if rng.random() < 0.5:
        plan = replace(plan, start_after=rng.choice(START_AFTER))
    if rng.random() < 0.2:  # each distinct Retry-After in a 429 world costs a canonical run
        plan = replace(plan, retry_after=rng.choice(RARE_RETRY_AFTER))
    ok = [i for i, x in enumerate(scenario.exchanges) if x.status < 400]
    # A campaign narrowed to the rare kinds (--fault early-end) draws them often.
    weight = 0.5 if all(k.rare for k in allowed) else 0.08
    if FaultKind.EARLY_END in allowed and ok and rng.random() < weight:
        e = rng.choice(ok)
        at = rng.randrange(len(scenario.exchanges[e].chunks))
        plan = replace(plan, faults=(*plan.faults, Fault(FaultKind.EARLY_END, e, at)))
    if scenario.requests > 1 and rng.random() < 0.5:
        # A load's overlap, drawn last (other scenarios' plans stay as they were): each
        # client starts a moment, a while or past a 30 s cooldown later than its turn.
        starts = tuple(rng.choice(LOAD_STARTS) for _ in range(scenario.requests))
        plan = replace(plan, starts=starts)
    # Answers the key pool does not read (a 429's or a 401's time is its cooldown's start)
    slow = [i for i, x in enumerate(scenario.exchanges) if x.status not in (401, 403, 429)]
    if scenario.breaker is not None and slow and rng.random() < 0.5:
        # Drawn last, for breaker loads only: an answer admitted in one state of the
        # breaker and given in the next (its status line later than the breaker's
        # open_time) is what a stale report or a kept probe slot needs.
        open_time = scenario.breaker.open_time
        heads = {
            rng.choice(slow): round(rng.choice(HEAD_LATENESS) * open_time, 6)
            for _ in range(rng.randint(1, 3))
        }
        plan = replace(plan, heads=tuple(HeadDelay(*h) for h in sorted(heads.items())))
    return _slow_after_hang_up(scenario, plan)


HEAD_LATENESS = (0.5, 1.5, 3.0)  # times the breaker's open_time


# Each chunk of the answer a client hangs up on comes this late: past the
# release oracle's bound, so a handler left running holds the answer open where it shows.
HANG_UP_PACE = 1.5


def _slow_after_hang_up(scenario: Scenario, plan: Plan) -> Plan:
    """Half the plans with a client that hangs up (a bit of the schedule's seed, so the
    random stream and every other plan stay as they were) slow the answers it may leave
    open: a handler not cancelled when its client left shows only when the upstream's
    answer goes on long enough after."""
    hang_ups = {f.exchange for f in plan.faults if f.kind is FaultKind.CLIENT_DISCONNECT}
    if not hang_ups or plan.schedule_seed & 1:
        return plan
    paced = {(d.exchange, d.chunk): d for d in plan.delays}
    for e in sorted(hang_ups):
        if scenario.exchanges[e].status < 400:
            for chunk in range(8):
                paced.setdefault((e, chunk), ChunkDelay(e, chunk, HANG_UP_PACE))
    return replace(plan, delays=tuple(sorted(paced.values())))


# -- from plan to world ------------------------------------------------------------------


def _retry_after_header(value: str) -> str:
    """A plan's Retry-After as sent: ``date`` is 20 s after the epoch, ``date+N`` N s."""
    if value.startswith("date"):
        after = float(value[5:] or 20)
        return email.utils.formatdate(WALL_EPOCH + after, usegmt=True)
    return value


def _error_reply(api: str, status: int, retry_after: str | None = None) -> Reply:
    headers = [("content-type", "application/json")]
    if retry_after is not None:
        headers.append(("retry-after", _retry_after_header(retry_after)))
    body = error_body(api, status, f"simulated {status}")
    return Reply(status, headers, [json.dumps(body).encode()])


def _recorded_offsets(exchange: Exchange) -> list[int]:
    offsets, pos = [], 0
    for chunk in exchange.chunks[:-1]:
        pos += len(chunk)
        offsets.append(pos)
    return offsets


def _rechunk(chunks: tuple[bytes, ...], cuts: tuple[int, ...], keep: int | None) -> list[bytes]:
    """The exchange's bytes cut at ``cuts`` and at ``keep`` (the byte a fault strikes at).

    With no cuts an answer goes out in one piece: fewer reads make a lean run, and the
    recorded boundaries are one of the cuts a plan draws.
    """
    body = b"".join(chunks)
    offsets = list(cuts)
    if keep is not None and 0 < keep < len(body):
        offsets.append(keep)
    bounds = [0, *sorted(set(o for o in offsets if 0 < o < len(body))), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _line_endings(
    chunks: list[bytes], cuts: tuple[int, ...], fault_offset: int | None, ending: str
) -> tuple[list[bytes], tuple[int, ...], int | None]:
    """The chunks with every LF turned into ``ending``, offsets moved to match.

    In CRLF a cut moves back to the last line end before it and lands between its CR and
    its LF: the boundary where a decoder must not count a second line end (in the middle
    of an event as often as between two). A fault's offset keeps to the whole line end.
    """
    body, new = b"".join(chunks), ending.encode()
    grow = len(new) - 1

    def moved(offset: int, split: bool) -> int:
        if split and grow:
            offset = body.rfind(b"\n", 0, offset) + 1 or offset
        inside = split and grow and body[offset - 1 : offset] == b"\n"
        return offset + grow * body.count(b"\n", 0, offset) - (1 if inside else 0)

    fault = moved(fault_offset, False) if fault_offset is not None else None
    return [c.replace(b"\n", new) for c in chunks], tuple(moved(c, True) for c in cuts), fault


def _frame_offset(exchange: Exchange, frame: int) -> int:
    return sum(len(c) for c in exchange.chunks[:frame])


def _padded(chunks: list[bytes], pad: int) -> list[bytes]:
    """``chunks`` with ``pad`` bytes more in the first event (a ``padding`` field).

    A large first event fills socket buffers, so a client that reads late holds the relay
    inside its first write: black-box mode's honest lever on the seed race.
    """
    head, sep, data = chunks[0].partition(b"data: ") if chunks else (b"", b"", b"")
    try:
        event = json.loads(data)
    except ValueError:
        return chunks
    if not isinstance(event, dict):
        return chunks
    padded = head + sep + json.dumps({**event, "padding": "." * pad}).encode() + b"\n\n"
    return [padded, *chunks[1:]]


def _exchange_reply(api: str, exchange: Exchange, e: int, plan: Plan, faults: list[Fault]) -> Reply:
    chunks = list(exchange.chunks)
    if plan.pad and e == 0:
        chunks = _padded(chunks, plan.pad)
    wire_fault: WireFault | None = exchange.fault
    fault_offset: int | None = exchange.fault_after if exchange.fault else None
    for fault in faults:
        at = min(fault.at, len(chunks))
        if fault.kind is FaultKind.MALFORMED_SSE and at < len(chunks):
            chunks[at] = malformed_event(api)
        elif fault.kind is FaultKind.ERROR_EVENT:
            chunks = [*chunks[:at], error_event(api, at)]
        elif fault.kind is FaultKind.RESET_IN_BODY:
            wire_fault, fault_offset = "reset-in-body", _frame_offset(exchange, at)
        elif fault.kind is FaultKind.STALL:
            wire_fault, fault_offset = "stall", _frame_offset(exchange, at)
        elif fault.kind is FaultKind.RESET_BEFORE_BODY:
            wire_fault = "reset-before-body"
        elif fault.kind is FaultKind.EARLY_END:
            chunks = chunks[:at]  # and the body ends there, cleanly
    cuts = dict(plan.cuts).get(e, ())
    if plan.line_ending != "\n" and exchange.streaming:
        chunks, cuts, fault_offset = _line_endings(chunks, cuts, fault_offset, plan.line_ending)
    pieces = _rechunk(tuple(chunks), cuts, fault_offset)
    delays = [0.0] * len(pieces)
    if pieces and exchange.status < 400:
        delays[0] = exchange.after  # a session's recorded pace
    for delay in plan.delays:
        # Error bodies come at once: the key pool's clock starts when the body is read.
        if delay.exchange == e and delay.chunk < len(pieces) and exchange.status < 400:
            delays[delay.chunk] = delay.seconds
    fault_at = 0
    if fault_offset is not None:
        pos = 0
        while fault_at < len(pieces) and pos < fault_offset:
            pos += len(pieces[fault_at])
            fault_at += 1
    headers = list(exchange.headers)
    if plan.retry_after is not None and exchange.status == 429:
        retry = ("retry-after", _retry_after_header(plan.retry_after))
        headers = [h for h in headers if h[0] != "retry-after"] + [retry]
    return _reply(exchange, pieces, delays, wire_fault, fault_at, headers)


def _message_reply(exchange: Exchange, e: int, plan: Plan, faults: list[Fault]) -> Reply:
    """A WebSocket exchange's reply: one message per chunk, the faults struck at a message.

    A message is never cut (the proxy reads whole messages; how the frames of one fall
    into reads is wsproto's business), so cuts and padding do not apply.
    """
    messages = list(exchange.chunks)
    # a cut the scenario asks for (a TOML turn's reset_after): after that many messages
    fault_kind: WireFault | None = exchange.fault
    fault_at = exchange.fault_after if exchange.fault else 0
    for fault in faults:
        at = min(fault.at, len(messages))
        if fault.kind is FaultKind.MALFORMED_SSE and at < len(messages):
            messages[at] = b"{not json"
        elif fault.kind is FaultKind.ERROR_EVENT:
            messages = [*messages[:at], _error_message(at)]
        elif fault.kind is FaultKind.RESET_IN_BODY:
            fault_kind, fault_at = "reset-in-body", at
        elif fault.kind is FaultKind.STALL:
            fault_kind, fault_at = "stall", at
        elif fault.kind is FaultKind.RESET_BEFORE_BODY:
            fault_kind = "reset-before-body"
    delays = [0.0] * len(messages)
    for delay in plan.delays:
        if delay.exchange == e and delay.chunk < len(messages):
            delays[delay.chunk] = delay.seconds
    return _reply(exchange, messages, delays, fault_kind, fault_at)


def _reply(
    exchange: Exchange,
    chunks: list[bytes],
    delays: list[float],
    fault: WireFault | None,
    fault_at: int,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    return Reply(
        exchange.status,
        list(exchange.headers) if headers is None else headers,
        chunks,
        delays,
        fault=fault,
        fault_at=fault_at,
    )


def _error_message(sequence: int) -> bytes:
    """A mid-response error as the Responses API sends it on a socket."""
    return error_event("openai-responses", sequence).split(b"data: ", 1)[1].rstrip(b"\n")


def upstream_replies(scenario: Scenario, plan: Plan) -> list[Reply]:
    """The mock upstream's answers, request by request, for this scenario and plan."""
    replies: list[Reply] = []
    keys = max(1, scenario.keys)
    for e, exchange in enumerate(scenario.exchanges):
        here = [f for f in plan.faults if f.exchange == e]
        for fault in here:
            if fault.kind.strikes_key and fault.kind.status is not None:
                retry = fault.retry_after if fault.kind.rate_limits else None
                if fault.kind.rate_limits and plan.retry_after is not None:
                    retry = plan.retry_after
                error = _error_reply(scenario.api, fault.kind.status, retry)
                every = fault.kind is FaultKind.RATE_LIMIT_ALL
                replies += [error] * (keys if every else 1)
        status = next((f.kind.status for f in here if f.kind.replaces_answer), None)
        if status is not None:
            replies.append(_error_reply(scenario.api, status))
            continue
        if scenario.transport == "websocket" and exchange.status < 400:
            replies.append(_message_reply(exchange, e, plan, here))
        else:
            reply = _exchange_reply(scenario.api, exchange, e, plan, here)
            late = sum(h.seconds for h in plan.heads if h.exchange == e)
            replies.append(replace(reply, head_delay=late) if late else reply)
    return replies


def _starts(scenario: Scenario, plan: Plan) -> tuple[float, ...]:
    """How much later than ``gap`` apart each client starts: its own start time, if the
    scenario gives one, plus the plan's drawn lateness."""
    own, late = scenario.starts, plan.starts
    if not own and not late:
        return ()
    return tuple(
        (own[i] if i < len(own) else 0.0) + (late[i] if i < len(late) else 0.0)
        for i in range(scenario.requests)
    )


def world_spec(scenario: Scenario, plan: Plan, stream_initiation: StreamInitiation) -> WorldSpec:
    disconnect = next((f.at for f in plan.faults if f.kind is FaultKind.CLIENT_DISCONNECT), None)
    bound = 300.0 + plan.start_after + sum(d.seconds for d in plan.delays)
    bound += sum(h.seconds for h in plan.heads)
    bound += sum(r.seconds for r in plan.read_delays)
    bound += sum(plan.tool_latency)
    tool_faults = {f.at: f.kind for f in plan.faults if f.kind.mcp}
    slow = FaultKind.MCP_SLOW in tool_faults.values()
    bound += sum(t.timeout for t in scenario.tools) if slow else 0
    bound += scenario.requests * scenario.gap + sum(_starts(scenario, plan))
    # a session's replies are its requests' own: ``session.world_spec_of`` sets them
    return WorldSpec(
        path=scenario.path,
        body=scenario.body,
        replies=() if scenario.parts else upstream_replies(scenario, plan),
        keys=scenario.key_secrets,
        tools=scenario.toolset,
        stream_initiation=stream_initiation,
        transport=scenario.transport,
        pace=Pace(dict(plan.read_delays), plan.read_size, disconnect, plan.start_after),
        tool_latency=plan.tool_latency,
        tool_faults=tool_faults,
        checkpoints={(c.point, c.operation): c.extra for c in plan.checkpoints},
        schedule_seed=plan.schedule_seed,
        schedule_budget=plan.schedule_budget,
        schedule_rate=plan.schedule_rate,
        bound=bound,
        requests=scenario.requests,
        gap=scenario.gap,
        starts=_starts(scenario, plan),
        breaker=scenario.breaker,
        creates=scenario.creates,
    )


__all__ = [
    "ALL_FAULTS",
    "RARE_RETRY_AFTER",
    "RETRY_AFTER",
    "Checkpoint",
    "CheckpointPoint",
    "ChunkDelay",
    "Cut",
    "Fault",
    "FaultKind",
    "Plan",
    "ReadDelay",
    "draw_plan",
    "draw_rare",
    "error_body",
    "iteration_seed",
    "upstream_replies",
    "world_spec",
]
