"""A mock upstream from fixtures: the recorded upstream exchanges, played back.

A request gets the first recorded exchange not yet served that it matches
(``matching.py``: method, path, query and JSON body with ids and timestamps left out, a
missing ``stream`` read as ``false``), so requests replayed in their recorded order get
the exchanges in that order. A request that matches none gets a 400 in the provider's
error shape with its differences from the closest unserved exchange, and uses nothing up.
Replies are ``scripted.Reply``s: the recorded chunks one send each, with the recorded
gaps between them (``timing="recorded"``) or none (``"fast"``); a recorded connection
error becomes a reset. Keys are not checked: replays use fake ones.

Anthropic's routes sit at the root (``/v1/messages``), OpenAI's under ``/v1`` (the
recorded path is relative to the base URL ``.../v1``), as on the real hosts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest, upstream_error
from ..headers import forwarded_response_headers
from ..interception import Interception, UpstreamExchange
from ..providers.openai_responses_ws import WEBSOCKET_STATUS
from .fixture import Fixture, provider_of
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
PROVIDER_PREFIX = {"anthropic": "", "openai": "/v1"}
DEFAULT_RULES = MatchRules()


@dataclass(frozen=True, eq=False)  # one recorded exchange is itself, not its equal
class Expected:
    """One recorded exchange, where it came from, and when its reply may start."""

    fixture: int
    interception: int
    exchange: int
    api: str
    recorded: UpstreamExchange
    start_ms: float
    shape: RequestShape


@dataclass
class Hit:
    """A request the mock saw: what it was matched to, and what did not match."""

    seen: SeenRequest
    expected: Expected | None
    problems: list[str] = field(default_factory=list)


def replayable(record: Interception) -> bool:
    """False for an interception the client itself cut short: its ending was the client's."""
    return not record.outcome.startswith(("client disconnected", "cancelled"))


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


def _recorded_shape(
    exchange: UpstreamExchange, record: Interception, rules: MatchRules
) -> RequestShape:
    """An upstream exchange as matching sees it; which client sent it is read from the
    interception's client request (exchanges keep no headers of their own)."""
    method, path = upstream_route(record.api, exchange)
    query = exchange.path.partition("?")[2]
    body = ANY_BODY if exchange.request_body is None else exchange.request_body
    target = f"{path}?{query}" if query else path
    return request_shape(method, target, body, rules, record.request.headers)


class MockUpstream:
    """Builds the scripted upstream that serves ``fixtures``; keeps every hit.

    A request takes the first recorded exchange not yet served that it matches under
    ``rules`` (``matching.py``); one that matches none takes nothing, so a later request
    can still have its exchange.
    """

    def __init__(
        self,
        fixtures: Sequence[Fixture],
        timing: Timing = "recorded",
        rules: MatchRules = DEFAULT_RULES,
    ) -> None:
        self.timing = timing
        self.rules = rules
        self.expected: list[Expected] = []
        self.queues: dict[tuple[str, str], list[Expected]] = {}
        self.hits: list[Hit] = []
        for f, fixture in enumerate(fixtures):
            for i, record in enumerate(fixture.interceptions):
                if not replayable(record):
                    continue
                start = 0.0
                for e, exchange in enumerate(record.upstream):
                    shape = _recorded_shape(exchange, record, rules)
                    expected = Expected(f, i, e, record.api, exchange, start, shape)
                    self.expected.append(expected)
                    key = shape.route if rules.by_route else ("", "")
                    self.queues.setdefault(key, []).append(expected)
                    if exchange.response.chunks:
                        start = exchange.response.chunks[-1].offset_ms
        self.app = ScriptedUpstream(script=self.answer, refuse=self.refusal)

    @property
    def json_routes(self) -> list[tuple[str, str]]:
        """The routes that take JSON bodies: every recorded POST (the guard answers 415
        to any other body there)."""
        return [route for route in self.queues if route[0] == "POST"]

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
        near = queue[index]
        where = f"interception #{near.interception + 1}, upstream exchange #{near.exchange + 1}"
        return [f"closest recorded request: {where}", *problems]

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
