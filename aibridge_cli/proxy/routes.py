"""The proxy's routes: intercepted APIs, the catch-all pass-through, health and status.

``POST`` on an intercepted API's path runs the bridge; any other request under a
provider's prefix is passed through (``passthrough.py``); ``/healthz`` and
``/aibridge/status`` are the proxy's own; everything else is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..config import WebSocketConfig
from ..errors import ClientFacingError, RequestError, kind_for_status
from ..headers import JSON_HEADERS, Headers, refusal_headers
from ..interception import ClientRequest, Interception, Recorder, credentials, redact_headers
from ..providers.anthropic import AnthropicMessages, anthropic_error
from ..providers.base import API, dumps, is_streaming
from ..providers.openai_chat import OpenAIChat
from ..providers.openai_common import openai_error
from ..providers.openai_responses import OpenAIResponses
from .bridge import (
    Environment,
    Interceptor,
    ProviderUpstream,
    recorded,
    write_error_response,
)
from .chaos_control import CHAOS_PATH
from .chaos_control import answer as chaos_answer
from .exposition import CONTENT_TYPE as METRICS_TYPE
from .outcome import Outcome
from .passthrough import PassThrough, maybe_json, pass_through_for, relay
from .paths import dot_segment_problem
from .server import Request, ResponseWriter, Upgrade, UpgradeHandler, loggable
from .ws_server import ResponsesSocket, wants_websocket

log = logging.getLogger("aibridge.requests")
METRICS_HEADERS = [("content-type", METRICS_TYPE), ("cache-control", "no-store")]


@dataclass(frozen=True)
class Intercept:
    api: API


ANTHROPIC = AnthropicMessages()
OPENAI_CHAT = OpenAIChat()
OPENAI_RESPONSES = OpenAIResponses()

# (method, path) -> intercepted API. Providers add their routes here; every other request
# under a provider's prefix is passed through.
ROUTES: dict[tuple[str, str], Intercept] = {
    ("POST", "/anthropic/v1/messages"): Intercept(ANTHROPIC),
    ("POST", "/openai/v1/chat/completions"): Intercept(OPENAI_CHAT),
    ("POST", "/openai/v1/responses"): Intercept(OPENAI_RESPONSES),
}
# The proxy's own read-only pages; the metrics in Prometheus's text format.
METRICS_PATH = "/metrics"
LOCAL_PATHS = frozenset({"/healthz", "/aibridge/status", METRICS_PATH})
LOCAL_METHODS = ("GET", "HEAD")

# Error shape by path prefix, for errors found before a route is known.
ErrorShaper = Callable[[str, str], dict[str, Any]]
ERROR_SHAPES: dict[str, ErrorShaper] = {"/openai/": openai_error}  # type: ignore[dict-item]


def error_shape_for(path: str) -> ErrorShaper:
    for prefix, shaper in ERROR_SHAPES.items():
        if path.startswith(prefix):
            return shaper
    return lambda kind, message: anthropic_error(kind, message)  # type: ignore[arg-type]


def error_response(target: str, status: int, message: str) -> tuple[Headers, bytes]:
    """An error the proxy answers itself, in the shape of the provider its path names."""
    shaper = error_shape_for(target.split("?", 1)[0])
    body = dumps(shaper(kind_for_status(status), message)).encode()
    return [("content-type", "application/json"), *refusal_headers(status)], body


@dataclass
class BridgeApp:
    """The aibridge proxy as an ``App`` for the HTTP server."""

    env: Environment
    upstreams: dict[str, ProviderUpstream]
    recorder: Recorder | None = None
    # awaited once a response has ended: its record is on disk before the connection
    # serves another request (the recording writes on a thread of its own)
    settle: Callable[[], Awaitable[None]] | None = None
    redact: tuple[str, ...] = ()
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    requests_served: int = field(default=0)

    def upgrade_handler(self, request: Request) -> UpgradeHandler | None:
        """The Responses API's WebSocket mode on its HTTP route; other upgrades are HTTP."""
        route = ROUTES.get(("POST", request.path))
        if not wants_websocket(request) or route != Intercept(OPENAI_RESPONSES):
            return None

        async def serve(upgrade: Upgrade) -> None:
            self.requests_served += 1
            api = OPENAI_RESPONSES
            await ResponsesSocket(
                upgrade,
                api=api,
                upstream=self.upstreams[api.provider],
                env=self.env,
                config=self.websocket,
                recorder=self.recorder,
                redact=self.redact,
            ).run()

        return serve

    def error_response(self, target: str, status: int, message: str) -> tuple[Headers, bytes]:
        return error_response(target, status, message)

    def stream_error_frame(self, target: str, message: str) -> bytes | None:
        """An in-stream ``api_error`` in the shape of the intercepted API at ``target``."""
        path = target.split("?", 1)[0]
        route = next((r for (_, p), r in ROUTES.items() if p == path), None)
        if route is None:
            return None  # a pass-through's stream is the upstream's: not ours to end
        return route.api.error_frame(route.api.error_body("api_error", message))

    async def _reply_error(
        self,
        request: Request,
        writer: ResponseWriter,
        status: int,
        message: str,
        extra: Headers | None = None,
    ) -> None:
        headers, body = self.error_response(request.target, status, message)
        await writer.respond(status, [*headers, *(extra or [])], body)

    async def handle(self, request: Request, writer: ResponseWriter) -> None:
        started = trio.current_time()
        note = ""
        outcome = Outcome()
        try:
            note = await self._dispatch(request, writer, outcome)
        finally:
            self.requests_served += 1
            level = outcome.level()
            if log.isEnabledFor(level):  # its arguments cost more than the check
                log.log(
                    level,
                    "%s %s %s %.0fms%s%s",
                    request.method,
                    loggable(request.path),
                    writer.status if writer.status is not None else "-",
                    (trio.current_time() - started) * 1000,
                    note,
                    outcome.suffix(),
                )
        if self.settle is not None and writer.observer is not None:  # a recorded request
            await writer.finish()  # the client has its whole response first
            await self.settle()

    def streams_body(self, method: str, target: str) -> bool:
        """A passed-through body is relayed as it comes, never buffered or size-limited."""
        path = target.split("?", 1)[0]
        return (method, path) not in ROUTES and pass_through_for(path) is not None

    async def _dispatch(self, request: Request, writer: ResponseWriter, outcome: Outcome) -> str:
        path = request.path
        problem = dot_segment_problem(path)
        if problem is not None:
            outcome.of(f"rejected: {problem}", 400)
            await self._reply_error(request, writer, 400, problem)
            return ""
        if path == CHAOS_PATH:
            await self._chaos(request, writer)
            return ""
        if path in LOCAL_PATHS:
            if request.method not in LOCAL_METHODS:
                allow = [("allow", ", ".join(LOCAL_METHODS))]
                await self._reply_error(request, writer, 405, "use GET", allow)
                return ""
            if path == METRICS_PATH:
                await writer.respond(200, METRICS_HEADERS, self.metrics_text().encode())
                return ""
            page = {"status": "ok"} if path == "/healthz" else self.status()
            await writer.respond(200, JSON_HEADERS, dumps(page).encode())
            return ""
        route = ROUTES.get((request.method, path))
        if route is not None:
            return await self._intercept(route.api, request, writer, outcome)
        prefix = pass_through_for(path)
        if prefix is None:
            await self._reply_error(request, writer, 404, f"no route for {request.method} {path}")
            return ""
        return await self._pass_through(prefix, request, writer, outcome)

    def status(self) -> dict[str, Any]:
        now = trio.current_time()
        return {
            "stream_initiation": self.env.config.stream_initiation,
            "providers": {
                name: {"base_url": up.base_url, "keys": up.pool.snapshot(now)}
                for name, up in self.upstreams.items()
            },
            "tools": [tool.name for tool in self.env.toolset()],
            "mcp": self.env.servers.status() if self.env.servers is not None else [],
            "requests_served": self.requests_served,
            "chaos": self.env.chaos.status(),
            "breakers": breakers.snapshot(now) if (breakers := self.env.breakers) else None,
        }

    async def _chaos(self, request: Request, writer: ResponseWriter) -> None:
        """``/aibridge/chaos``: the chaos rules at runtime (``chaos_control.py``)."""
        now = trio.current_time()
        got = chaos_answer(
            self.env.chaos, request.method, request.target, request.headers, request.body, now
        )
        if got.error is not None:
            await self._reply_error(request, writer, got.status, got.error)
        else:
            await writer.respond(got.status, JSON_HEADERS, dumps(got.payload).encode())

    def metrics_text(self) -> str:
        """What ``GET /metrics`` answers (docs/metrics.md)."""
        metrics = self.env.metrics
        if metrics is None:
            return ""
        return metrics.exposition(trio.current_time(), self.env.breakers)

    def _new_record(
        self, api: str, request: Request, writer: ResponseWriter, tools: list[dict[str, Any]]
    ) -> Interception:
        """The record of one request, watching its client-facing response."""
        record = self.env.new_record(
            api,
            ClientRequest(
                request.method, request.target, redact_headers(request.headers, self.redact), None
            ),
            keep_chunks=self.recorder is not None,
            client_secrets=credentials(request.headers),
            tools=tools,
        )
        writer.observer = record.response
        return record

    async def _intercept(
        self, api: API, request: Request, writer: ResponseWriter, outcome: Outcome
    ) -> str:
        tools = self.env.toolset()  # this request's, though MCP servers change meanwhile
        offered = [tool.to_toml_fields() for tool in tools]
        record = self._new_record(api.name, request, writer, offered)
        with outcome.noting(record), recorded(record, self.recorder):
            try:
                body = api.validate(request.body)
            except RequestError as error:
                record.request.body = maybe_json(request.body)
                record.outcome = f"rejected: {error.message}"
                await write_error_response(api, writer, error)
                return ""
            record.request.body = body
            interceptor = Interceptor(
                api, self.upstreams[api.provider], self.env, request, record, tools
            )
            conversation = api.conversation(body, tools)
            try:
                if is_streaming(body):
                    await interceptor.run_streaming(conversation, writer)
                else:
                    await interceptor.run_blocking(conversation, writer)
            finally:
                if interceptor.chaos_facts is not None:  # what the reaction report reads
                    self.env.chaos.observe(interceptor.chaos_facts, record, trio.current_time())
        keys = ",".join(record.keys_used)
        return f" attempts={len(record.upstream)}" + (f" keys={keys}" if keys else "")

    async def _pass_through(
        self, prefix: PassThrough, request: Request, writer: ResponseWriter, outcome: Outcome
    ) -> str:
        record = self._new_record(prefix.api, request, writer, [])
        if self.env.metrics is not None:
            self.env.metrics.passed_through(prefix.provider, record)
        with outcome.noting(record), recorded(record, self.recorder):
            try:
                return await relay(
                    prefix, self.upstreams[prefix.provider], self.env, request, writer, record
                )
            except ClientFacingError as error:  # nothing was written yet
                record.outcome = f"error: {error.message}"
                record.error_status = error.status
                headers, body = self.error_response(request.target, error.status, error.message)
                if error.retry_after is not None:
                    headers.append(("retry-after", str(error.retry_after)))
                await writer.respond(error.status, headers, body)
                return " passthrough"
