"""The Responses API's WebSocket mode on the client side: one connection, many responses.

``ResponsesSocket`` owns one upgraded client connection and runs one nursery with four
tasks:

* the **reader** takes client messages: a ``response.create`` goes to the worker's queue;
  a message it cannot act on (not JSON, another event type, over the size limit) gets an
  ``error`` event at once and the socket keeps serving; the client's close (or a stream
  that ends) cancels the nursery, and with it the response in flight and its upstream
  socket;
* the **worker** runs the queued ``response.create``s one after the other, each an
  interception recorded like ``POST /responses`` (``ws_bridge``);
* the **keepalive** pings every ``ping_interval`` and closes (1011) a client whose pong
  did not come back by the next ping;
* the **shutdown watch** closes an idle socket (1001) as soon as the server stops; a busy
  one finishes its response first, within the server's grace period, whose deadline
  cancels the nursery and closes it (1001) all the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import trio
import wsproto
from wsproto.events import AcceptConnection, RejectConnection, RejectData
from wsproto.utilities import RemoteProtocolError

from ..config import WebSocketConfig
from ..errors import ClientDisconnected, RequestError
from ..headers import JSON_HEADERS, header, refusal_headers
from ..interception import ClientRequest, Interception, Recorder, credentials, redact_headers
from ..providers.base import API, dumps
from ..providers.openai_common import openai_error
from ..providers.openai_responses_ws import (
    WEBSOCKET_STATUS,
    ClientEventError,
    client_event_error,
    parse_client_event,
)
from ..tools import ToolSet
from .bridge import Environment, ProviderUpstream, recorded, write_error_response
from .outcome import Outcome
from .server import Request, Upgrade
from .websocket import (
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    BinaryMessage,
    MessageTooBig,
    WebSocket,
    WebSocketClosed,
)
from .ws_bridge import UpstreamSession, WebSocketInterceptor, WebSocketResponse

log = logging.getLogger("aibridge.websocket")
# Each response's own line goes where HTTP requests' lines go: an error there is an upstream
# failure the proxy answered (log filters, and the fuzzer's world, read them alike).
requests_log = logging.getLogger("aibridge.requests")


def wants_websocket(request: Request) -> bool:
    """A GET that asks to upgrade to the WebSocket protocol."""
    upgrade = (header(request.headers, "upgrade") or "").lower()
    return request.method == "GET" and "websocket" in upgrade


class ResponsesSocket:
    """One client connection in WebSocket mode (see the module docstring)."""

    def __init__(
        self,
        upgrade: Upgrade,
        *,
        api: API,
        upstream: ProviderUpstream,
        env: Environment,
        config: WebSocketConfig,
        recorder: Recorder | None,
        redact: Sequence[str],
    ) -> None:
        self.upgrade = upgrade
        self.request = upgrade.request
        self.api = api
        self.env = env
        self.config = config
        self.recorder = recorder
        self.redact = tuple(redact)
        self.session = UpstreamSession(
            upstream, env, list(upgrade.request.headers), close_timeout=config.close_timeout
        )
        self.close_code = NORMAL_CLOSURE
        self.busy = False
        self.served = 0

    async def run(self) -> None:
        socket = await self._accept()
        if socket is None:
            return
        log.info("GET %s 101 websocket open", self.request.path)
        try:
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](64)
                nursery.start_soon(self._read, socket, send, nursery.cancel_scope)
                nursery.start_soon(self._work, socket, receive, nursery.cancel_scope)
                nursery.start_soon(self._keepalive, socket, nursery.cancel_scope)
                nursery.start_soon(self._watch_shutdown, nursery.cancel_scope)
        finally:
            if self.upgrade.shutdown.is_set():
                self.close_code = GOING_AWAY  # also when the grace period's deadline cut us
            await self.session.close()
            await socket.close(self.close_code, wait=self.config.close_timeout)
            log.info(
                "websocket %s closed (%s) after %d responses",
                self.request.path,
                socket.close_code,
                self.served,
            )

    async def _accept(self) -> WebSocket | None:
        connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        stream = self.upgrade.stream
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.request.headers]
        try:
            connection.initiate_upgrade_connection(raw, self.request.target)
            list(connection.events())  # the Request event: nothing in it to decide on
        except RemoteProtocolError as exc:
            body = dumps(openai_error("invalid_request", f"bad websocket upgrade: {exc}")).encode()
            head = RejectConnection(
                status_code=400,
                headers=[
                    (k.encode(), v.encode()) for k, v in [*JSON_HEADERS, *refusal_headers(400)]
                ]
                + [(b"content-length", str(len(body)).encode())],
                has_body=True,
            )
            await stream.send_all(
                connection.send(head) + connection.send(RejectData(data=body, body_finished=True))
            )
            log.info("GET %s 400 bad websocket upgrade: %s", self.request.path, exc)
            return None
        # No extension (permessage-deflate) is taken: JSON events are small, and a client
        # must work without one (RFC 6455 section 9.1).
        await stream.send_all(connection.send(AcceptConnection()))
        return WebSocket(
            stream,
            connection,
            max_message_size=self.config.max_message_size,
            buffered=self.upgrade.buffered,
        )

    # -- tasks -----------------------------------------------------------------------------
    async def _read(
        self,
        socket: WebSocket,
        queue: trio.MemorySendChannel[tuple[str, dict[str, Any]]],
        scope: trio.CancelScope,
    ) -> None:
        async with queue:
            while True:
                try:
                    text = await socket.receive()
                    body = parse_client_event(text)
                except WebSocketClosed:
                    scope.cancel()  # the client left: stop its response and its upstream
                    return
                except MessageTooBig as exc:
                    await self._refuse(socket, ClientEventError(str(exc), "message_too_large"))
                    continue
                except BinaryMessage as exc:
                    await self._refuse(socket, ClientEventError(str(exc), "invalid_message"))
                    continue
                except ClientEventError as error:
                    await self._refuse(socket, error, text)
                    continue
                await queue.send((text, body))

    async def _refuse(self, socket: WebSocket, error: ClientEventError, text: str = "") -> None:
        """Answer a message the proxy cannot act on, and record it as a rejected request."""
        record = self._new_record()
        record.request.body = _maybe_json(text)
        record.outcome = f"rejected: {error.message}"
        message = client_event_error(error)
        record.response.wrote(message.encode())
        log.info("websocket %s rejected a message: %s", self.request.path, error.message)
        try:
            await socket.send(message)
        except WebSocketClosed:
            pass  # the client left meanwhile: the reader sees its close next
        finally:
            if self.recorder is not None:
                self.recorder(record)

    async def _work(
        self,
        socket: WebSocket,
        queue: trio.MemoryReceiveChannel[tuple[str, dict[str, Any]]],
        scope: trio.CancelScope,
    ) -> None:
        async with queue:
            async for text, body in queue:
                self.busy = True
                gone = False
                try:
                    await self._intercept(socket, text, body)
                except* ClientDisconnected:
                    gone = True  # the client is gone: nobody to answer
                finally:
                    self.busy = False
                    self.served += 1
                if gone or self.upgrade.shutdown.is_set():
                    scope.cancel()  # the response the server waited for is done
                    return

    async def _keepalive(self, socket: WebSocket, scope: trio.CancelScope) -> None:
        while True:
            pongs = socket.pongs
            try:
                await socket.ping()
            except WebSocketClosed:
                return  # the client is gone: the reader sees it and ends the connection
            await trio.sleep(self.config.ping_interval)
            if socket.pongs == pongs:
                interval = self.config.ping_interval
                log.info("websocket %s: no pong in %g s", self.request.path, interval)
                self.close_code = INTERNAL_ERROR
                scope.cancel()
                return

    async def _watch_shutdown(self, scope: trio.CancelScope) -> None:
        await self.upgrade.shutdown.wait()
        if not self.busy:
            scope.cancel()

    # -- one response.create ---------------------------------------------------------------
    def _new_record(self, tools: ToolSet | None = None) -> Interception:
        """``tools``: the injected tools offered; by default those in play now."""
        record = self.env.new_record(
            self.api.name,
            ClientRequest(
                self.request.method,
                self.request.path,
                redact_headers(self.request.headers, self.redact),
                None,
            ),
            keep_chunks=self.recorder is not None,
            client_secrets=credentials(self.request.headers),
            tools=None if tools is None else [tool.to_toml_fields() for tool in tools],
            transport="websocket",
        )
        record.response.started(WEBSOCKET_STATUS, [])
        return record

    async def _intercept(self, socket: WebSocket, text: str, body: dict[str, Any]) -> None:
        started = trio.current_time()
        tools = self.env.toolset()  # this response's, though MCP servers change meanwhile
        record = self._new_record(tools)
        response = WebSocketResponse(socket, record.response)
        interceptor: WebSocketInterceptor | None = None
        try:
            with recorded(record, self.recorder):
                try:
                    body = self.api.validate(text.encode())
                except RequestError as error:
                    record.request.body = body
                    record.outcome = f"rejected: {error.message}"
                    await write_error_response(self.api, response, error)
                    return
                record.request.body = body
                interceptor = WebSocketInterceptor(
                    self.session, self.env, record, self.api, self.request, tools
                )
                conversation = self.api.conversation(body, tools)
                await interceptor.run_streaming(conversation, response)
        finally:
            if interceptor is not None and interceptor.chaos_facts is not None:
                self.env.chaos.observe(interceptor.chaos_facts, record, trio.current_time())
            keys = ",".join(record.keys_used)
            outcome = Outcome()  # an error event names its cause, at its level, as on HTTP
            outcome.of(record.outcome, record.error_status)
            requests_log.log(
                outcome.level(),
                "WS %s response.create %.0fms messages=%d attempts=%d%s%s",
                self.request.path,
                (trio.current_time() - started) * 1000,
                response.messages,
                len(record.upstream),
                f" keys={keys}" if keys else "",
                outcome.suffix(),
            )


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.encode()
