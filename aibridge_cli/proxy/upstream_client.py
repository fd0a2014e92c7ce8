"""The upstream HTTP client: httpx over a pluggable httpcore network backend.

Real runs use httpcore's trio backend; the simulation passes a backend whose streams are
in-memory pipes. Everything above this module only sees an ``httpx.AsyncClient``. The
connection pool comes from ``httpcore_fence``, the one module that reaches into
httpcore's private names.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx
import trio

from ..config import UpstreamTimeouts
from .httpcore_fence import make_pool

# httpcore's exceptions and the httpx ones they become; most specific first.
_EXCEPTIONS: list[tuple[type[Exception], type[httpx.TransportError]]] = [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
]


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise httpcore's exceptions as httpx's, so callers catch one family."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _EXCEPTIONS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


@contextlib.asynccontextmanager
async def body_chunks(response: httpx.Response) -> AsyncIterator[AsyncIterator[bytes]]:
    """The raw body of a streamed response, to ``async for`` over and leave at will.

    httpx and httpcore read a body through nested async generators. Leaving the loop by
    ``break``, an error or a cancellation from outside leaves them suspended at a
    ``yield``, for the garbage collector to find (and trio to warn about). On the way out
    this resumes them under a cancelled scope: the innermost read raises ``Cancelled``,
    and every generator above it finishes.
    """
    chunks = response.aiter_raw()
    try:
        yield chunks
    finally:
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
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _httpx_errors():
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
        with _httpx_errors():
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
    pool = make_pool(
        max_connections=max_connections,
        max_keepalive_connections=64,
        keepalive_expiry=30.0,
        network_backend=network_backend or httpcore.TrioBackend(),
    )
    return _CookielessClient(
        transport=PoolTransport(pool),
        timeout=httpx_timeout(timeouts),
        follow_redirects=False,
        trust_env=False,
    )


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
    def __init__(self, *, transport: PoolTransport, **settings: Any) -> None:
        super().__init__(transport=transport, **settings)
        self.pool_transport = transport

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise TypeError("the upstream client keeps no cookies")


_NO_COOKIES = _NoCookies()
