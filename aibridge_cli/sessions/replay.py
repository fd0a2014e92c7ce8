"""Replaying fixtures: the mock upstream, a proxy, each recorded client request again.

For one fixture file, ``replay_fixture`` starts a ``MockUpstream`` on loopback and, unless
a target proxy is given, aibridge's own proxy in-process, pointed at the mock with the
fixture's tools (their recorded results, in order) and as many fake keys as the recording
used. It sends every recorded client request in order and compares what came back with
the recorded response (``normalize.py``: status, error type, events, text, tool calls,
usage; ids and timestamps ignored), and the upstream requests the proxy made with the
recorded ones (route, JSON body, which key slot in failover order).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
import trio.lowlevel

from ..config import ServeOptions, ServerConfig, StreamInitiation
from ..errors import ClientFacingError, FixtureError
from ..interception import REDACTED, Interception
from ..providers.base import dumps
from ..providers.openai_responses_ws import sse_view
from ..proxy.passthrough import PREFIXES
from ..proxy.routes import ROUTES
from ..proxy.run import build_app
from ..proxy.server import Server
from ..tools import InjectedTool, ToolImage, ToolOutcome, ToolSet, tool_from_mapping
from .fixture import Fixture, body_limit, distinct_keys, provider_of
from .matching import MatchRules
from .mock import DEFAULT_RULES, Hit, MockUpstream, Timing, replayable, upstream_route
from .normalize import diff_normalized, normalize_response
from .scripted_sessions import stop_servers
from .ws_client import websocket_exchange

_HOP = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "accept-encoding",
        "upgrade",
    }
)
CLIENT_TIMEOUT = 120.0
# what a fixture's "api" may name: the intercepted APIs and the pass-through records
KNOWN_APIS = (
    *(route.api.name for route in ROUTES.values()),
    *(prefix.api for prefix in PREFIXES),
)


@dataclass
class InterceptionResult:
    label: str
    api: str
    path: str
    status: str  # "match", "mismatch" or "skipped"
    expected: dict[str, Any] = field(default_factory=dict)
    actual: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "api": self.api,
            "path": self.path,
            "status": self.status,
            "problems": self.problems,
        }


@dataclass
class FixtureResult:
    """One fixture's replay. An interception it did not check (``skipped``) is no pass:
    the fixture is ``ok`` only with every interception matched, unless ``allow_skips``."""

    path: str
    results: list[InterceptionResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    allow_skips: bool = False

    @property
    def skipped(self) -> list[InterceptionResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def ok(self) -> bool:
        return all(r.status != "mismatch" for r in self.results) and (
            self.allow_skips or not self.skipped
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "fixture": self.path,
            "ok": self.ok,
            "skipped": len(self.skipped),
            "warnings": self.warnings,
            "interceptions": [r.as_json() for r in self.results],
        }


def replay_tools(
    fixture: Fixture,
) -> tuple[ToolSet, Callable[[InjectedTool, Any], Awaitable[ToolOutcome]]]:
    """The fixture's injected tools, and a runner answering each call with its recorded result."""
    tools: dict[str, InjectedTool] = {}
    for record in fixture.interceptions:
        for i, entry in enumerate(record.tools):
            if isinstance(entry, dict) and entry.get("name") not in tools:
                # An MCP tool is answered from the records too: no server is needed.
                canned = {k: v for k, v in entry.items() if k not in ("command", "error", "result")}
                tool = tool_from_mapping({**canned, "result": ""}, f"{fixture.path}: tool #{i + 1}")
                tools[tool.name] = tool
    results: dict[str, list[ToolOutcome]] = {}
    for record in fixture.interceptions:
        if replayable(record):
            for call in record.tool_calls:
                images = tuple(ToolImage(i["media_type"], i["data"]) for i in call.images)
                outcome = ToolOutcome(call.result, call.is_error, images)
                results.setdefault(call.name, []).append(outcome)

    async def run(tool: InjectedTool, arguments: Any) -> ToolOutcome:
        queue = results.get(tool.name)
        if not queue:
            return ToolOutcome(f"aibridge replay: no recorded result left for {tool.name}", True)
        return queue.pop(0)

    return ToolSet(tools), run


def replay_options(fixture: Fixture, upstream_url: str) -> ServeOptions:
    """A proxy like the recording one, pointed at the mock, with fake keys."""

    def fake(provider: str) -> list[str]:
        count = len(distinct_keys(fixture, provider))
        return [f"aibridge-replay-{provider}-key-{i + 1}" for i in range(count)]

    initiation: StreamInitiation = (
        "lazy" if fixture.proxy.get("stream_initiation") == "lazy" else "eager"
    )
    return ServeOptions(
        host="127.0.0.1",
        port=0,
        anthropic_base_url=upstream_url,
        openai_base_url=upstream_url + "/v1",
        anthropic_keys=fake("anthropic"),
        openai_keys=fake("openai"),
        stream_initiation=initiation,
        max_iterations=int(fixture.proxy.get("max_iterations", 10)),
    )


def check_replayable(fixture: Fixture) -> None:
    """Refuse a fixture a replay could only pretend to check: one with no interception,
    or one of an API the proxy does not serve."""
    if not fixture.interceptions:
        raise FixtureError(
            f"{fixture.path}: nothing to replay (the file holds only its header)",
            hint="record some traffic into it first",
        )
    for record, label in zip(fixture.interceptions, fixture.labels, strict=True):
        if record.api not in KNOWN_APIS:
            raise FixtureError(
                f"{fixture.path}: interception {label} has an unknown api {record.api!r} "
                f"(known: {', '.join(KNOWN_APIS)})",
                hint='fix its "api" field',
            )


def client_request(record: Interception) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body to send again: secrets and framing dropped, a fake key added."""
    headers = [(k, v) for k, v in record.request.headers if k.lower() not in _HOP and v != REDACTED]
    headers.append(("x-api-key", "aibridge-replay-client"))
    body = record.request.body
    raw = body if isinstance(body, bytes) else b"" if body is None else dumps(body).encode()
    return headers, raw


def _key_of(hit: Hit) -> str | None:
    key = hit.seen.header("x-api-key")
    if key is None and (auth := hit.seen.header("authorization")):
        key = auth.removeprefix("Bearer ").strip()
    return key


@dataclass
class _Slots:
    """Keys numbered by first use, so a failover pattern compares across fake keys."""

    slots: dict[str, int] = field(default_factory=dict)

    def of(self, key: str | None) -> int | None:
        if key is None:
            return None
        return self.slots.setdefault(key, len(self.slots) + 1)


def upstream_problems(
    record: Interception,
    hits: list[Hit],
    recorded_slots: _Slots,
    replay_slots: _Slots,
    byok: bool,
) -> list[str]:
    """How the upstream requests of one replayed interception differ from the recording."""
    problems: list[str] = []
    if len(hits) != len(record.upstream):
        problems.append(f"upstream: {len(record.upstream)} requests recorded, {len(hits)} made")
    for n, (hit, exchange) in enumerate(zip(hits, record.upstream, strict=False)):
        route = upstream_route(record.api, exchange)
        seen_route = (hit.seen.method, hit.seen.path.split("?", 1)[0])
        if seen_route != route:
            problems.append(
                f"upstream[{n}]: went to {' '.join(seen_route)}, recorded {' '.join(route)}"
            )
        problems += [f"upstream[{n}]: {p}" for p in hit.problems]
        if not byok:
            want, got = recorded_slots.of(exchange.key), replay_slots.of(_key_of(hit))
            if want != got:
                problems.append(f"upstream[{n}]: used key #{got}, recorded key #{want}")
    return problems


async def replay_fixture(
    fixture: Fixture,
    *,
    target: str | None = None,
    upstream_port: int = 0,
    timing: Timing = "fast",
    replayed: Callable[[], None] = lambda: None,
    allow_skips: bool = False,
    max_body_size: int | None = None,
    rules: MatchRules = DEFAULT_RULES,
) -> FixtureResult:
    """Replay one fixture file; see the module docstring. ``replayed`` is called after
    each interception (the command's progress bar); ``rules`` match the upstream
    requests the proxy makes with the recorded ones. The mock and the proxy take bodies
    up to ``max_body_size``, by default as large as the recording's (``body_limit``)."""
    outcome = FixtureResult(fixture.path, warnings=list(fixture.warnings), allow_skips=allow_skips)
    mock = MockUpstream([fixture], timing, rules)
    limit = max_body_size or body_limit([fixture], ServerConfig.max_body_size)
    server_config = ServerConfig(max_body_size=limit)
    async with trio.open_nursery() as nursery:
        mock_server = Server(mock.app, server_config)
        host, port = await nursery.start(mock_server.serve_tcp, "127.0.0.1", upstream_port)
        mock_url = f"http://{host}:{port}"
        proxy_server = None
        if target is None:
            tools, runner = replay_tools(fixture)
            app = build_app(replay_options(fixture, mock_url), tools=tools)
            app.env.run_tool = runner
            proxy_server = Server(app, server_config)
            phost, pport = await nursery.start(proxy_server.serve_tcp, "127.0.0.1", 0)
            target = f"http://{phost}:{pport}"
        try:
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
                await _send_all(fixture, mock, client, target.rstrip("/"), outcome, replayed)
        finally:
            if proxy_server is not None:
                await app.env.client.aclose()
                await stop_servers(proxy_server)
            await stop_servers(mock_server)
            nursery.cancel_scope.cancel()
    return outcome


async def _send_all(
    fixture: Fixture,
    mock: MockUpstream,
    client: httpx.AsyncClient,
    target: str,
    outcome: FixtureResult,
    replayed: Callable[[], None],
) -> None:
    recorded_slots, replay_slots = _Slots(), _Slots()
    for index, (record, label) in enumerate(
        zip(fixture.interceptions, fixture.labels, strict=True)
    ):
        result = InterceptionResult(label, record.api, record.request.path, "match")
        outcome.results.append(result)
        if not replayable(record):
            result.status = "skipped"
            result.problems.append(
                f"not checked: recorded outcome {record.outcome!r} (the client cut it short, "
                "so what it got is not what the proxy would answer)"
            )
            replayed()
            continue
        # What an earlier interception left unasked is not this one's to answer.
        mock.skip_to(0, index)
        before = len(mock.hits)
        headers, body = client_request(record)
        status: int | None
        try:
            if record.transport == "websocket":
                url = target + record.request.path
                with trio.fail_after(CLIENT_TIMEOUT):
                    status, response_headers, data = await websocket_exchange(url, headers, body)
            else:
                async with client.stream(
                    record.request.method,
                    target + record.request.path,
                    headers=headers,
                    content=body,
                ) as response:
                    data = await response.aread()
                status = response.status_code
                response_headers = list(response.headers.multi_items())
        except (httpx.HTTPError, ClientFacingError, trio.TooSlowError) as exc:
            status, response_headers, data = None, [], b""
            result.problems.append(f"response: the request failed: {type(exc).__name__}: {exc}")
        await trio.lowlevel.checkpoint()  # let the mock finish booking its last hit
        expected = record.response
        if record.transport == "websocket":
            result.expected = normalize_response(
                record.api, *sse_view(chunk.data for chunk in expected.chunks)
            )
        else:
            result.expected = normalize_response(
                record.api, expected.status, expected.headers, expected.body
            )
        result.actual = normalize_response(record.api, status, response_headers, data)
        result.problems += [
            f"response: {d}" for d in diff_normalized(result.expected, result.actual)
        ]
        byok = not distinct_keys(fixture, provider_of(record.api))
        result.problems += upstream_problems(
            record, mock.hits[before:], recorded_slots, replay_slots, byok
        )
        if result.problems:
            result.status = "mismatch"
        replayed()


def exit_code(results: list[FixtureResult]) -> int:
    return 0 if all(r.ok for r in results) else 1
