"""The upstream HTTP client: httpx over a pluggable httpcore network backend, and the
lean HTTP/1.1 pool (``http11_client``) that intercepted requests take, on the same backend.

Real runs use httpcore's trio backend; the simulation passes a backend whose streams are
in-memory pipes. Everything above this module sees an ``httpx.AsyncClient``: pass-through
requests (their bodies stream up) go through httpx, intercepted ones through
``send_upstream``. httpx's connection pool comes from ``httpcore_fence``, the one module
that reaches into httpcore's private names.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx
import trio

from ..config import UpstreamTimeouts
from .http11_client import Http11Pool, UpstreamRequest, UpstreamResponse, httpx_errors
from .httpcore_fence import make_pool

KEEPALIVE_CONNECTIONS = 64  # idle connections kept per pool
KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept


class body_chunks:
    """The raw body of a streamed response, to ``async for`` over and leave at will.

    httpx and httpcore read a body through nested async generators. Leaving the loop by
    ``break``, an error or a cancellation from outside leaves them suspended at a
    ``yield``, for the garbage collector to find (and trio to warn about). On the way out
    this resumes them under a cancelled scope: the innermost read raises ``Cancelled``,
    and every generator above it finishes. ``Http11Response``'s body is no generator:
    nothing to finish. (A class, not a generator itself: it runs on every stream.)
    """

    __slots__ = ("chunks",)

    def __init__(self, response: UpstreamResponse) -> None:
        self.chunks = response.aiter_raw()

    async def __aenter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    async def __aexit__(self, *exc_info: object) -> None:
        if inspect.isasyncgen(self.chunks):
            await _finish(self.chunks)


async def _finish(chunks: AsyncIterator[Any]) -> None:
    with trio.CancelScope(shield=True) as unwind:
        unwind.cancel()
        try:
            async for _ in chunks:
                pass
        except (httpx.StreamError, httpx.TransportError):
            pass  # the body was already closed or broken: nothing is left to finish


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with httpx_errors():
            await self._stream.aclose()


class PoolTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an ``httpcore.AsyncConnectionPool`` we build ourselves."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


async def send_streaming(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send ``request`` and return its response with the body still to read.

    The proxy's own client goes straight to its transport: ``AsyncClient.send`` adds the
    auth and redirect flows, event hooks and a timer, none of which the upstream client
    uses (no auth, no redirects followed, no hooks), and they cost 70 µs a request of
    the 1-1.5 ms the proxy spends on one (measured in process against a transport that
    answers at once). Any other client takes the public path."""
    if isinstance(client, _CookielessClient):
        return await client.pool_transport.handle_async_request(request)
    return await client.send(request, stream=True)


async def send_upstream(client: httpx.AsyncClient, request: UpstreamRequest) -> UpstreamResponse:
    """Send an intercepted request (its body whole) and return its response, body unread.

    The proxy's own client sends it on its lean HTTP/1.1 pool (``http11_client``); any
    other client through httpx."""
    if isinstance(client, _CookielessClient):
        return await client.http11.send(request)
    built = client.build_request(
        request.method, request.url, headers=request.headers, content=request.content
    )
    return await client.send(built, stream=True)


def httpx_timeout(timeouts: UpstreamTimeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )


def make_client(
    timeouts: UpstreamTimeouts | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    max_connections: int = 512,
) -> httpx.AsyncClient:
    """The one upstream client of a proxy; the simulation passes its own backend."""
    timeouts = timeouts or UpstreamTimeouts()
    backend = network_backend or httpcore.TrioBackend()
    pool = make_pool(
        max_connections=max_connections,
        max_keepalive_connections=KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY,
        network_backend=backend,
    )
    client = _CookielessClient(
        transport=PoolTransport(pool),
        timeout=httpx_timeout(timeouts),
        follow_redirects=False,
        trust_env=False,
    )
    # Intercepted requests' own pool: the same backend, limits and default headers.
    client.http11 = Http11Pool(
        backend,
        timeouts,
        defaults=[(k, v) for k, v in client.headers.raw],
        max_connections=max_connections,
        max_keepalive_connections=KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    return client


class _NoCookies(httpx.Cookies):
    """Cookies that keep nothing: the client is shared by every user of the proxy, so a
    cookie one upstream answer sets must not ride along on anyone else's requests. Not
    reading ``Set-Cookie`` at all also saves building urllib's request and response
    wrappers for every upstream answer."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("the upstream client keeps no cookies")


class _CookielessClient(httpx.AsyncClient):
    http11: Http11Pool

    def __init__(self, *, transport: PoolTransport, **settings: Any) -> None:
        super().__init__(transport=transport, **settings)
        self.pool_transport = transport

    async def aclose(self) -> None:
        await self.http11.aclose()
        await super().aclose()

    async def __aexit__(self, *exc_info: Any) -> None:
        # httpx's own exit closes the transport, not through ``aclose``
        await self.http11.aclose()
        await super().__aexit__(*exc_info)

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise TypeError("the upstream client keeps no cookies")


_NO_COOKIES = _NoCookies()
