"""The engine over WebSockets: one ``response.create`` is one interception, run by the
same loop as ``POST /responses``, with an upstream socket in place of an HTTP request.

Theory of operation. A client connection owns one ``UpstreamSession``: the upstream
socket, opened on the first ``response.create`` and kept for the next ones. Every
upstream request of the loop (the client's, then each continuation after injected tools)
takes its key from the pool exactly as an HTTP request does, so the pool's rules and
counts do not depend on the transport; the socket is kept while the pool hands out the
key it was opened with, and reopened with the new one otherwise. A response that failed
(an error event, a cut, a timeout) closes it: the upstream may not be done with that
answer, and whatever it still sends would reach the next ``response.create``.

Key failover happens where the upstream can say no:

* **on the handshake**: an upgrade answered 429, 401 or 403 is reported to the pool and
  the next key is tried, as on HTTP; any other refusal is relayed as an error event;
* **mid-connection**: when the first message answering a ``response.create`` is an
  ``error`` whose ``status`` is 429, 401 or 403, nothing of that response has been
  relayed, so it counts as that answer on the socket's key: the key is reported, the
  socket closed (1000) and the same ``response.create`` sent on a new socket with the
  next key. An error later in a response is the stream's own and is relayed as it came.

With ``--breaker``, each upstream request passes the breaker of its model first, as over
HTTP (the same breaker): what it reports is a refused upgrade's status, or the status the
first message answering the ``response.create`` stands for (``opening_status``).

Upstream messages enter the conversation as SSE frames and the frames it releases go to
the client as messages (``providers/openai_responses_ws.py``), so injected tools are
hidden and run, and errors take one shape, by the code that serves HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from ..errors import (
    ClientDisconnected,
    UpstreamBroken,
    UpstreamStatusError,
    kind_for_status,
)
from ..headers import Headers, forwarded_request_headers, header
from ..interception import Interception, ResponseLog, UpstreamExchange
from ..providers.base import Conversation, dumps
from ..providers.openai_responses import TERMINAL
from ..providers.openai_responses_ws import (
    EXCHANGE_METHOD,
    WEBSOCKET_STATUS,
    error_event,
    error_object_for,
    frame_messages,
    message_frame,
    message_type,
    opening_status,
    status_error_event,
)
from ..sse import SSEEvent
from ..tools import ToolSet
from .breaker import Gate, gated
from .bridge import ClientStream, Environment, Interceptor, ProviderUpstream
from .chaos import Facts
from .chaos_wire import StruckSocket
from .keypool import PoolKey
from .server import Request
from .websocket import (
    NORMAL_CLOSURE,
    BinaryMessage,
    MessageTooBig,
    WebSocket,
    WebSocketClosed,
)
from .ws_upstream import Refused

log = logging.getLogger("aibridge.websocket")


class WebSocketResponse:
    """One response's messages on the client's socket, as a ``bridge.ResponseSink``.

    The engine writes SSE frames and, for an error before any event, an HTTP status with
    a JSON body; here the frames become messages and the status an ``error`` event that
    carries it (and its ``Retry-After`` among the error's ``headers``).
    """

    def __init__(self, socket: WebSocket, log: ResponseLog) -> None:
        self.socket = socket
        self.log = log
        self.status: int | None = None
        self.messages = 0

    @property
    def started(self) -> bool:
        return self.status is not None

    async def start(self, status: int, headers: Headers, data: bytes = b"") -> None:
        if self.status is None:
            self.status = status
        if status >= 400:
            await self._send([self._status_error(status, headers, data)])
        else:
            await self._send(frame_messages(data))

    async def send(self, data: bytes) -> None:
        if self.status is None:
            self.status = 200
        await self._send(frame_messages(data))

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        await self.start(status, headers, body)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()  # a socket write waits for room itself

    @staticmethod
    def _status_error(status: int, headers: Headers, body: bytes) -> str:
        text = status_error_event(status, body, kind_for_status(status), f"error {status}")
        # What the HTTP answer's head said of retrying, among the error's headers as
        # OpenAI's own error events carry them.
        carried = {
            name: value
            for name in ("retry-after", "x-should-retry")
            if (value := header(headers, name)) is not None
        }
        if not carried:
            return text
        _, event = message_type(text)
        assert event is not None  # made just above
        event["error"]["headers"] = carried
        return dumps(event)

    async def _send(self, messages: list[str]) -> None:
        for message in messages:
            self.log.wrote(message.encode())
            self.messages += 1
            try:
                await self.socket.send(message)
            except WebSocketClosed as exc:
                raise ClientDisconnected(f"client socket closed ({exc.code})") from None


@dataclass
class UpstreamSession:
    """The upstream socket of one client connection and the key it was opened with."""

    upstream: ProviderUpstream
    env: Environment
    client_headers: Headers
    path: str = "/responses"
    close_timeout: float = 0.5
    socket: WebSocket | None = None
    key: PoolKey | None = None
    headers: Headers = field(default_factory=list)  # the 101's

    def handshake_headers(self, key: PoolKey | None) -> Headers:
        byok = not self.upstream.pool
        headers = [
            (k, v)
            for k, v in forwarded_request_headers(self.client_headers, byok)
            if not k.startswith("sec-websocket-") and k != "accept-encoding"
        ]
        if key is not None:
            headers += self.upstream.auth_headers(key.secret)
        return headers

    async def open(
        self, record: Interception, body: dict[str, Any], tried: set[int]
    ) -> tuple[WebSocket, PoolKey | None]:
        """A socket for the next upstream request, failing over keys on the handshake."""
        pool = self.upstream.pool
        while True:
            key = None
            if pool:
                key = pool.acquire(trio.current_time(), frozenset(tried))
                tried.add(key.index)
            if self.socket is not None and self.socket.open and key is self.key:
                return self.socket, key
            await self.close()
            url = self.upstream.url(self.path)
            answer = await self.env.dialer.dial(url, self.handshake_headers(key))
            if not isinstance(answer, Refused):
                self.socket, self.key, self.headers = answer.socket, key, answer.headers
                return answer.socket, key
            exchange = record.new_exchange(
                EXCHANGE_METHOD, self.path, body, key.masked if key else None
            )
            exchange.response.started(answer.status, answer.headers)
            exchange.response.wrote(answer.body)
            if answer.status < 400:  # 200, 204, 301...: no socket, and no refusal to relay
                raise UpstreamBroken(
                    f"upstream answered the WebSocket upgrade with {answer.status}, not 101"
                )
            if key is not None and pool.report(
                key,
                answer.status,
                header(answer.headers, "retry-after"),
                trio.current_time(),
                self.env.wall_clock(),
            ):
                log.info("key %s refused the upgrade %d: failing over", key.masked, answer.status)
                continue
            # An upstream may echo the key it was sent: never to the client.
            raise UpstreamStatusError(
                answer.status, pool.masked_headers(answer.headers), pool.masked_bytes(answer.body)
            )

    async def close(self, code: int = NORMAL_CLOSURE) -> None:
        socket, self.socket, self.key = self.socket, None, None
        if socket is not None:
            await socket.close(code, wait=self.close_timeout)


class WebSocketInterceptor(Interceptor):
    """An ``Interceptor`` whose upstream requests are messages on an upstream socket."""

    def __init__(
        self,
        session: UpstreamSession,
        env: Environment,
        record: Interception,
        api: Any,
        upgrade: Request,
        tools: ToolSet,
    ) -> None:
        super().__init__(api, session.upstream, env, upgrade, record, tools)
        self.session = session

    async def _iteration(
        self, conversation: Conversation, client: ClientStream, *, first: bool
    ) -> None:
        body = conversation.upstream_body()
        message = dumps(body)
        tried: set[int] = set()
        strike = self._chaos_strike() if self.env.chaos.states else None
        attempt = 0
        with gated(self.breaker(body), trio.current_time) as gate:
            while True:
                socket, key = await self.session.open(self.record, body, tried)
                exchange = self.record.new_exchange(
                    EXCHANGE_METHOD, self.api.upstream_path, body, key.masked if key else None
                )
                exchange.response.started(WEBSOCKET_STATUS, self.session.headers)
                answering: WebSocket | StruckSocket = socket
                if strike is not None:  # serve --chaos (chaos_wire.py)
                    answering = StruckSocket(socket, strike, attempt, exchange)
                attempt += 1
                if await self._answer(
                    answering, key, message, exchange, conversation, client, gate
                ):
                    return

    def _facts(self) -> Facts:
        return replace(super()._facts(), streaming=True)  # every response streams here

    async def _answer(
        self,
        socket: WebSocket | StruckSocket,
        key: PoolKey | None,
        message: str,
        exchange: UpstreamExchange,
        conversation: Conversation,
        client: ClientStream,
        gate: Gate,
    ) -> bool:
        """Send one ``response.create`` and relay its answer; False: fail over and resend."""
        first = True
        try:
            await socket.send(message)
            while True:
                text = await socket.receive()
                exchange.response.wrote(text.encode())
                kind, _ = message_type(text)
                if first and kind == "error" and key is not None and self._fail_over(key, text):
                    await self.session.close()
                    return False
                if first:
                    # the first message is the answer, an error carrying a status included
                    gate.answered(opening_status(WEBSOCKET_STATUS, text)[0])
                first = False
                frames = conversation.on_event(SSEEvent(kind, text, message_frame(text)))
                await client.put(self.shown(frames, conversation))
                if conversation.failed:
                    # An answer that failed may go on on the upstream's side (more events
                    # after its error): on this socket they would answer the next
                    # response.create, so the socket goes, as after a cut.
                    await self.session.close()
                    return True
                if kind in TERMINAL:
                    return True
        except WebSocketClosed as closed:
            await self.session.close()
            exchange.error = f"WebSocketClosed: {closed.code} {closed.reason}".rstrip()
            raise UpstreamBroken(
                f"upstream closed the WebSocket mid-response ({closed.code})"
            ) from None
        except (MessageTooBig, BinaryMessage) as exc:
            await self.session.close()
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise UpstreamBroken(f"upstream sent a message the proxy cannot relay: {exc}") from None
        except BaseException:
            # Cut mid-response (a timeout, a bad event, the client gone): what is left of
            # the answer would reach the next request, so the socket goes.
            await self.session.close()
            raise

    def _fail_over(self, key: PoolKey, text: str) -> bool:
        """Apply the mid-connection rule (module docstring) to an opening ``error``: any
        status it carries is reported to the pool, as an HTTP answer's would be."""
        status, retry = opening_status(WEBSOCKET_STATUS, text)
        if status < 400:
            return False
        failover = self.upstream.pool.report(
            key, status, retry, trio.current_time(), self.env.wall_clock()
        )
        if failover:
            log.info("key %s answered %d on its socket: failing over", key.masked, status)
        return failover


def connection_error(message: str) -> str:
    """An ``error`` event for a failure of the proxy itself (status 500)."""
    return error_event(500, error_object_for("api_error", message))
