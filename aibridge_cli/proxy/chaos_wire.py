"""How a chaos strike (``chaos.py``) reaches the wire, in the upstream's place.

A status fault (429, 401, 403, 500, 529) and a reset before the status line answer the
attempt themselves: the upstream is not asked, so a fault costs no tokens. Every other
fault lets the upstream answer and breaks its body at the rule's point (after N events,
or inside the first tool call's arguments): an error event in the API's shape, a reset,
a clean early end, a malformed event, a stall. The proxy then handles what it got exactly
as it handles the real failure, and records it as the upstream's answer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import trio

from ..faults import FaultKind, error_body, error_event, malformed_event, provider_status
from ..headers import Headers, media_type
from ..interception import UpstreamExchange
from ..mcp_tools.results import fault_outcome
from ..providers.base import dumps
from ..sse import SSEDecoder, SSEEvent
from ..tools import InjectedTool, ToolOutcome
from .chaos import TOOL_ARGS, Strike
from .upstream_client import body_chunks

log = logging.getLogger("aibridge.chaos")

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
    request: httpx.Request,
    strike: Strike,
    attempt: int,
    api: str,
    exchange: UpstreamExchange,
) -> httpx.Response:
    """The response to one upstream attempt of a struck request."""
    if strike.answers(attempt):
        exchange.chaos = strike.note()
        if strike.kind is FaultKind.RESET_BEFORE_BODY:
            raise httpx.RemoteProtocolError("chaos: connection reset before the status line")
        return status_answer(strike, api, request)
    response = await client.send(request, stream=True)
    if strike.kind.in_body and response.status_code < 400:
        exchange.chaos = strike.note()
        read_timeout = client.timeout.read if client.timeout.read is not None else 300.0
        body = _Faulted(response, strike, api, read_timeout)
        return httpx.Response(
            response.status_code, headers=response.headers, stream=body, request=request
        )
    return response


async def tool_call(tool: InjectedTool, strike: Strike) -> ToolOutcome:
    """An MCP tool call struck by an ``mcp-*`` rule: what the fuzzer's faulted call
    answers, the server never asked (``mcp-slow`` first waits out the call's timeout)."""
    assert tool.mcp is not None, "mcp-* rules strike MCP tools only"
    if strike.kind is FaultKind.MCP_SLOW:
        await trio.sleep(tool.timeout)
    return fault_outcome(tool.mcp.server, tool.mcp.tool, strike.kind, tool.timeout)


def status_answer(strike: Strike, api: str, request: httpx.Request) -> httpx.Response:
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
    return httpx.Response(status, headers=headers, content=dumps(body).encode(), request=request)


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
        self, response: httpx.Response, strike: Strike, api: str, read_timeout: float
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
