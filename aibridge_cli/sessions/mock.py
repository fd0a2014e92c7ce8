"""A mock upstream from fixtures: the recorded upstream exchanges, played back.

Requests are matched by route and order: the n-th request on a route (method and path)
gets the n-th exchange recorded on it. A request whose route has nothing left, or whose
JSON body differs from the recorded one, gets a 400 in the provider's error shape with
the differences. Replies are ``scripted.Reply``s: the recorded chunks one send each, with
the recorded gaps between them (``timing="recorded"``) or none (``"fast"``); a recorded
connection error becomes a reset. Keys are not checked: replays use fake ones.

Anthropic's routes sit at the root (``/v1/messages``), OpenAI's under ``/v1`` (the
recorded path is relative to the base URL ``.../v1``), as on the real hosts.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest, upstream_error
from ..headers import forwarded_response_headers
from ..interception import Interception, UpstreamExchange
from ..providers.openai_responses_ws import WEBSOCKET_STATUS
from .fixture import Fixture, provider_of
from .normalize import diff_normalized

log = logging.getLogger("aibridge.mock")

Timing = Literal["recorded", "fast"]
PROVIDER_PREFIX = {"anthropic": "", "openai": "/v1"}


@dataclass(frozen=True)
class Expected:
    """One recorded exchange, where it came from, and when its reply may start."""

    fixture: int
    interception: int
    exchange: int
    api: str
    recorded: UpstreamExchange
    start_ms: float


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


class MockUpstream:
    """Builds the scripted upstream that serves ``fixtures``; keeps every hit."""

    def __init__(self, fixtures: Sequence[Fixture], timing: Timing = "recorded") -> None:
        self.timing = timing
        self.queues: dict[tuple[str, str], deque[Expected]] = {}
        self.hits: list[Hit] = []
        for f, fixture in enumerate(fixtures):
            for i, record in enumerate(fixture.interceptions):
                if not replayable(record):
                    continue
                start = 0.0
                for e, exchange in enumerate(record.upstream):
                    expected = Expected(f, i, e, record.api, exchange, start)
                    self.queues.setdefault(upstream_route(record.api, exchange), deque()).append(
                        expected
                    )
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

    def answer(self, seen: SeenRequest, index: int) -> Reply:
        route = (seen.method, seen.path.split("?", 1)[0])
        queue = self.queues.get(route)
        if not queue:
            known = ", ".join(f"{m} {p}" for (m, p), q in self.queues.items() if q) or "none"
            hit = Hit(
                seen,
                None,
                [
                    f"no recorded exchange left for {route[0]} {route[1]} "
                    f"(routes with exchanges left: {known})"
                ],
            )
            self.hits.append(hit)
            return _mismatch(route[1], index, hit.problems)
        expected = queue.popleft()
        hit = Hit(seen, expected, request_problems(expected.recorded, seen))
        self.hits.append(hit)
        if hit.problems:
            return _mismatch(route[1], index, hit.problems)
        return reply_for(expected, self.timing)

    def refusal(self, seen: SeenRequest) -> Reply | None:
        """A WebSocket upgrade is refused when the next exchange recorded on its route is a
        refused one (an error status, not 101); otherwise the socket opens and its
        messages take the exchanges in order."""
        queue = self.queues.get((seen.method, seen.path.split("?", 1)[0]))
        if not queue or queue[0].recorded.response.status == WEBSOCKET_STATUS:
            return None
        expected = queue.popleft()
        self.hits.append(Hit(seen, expected))
        return reply_for(expected, self.timing)


def request_problems(recorded: UpstreamExchange, seen: SeenRequest) -> list[str]:
    """How a request differs from the recorded one: query string, and body (as JSON)."""
    query, seen_query = recorded.path.partition("?")[2], seen.target.partition("?")[2]
    problems = [] if query == seen_query else [f"query {seen_query!r}, recorded {query!r}"]
    return problems + _body_problems(recorded, seen)


def _body_problems(recorded: UpstreamExchange, seen: SeenRequest) -> list[str]:
    if recorded.request_body is None:
        return []
    try:
        body: Any = json.loads(seen.body) if seen.body else None
    except ValueError:
        body = seen.body
    expected = recorded.request_body
    if isinstance(expected, bytes):
        return [] if expected == seen.body else ["request body differs from the recorded bytes"]
    return [f"request body {line}" for line in diff_normalized(expected, body)]


def _mismatch(path: str, index: int, problems: list[str]) -> Reply:
    log.warning("request #%d (%s) does not match the fixture: %s", index + 1, path, problems[:3])
    message = (
        f"aibridge mock: request #{index + 1} ({path}) does not match the fixture: "
        + "; ".join(problems[:10])
    )
    body = upstream_error(path, 400, message)
    if "code" in body["error"]:
        body["error"]["code"] = "fixture_mismatch"  # OpenAI's errors name their cause
    return Reply.json(body, 400, [("x-aibridge-mock", "mismatch")])
