"""The proxy's routes: intercepted APIs, pass-through, health and status."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..config import WebSocketConfig
from ..errors import ClientDisconnected, ClientFacingError, RequestError, kind_for_status
from ..headers import Headers, forwarded_request_headers, forwarded_response_headers
from ..interception import ClientRequest, Recorder, credentials, redact_headers
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
    translate_upstream_errors,
    write_error_response,
)
from .server import Request, ResponseWriter, Upgrade, UpgradeHandler
from .upstream_client import body_chunks
from .ws_server import ResponsesSocket, wants_websocket

log = logging.getLogger("aibridge.requests")


@dataclass(frozen=True)
class Intercept:
    api: API


@dataclass(frozen=True)
class PassThrough:
    provider: str
    strip: str  # the route prefix replaced by the provider's base URL


Route = Intercept | PassThrough

ANTHROPIC = AnthropicMessages()
OPENAI_CHAT = OpenAIChat()
OPENAI_RESPONSES = OpenAIResponses()

# (method, path) -> route. Providers add their routes here.
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/anthropic/v1/messages"): Intercept(ANTHROPIC),
    ("GET", "/anthropic/v1/models"): PassThrough("anthropic", "/anthropic"),
    ("POST", "/anthropic/v1/messages/count_tokens"): PassThrough("anthropic", "/anthropic"),
    ("GET", "/openai/v1/models"): PassThrough("openai", "/openai/v1"),
    ("POST", "/openai/v1/chat/completions"): Intercept(OPENAI_CHAT),
    ("POST", "/openai/v1/responses"): Intercept(OPENAI_RESPONSES),
}

# Error shape by path prefix, for errors found before a route is known.
ErrorShaper = Callable[[str, str], dict[str, Any]]
ERROR_SHAPES: dict[str, ErrorShaper] = {"/openai/": openai_error}  # type: ignore[dict-item]


def error_shape_for(path: str) -> ErrorShaper:
    for prefix, shaper in ERROR_SHAPES.items():
        if path.startswith(prefix):
            return shaper
    return lambda kind, message: anthropic_error(kind, message)  # type: ignore[arg-type]


@dataclass
class BridgeApp:
    """The aibridge proxy as an ``App`` for the HTTP server."""

    env: Environment
    upstreams: dict[str, ProviderUpstream]
    recorder: Recorder | None = None
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
        shaper = error_shape_for(target.split("?", 1)[0])
        body = dumps(shaper(kind_for_status(status), message)).encode()
        return [("content-type", "application/json")], body

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
        try:
            note = await self._dispatch(request, writer)
        finally:
            self.requests_served += 1
            elapsed = (trio.current_time() - started) * 1000
            log.info(
                "%s %s %s %.0fms%s",
                request.method,
                request.path,
                writer.status if writer.status is not None else "-",
                elapsed,
                note,
            )

    async def _dispatch(self, request: Request, writer: ResponseWriter) -> str:
        path = request.path
        if path == "/healthz":
            if request.method != "GET":
                await self._reply_error(request, writer, 405, "use GET", [("allow", "GET")])
                return ""
            await writer.respond(200, [("content-type", "application/json")], b'{"status":"ok"}')
            return ""
        if path == "/aibridge/status":
            await writer.respond(
                200, [("content-type", "application/json")], dumps(self.status()).encode()
            )
            return ""
        route = ROUTES.get((request.method, path))
        if route is None:
            allowed = sorted(m for m, p in ROUTES if p == path)
            if allowed:
                await self._reply_error(
                    request,
                    writer,
                    405,
                    f"method {request.method} not allowed on {path}",
                    [("allow", ", ".join(allowed))],
                )
            else:
                await self._reply_error(
                    request, writer, 404, f"no route for {request.method} {path}"
                )
            return ""
        if isinstance(route, PassThrough):
            return await self._pass_through(route, request, writer)
        return await self._intercept(route.api, request, writer)

    def status(self) -> dict[str, Any]:
        now = trio.current_time()
        return {
            "stream_initiation": self.env.config.stream_initiation,
            "providers": {
                name: {"base_url": up.base_url, "keys": up.pool.snapshot(now)}
                for name, up in self.upstreams.items()
            },
            "tools": [tool.name for tool in self.env.tools],
            "requests_served": self.requests_served,
        }

    async def _intercept(self, api: API, request: Request, writer: ResponseWriter) -> str:
        record = self.env.new_record(
            api.name,
            ClientRequest(
                request.method, request.path, redact_headers(request.headers, self.redact), None
            ),
            keep_chunks=self.recorder is not None,
            client_secrets=credentials(request.headers),
        )
        writer.observer = record.response
        with recorded(record, self.recorder):
            try:
                body = api.validate(request.body)
            except RequestError as error:
                record.request.body = _maybe_json(request.body)
                record.outcome = f"rejected: {error.message}"
                await write_error_response(api, writer, error)
                return ""
            record.request.body = body
            interceptor = Interceptor(
                api, self.upstreams[api.provider], self.env, request.headers, record
            )
            conversation = api.conversation(body, self.env.tools)
            if is_streaming(body):
                await interceptor.run_streaming(conversation, writer)
            else:
                await interceptor.run_blocking(conversation, writer)
        keys = ",".join(record.keys_used)
        return f" attempts={len(record.upstream)}" + (f" keys={keys}" if keys else "")

    async def _pass_through(
        self, route: PassThrough, request: Request, writer: ResponseWriter
    ) -> str:
        """Forward a request the proxy does not interpret, streaming the answer back."""
        upstream = self.upstreams[route.provider]
        headers = forwarded_request_headers(request.headers, byok=not upstream.pool)
        # The body goes through untouched, so its content type must too.
        headers += [(k, v) for k, v in request.headers if k == "content-type"]
        masked = ""
        key = None
        try:
            if upstream.pool:
                key = upstream.pool.acquire(trio.current_time())
                masked = key.masked
                headers += upstream.auth_headers(key.secret)
            url = upstream.base_url.rstrip("/") + request.target[len(route.strip) :]
            with translate_upstream_errors():
                upstream_request = self.env.client.build_request(
                    request.method, url, headers=headers, content=request.body or None
                )
                response = await self.env.client.send(upstream_request, stream=True)
                if key is not None:
                    # No failover here, but what the upstream said of the key still counts.
                    upstream.pool.report(
                        key,
                        response.status_code,
                        response.headers.get("retry-after"),
                        trio.current_time(),
                        self.env.wall_clock(),
                    )
                try:
                    await writer.start(
                        response.status_code,
                        forwarded_response_headers(response.headers.multi_items()),
                    )
                    async with body_chunks(response) as chunks:
                        async for chunk in chunks:
                            await writer.send(chunk)
                finally:
                    await response.aclose()
        except ClientFacingError as error:
            if writer.started:
                # Headers are out: the only honest signal left is a cut connection.
                raise ClientDisconnected("upstream broke during a pass-through") from error
            headers_out, body = self.error_response(request.target, error.status, error.message)
            if error.retry_after is not None:
                headers_out.append(("retry-after", str(error.retry_after)))
            await writer.respond(error.status, headers_out, body)
        return f" passthrough key={masked}" if masked else " passthrough"


def _maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body  # kept as bytes: the fixture stores it as text or base64
