"""The intercepted requests' upstream client: HTTP/1.1 (its bytes in ``http11_wire``), over
an httpcore network backend, with a pool of warm keep-alive connections.

Theory of operation. An intercepted request is always one ``POST`` with its whole body
in hand, to one of a few origins, answered over HTTP/1.1. httpx and httpcore carry it
through layers the proxy never uses (auth and redirect flows, a request and a response
model with their headers objects, a byte stream wrapped four times, a pool that re-runs
its assignment over every connection at each request's start and end); they were a
third of the proxy's CPU per small request. Here a request is: take a connection (an
idle one of its origin, else open one within ``max_connections``), write the head and
body in one write, read the head, hand the body up one part per socket read, and on
``aclose`` put the connection back when its response ended cleanly, else close it.

* **Fair**: an idle connection goes to one request (a list popped, not scanned); when
  every connection is taken, requests wait in arrival order, within the pool timeout,
  for a connection of their origin that a response gives back, or for a slot.
* **Pluggable**: connections come from ``network_backend.connect_tcp`` (and
  ``start_tls``), so the simulation's in-memory network serves it as it serves httpx.
* **Same wire**: the request head holds the headers httpx would send (``Host`` first,
  its defaults a request does not set, the request's own in order, ``Content-Length``),
  and errors are httpx's exceptions, so the code above catches one family.
* **Cancellation**: a request cancelled anywhere (the client left) closes its
  connection: it may hold half a request or response. No task is started.
"""

from __future__ import annotations

import collections
import ssl
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx
import trio

from ..config import UpstreamTimeouts
from ..headers import WireHeaders
from .http11_wire import ProtocolError, ResponseReader, encode_request
from .httpcore_fence import BodyPart

READ_SIZE = 64 * 1024  # httpcore's read size
MAX_HEAD_SIZE = 100 * 1024  # httpcore's limit on a response head
Origin = tuple[bytes, bytes, int]  # scheme, host, port
_URLS_KEPT = 64


class HeaderView(Protocol):
    """What the proxy reads of an upstream response's headers (``httpx.Headers`` too)."""

    def multi_items(self) -> list[tuple[str, str]]: ...

    def get(self, key: str, default: Any = None) -> Any: ...


class UpstreamResponse(Protocol):
    """An upstream response with its body still to read: this module's, or httpx's."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> HeaderView: ...

    async def aread(self) -> bytes: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class UpstreamRequest:
    """One upstream request: the body whole, the headers as bytes (``headers.wire``)."""

    method: str
    url: httpx.URL
    headers: WireHeaders
    content: bytes


class Headers:
    """A response's headers: lower-case names, in order; ``get`` takes the first value."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        key = key.lower()
        return next((value for name, value in self._items if name == key), default)


def _origin(url: httpx.URL) -> Origin:
    return url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80)


def request_head(request: UpstreamRequest, defaults: WireHeaders, netloc: bytes) -> WireHeaders:
    """The headers as httpx sends them: ``Host`` (``netloc``), the client's defaults the
    request does not override, the request's own in their order, ``Content-Length``."""
    given = {name.lower() for name, _ in request.headers}
    headers: WireHeaders = []
    if b"host" not in given:
        headers.append((b"Host", netloc))
    headers += [(name, value) for name, value in defaults if name.lower() not in given]
    headers += request.headers
    if b"content-length" not in given:
        headers.append((b"Content-Length", str(len(request.content)).encode()))
    return headers


class _Connection:
    """One upstream connection: its stream and response reader, one request at a time."""

    def __init__(self, origin: Origin, stream: httpcore.AsyncNetworkStream) -> None:
        self.origin = origin
        self.stream = stream
        self.reader = ResponseReader(MAX_HEAD_SIZE)
        self.expires_at = 0.0

    async def read(self, read_timeout: float) -> None:
        """One socket read into the reader."""
        with httpx_errors():
            data = await self.stream.read(READ_SIZE, timeout=read_timeout)
        self.reader.receive(data)

    async def head(self, read_timeout: float) -> tuple[int, list[tuple[str, str]]]:
        """The response's status and headers, reading as needed."""
        reader = self.reader
        try:
            while (head := reader.head()) is None:
                await self.read(read_timeout)
        except ProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        return head

    async def aclose(self) -> None:
        # Shielded: a cancelled request closes its connection on the way out.
        with trio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (httpcore.NetworkError, OSError, trio.BrokenResourceError):
                pass  # broken already: closed is what we wanted


class Http11Response:
    """An upstream response: its head read, its body read on demand."""

    def __init__(self, pool: Http11Pool, connection: _Connection, status: int, headers: Headers):
        self.status_code = status
        self.headers = headers
        self._pool = pool
        self._connection: _Connection | None = connection
        self._ended = False

    def aiter_raw(self) -> _BodyParts:
        """The body as it arrives, one part per socket read (``BodyPart`` when a read
        brought several HTTP chunks)."""
        return _BodyParts(self)

    async def aread(self) -> bytes:
        parts = [part async for part in self.aiter_raw()]
        return _decoded(self.headers.get("content-encoding"), b"".join(parts))

    async def next_part(self) -> bytes | None:
        """What the next socket read brought of the body; None at its end."""
        connection = self._connection
        if connection is None or self._ended:
            return None
        reader = connection.reader
        try:
            # a bad framing after good parts is raised at the next call, after them
            while not (parts := reader.body()) and not reader.ended:
                await connection.read(self._pool.timeouts.read)
        except ProtocolError as exc:
            await self._drop()
            raise httpx.RemoteProtocolError(str(exc)) from exc
        except BaseException:
            await self._drop()
            raise
        self._ended = reader.ended
        return BodyPart.of(parts) if parts else None

    async def aclose(self) -> None:
        """Give the connection back when the body ended cleanly; close it otherwise."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._ended and connection.reader.keep_alive:
            connection.reader.next_cycle()
            await self._pool.release(connection)
        else:
            await self._pool.discard(connection)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.discard(connection)


class _BodyParts:
    """``async for`` over a response's body parts. A plain iterator, not a generator:
    leaving it half-read leaves no suspended frame behind (``aclose`` closes the
    connection)."""

    def __init__(self, response: Http11Response) -> None:
        self._response = response

    def __aiter__(self) -> _BodyParts:
        return self

    async def __anext__(self) -> bytes:
        part = await self._response.next_part()
        if part is None:
            raise StopAsyncIteration
        return part


def _decoded(encoding: str | None, body: bytes) -> bytes:
    """A whole body as httpx's ``aread`` gave it: the proxy asks for ``identity``, but an
    upstream that compresses anyway is decompressed (gzip, deflate) as before."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        try:
            return zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error:
            return zlib.decompress(body)
    return body


class Http11Pool:
    """Warm HTTP/1.1 connections to the upstreams; see the module's docstring."""

    def __init__(
        self,
        network_backend: httpcore.AsyncNetworkBackend,
        timeouts: UpstreamTimeouts,
        *,
        defaults: WireHeaders,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self.backend = network_backend
        self.timeouts = timeouts
        self.defaults = defaults
        self.max_keepalive = max_keepalive_connections
        self.keepalive_expiry = keepalive_expiry
        self.max_connections = max_connections
        self.open = 0  # connections open or opening, idle ones included
        self.waiting: collections.deque[_Waiter] = collections.deque()  # arrival order
        self.idle: dict[Origin, list[_Connection]] = {}
        self.idle_count = 0
        self._ssl_context: ssl.SSLContext | None = None
        self._urls: dict[int, tuple[httpx.URL, Origin, bytes, bytes]] = {}
        self.closed = False

    async def send(self, request: UpstreamRequest) -> Http11Response:
        """Send ``request`` and read its response's head; the body is left to read."""
        origin, netloc, target = self._parts(request.url)
        headers = request_head(request, self.defaults, netloc)
        try:
            data = encode_request(request.method.encode(), target, headers, request.content)
        except ProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        connection = await self._connection(origin)
        try:
            try:
                with httpx_errors():
                    await connection.stream.write(data, timeout=self.timeouts.write)
            except httpx.WriteError:
                pass  # an upstream may answer (a 413) and close before reading it all
            status, items = await connection.head(self.timeouts.read)
        except BaseException:
            await self.discard(connection)
            raise
        return Http11Response(self, connection, status, Headers(items))

    def _parts(self, url: httpx.URL) -> tuple[Origin, bytes, bytes]:
        """``url``'s origin, ``Host`` and target: httpx works each out anew at every access,
        and the proxy sends to a few URL objects (``ProviderUpstream.url`` keeps them), so
        they are kept by identity, the URL held so that its id is not reused."""
        kept = self._urls.get(id(url))
        if kept is None or kept[0] is not url:
            kept = (url, _origin(url), url.netloc, url.raw_path)
            if len(self._urls) < _URLS_KEPT:
                self._urls[id(url)] = kept
        return kept[1], kept[2], kept[3]

    async def _connection(self, origin: Origin) -> _Connection:
        """An idle connection of ``origin``, else a new one once a slot is free."""
        idle = self.idle.get(origin)
        while idle:
            connection = idle.pop()
            self.idle_count -= 1
            if self._fresh(connection):
                return connection
            await self.discard(connection)
        if self.open < self.max_connections:
            self.open += 1
        elif not await self._close_an_idle_connection():  # else its slot is reused
            waiter = await self._wait(origin)
            if waiter.connection is not None:
                return waiter.connection
        try:
            return await self._open(origin)
        except BaseException:
            self._free_slot()
            raise

    def _fresh(self, connection: _Connection) -> bool:
        """Not expired, and not readable while idle (the upstream closed it, or is about
        to say why it will)."""
        if trio.current_time() >= connection.expires_at:
            return False
        return not connection.stream.get_extra_info("is_readable")

    async def _wait(self, origin: Origin) -> _Waiter:
        """Wait, in arrival order, for a connection of ``origin`` or a slot to open one."""
        waiter = _Waiter(origin)
        self.waiting.append(waiter)
        try:
            with trio.move_on_after(self.timeouts.pool):
                await waiter.served.wait()
        except BaseException:
            await self._unwait(waiter)
            raise
        if not waiter.served.is_set():
            await self._unwait(waiter)
            raise httpx.PoolTimeout(f"no upstream connection free in {self.timeouts.pool:g} s")
        return waiter

    async def _unwait(self, waiter: _Waiter) -> None:
        """A waiter that gave up: out of the queue, and what it was given passed on."""
        if waiter in self.waiting:
            self.waiting.remove(waiter)
        elif waiter.connection is not None:
            await self.release(waiter.connection)
        elif waiter.served.is_set():
            self._free_slot()

    async def _close_an_idle_connection(self) -> bool:
        """Make room for another origin: close an idle connection (its slot is reused)."""
        for connections in self.idle.values():
            if connections:
                connection = connections.pop(0)
                self.idle_count -= 1
                await self._close(connection)
                return True
        return False

    async def _open(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        timeout = self.timeouts.connect
        with httpx_errors():
            stream = await self.backend.connect_tcp(host.decode("ascii"), port, timeout=timeout)
            if scheme == b"https":
                try:
                    stream = await stream.start_tls(
                        self._tls(), server_hostname=host.decode("ascii"), timeout=timeout
                    )
                except BaseException:
                    await _Connection(origin, stream).aclose()
                    raise
        return _Connection(origin, stream)

    def _tls(self) -> ssl.SSLContext:
        """httpcore's default context (certifi's roots, HTTP/1.1 by ALPN), made once."""
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    async def release(self, connection: _Connection) -> None:
        """A connection whose response ended: to the first request waiting for its
        origin, else idle (unless the pool holds enough), else closed."""
        for waiter in self.waiting:
            if waiter.origin == connection.origin:
                self.waiting.remove(waiter)
                waiter.connection = connection
                waiter.served.set()
                return
        if self.waiting or self.closed or self.idle_count >= self.max_keepalive:
            await self.discard(connection)  # its slot goes to a request for another origin
            return
        connection.expires_at = trio.current_time() + self.keepalive_expiry
        self.idle.setdefault(connection.origin, []).append(connection)
        self.idle_count += 1

    async def discard(self, connection: _Connection) -> None:
        """Close a connection that cannot serve another request, and free its slot."""
        self._free_slot()
        await self._close(connection)

    def _free_slot(self) -> None:
        if self.waiting:
            self.waiting.popleft().served.set()  # it opens a connection in this slot
        else:
            self.open -= 1

    @staticmethod
    async def _close(connection: _Connection) -> None:
        await connection.aclose()

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their responses do."""
        self.closed = True
        idle = [c for connections in self.idle.values() for c in connections]
        self.idle.clear()
        self.idle_count = 0
        for connection in idle:
            await self.discard(connection)


class _Waiter:
    """A request waiting for a connection: given one of its origin, or a slot."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.served = trio.Event()
        self.connection: _Connection | None = None


# httpcore's exceptions and the httpx ones they become; most specific first.
_EXCEPTIONS: Sequence[tuple[type[Exception], type[httpx.TransportError]]] = (
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
)


class httpx_errors:
    """Re-raise httpcore's exceptions (a network backend's) as httpx's, so callers catch
    one family. A class, not a generator: it wraps every socket read."""

    __slots__ = ()

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, Exception):
            for core, mapped in _EXCEPTIONS:
                if isinstance(exc, core):
                    raise mapped(str(exc)) from exc
