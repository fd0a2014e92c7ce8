"""The upstream HTTP client: httpx over a pluggable httpcore network backend.

Real runs use httpcore's trio backend; the simulation passes a backend whose streams are
in-memory pipes. Everything above this module only sees an ``httpx.AsyncClient``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import h11
import httpcore
import httpx
import trio

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


class BodyPart(bytes):
    """The body bytes one socket read brought, joined, with the HTTP chunks they came in.

    The relay wants the bytes joined (one pass up the generators per read); a recording
    wants the chunks as the upstream flushed them, whatever the reads made of them. Only
    their sizes are kept: the relay never pays for the split, a recording cuts them out.
    """

    sizes: tuple[int, ...] = ()

    @property
    def chunks(self) -> tuple[bytes, ...]:
        out = []
        start = 0
        for size in self.sizes:
            out.append(self[start : start + size])
            start += size
        return tuple(out)


class _HTTP11Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection, reading and writing in fewer, larger pieces.

    A provider flushes every SSE event, so a chunked body arrives one small chunk per
    event. h11 parses each into its own ``Data`` event, and httpcore handed each up
    through five async generators (httpcore's two streams, the pool's, httpx's, and
    ``aiter_raw``) to the relay: on a 10,000-event stream that passing cost as much as
    h11's parsing. Here one body part is everything h11 can parse from the bytes already
    read, so the generators run once per socket read. The request's head and body also
    go out in one write instead of two (the upstream wakes once, not twice).

    This overrides three of httpcore's private methods, as ``FairPool`` does for its
    pool; ``pyproject.toml`` pins httpcore below 1.1 for it.
    """

    _head: bytes = b""

    async def _send_request_headers(self, request: httpcore.Request) -> None:
        try:
            event = h11.Request(
                method=request.method, target=request.url.target, headers=request.headers
            )
            self._head = self._h11_state.send(event) or b""
        except h11.LocalProtocolError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from exc

    async def _send_request_body(self, request: httpcore.Request) -> None:
        timeout = request.extensions.get("timeout", {}).get("write")
        out = [self._head]
        self._head = b""
        assert isinstance(request.stream, AsyncIterable)
        async for chunk in request.stream:
            out.append(self._h11_state.send(h11.Data(data=chunk)) or b"")
        out.append(self._h11_state.send(h11.EndOfMessage()) or b"")
        await self._network_stream.write(b"".join(out), timeout=timeout)

    async def _receive_response_body(self, request: httpcore.Request) -> AsyncIterator[bytes]:
        timeout = request.extensions.get("timeout", {}).get("read")
        state = self._h11_state
        while True:
            event: object = await self._receive_event(timeout=timeout)
            if not isinstance(event, h11.Data):
                if isinstance(event, (h11.EndOfMessage, h11.PAUSED)):
                    return
                continue
            parts = [event.data]
            broken: h11.RemoteProtocolError | None = None
            try:
                while isinstance(event := state.next_event(), h11.Data):
                    parts.append(event.data)
            except h11.RemoteProtocolError as exc:
                broken = exc  # the body before the bad framing still goes up first
            if len(parts) == 1:
                yield bytes(parts[0])
            else:
                joined = BodyPart(b"".join(parts))
                joined.sizes = tuple(map(len, parts))
                yield joined
            if broken is not None:
                raise httpcore.RemoteProtocolError(str(broken)) from broken
            if isinstance(event, (h11.EndOfMessage, h11.PAUSED)):
                return


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection (connect, TLS), speaking HTTP/1.1 through ``_HTTP11Connection``."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self._connection is None and self.can_handle_request(request.url.origin):
            async with self._request_lock:
                if self._connection is None:
                    try:
                        stream = await self._connect(request)
                    except BaseException:
                        self._connect_failed = True
                        raise
                    self._connection = _HTTP11Connection(
                        origin=self._origin, stream=stream, keepalive_expiry=self._keepalive_expiry
                    )
        return await super().handle_async_request(request)


class FairPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, with each idle connection handed out once.

    httpcore 1.0 counts a connection as available until a request has *started* on it,
    so every pass of its assignment (one per request that arrives or ends) hands the
    same idle connections again to the requests still queued, and to those assigned in
    earlier passes that have not run yet. All but one of them then fail with
    ``ConnectionNotAvailable`` and go round again. On a warm pool, 100 concurrent
    streams waited seconds for their first byte (and a pass polls every idle socket).
    Its idle trim also compares the count of *all* connections with the keep-alive
    limit, and may close a connection a request was just given. Here a connection that
    a live request holds is neither handed out nor trimmed, and only idle connections
    beyond the limit are closed. (One request per connection: HTTP/1.1 upstream.)
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        held = {id(r.connection) for r in self._requests if r.connection is not None}
        idle = 0
        for connection in list(self._connections):
            if id(connection) in held:
                continue
            if connection.is_closed():
                self._connections.remove(connection)
            elif connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
            elif connection.is_idle():
                idle += 1
                if idle > self._max_keepalive_connections:
                    self._connections.remove(connection)
                    closing.append(connection)
        free = [
            connection
            for connection in self._connections
            if id(connection) not in held and connection.is_available()
        ]
        for request in [r for r in self._requests if r.is_queued()]:
            origin = request.request.url.origin
            reuse = next((c for c in free if c.can_handle_request(origin)), None)
            if reuse is not None:
                free.remove(reuse)
                request.assign_to_connection(reuse)
                continue
            if len(self._connections) >= self._max_connections:
                # Full: close an idle connection to another origin to make room, or wait.
                spare = next((c for c in free if c.is_idle()), None)
                if spare is None:
                    continue
                free.remove(spare)
                self._connections.remove(spare)
                closing.append(spare)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            request.assign_to_connection(connection)
        return closing

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )


@dataclass(frozen=True)
class UpstreamTimeouts:
    """Every upstream timeout, explicit. ``read`` is the idle time allowed between bytes."""

    connect: float = 10.0
    read: float = 300.0
    write: float = 30.0
    pool: float = 10.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def make_client(
    timeouts: UpstreamTimeouts | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    max_connections: int = 512,
) -> httpx.AsyncClient:
    """The one upstream client of a proxy; the simulation passes its own backend."""
    timeouts = timeouts or UpstreamTimeouts()
    pool = FairPool(
        max_connections=max_connections,
        max_keepalive_connections=64,
        keepalive_expiry=30.0,
        network_backend=network_backend or httpcore.TrioBackend(),
    )
    return _CookielessClient(
        transport=PoolTransport(pool),
        timeout=timeouts.as_httpx(),
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
    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise TypeError("the upstream client keeps no cookies")


_NO_COOKIES = _NoCookies()
