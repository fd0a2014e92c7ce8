"""How a chaos strike (``chaos.py``) reaches the wire, in the upstream's place.

A status fault (429, 401, 403, 500, 529) and a reset before the status line answer the
attempt themselves: the upstream is not asked, so a fault costs no tokens. Every other
fault lets the upstream answer and breaks its body at the rule's point (after N events,
or inside the first tool call's arguments): an error event in the API's shape, a reset,
a clean early end, a malformed event, a stall. The proxy then handles what it got exactly
as it handles the real failure, and records it as the upstream's answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import trio

from ..errors import kind_for_status
from ..faults import (
    MALFORMED_DATA,
    FaultKind,
    error_body,
    error_event,
    malformed_event,
    provider_status,
)
from ..headers import Headers, media_type
from ..interception import UpstreamExchange
from ..mcp_tools.results import fault_outcome
from ..providers.base import dumps
from ..providers.openai_responses_ws import message_type, status_error_event
from ..sse import SSEDecoder, SSEEvent
from ..tools import InjectedTool, ToolOutcome
from .chaos import TOOL_ARGS, Strike
from .http11_client import UpstreamRequest, UpstreamResponse
from .upstream_client import body_chunks, send_upstream
from .websocket import ABNORMAL_CLOSURE, NORMAL_CLOSURE, WebSocket, WebSocketClosed

log = logging.getLogger("aibridge.chaos")
TOOL_ARGS_MESSAGE = "response.function_call_arguments.delta"
CLOSE_WAIT = 0.5  # for the upstream's close, as when the proxy cuts a response short

# What each provider says for each failure (their documented messages), unless the rule
# gives its own.
_MESSAGES = {
    ("anthropic", 401): "invalid x-api-key",
    ("anthropic", 403): "Your API key does not have permission to use the specified resource.",
    ("anthropic", 429): "Number of requests has exceeded your rate limit.",
    ("anthropic", 500): "Internal server error",
    ("anthropic", 529): "Overloaded",
    ("openai", 401): "Incorrect API key provided.",
    ("openai", 403): "You are not allowed to sample from this model",
    ("openai", 429): "Rate limit reached for requests",
    ("openai", 500): "The server had an error while processing your request. Sorry about that!",
    ("openai", 503): "The server is overloaded or not ready yet.",
}
_STREAM_MESSAGES = {
    "anthropic": "Overloaded",
    "openai": "The server had an error while processing your request. Sorry about that!",
}


async def send(
    client: httpx.AsyncClient,
    request: UpstreamRequest,
    strike: Strike,
    attempt: int,
    api: str,
    exchange: UpstreamExchange,
) -> UpstreamResponse:
    """The response to one upstream attempt of a struck request."""
    if strike.answers(attempt):
        exchange.chaos = strike.note()
        if strike.kind is FaultKind.RESET_BEFORE_BODY:
            raise httpx.RemoteProtocolError("chaos: connection reset before the status line")
        return status_answer(strike, api)
    response = await send_upstream(client, request)  # the relay's own path
    if strike.kind.in_body and response.status_code < 400:
        exchange.chaos = strike.note()
        read_timeout = client.timeout.read if client.timeout.read is not None else 300.0
        body = _Faulted(response, strike, api, read_timeout)
        return httpx.Response(
            response.status_code, headers=response.headers.multi_items(), stream=body
        )
    return response


async def tool_call(tool: InjectedTool, strike: Strike) -> ToolOutcome:
    """An MCP tool call struck by an ``mcp-*`` rule: what the fuzzer's faulted call
    answers, the server never asked (``mcp-slow`` first waits out the call's timeout)."""
    assert tool.mcp is not None, "mcp-* rules strike MCP tools only"
    if strike.kind is FaultKind.MCP_SLOW:
        await trio.sleep(tool.timeout)
    return fault_outcome(tool.mcp.server, tool.mcp.tool, strike.kind, tool.timeout)


def status_answer(strike: Strike, api: str) -> httpx.Response:
    """The fault's error status as ``api``'s provider sends it: status, JSON body, the
    request id header, ``Retry-After`` and ``x-should-retry`` when the rule gives them."""
    rule = strike.rule
    provider = api.split("-")[0]
    status = provider_status(api, rule.kind) or 500
    message = rule.message or _MESSAGES.get((provider, status), f"error {status}")
    body = error_body(api, status, message, code=True)
    request_id = f"req_chaos_{rule.name}_{strike.number}"
    headers: Headers = [("content-type", "application/json")]
    if provider == "anthropic":
        body["request_id"] = request_id
        headers.append(("request-id", request_id))
    else:
        headers.append(("x-request-id", request_id))
    if rule.retry_after is not None:
        headers.append(("retry-after", rule.retry_after))
    if rule.should_retry is not None:
        headers.append(("x-should-retry", "true" if rule.should_retry else "false"))
    return httpx.Response(status, headers=headers, content=dumps(body).encode())


def is_tool_arguments(event: SSEEvent) -> bool:
    """A piece of a tool call's arguments, in any of the three APIs' streams."""
    data = event.data
    if event.event == "response.function_call_arguments.delta":
        return True
    if '"input_json_delta"' in data or '"response.function_call_arguments.delta"' in data:
        return True
    return '"tool_calls"' in data and '"arguments":"' in data and '"arguments":""' not in data


class _Faulted(httpx.AsyncByteStream):
    """The upstream's body, broken where the strike says."""

    def __init__(
        self, response: UpstreamResponse, strike: Strike, api: str, read_timeout: float
    ) -> None:
        self._response = response
        self._strike = strike
        self._api = api
        self._read_timeout = read_timeout
        content_type = media_type(response.headers.multi_items())
        self._stream = content_type == "text/event-stream"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not self._stream:
            async for part in self._blocking():
                yield part
            return
        rule = self._strike.rule
        decoder = SSEDecoder()
        sent = 0
        due = rule.at == 0  # strike before the next event
        struck = False
        async with body_chunks(self._response) as chunks:
            async for chunk in chunks:
                if struck:
                    yield chunk  # a stall's or a malformed event's rest, as it comes
                    continue
                for event in decoder.feed(chunk):
                    if struck:
                        yield event.raw
                        continue
                    if due:
                        struck = True
                        head, goes_on = await self._strike_now(sent)
                        if head:
                            yield head
                        if not goes_on:
                            return
                        if self._strike.kind is FaultKind.MALFORMED_SSE:
                            continue  # it took this event's place
                    yield event.raw
                    sent += 1
                    due = is_tool_arguments(event) if rule.at == TOOL_ARGS else sent == rule.at
        if due and not struck:  # the point was the end of the body
            head, _ = await self._strike_now(sent)
            if head:
                yield head

    async def _strike_now(self, sequence: int) -> tuple[bytes, bool]:
        """Strike after ``sequence`` events: the bytes that go out in the next one's place
        and whether the body goes on. A reset raises what a broken connection raises."""
        kind, rule = self._strike.kind, self._strike.rule
        if kind is FaultKind.ERROR_EVENT:
            message = rule.message or _STREAM_MESSAGES[self._api.split("-")[0]]
            return error_event(self._api, sequence, message), False
        if kind is FaultKind.RESET_IN_BODY:
            raise httpx.ReadError("chaos: connection reset mid-body")
        if kind is FaultKind.STALL:
            await self._stall()
            return b"", True
        if kind is FaultKind.MALFORMED_SSE:
            return malformed_event(self._api), True
        return b"", False  # early-end: the body ends cleanly here, the upstream's rest unread

    async def _stall(self) -> None:
        """Silence for ``seconds``; past the read timeout, the timeout the proxy would hit."""
        seconds = self._strike.rule.seconds
        if seconds < self._read_timeout:
            await trio.sleep(seconds)
            return
        await trio.sleep(self._read_timeout)
        raise httpx.ReadTimeout("chaos: stalled past the read timeout")

    async def _blocking(self) -> AsyncIterator[bytes]:
        """A JSON answer has no events: reset and early end strike halfway, a stall first."""
        kind = self._strike.kind
        if kind is FaultKind.STALL:
            await self._stall()
        body = await self._response.aread()
        if kind in (FaultKind.RESET_IN_BODY, FaultKind.EARLY_END):
            yield body[: len(body) // 2]
            if kind is FaultKind.RESET_IN_BODY:
                raise httpx.ReadError("chaos: connection reset mid-body")
            return
        yield body

    async def aclose(self) -> None:
        await self._response.aclose()


class StruckSocket:
    """An upstream socket as one struck ``response.create`` sees it (WebSocket mode): the
    same faults as over HTTP, at a message instead of an event. A status fault is the
    ``error`` message carrying that status, which the proxy reads as the socket's answer
    (a 429/401/403 fails over as on a handshake); a reset closes the socket (1006), an
    early end closes it cleanly (1000) before the response's terminal event; a stall
    pauses ``seconds`` and goes on."""

    def __init__(
        self, socket: WebSocket, strike: Strike, attempt: int, exchange: UpstreamExchange
    ) -> None:
        self._socket = socket
        self._strike = strike
        self._answers = strike.answers(attempt)
        self._received = 0
        self._due = strike.kind.in_body and strike.rule.at == 0
        if self._answers or strike.kind.in_body:
            exchange.chaos = strike.note()

    async def send(self, message: str) -> None:
        if not self._answers:
            await self._socket.send(message)
        elif self._strike.kind is FaultKind.RESET_BEFORE_BODY:
            raise WebSocketClosed(ABNORMAL_CLOSURE, "chaos: reset before the answer")
        # a status fault answers in the upstream's place: nothing goes up

    async def receive(self) -> str:
        if self._answers:
            return self._status_message()
        if self._due:
            self._due = False
            struck = await self._strike_now()
            if struck is not None:
                return struck
        text = await self._socket.receive()
        self._received += 1
        if self._strike.kind.in_body and not self._due:
            at = self._strike.rule.at
            kind, _ = message_type(text)
            self._due = kind == TOOL_ARGS_MESSAGE if at == TOOL_ARGS else self._received == at
        return text

    async def _strike_now(self) -> str | None:
        """The message in place of the next one; None: the next one as it comes."""
        kind, rule = self._strike.kind, self._strike.rule
        if kind is FaultKind.ERROR_EVENT:
            # The upstream's response goes on behind the error: closed here, or its rest
            # would answer the socket's next response.create (the fuzzer found this). The
            # next one opens a new socket, as after any response cut short.
            await self._socket.close(NORMAL_CLOSURE, wait=CLOSE_WAIT)
            message = rule.message or _STREAM_MESSAGES["openai"]
            frame = error_event("openai-responses", self._received, message)
            return frame.split(b"data: ", 1)[1].rstrip(b"\n").decode()
        if kind is FaultKind.RESET_IN_BODY:
            raise WebSocketClosed(ABNORMAL_CLOSURE, "chaos: connection reset mid-response")
        if kind is FaultKind.EARLY_END:
            raise WebSocketClosed(NORMAL_CLOSURE, "chaos: closed before the response ended")
        if kind is FaultKind.MALFORMED_SSE:
            await self._socket.receive()  # it takes this message's place
            return MALFORMED_DATA
        await trio.sleep(rule.seconds)  # a stall
        return None

    def _status_message(self) -> str:
        """The status fault as OpenAI's socket answers it: an ``error`` message carrying the
        status, its ``Retry-After`` among the error's headers."""
        answer = status_answer(self._strike, "openai-responses")
        status = answer.status_code
        text = status_error_event(status, answer.content, kind_for_status(status), "")
        retry = answer.headers.get("retry-after")
        if retry is None:
            return text
        event = json.loads(text)
        event["error"]["headers"] = {"retry-after": retry}
        return dumps(event)
