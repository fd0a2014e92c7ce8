"""The catch-all pass-through: every request under a provider's prefix that the proxy does
not intercept is relayed to that provider's upstream as it came.

Method, path, query string and headers (less hop-by-hop ones; the pool's credential in
place of the client's when a pool is set) go upstream; the body streams up as the client
sends it (the server does not buffer it: see ``BridgeApp.streams_body``) and the answer
streams back as the upstream sends it. There is no failover, since a streamed body cannot
be sent twice, but what the upstream says of a pool key (429, 401, 403) still counts. An
error answer is read whole (they are small) so a pool key it echoes can be masked; so are
the headers of every answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import trio

from ..errors import ClientDisconnected, ClientFacingError
from ..headers import forwarded_request_headers, forwarded_response_headers, header, wire
from ..interception import Interception
from .bridge import Environment, ProviderUpstream, translate_upstream_errors
from .keypool import PoolKey
from .server import Request, ResponseWriter
from .upstream_client import body_chunks, send_streaming


@dataclass(frozen=True)
class PassThrough:
    """A provider prefix whose unintercepted requests are relayed to its upstream."""

    provider: str
    prefix: str  # replaced by the provider's base URL

    @property
    def api(self) -> str:
        """The record's ``api`` in a fixture."""
        return f"{self.provider}-passthrough"

    def covers(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


PREFIXES = (PassThrough("anthropic", "/anthropic"), PassThrough("openai", "/openai/v1"))


def pass_through_for(path: str) -> PassThrough | None:
    """The prefix ``path`` falls under, if any (only those paths are not 404)."""
    return next((route for route in PREFIXES if route.covers(path)), None)


def has_body(request: Request) -> bool:
    """Whether the client sends a body: a GET without one must not go up as chunked."""
    length = header(request.headers, "content-length")
    return header(request.headers, "transfer-encoding") is not None or (
        length is not None and length.strip() != "0"
    )


def maybe_json(body: bytes) -> Any:
    """A body as a fixture keeps it: JSON when it is JSON, else the bytes."""
    try:
        return json.loads(body)
    except ValueError:
        return body  # kept as bytes: the fixture stores it as text or base64


async def relay(
    route: PassThrough,
    upstream: ProviderUpstream,
    env: Environment,
    request: Request,
    writer: ResponseWriter,
    record: Interception,
) -> str:
    """Relay one request; raises ``ClientFacingError`` only while nothing was written."""
    path = request.target[len(route.prefix) :]
    headers = forwarded_request_headers(request.headers, byok=not upstream.pool)
    # The body goes through untouched, so its type and length must too.
    headers += [(k, v) for k, v in request.headers if k in ("content-type", "content-length")]
    key = None
    if upstream.pool:
        key = upstream.pool.acquire(trio.current_time())
        headers += upstream.auth_headers(key.secret)
    exchange = record.new_exchange(
        request.method, path or "/", None, key.masked if key is not None else None
    )
    sent: list[bytes] | None = [] if record.keep_chunks else None
    content = _sent_body(request, sent) if has_body(request) else None
    if content is None and request.body_stream is not None:
        async for _ in request.body_stream:
            pass  # nothing to relay, but the request must be read to its end
    try:
        with translate_upstream_errors(exchange):
            upstream_request = env.client.build_request(
                request.method,
                upstream.base_url.rstrip("/") + path,
                headers=wire(headers),
                content=content,
            )
            response = await send_streaming(env.client, upstream_request)
    finally:
        if sent:
            record.request.body = exchange.request_body = maybe_json(b"".join(sent))
    try:
        if key is not None:
            upstream.pool.report(
                key,
                response.status_code,
                response.headers.get("retry-after"),
                trio.current_time(),
                env.wall_clock(),
            )
        received = list(response.headers.multi_items())
        exchange.response.started(response.status_code, received)
        relayed = upstream.pool.masked_headers(
            forwarded_response_headers(received, head=request.method == "HEAD")
        )
        if response.status_code >= 400:
            with translate_upstream_errors(exchange):
                data = await response.aread()
            exchange.response.wrote(data)
            await writer.start(response.status_code, relayed, upstream.pool.masked_bytes(data))
            record.delivered = True
            return _note(key)
        await writer.start(response.status_code, relayed)
        try:
            with translate_upstream_errors(exchange):
                async with body_chunks(response) as chunks:
                    async for chunk in chunks:
                        exchange.response.wrote(chunk)
                        await writer.send(chunk)
                    record.delivered = True  # the whole body: a client leaving cuts nothing
        except ClientFacingError as error:
            # Headers are out: the only honest signal left is a cut connection.
            raise ClientDisconnected("upstream broke during a pass-through") from error
    finally:
        await response.aclose()
    return _note(key)


async def _sent_body(request: Request, sent: list[bytes] | None) -> AsyncIterator[bytes]:
    """The client's body as it arrives (kept in ``sent`` when recording)."""
    chunks = request.body_stream or _whole(request.body)
    async for chunk in chunks:
        if sent is not None:
            sent.append(chunk)
        yield chunk


async def _whole(body: bytes) -> AsyncIterator[bytes]:
    """A body the server already read (when it was not asked to stream it)."""
    yield body


def _note(key: PoolKey | None) -> str:
    return f" passthrough key={key.masked}" if key is not None else " passthrough"
