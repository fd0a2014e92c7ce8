"""Every use of httpcore's private names, fenced: what each override replaces, and why.

httpx stays the upstream client; underneath it, two httpcore classes are replaced by
subclasses that override private methods and read private attributes:

* ``_HTTP11Connection`` (``AsyncHTTP11Connection``) overrides ``_send_request_headers``,
  ``_send_request_body`` and ``_receive_response_body``, and reads ``_h11_state``,
  ``_network_stream`` and ``_receive_event``: one body part per socket read instead of one
  per HTTP chunk (the relay's CPU per event 48-56 -> 23-25 us, docs/performance.md), and
  the request's head and body in one write.
* ``_Connection`` (``AsyncHTTPConnection``) overrides ``handle_async_request`` to build
  that HTTP/1.1 connection, reading ``_connection``, ``_request_lock``, ``_connect``,
  ``_connect_failed``, ``_origin`` and ``_keepalive_expiry``.
* ``FairPool`` (``AsyncConnectionPool``) overrides ``_assign_requests_to_connections`` and
  ``create_connection``, reading ``_requests``, ``_connections``, ``_max_connections``,
  ``_max_keepalive_connections`` and the settings it passes on: each idle connection is
  handed out once (100 concurrent streams on a warm pool waited seconds without it).

``pyproject.toml`` pins httpcore below 1.1 for these. Should a new httpcore lack any of
the names, :func:`make_pool` logs one warning and builds httpcore's own pool: slower
(one body part per HTTP chunk, the unfair assignment), still correct.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import h11
import httpcore

log = logging.getLogger("aibridge.upstream")

# The private names the classes below use, per httpcore class: methods and class-level
# names are looked up on the class, instance attributes among the names its __init__
# (or the method that sets them) assigns.
_NEEDED: dict[str, tuple[str, ...]] = {
    "AsyncHTTP11Connection": (
        "_send_request_headers",
        "_send_request_body",
        "_receive_response_body",
        "_receive_event",
        "__init__:_h11_state",
        "__init__:_network_stream",
    ),
    "AsyncHTTPConnection": (
        "handle_async_request",
        "_connect",
        "__init__:_connection",
        "__init__:_request_lock",
        "__init__:_connect_failed",
        "__init__:_origin",
        "__init__:_keepalive_expiry",
    ),
    "AsyncConnectionPool": (
        "_assign_requests_to_connections",
        "create_connection",
        "__init__:_requests",
        "__init__:_connections",
        "__init__:_max_connections",
        "__init__:_max_keepalive_connections",
        "__init__:_ssl_context",
        "__init__:_keepalive_expiry",
        "__init__:_retries",
        "__init__:_local_address",
        "__init__:_uds",
        "__init__:_network_backend",
        "__init__:_socket_options",
    ),
}


def missing_internals(namespace: Any = httpcore) -> list[str]:
    """The private names this module needs that ``namespace`` (httpcore) lacks."""
    missing = []
    for class_name, names in _NEEDED.items():
        cls = getattr(namespace, class_name, None)
        if cls is None:
            missing.append(class_name)
            continue
        for name in names:
            method, _, attribute = name.rpartition(":")
            if not method:
                found = hasattr(cls, attribute)
            else:
                code = getattr(getattr(cls, method, None), "__code__", None)
                found = code is not None and attribute in code.co_names
            if not found:
                missing.append(f"{class_name}.{attribute}")
    return missing


class BodyPart(bytes):
    """The body bytes one socket read brought, joined, with the HTTP chunks they came in.

    The relay wants the bytes joined (one pass up the generators per read); a recording
    wants the chunks as the upstream flushed them, whatever the reads made of them. Only
    their sizes are kept: the relay never pays for the split, a recording cuts them out.
    """

    sizes: tuple[int, ...] = ()

    @classmethod
    def of(cls, parts: list[bytes]) -> bytes:
        """One read's body bytes: the single chunk as it is, several joined."""
        if len(parts) == 1:
            return bytes(parts[0])
        joined = cls(b"".join(parts))
        joined.sizes = tuple(map(len, parts))
        return joined

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
            yield BodyPart.of(parts)
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


_warned = False


def make_pool(
    *, missing: Iterable[str] | None = None, **settings: Any
) -> httpcore.AsyncConnectionPool:
    """The upstream connection pool: ``FairPool`` when httpcore has every private name it
    needs, else httpcore's own, with one warning per process. ``missing`` is for tests."""
    global _warned
    gaps = list(missing_internals() if missing is None else missing)
    if not gaps:
        return FairPool(**settings)
    if not _warned:
        _warned = True
        log.warning(
            "httpcore %s lacks %s: using its stock connection pool (slower relay, still correct)",
            getattr(httpcore, "__version__", "?"),
            ", ".join(gaps),
        )
    return httpcore.AsyncConnectionPool(**settings)
