"""Fuzz scenarios: one client request (or a load of them) and the upstream exchanges that
answer it.

A scenario is made from an ``Interception`` (what a fixture holds): the client's request
body, the upstream exchanges in order (status, headers, chunks), the injected tools, and
the number of pool keys the recording proxy had.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from ..config import BreakerConfig
from ..errors import ConfigError
from ..fakes.scripted_upstream import Fault as WireFault
from ..headers import FrozenHeaders
from ..interception import Interception, ResponseLog, Transport
from ..providers.openai_responses_ws import opening_status
from ..sessions.normalize import normalize_response
from ..tools import InjectedTool, ToolOutcome, ToolSet, tool_from_mapping

_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})


def _served_from_records(
    entry: dict[str, Any], record: Interception, allow_commands: bool
) -> dict[str, Any]:
    """A tool's table with its first recorded answer as its canned one: the simulation
    serves MCP tools from records, with no server, and command tools too unless commands
    are allowed, since a file is data and never picks a program to run."""
    if "command" in entry and allow_commands:
        return entry
    if any(k in entry for k in ("result", "error")) or not ({"command", "mcp"} & set(entry)):
        return entry  # canned already, or incomplete (``tool_from_mapping`` names it)
    canned = {k: v for k, v in entry.items() if k != "command"}
    call = next((c for c in record.tool_calls if c.name == entry.get("name")), None)
    if call is None:
        return {**canned, "error": "no recorded call"}
    return {**canned, "error" if call.is_error else "result": call.result}


def with_outcomes(scenario: Scenario, outcome: Callable[[str], ToolOutcome | None]) -> Scenario:
    """``scenario`` with each command tool that ``outcome`` knows the one answer of
    replaced by that answer: a repro file then carries what the command gave, and replays
    anywhere without running it."""
    tools = []
    for tool in scenario.tools:
        known = outcome(tool.name) if tool.command is not None else None
        if known is not None and not known.images:
            error, result = (known.text, None) if known.is_error else (None, known.text)
            tool = replace(tool, command=None, env={}, result=result, error=error)
        tools.append(tool)
    parts = tuple(with_outcomes(part, outcome) for part in scenario.parts)
    return replace(scenario, tools=tuple(tools), parts=parts)


def refuse_commands(tools: Iterable[InjectedTool], where: str) -> None:
    """A ``ConfigError`` naming the first tool that would run a command: a scenario or
    repro file runs one only when the command line says so."""
    for tool in tools:
        if tool.command is not None:
            raise ConfigError(
                f"{where}: tool {tool.name!r} runs a command ({' '.join(tool.command)}); "
                "a file never runs one by itself: give --allow-commands if you trust it"
            )


def _answered(transport: str, response: ResponseLog) -> int:
    """The status an exchange stands for; on a socket, a refusal in its first message
    (``opening_status``) makes it an error exchange, which plans treat as one."""
    status = response.status or 200
    if transport != "websocket" or not response.chunks:
        return status
    first = response.chunks[0].data.decode("utf-8", "replace")
    return opening_status(status, first)[0]


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: FrozenHeaders
    chunks: tuple[bytes, ...]
    # A cut the scenario itself asks for (a TOML turn's reset_after or stall_after):
    # the upstream resets or goes silent after ``fault_after`` body bytes.
    fault: WireFault | None = None
    fault_after: int = 0
    # A session's exchange: the seconds its recorded answer took, played before its first
    # byte, so that the session's requests overlap as they did when recorded
    after: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def streaming(self) -> bool:
        return any(k == "content-type" and "event-stream" in v for k, v in self.headers)


def _exchange_json(e: Exchange) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": e.status,
        "headers": [list(h) for h in e.headers],
        "chunks": [c.decode() for c in e.chunks],
    }
    if e.fault is not None:  # only then: repro files of other scenarios keep their bytes
        data.update(fault=e.fault, fault_after=e.fault_after)
    if e.after:
        data["after"] = e.after
    return data


def _turn(api: str, exchange: Exchange) -> str:
    if exchange.status >= 400:
        retry = next((v for k, v in exchange.headers if k == "retry-after"), None)
        return f"{exchange.status}" + (f" (Retry-After {retry})" if retry is not None else "")
    shape = normalize_response(api, exchange.status, exchange.headers, exchange.body)
    calls = [str(call.get("name")) for call in shape["tool_calls"] if isinstance(call, dict)]
    turn = f"tool call {', '.join(calls)}" if calls else "text"
    cut = f", {exchange.fault} after {exchange.fault_after} bytes" if exchange.fault else ""
    return turn + cut


@dataclass(frozen=True)
class Scenario:
    name: str
    api: str
    path: str
    body: bytes
    exchanges: tuple[Exchange, ...]
    tools: tuple[InjectedTool, ...]
    keys: int
    # websocket: the body is one response.create message; each exchange's chunks are the
    # messages that answered it (a refused upgrade: its HTTP answer)
    transport: Transport = "http"
    # A load (TOML scenarios): ``requests`` clients, ``gap`` seconds apart, through a proxy
    # with this circuit breaker; the exchanges answer the upstream requests in arrival order
    requests: int = 1
    gap: float = 0.0
    breaker: BreakerConfig | None = None
    starts: tuple[float, ...] = ()  # a load: each client's start time, instead of the gap
    # websocket: the later response.create messages on the same socket (``body`` is the
    # first), each sent once the previous response ended; the exchanges answer the upstream
    # requests in order, whichever response they come to
    creates: tuple[bytes, ...] = ()
    # A session (``session.py``): its requests, each a one-request scenario, started at
    # ``starts``; the session's exchanges are theirs one after the other, so a plan's
    # faults strike each request's own
    parts: tuple[Scenario, ...] = ()

    # Every iteration asks these; a scenario never changes, so each is worked out once.
    @cached_property
    def streaming(self) -> bool:
        return self.transport == "websocket" or json.loads(self.body).get("stream") is True

    @cached_property
    def toolset(self) -> ToolSet:
        return ToolSet.of(self.tools)

    @cached_property
    def key_secrets(self) -> tuple[str, ...]:
        return tuple(f"sk-sim-key-{i}-0123456789abcdef" for i in range(self.keys))

    def describe(self) -> str:
        """One line: the client's kind, the pool, the tools and the upstream's turns."""
        turns = " -> ".join(_turn(self.api, e) for e in self.exchanges)
        tools = f", injected {', '.join(t.name for t in self.tools)}" if self.tools else ""
        kind = "streaming" if self.streaming else "blocking"
        load = f"{self.requests} requests {self.gap:g} s apart, " if self.requests > 1 else ""
        if self.starts:
            load = f"{self.requests} requests at {', '.join(f'{t:g}' for t in self.starts)} s, "
        if self.parts:
            at = ", ".join(f"{t:g}" for t in self.starts)
            lines = "; ".join(f"#{i} {p.describe()}" for i, p in enumerate(self.parts))
            return f"session of {len(self.parts)} requests at {at} s, {self.keys} key(s): {lines}"
        b = self.breaker
        if b is not None:
            load += f"breaker {b.threshold}/{b.interval:g}s/{b.open_time:g}s/{b.probes}, "
        if self.creates:
            load += f"{len(self.creates) + 1} responses on one socket, "
        return f"{load}{kind}, {self.keys} key(s){tools}; upstream: {turns}"

    @property
    def every_tool(self) -> tuple[InjectedTool, ...]:
        """Its tools and its session requests' (what a file could make run)."""
        return self.tools + tuple(t for part in self.parts for t in part.every_tool)

    @property
    def provider(self) -> str:
        return "openai" if self.api.startswith("openai") else "anthropic"

    @classmethod
    def from_interception(
        cls, name: str, record: Interception, keys: int, allow_commands: bool = False
    ) -> Scenario:
        """The scenario of one recorded interception; ``keys``: the pool size it ran with;
        its command tools answer from the records unless ``allow_commands``."""
        exchanges = tuple(
            Exchange(
                _answered(record.transport, exchange.response),
                tuple(
                    (k.lower(), v)
                    for k, v in exchange.response.headers
                    if k.lower() not in _FRAMING
                ),
                tuple(chunk.data for chunk in exchange.response.chunks),
            )
            for exchange in record.upstream
        )
        tools = tuple(
            tool_from_mapping(
                _served_from_records(entry, record, allow_commands), f"{name}: tool #{i + 1}"
            )
            for i, entry in enumerate(record.tools)
        )
        body = record.request.body
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return cls(
            name, record.api, record.request.path, raw, exchanges, tools, keys, record.transport
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "api": self.api,
            "path": self.path,
            "body": self.body.decode(),
            "keys": self.keys,
            "transport": self.transport,
            "tools": [tool.to_toml_fields() for tool in self.tools],
            "exchanges": [_exchange_json(e) for e in self.exchanges],
            # only when set: repro files of other scenarios keep their bytes
            **({"requests": self.requests, "gap": self.gap} if self.requests > 1 else {}),
            **({"breaker": dataclasses.asdict(self.breaker)} if self.breaker else {}),
            **({"starts": list(self.starts)} if self.starts else {}),
            **({"creates": [c.decode() for c in self.creates]} if self.creates else {}),
            **({"parts": [part.to_json() for part in self.parts]} if self.parts else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(
            data["name"],
            data["api"],
            data["path"],
            data["body"].encode(),
            tuple(
                Exchange(
                    e["status"],
                    tuple((k, v) for k, v in e["headers"]),
                    tuple(c.encode() for c in e["chunks"]),
                    e.get("fault"),
                    e.get("fault_after", 0),
                    e.get("after", 0.0),
                )
                for e in data["exchanges"]
            ),
            tuple(tool_from_mapping(t, data["name"]) for t in data["tools"]),
            data["keys"],
            data.get("transport", "http"),
            data.get("requests", 1),
            data.get("gap", 0.0),
            BreakerConfig(**data["breaker"]) if data.get("breaker") else None,
            tuple(data.get("starts", ())),
            tuple(c.encode() for c in data.get("creates", ())),
            tuple(cls.from_json(part) for part in data.get("parts", ())),
        )
