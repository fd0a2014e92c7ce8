"""A mock from fixtures: what was recorded, played back to whoever asks again.

Two sides of a recording can be served. The **client side** (``aibridge mock``'s default)
stands where the recording proxy stood, on its routes (``/anthropic/...``,
``/openai/v1/...``, the Responses WebSocket): a request gets the response its client got
when recorded. The injected tool turns, MCP calls and key failovers behind that response
are not replayed, so a session recorded with ``--tools`` needs no tools file, no MCP
server and no key; pass-through records are served the same way. The **upstream side**
(``--upstream-side``; what ``replay`` puts behind its proxy) stands where the provider
stood: each recorded upstream exchange on the provider's own routes. Anthropic's sit at
the root (``/v1/messages``), OpenAI's under ``/v1`` (the recorded path is relative to the
base URL ``.../v1``), as on the real hosts.

Either way a request gets the first recorded request not yet served that it matches
(``matching.py``: method, path, query and JSON body with ids and timestamps left out, a
missing ``stream`` read as ``false``), so requests made in their recorded order get the
answers in that order. A request that matches none gets a 400 in the provider's error
shape with its differences from the closest unserved one, and uses nothing up. Replies
are ``scripted.Reply``s: the recorded chunks one send each, with the recorded gaps between
them (``timing="recorded"``) or none (``"fast"``); a recorded connection error becomes a
reset. Keys are not checked: replays use fake ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest, upstream_error
from ..headers import forwarded_response_headers
from ..interception import Interception, UpstreamExchange
from ..providers.openai_responses_ws import EXCHANGE_METHOD, WEBSOCKET_STATUS
from .fixture import Fixture, is_pass_through, provider_of
from .matching import (
    ANY_BODY,
    MatchRules,
    RequestShape,
    closest,
    matches,
    request_shape,
)

log = logging.getLogger("aibridge.mock")

Timing = Literal["recorded", "fast"]
Side = Literal["client", "upstream"]
"""Whose answers a mock serves: what the recorded clients got, or what the upstream said."""
PROVIDER_PREFIX = {"anthropic": "", "openai": "/v1"}
DEFAULT_RULES = MatchRules()


@dataclass(frozen=True, eq=False)  # one recorded exchange is itself, not its equal
class Expected:
    """One recorded request and its answer, where it came from, and when the answer may
    start. On the client side ``recorded`` is the interception's client request and
    response seen as an exchange, and ``exchange`` is None."""

    fixture: int
    interception: int
    exchange: int | None
    api: str
    recorded: UpstreamExchange
    start_ms: float
    shape: RequestShape

    def where(self) -> str:
        if self.exchange is None:
            return f"interception #{self.interception + 1}"
        return f"interception #{self.interception + 1}, upstream exchange #{self.exchange + 1}"


@dataclass
class Hit:
    """A request the mock saw: what it was matched to, and what did not match."""

    seen: SeenRequest
    expected: Expected | None
    problems: list[str] = field(default_factory=list)


def replayable(record: Interception) -> bool:
    """False for an interception the client itself cut short: its ending was the client's."""
    return not record.outcome.startswith(("client disconnected", "cancelled"))


def unserved(fixture: Fixture) -> list[str]:
    """A line per interception the mock leaves out (the client cut it short), so none is
    skipped silently."""
    return [
        f"{fixture.path}: interception {label} not served (recorded outcome {record.outcome!r})"
        for record, label in zip(fixture.interceptions, fixture.labels, strict=True)
        if not replayable(record)
    ]


def upstream_route(api: str, exchange: UpstreamExchange) -> tuple[str, str]:
    """Method and path (no query) a recorded exchange is served on."""
    path = exchange.path.partition("?")[0]
    return exchange.method, PROVIDER_PREFIX[provider_of(api)] + path


def reply_for(expected: Expected, timing: Timing) -> Reply:
    """The recorded answer as a scripted reply."""
    recorded = expected.recorded
    response = recorded.response
    if response.status is None:
        return Reply(fault="reset-before-body")
    delays: list[float] = []
    previous = expected.start_ms
    for chunk in response.chunks:
        delays.append(max(0.0, chunk.offset_ms - previous) / 1000 if timing == "recorded" else 0.0)
        previous = chunk.offset_ms
    return Reply(
        response.status,
        forwarded_response_headers(response.headers),
        [chunk.data for chunk in response.chunks],
        delays,
        fault="reset-in-body" if recorded.error else None,
        fault_at=len(response.chunks),
    )


def client_exchange(record: Interception) -> UpstreamExchange:
    """What the client asked and got, as an exchange the mock can serve: a WebSocket
    interception is its message on the upgrade's path, answered with its messages."""
    request = record.request
    websocket = record.transport == "websocket"
    method = EXCHANGE_METHOD if websocket else request.method
    return UpstreamExchange(method, request.path, request.body, None, record.response)


def _recorded_shape(
    exchange: UpstreamExchange, route: tuple[str, str], record: Interception, rules: MatchRules
) -> RequestShape:
    """A recorded request served on ``route`` as matching sees it; which client sent it is
    read from the interception's client request (exchanges keep no headers of their own)."""
    method, path = route
    query = exchange.path.partition("?")[2]
    body = ANY_BODY if exchange.request_body is None else exchange.request_body
    target = f"{path}?{query}" if query else path
    return request_shape(method, target, body, rules, record.request.headers)


class MockUpstream:
    """Builds the scripted server that serves ``fixtures`` from ``side``; keeps every hit.

    A request takes the first recorded request not yet served that it matches under
    ``rules`` (``matching.py``); one that matches none takes nothing, so a later request
    can still have its answer.
    """

    def __init__(
        self,
        fixtures: Sequence[Fixture],
        timing: Timing = "recorded",
        rules: MatchRules = DEFAULT_RULES,
        side: Side = "upstream",
    ) -> None:
        self.timing = timing
        self.rules = rules
        self.side = side
        self.expected: list[Expected] = []
        self.queues: dict[tuple[str, str], list[Expected]] = {}
        self.hits: list[Hit] = []
        self._json_routes: set[tuple[str, str]] = set()
        for f, fixture in enumerate(fixtures):
            for i, record in enumerate(fixture.interceptions):
                if replayable(record):
                    self._add(f, i, record)
        self.app = ScriptedUpstream(script=self.answer, refuse=self.refusal)

    def _add(self, f: int, i: int, record: Interception) -> None:
        client = self.side == "client"
        exchanges = [client_exchange(record)] if client else record.upstream
        start = 0.0
        for e, exchange in enumerate(exchanges):
            if client:
                route = exchange.method, exchange.path.partition("?")[0]
            else:
                route = upstream_route(record.api, exchange)
            if route[0] == "POST" and not is_pass_through(record.api):
                self._json_routes.add(route)
            shape = _recorded_shape(exchange, route, record, self.rules)
            self._queue(Expected(f, i, None if client else e, record.api, exchange, start, shape))
            if exchange.response.chunks:
                start = exchange.response.chunks[-1].offset_ms

    def _queue(self, expected: Expected) -> None:
        self.expected.append(expected)
        key = expected.shape.route if self.rules.by_route else ("", "")
        self.queues.setdefault(key, []).append(expected)

    @property
    def json_routes(self) -> list[tuple[str, str]]:
        """The intercepted APIs' recorded routes: they take JSON bodies only, as on
        ``serve`` (the guard answers 415 to any other body there); a pass-through takes
        any."""
        return sorted(self._json_routes)

    @property
    def remaining(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def shape_of(self, seen: SeenRequest) -> RequestShape:
        return request_shape(seen.method, seen.target, seen.body, self.rules, seen.headers)

    def take(self, seen: RequestShape) -> Expected | None:
        """The first unserved exchange ``seen`` matches, now served; None leaves all as is."""
        queue = self.queues.get(seen.route if self.rules.by_route else ("", ""), [])
        for n, expected in enumerate(queue):
            if matches(expected.shape, seen, self.rules):
                del queue[n]
                return expected
        return None

    def problems(self, seen: RequestShape) -> list[str]:
        """Why ``seen`` matched nothing: how it differs from the closest unserved exchange."""
        queue = self.queues.get(seen.route if self.rules.by_route else ("", ""), [])
        served = [e for e in self.expected if e not in queue and matches(e.shape, seen, self.rules)]
        if served:
            return [
                f"no recorded exchange left for {seen.method} {seen.path}: it matches recorded "
                f"interception #{served[0].interception + 1}, already served (the code made "
                "this request more often than the recording did)"
            ]
        found = closest([e.shape for e in queue], seen, self.rules)
        if found is None:
            known = ", ".join(f"{m} {p}" for (m, p), q in self.queues.items() if q) or "none"
            return [
                f"no recorded exchange left for {seen.method} {seen.path}"
                + (f" (routes with exchanges left: {known})" if self.rules.by_route else "")
            ]
        index, problems = found
        return [f"closest recorded request: {queue[index].where()}", *problems]

    def answer(self, seen: SeenRequest, index: int) -> Reply:
        shape = self.shape_of(seen)
        expected = self.take(shape)
        hit = Hit(seen, expected, [] if expected else self.problems(shape))
        self.hits.append(hit)
        if expected is None:
            return mismatch_reply(shape.path, index, hit.problems)
        return reply_for(expected, self.timing)

    def refusal(self, seen: SeenRequest) -> Reply | None:
        """A WebSocket upgrade is refused when the next exchange recorded on its route is a
        refused one (an error status, not 101); otherwise the socket opens and its
        messages take the exchanges in order."""
        route = (seen.method, seen.path.split("?", 1)[0])
        queue = self.queues.get(route if self.rules.by_route else ("", ""), [])
        n = next((i for i, e in enumerate(queue) if e.shape.route == route), None)
        if n is None or queue[n].recorded.response.status == WEBSOCKET_STATUS:
            return None
        expected = queue.pop(n)
        self.hits.append(Hit(seen, expected))
        return reply_for(expected, self.timing)

    def skip_to(self, fixture: int, interception: int) -> None:
        """Drop the exchanges recorded before that interception and not asked for: a
        replay moves on to the next interception whatever the last one left."""
        for queue in self.queues.values():
            # Kept in recorded order, so the ones before that interception lead each queue.
            while queue and (queue[0].fixture, queue[0].interception) < (fixture, interception):
                del queue[0]


def mismatch_reply(path: str, index: int, problems: list[str]) -> Reply:
    """A 400 in the provider's error shape (by path) that says what did not match."""
    shown = "; ".join(problems[:3])
    log.warning("request #%d (%s) does not match the fixture: %s", index + 1, path, shown)
    message = (
        f"aibridge mock: request #{index + 1} ({path}) does not match the fixture: "
        + "; ".join(problems[:10])
    )
    body = upstream_error(path, 400, message)
    if "code" in body["error"]:
        body["error"]["code"] = "fixture_mismatch"  # OpenAI's errors name their cause
    return Reply.json(body, 400, [("x-aibridge-mock", "mismatch")])
