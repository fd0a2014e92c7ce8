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
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config import StreamInitiation
from ..fakes.scripted_upstream import Reply
from ..sim.client import Pace
from ..sim.world import WALL_EPOCH, WorldSpec
from ..sse import encode_event
from .scenario import Exchange, Scenario

FAULT_KINDS: dict[str, str] = {
    "429-one": "the key in use answers 429 (Retry-After drawn); the proxy fails over",
    "429-all": "every key answers 429 (Retry-After drawn)",
    "401": "the key in use answers 401 and is disabled",
    "403": "the key in use answers 403 and is disabled",
    "500": "the exchange answers 500 (relayed, no failover)",
    "529": "the exchange answers 529 overloaded (relayed, no failover)",
    "reset-before-body": "the upstream drops the connection before the status line",
    "reset-in-body": "the upstream drops the connection after frame AT",
    "error-event": "the upstream sends an SSE error event after frame AT",
    "stall": "the upstream goes silent after frame AT, past the read timeout",
    "malformed-sse": "frame AT is replaced by an event whose data is not JSON",
    "client-disconnect": "the client hangs up after AT body bytes (0: before reading)",
    "mcp-error": "MCP tool call AT answers isError",
    "mcp-slow": "MCP tool call AT takes past the tool's timeout",
    "mcp-dies": "the MCP server dies during tool call AT",
}
MCP_FAULTS = ("mcp-error", "mcp-slow", "mcp-dies")
KEY_FAULTS = ("429-one", "429-all", "401", "403")
BODY_FAULTS = ("reset-in-body", "error-event", "stall", "malformed-sse")
RETRY_AFTER = ("0", "1", "5", "30", None, "date", "soon")
_CHECKPOINT_POINTS = (
    "downstream-send",
    "downstream-receive",
    "upstream-send",
    "upstream-receive",
    "tool",
)
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Fault:
    kind: str
    exchange: int = 0
    at: int = 0
    retry_after: str | None = None

    def describe(self) -> str:
        where = f"exchange {self.exchange}"
        if self.kind in ("reset-in-body", "error-event", "stall", "malformed-sse"):
            where += f" frame {self.at}"
        if self.kind == "client-disconnect":
            where = f"after {self.at} body bytes"
        if self.kind in MCP_FAULTS:
            where = f"tool call {self.at}"
        extra = f" Retry-After={self.retry_after}" if self.kind in ("429-one", "429-all") else ""
        return f"{self.kind} at {where}{extra}"

    def essential(self) -> Fault:
        """This fault without the fields its kind ignores (a 429's frame, a 500's Retry-After)."""
        at = self.at if self.kind in (*BODY_FAULTS, *MCP_FAULTS, "client-disconnect") else 0
        retry = self.retry_after if self.kind in ("429-one", "429-all") else None
        return Fault(self.kind, self.exchange, at, retry)


@dataclass(frozen=True)
class Plan:
    faults: tuple[Fault, ...] = ()
    schedule_seed: int = 0
    schedule_budget: int = 0
    schedule_rate: float = 0.0
    cuts: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (exchange, byte offsets)
    delays: tuple[tuple[int, int, float], ...] = ()  # (exchange, chunk, seconds)
    read_delays: tuple[tuple[int, float], ...] = ()  # (read index, seconds)
    read_size: int = 65536
    tool_latency: tuple[float, ...] = ()
    checkpoints: tuple[tuple[str, int, int], ...] = ()  # (point, operation, count)
    pad: int = 0  # bytes of padding in the first event of exchange 0 (black-box)

    def canonical(self) -> Plan:
        return Plan(faults=self.faults, pad=self.pad)

    def essential_canonical(self) -> Plan:
        """``canonical()`` with each fault's ignored fields dropped: plans that share it share
        their canonical run."""
        return Plan(faults=tuple(f.essential() for f in self.faults), pad=self.pad)

    @property
    def perturbs_only_the_schedule(self) -> bool:
        return (
            replace(self, schedule_seed=0, schedule_budget=0, schedule_rate=0.0) == self.canonical()
        )

    @property
    def disconnects(self) -> bool:
        return any(f.kind == "client-disconnect" for f in self.faults)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            faults=tuple(Fault(**f) for f in data.get("faults", ())),
            schedule_seed=data.get("schedule_seed", 0),
            schedule_budget=data.get("schedule_budget", 0),
            schedule_rate=data.get("schedule_rate", 0.0),
            cuts=tuple((e, tuple(c)) for e, c in data.get("cuts", ())),
            delays=tuple((e, c, d) for e, c, d in data.get("delays", ())),
            read_delays=tuple((i, d) for i, d in data.get("read_delays", ())),
            read_size=data.get("read_size", 65536),
            tool_latency=tuple(data.get("tool_latency", ())),
            checkpoints=tuple((p, i, n) for p, i, n in data.get("checkpoints", ())),
            pad=data.get("pad", 0),
        )


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one iteration: a stable function of the run's seed and its index."""
    digest = hashlib.blake2b(f"{seed}:{iteration}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def draw_plan(rng: random.Random, scenario: Scenario) -> Plan:
    """A random plan for ``scenario``; every choice comes from ``rng``."""
    exchanges = scenario.exchanges
    faults: list[Fault] = []
    if rng.random() < 0.5:
        for _ in range(1 if rng.random() < 0.8 else 2):
            # Body faults strike answers that have a body worth breaking (2xx).
            ok = [i for i, x in enumerate(exchanges) if x.status < 400]
            kinds = [k for k in FAULT_KINDS if k not in MCP_FAULTS and (ok or k not in BODY_FAULTS)]
            kind = rng.choice(kinds)
            e = rng.choice(ok if kind in BODY_FAULTS else range(len(exchanges)))
            # In-body faults strike inside the message: after its last frame the upstream
            # has nothing left to break.
            at = rng.randrange(len(exchanges[e].chunks))
            if kind == "client-disconnect":
                at = rng.choice([0, 1, 40, 200, 700])
            retry = rng.choice(RETRY_AFTER) if kind in ("429-one", "429-all") else None
            faults.append(Fault(kind, e, at, retry))
    # Drawn only for a scenario with MCP tools, so no other scenario's plans change.
    if any(tool.mcp for tool in scenario.tools) and rng.random() < 0.3:
        calls = max(1, len(exchanges) - 1)
        faults.append(Fault(rng.choice(MCP_FAULTS), 0, rng.randrange(calls)))
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
                cuts.append((e, tuple(offsets)))
        plan = replace(plan, cuts=tuple(cuts))
    if rng.random() < 0.4:
        delays = []
        for _ in range(rng.randint(1, 4)):
            e = rng.randrange(len(exchanges))
            delays.append((e, rng.randrange(8), rng.choice([0.001, 0.05, 0.5, 3.0, 12.0])))
        plan = replace(plan, delays=tuple(sorted(set(delays))))
    if rng.random() < 0.4:
        reads = {
            rng.randrange(6): rng.choice([0.001, 0.01, 0.2, 2.0, 15.0])
            for _ in range(rng.randint(1, 3))
        }
        plan = replace(plan, read_delays=tuple(sorted(reads.items())))
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
        plan = replace(plan, checkpoints=tuple(sorted((p, i, n) for (p, i), n in points.items())))
    return plan


# -- from plan to world ------------------------------------------------------------------


_OPENAI_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    429: "requests",
    500: "server_error",
    529: "server_error",
}


def error_body(api: str, status: int, message: str) -> dict[str, Any]:
    """An upstream error body in ``api``'s own shape."""
    if api == "anthropic":
        return {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }


def _error_event(api: str, sequence: int) -> bytes:
    """A mid-stream error as ``api``'s upstream sends it."""
    if api == "anthropic":
        return encode_event("error", json.dumps(error_body(api, 529, "simulated overload")))
    if api == "openai-chat":
        return encode_event(None, json.dumps(error_body(api, 500, "simulated server error")))
    event = {
        "type": "error",
        "sequence_number": sequence,
        "code": "server_error",
        "message": "simulated server error",
        "param": None,
    }
    return encode_event("error", json.dumps(event))


def _malformed_event(api: str) -> bytes:
    name = "content_block_delta" if api == "anthropic" else None
    return encode_event(name, "{not json")


def _error_reply(api: str, status: int, retry_after: str | None = None) -> Reply:
    headers = [("content-type", "application/json")]
    if retry_after == "date":
        headers.append(("retry-after", email.utils.formatdate(WALL_EPOCH + 20, usegmt=True)))
    elif retry_after is not None:
        headers.append(("retry-after", retry_after))
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
    fault_kind: str | None = None
    fault_offset: int | None = None
    for fault in faults:
        at = min(fault.at, len(chunks))
        if fault.kind == "malformed-sse" and at < len(chunks):
            chunks[at] = _malformed_event(api)
        elif fault.kind == "error-event":
            chunks = [*chunks[:at], _error_event(api, at)]
        elif fault.kind in ("reset-in-body", "stall"):
            fault_kind, fault_offset = fault.kind, _frame_offset(exchange, at)
        elif fault.kind == "reset-before-body":
            fault_kind = "reset-before-body"
    cuts = dict(plan.cuts).get(e, ())
    pieces = _rechunk(tuple(chunks), cuts, fault_offset)
    delays = [0.0] * len(pieces)
    for de, chunk, seconds in plan.delays:
        # Error bodies come at once: the key pool's clock starts when the body is read.
        if de == e and chunk < len(pieces) and exchange.status < 400:
            delays[chunk] = seconds
    fault_at = 0
    if fault_offset is not None:
        pos = 0
        while fault_at < len(pieces) and pos < fault_offset:
            pos += len(pieces[fault_at])
            fault_at += 1
    return Reply(
        exchange.status,
        list(exchange.headers),
        pieces,
        delays,
        fault=fault_kind,  # type: ignore[arg-type]
        fault_at=fault_at,
    )


def upstream_replies(scenario: Scenario, plan: Plan) -> list[Reply]:
    """The mock upstream's answers, request by request, for this scenario and plan."""
    replies: list[Reply] = []
    keys = max(1, scenario.keys)
    for e, exchange in enumerate(scenario.exchanges):
        here = [f for f in plan.faults if f.exchange == e]
        for fault in here:
            if fault.kind == "429-one":
                replies.append(_error_reply(scenario.api, 429, fault.retry_after))
            elif fault.kind == "429-all":
                replies += [_error_reply(scenario.api, 429, fault.retry_after)] * keys
            elif fault.kind in ("401", "403"):
                replies.append(_error_reply(scenario.api, int(fault.kind)))
        status = next((int(f.kind) for f in here if f.kind in ("500", "529")), None)
        if status is not None:
            replies.append(_error_reply(scenario.api, status))
            continue
        replies.append(_exchange_reply(scenario.api, exchange, e, plan, here))
    return replies


def world_spec(scenario: Scenario, plan: Plan, stream_initiation: StreamInitiation) -> WorldSpec:
    disconnect = next((f.at for f in plan.faults if f.kind == "client-disconnect"), None)
    bound = 300.0 + sum(d for _, _, d in plan.delays) + sum(d for _, d in plan.read_delays)
    bound += sum(plan.tool_latency)
    tool_faults = {f.at: f.kind for f in plan.faults if f.kind in MCP_FAULTS}
    bound += sum(t.timeout for t in scenario.tools) if "mcp-slow" in tool_faults.values() else 0
    return WorldSpec(
        path=scenario.path,
        body=scenario.body,
        replies=upstream_replies(scenario, plan),
        keys=scenario.key_secrets,
        tools=scenario.toolset,
        stream_initiation=stream_initiation,
        pace=Pace(dict(plan.read_delays), plan.read_size, disconnect),
        tool_latency=plan.tool_latency,
        tool_faults=tool_faults,
        checkpoints={(p, i): n for p, i, n in plan.checkpoints},
        schedule_seed=plan.schedule_seed,
        schedule_budget=plan.schedule_budget,
        schedule_rate=plan.schedule_rate,
        bound=bound,
    )


__all__ = ["FAULT_KINDS", "Fault", "Plan", "draw_plan", "iteration_seed", "world_spec"]
