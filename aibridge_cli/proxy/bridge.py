"""The interception engine: upstream attempts with key failover, the agentic loop, and
the relay and loop tasks that share a streaming client connection.

Per streaming request one nursery runs two tasks:

* the **relay task** takes client-facing frames off a channel and writes them; it
  initiates the stream (status 200 and SSE headers) and then sets ``initiated``, a
  ``trio.Event``; it writes every frame it has waiting in one send, and a ping after
  ``ping_interval`` seconds without a write;
* the **loop task** talks to the upstream, runs injected tools and puts frames on the
  channel.

An error must reach the client in exactly one shape: an HTTP status with a JSON body
before the stream is initiated, one in-stream error after. How the loop decides is the
``stream_initiation`` mode:

* ``eager`` (the fix): before every agentic continuation the loop asks the relay to
  initiate and waits for ``initiated``; an error goes down the channel like any frame and
  the relay, the only writer, picks its shape. No interleaving can mix the two.
* ``lazy`` (the Go gateway before coder/coder#26139, kept as a fuzzing target): only the
  relay initiates, on its first frame; on error the loop looks at ``initiated`` and at the
  channel alone and, seeing neither, writes a JSON error itself, while the relay may be
  about to write the SSE it already took off the channel.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import httpx
import trio

from ..attribution import identify, session_in_body
from ..config import BridgeConfig
from ..errors import (
    ClientDisconnected,
    ClientFacingError,
    LoopLimitExceeded,
    UpstreamBroken,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from ..headers import (
    JSON_HEADERS,
    SSE_HEADERS,
    Headers,
    WireHeaders,
    forwarded_request_headers,
    forwarded_response_headers,
    intercepted_response_headers,
    refusal_headers,
    wire,
)
from ..interception import (
    ClientRequest,
    Interception,
    Recorder,
    ToolCallRecord,
    Transport,
    UpstreamExchange,
)
from ..providers.base import API, Conversation, ToolCall, dumps
from ..sse import SSEDecoder
from ..tools import InjectedTool, ToolOutcome, ToolServers, ToolSet
from . import chaos_wire
from .breaker import Breaker, Breakers, Gate, gated
from .chaos import Chaos, Facts, Strike, request_facts
from .http11_client import UpstreamRequest, UpstreamResponse
from .keypool import KeyPool
from .metrics import Metrics, Spent
from .server import Request, ResponseWriter
from .upstream_client import body_chunks, send_upstream
from .ws_upstream import WebSocketDialer

log = logging.getLogger("aibridge.bridge")

ToolRunner = Callable[[InjectedTool, Any], Awaitable[ToolOutcome]]
_URL_CACHE_SIZE = 64


async def run_tool(tool: InjectedTool, arguments: Any) -> ToolOutcome:
    return await tool.run(arguments)


@dataclass
class ProviderUpstream:
    """One provider's upstream: its base URL and key pool (empty: bring your own key)."""

    base_url: str
    pool: KeyPool = field(default_factory=KeyPool)
    auth: Literal["x-api-key", "bearer"] = "x-api-key"
    _urls: dict[str, httpx.URL] = field(default_factory=dict, init=False, repr=False, compare=False)

    def auth_headers(self, key: str) -> Headers:
        """How a pool key is sent: Anthropic's ``x-api-key`` or OpenAI's bearer token."""
        if self.auth == "bearer":
            return [("authorization", f"Bearer {key}")]
        return [("x-api-key", key)]

    def url(self, target: str) -> httpx.URL:
        """The URL of ``target`` (path and query) on this upstream, parsed once: httpx
        parses a str every time. Bounded, since clients choose the query strings."""
        url = self._urls.get(target)
        if url is None:
            url = httpx.URL(self.base_url.rstrip("/") + target)
            if len(self._urls) < _URL_CACHE_SIZE:
                self._urls[target] = url
        return url


@dataclass
class Environment:
    """What every interception shares: the client, the tools, the clocks."""

    client: httpx.AsyncClient
    tools: ToolSet
    config: BridgeConfig
    run_tool: ToolRunner = run_tool
    wall_clock: Callable[[], float] = time.time
    # The simulation's window on the engine's decisions (initiation, the lazy check), for
    # a reproducer's timeline; None in a real proxy.
    trace: Callable[[str], None] | None = None
    servers: ToolServers | None = None  # MCP servers, whose tools come and go
    # Upstream WebSockets, over the same network backend as ``client``.
    dialer: WebSocketDialer = field(default_factory=WebSocketDialer)
    chaos: Chaos = field(default_factory=Chaos)  # serve --chaos; no rule: never consulted
    breakers: Breakers | None = None  # None: no circuit breaker (``serve --breaker``)
    metrics: Metrics | None = None  # what ``/metrics`` serves

    def new_record(
        self,
        api: str,
        request: ClientRequest,
        *,
        keep_chunks: bool,
        client_secrets: list[str],
        tools: list[dict[str, Any]] | None = None,
        transport: Transport = "http",
    ) -> Interception:
        """The record of one interception starting now (``request.headers`` redacted);
        ``tools``: the injected tools offered, by default all of them."""
        clock_zero = trio.current_time()
        who = identify(request.headers, request.body)
        return Interception(
            api=api,
            request=request,
            started_at=self.wall_clock(),
            clock=lambda: round((trio.current_time() - clock_zero) * 1000, 3),
            tools=[t.to_toml_fields() for t in self.toolset()] if tools is None else tools,
            keep_chunks=keep_chunks,
            client_secrets=client_secrets,
            transport=transport,
            client=who.client,
            session=who.session,
        )

    def toolset(self) -> ToolSet:
        """The tools in play for a request starting now: the file's, then the servers'."""
        if self.servers is None:
            return self.tools
        return ToolSet.of([*self.tools, *self.servers.tools()])


class ResponseSink(Protocol):
    """What the engine writes a streamed response to: the HTTP server's ``ResponseWriter``,
    or one response's messages on a client WebSocket (``ws_bridge.WebSocketResponse``)."""

    @property
    def started(self) -> bool: ...

    async def start(self, status: int, headers: Headers, data: bytes = b"") -> None: ...

    async def send(self, data: bytes) -> None: ...

    async def respond(self, status: int, headers: Headers, body: bytes) -> None: ...

    async def wait_writable(self) -> None: ...


class _Initiate:
    """Channel item: the loop asks the relay to initiate the stream now."""


@dataclass(frozen=True)
class _Failure:
    """Channel item: the loop failed; the relay writes the error in the right shape."""

    error: ClientFacingError


_INITIATE = _Initiate()
_Item = bytes | _Initiate | _Failure


def error_payload(api: API, error: ClientFacingError) -> Any:
    """The error body in the provider's shape (an upstream's own error body when it is one)."""
    if isinstance(error, UpstreamStatusError):
        try:
            payload = json.loads(error.body)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            return payload
    return api.error_body(error.kind, error.message)


async def write_error_response(
    api: API, writer: ResponseSink, error: ClientFacingError, *, whole: bool = True
) -> None:
    """Answer ``error`` as an HTTP status with a JSON body.

    ``whole`` sends it with a Content-Length and ends the response; the lazy loop sends it
    as a start and a write, the way the Go gateway did, so a racing relay can append to it.
    """
    headers: Headers = [("content-type", "application/json")]
    if isinstance(error, UpstreamStatusError):
        body = error.body
        headers = forwarded_response_headers(error.headers) or headers
    else:
        body = dumps(api.error_body(error.kind, error.message)).encode()
        headers += refusal_headers(error.status)
        if error.retry_after is not None:
            headers.append(("retry-after", str(error.retry_after)))
    if whole:
        await writer.respond(error.status, headers, body)
    else:
        await writer.start(error.status, headers, body)


class ClientStream:
    """The streaming side of one request: the channel, the relay task, initiation."""

    def __init__(
        self,
        api: API,
        writer: ResponseSink,
        config: BridgeConfig,
        trace: Callable[[str], None] | None = None,
        delivered: Callable[[], None] = lambda: None,
    ) -> None:
        self.api = api
        self.writer = writer
        self.config = config
        self.trace = trace
        self.delivered = delivered  # called once the frames that end the response are out
        self.ending = False  # the frames put so far end the response
        self.cut = False  # a write failed: what was queued did not all reach the client
        self.initiated = trio.Event()
        self.sender, self.receiver = trio.open_memory_channel[_Item](config.channel_size)
        self.failed = False
        self.queued_bytes = 0  # put on the channel and not yet written to the client
        self._room = trio.Event()
        self.head: Headers = SSE_HEADERS  # what initiation sends; see ``relay_headers``

    def relay_headers(self, upstream: Headers) -> None:
        """Initiate with the upstream's headers too: the first iteration's, whose head
        starts the stream (request ids, rate-limit hints)."""
        self.head = intercepted_response_headers(SSE_HEADERS, upstream)

    async def put(self, frames: list[bytes]) -> None:
        """Queue frames for the relay without yielding unless the queue is full.

        Not checkpointing here lets the loop turn every upstream chunk already read into
        frames before the relay runs, so the relay writes them all in one send; the
        upstream read that follows is the checkpoint. Past ``max_queued_bytes`` it waits
        for the relay's writes, and so stops reading the upstream.
        """
        if frames:
            item = frames[0] if len(frames) == 1 else b"".join(frames)
            self.queued_bytes += len(item)
            try:
                self.sender.send_nowait(item)
            except trio.WouldBlock:
                await self.sender.send(item)
            while self.queued_bytes > self.config.max_queued_bytes:
                self._room = trio.Event()
                await self._room.wait()

    def _written(self, size: int) -> None:
        self.queued_bytes -= size
        if self.queued_bytes <= self.config.max_queued_bytes:
            self._room.set()

    def end_here(self) -> None:
        """The frames put so far end the response: once they are written, the client has
        its whole answer, and its leaving cuts nothing (``delivered`` is called)."""
        self.ending = True
        self._maybe_delivered()

    def _maybe_delivered(self) -> None:
        if self.ending and not self.queued_bytes and not self.cut:
            self.delivered()

    async def initiate(self) -> None:
        """Eager mode: have the relay initiate the stream, and wait until it has."""
        if not self.initiated.is_set():
            await self.sender.send(_INITIATE)
            await self.initiated.wait()

    async def fail(self, error: ClientFacingError) -> None:
        """Hand an error to the client in the shape the mode decides."""
        self.failed = True
        if self.config.stream_initiation == "lazy":
            waiting = self.sender.statistics().current_buffer_used
            if not self.initiated.is_set() and not waiting:
                # The pre-fix check: nothing initiated, nothing queued, so answer in JSON,
                # although the relay may hold a frame it is about to write.
                if self.trace is not None:
                    self.trace("lazy check: not initiated, nothing queued: JSON error")
                await write_error_response(self.api, self.writer, error, whole=False)
                return
        await self.sender.send(_Failure(error))

    async def relay(self) -> None:
        """Write frames as they come; initiate on the first; ping while idle."""
        async with self.receiver:
            while True:
                try:
                    first = await self._next_item()
                except trio.EndOfChannel:
                    return
                if first is None:  # a ping interval without one
                    if self.initiated.is_set():
                        await self.writer.send(self.api.ping_frame)
                    continue
                # Write when the client can take it, everything that came meanwhile in
                # one send. A slow client keeps frames off the channel but unwritten:
                # the window where the lazy loop's check goes wrong.
                await self.writer.wait_writable()
                if await self._write_batch(self._drain(first)):
                    return

    async def _next_item(self) -> _Item | None:
        """The next item, None after ``ping_interval`` without one: what ``receive``
        does, its checkpoints included, with the ping's cancel scope (some 60,000
        instructions) entered only when there is a wait."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            item = self.receiver.receive_nowait()
        except trio.WouldBlock:
            with trio.move_on_after(self.config.ping_interval):
                return await self.receiver.receive()
            return None
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    def _drain(self, first: _Item) -> list[_Item]:
        batch = [first]
        while True:
            try:
                batch.append(self.receiver.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return batch

    async def _write_batch(self, batch: list[_Item]) -> bool:
        """Write one batch in one send; True when the stream is over (an error went out)."""
        out: list[bytes] = []
        failure: _Failure | None = None
        for item in batch:
            if isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, _Failure):
                failure = item
                break
        queued = sum(len(item) for item in batch if isinstance(item, bytes))
        try:
            over = await self._write(out, failure)
        except BaseException:
            self.cut = True
            raise
        finally:
            self._written(queued)
        self._maybe_delivered()
        return over

    async def _write(self, out: list[bytes], failure: _Failure | None) -> bool:
        if failure is not None and not out and not self.initiated.is_set():
            await write_error_response(self.api, self.writer, failure.error)
            return True
        if failure is not None:
            out.append(self.api.error_frame(error_payload(self.api, failure.error)))
        data = b"".join(out)
        if not self.initiated.is_set():
            # the headers and the first frames in one write
            await self.writer.start(200, self.head, data)
            self.initiated.set()
            if self.trace is not None:
                self.trace("initiated set")
        elif data:
            await self.writer.send(data)
        return failure is not None


class _Measured:
    """``Interceptor.measured``: a class, not a generator, since it runs on every request."""

    __slots__ = ("conversation", "interceptor", "model", "started")

    def __init__(self, interceptor: Interceptor, conversation: Spent) -> None:
        self.interceptor = interceptor
        self.conversation = conversation
        self.model = ""
        self.started = 0.0

    def __enter__(self) -> None:
        interceptor = self.interceptor
        metrics = interceptor.env.metrics
        if metrics is None:
            return
        body = interceptor.record.request.body
        model = body.get("model") if isinstance(body, dict) else None
        self.model = model if isinstance(model, str) else ""
        self.started = trio.current_time()
        metrics.started(interceptor.api.provider, interceptor.record, self.model)

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        interceptor = self.interceptor
        metrics = interceptor.env.metrics
        if metrics is None:
            return
        if error is not None:  # so it is counted as what it was
            note_interruption(interceptor.record, error)
        now = trio.current_time()
        metrics.finished(
            interceptor.api.provider,
            interceptor.record,
            self.model,
            now - self.started,
            self.conversation,
            now,
        )


class _OpenUpstream:
    """``Interceptor.open_upstream``, as ``async with``: the breaker's gate and the 2xx
    answer on the way in, the response closed and the gate told how it ended on the way
    out. A class, not a generator: it runs for every upstream request."""

    __slots__ = ("body", "gate", "interceptor", "response")

    def __init__(self, interceptor: Interceptor, body: dict[str, Any]) -> None:
        self.interceptor = interceptor
        self.body = body

    async def __aenter__(self) -> tuple[UpstreamResponse, UpstreamExchange]:
        interceptor, body = self.interceptor, self.body
        content, base = interceptor.wire_body(body)
        self.gate = gate = gated(interceptor.breaker(body), trio.current_time)
        try:
            self.response, exchange = await interceptor.answer(body, content, base, gate)
        except BaseException as error:
            gate.__exit__(type(error), error, error.__traceback__)
            raise
        return self.response, exchange

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        try:
            await self.response.aclose()
        except BaseException as closing:
            self.gate.__exit__(type(closing), closing, closing.__traceback__)
            raise
        self.gate.__exit__(kind, error, tb)


class Interceptor:
    """Runs one intercepted request: the agentic loop, streaming or blocking."""

    def __init__(
        self,
        api: API,
        upstream: ProviderUpstream,
        env: Environment,
        request: Request,
        record: Interception,
        tools: ToolSet,
    ) -> None:
        self.api = api
        self.upstream = upstream
        self.env = env
        self.tools = tools  # what the request was offered, though servers change meanwhile
        self.request_headers = request.headers
        query = request.target.partition("?")[2]
        # The client's query string (``?beta=true``, ``?api-version=``) goes upstream too.
        self.target = api.upstream_path + ("?" + query if query else "")
        self.record = record
        if record.session is None:  # Claude Code's metadata.user_id: known once validated
            record.session = session_in_body(record.client, record.request.body)
        self.first_headers: Headers | None = None  # relayed: the first answer's headers
        # What chaos rules read of the request, taken before the loop grows its body.
        self.chaos_facts = self._facts() if env.chaos.watching else None
        # The client's body as it came and as parsed: an upstream body equal to it goes as
        # those bytes (see ``open_upstream``).
        self.client_body: tuple[Any, bytes] = (record.request.body, request.body)

    # -- upstream attempts ---------------------------------------------------------------
    def open_upstream(self, body: dict[str, Any]) -> _OpenUpstream:
        """An upstream response with a 2xx status, after failing over keys as needed; the
        circuit breaker, when on, admits the request first and hears its answer."""
        return _OpenUpstream(self, body)

    def wire_body(self, body: dict[str, Any]) -> tuple[bytes, WireHeaders]:
        """The upstream request's body and the headers every attempt sends."""
        parsed, raw = self.client_body
        # Unchanged (no tools injected, first iteration): the client's own bytes, not a
        # second serialization. json.dumps of a coding agent's 100 KB request costs about
        # a millisecond, and the upstream gets the body byte for byte.
        content = raw if raw and body == parsed else dumps(body).encode()
        base_headers = forwarded_request_headers(self.request_headers, byok=not self.upstream.pool)
        base_headers.append(("content-type", "application/json"))
        return content, wire(base_headers)

    def breaker(self, body: dict[str, Any]) -> Breaker | None:
        """The breaker of this request's provider, endpoint and model (None: none is on)."""
        if self.env.breakers is None:
            return None
        model = body.get("model")
        return self.env.breakers.of(
            self.api.provider, self.api.name, model if isinstance(model, str) else ""
        )

    async def answer(
        self, body: dict[str, Any], content: bytes, base: WireHeaders, gate: Gate
    ) -> tuple[UpstreamResponse, UpstreamExchange]:
        """The first 2xx answer, its body still to read; key by key while the pool says
        fail over, else an error answer raised."""
        pool = self.upstream.pool
        tried: set[int] = set()
        # One attribute read when no chaos rule is set: the relay's cost stays what it was.
        strike = self._chaos_strike() if self.env.chaos.states else None
        attempt = 0
        while True:
            headers = list(base)
            key = None
            if pool:
                key = pool.acquire(trio.current_time(), frozenset(tried))
                tried.add(key.index)
                headers += wire(self.upstream.auth_headers(key.secret))
            exchange = self.record.new_exchange(
                "POST", self.target, body, key.masked if key else None
            )
            request = UpstreamRequest("POST", self.upstream.url(self.target), headers, content)
            with translate_upstream_errors(exchange):
                if strike is None:
                    response = await send_upstream(self.env.client, request)
                else:
                    response = await chaos_wire.send(
                        self.env.client, request, strike, attempt, self.api.name, exchange
                    )
            attempt += 1
            try:
                received = list(response.headers.multi_items())
                exchange.response.started(response.status_code, received)
                # Every answer is reported, a success too: /aibridge/status shows it.
                failover = key is not None and pool.report(
                    key,
                    response.status_code,
                    response.headers.get("retry-after"),
                    trio.current_time(),
                    self.env.wall_clock(),
                )
                if response.status_code < 400:
                    gate.answered(response.status_code)
                    if self.first_headers is None:
                        self.first_headers = pool.masked_headers(received)
                    return response, exchange  # the caller closes it
                with translate_upstream_errors(exchange):
                    data = await response.aread()
                exchange.response.wrote(data)
            except BaseException:
                await response.aclose()
                raise
            await response.aclose()
            if failover:
                assert key is not None
                log.info("key %s answered %d: failing over", key.masked, response.status_code)
                continue
            # An upstream may echo the key it was sent: never to the client.
            raise UpstreamStatusError(
                response.status_code, pool.masked_headers(received), pool.masked_bytes(data)
            )

    def shown(self, frames: list[bytes], conversation: Conversation) -> list[bytes]:
        """Frames as the client may see them: an upstream error event may echo the key it
        was sent, so a failed conversation's frames are masked (as its recorded error is);
        the others go unscanned, off the hot path's cost."""
        if not conversation.failed:
            return frames
        return [self.upstream.pool.masked_bytes(frame) for frame in frames]

    def _facts(self) -> Facts:
        request = self.record.request
        return request_facts(
            self.api.name, request.path, self.request_headers, request.body, loop_turn=False
        )

    def _chaos_strike(self) -> Strike | None:
        """Whether a chaos rule strikes this upstream request (``proxy/chaos.py``)."""
        facts = self._chaos_facts()
        if self.record.tool_calls and not facts.after_tool_turn:
            facts = replace(facts, after_tool_turn=True)  # an agentic continuation
        return self._logged(self.env.chaos.decide(facts, trio.current_time()), "")

    def _chaos_tool_strike(self) -> Strike | None:
        """Whether an ``mcp-*`` rule strikes the MCP tool call about to run."""
        call = sum(1 for record in self.record.tool_calls if record.server is not None)
        strike = self.env.chaos.decide_tool(self._chaos_facts(), call, trio.current_time())
        return self._logged(strike, f" mcp call {call}")

    def _chaos_facts(self) -> Facts:
        if self.chaos_facts is None:  # a rule came in while this request ran
            self.chaos_facts = self._facts()
        return self.chaos_facts

    def _logged(self, strike: Strike | None, where: str) -> Strike | None:
        if strike is not None:
            log.info(
                "chaos rule %s strikes %s %s%s (%s, strike %d)",
                strike.rule.name,
                self.record.request.method,
                self._chaos_facts().path,
                where,
                strike.kind,
                strike.number,
            )
        return strike

    # -- the loop ------------------------------------------------------------------------
    async def _run_tools(self, calls: list[ToolCall]) -> list[ToolOutcome]:
        outcomes = []
        for call in calls:
            tool = self.tools.get(call.name)
            assert tool is not None, "only injected tools are returned as calls"
            started = trio.current_time()
            strike = self._chaos_tool_strike() if tool.mcp and self.env.chaos.states else None
            if strike is None:
                outcome = await self.env.run_tool(tool, call.input)
            else:
                outcome = await chaos_wire.tool_call(tool, strike)
            record = ToolCallRecord(call.name, call.input, outcome.text, outcome.is_error)
            record.chaos = strike.note() if strike is not None else None
            if tool.mcp is not None:
                record.server, record.server_tool = tool.mcp.server, tool.mcp.tool
                record.duration_ms = round((trio.current_time() - started) * 1000, 3)
            record.images = [image.as_json() for image in outcome.images]
            self.record.tool_calls.append(record)
            outcomes.append(outcome)
        return outcomes

    def measured(self, conversation: Spent) -> _Measured:
        """Count this interception in flight while it runs, and its facts when it ends."""
        return _Measured(self, conversation)

    async def run_blocking(self, conversation: Conversation, writer: ResponseWriter) -> None:
        with self.measured(conversation):
            await self._run_blocking(conversation, writer)

    async def _run_blocking(self, conversation: Conversation, writer: ResponseWriter) -> None:
        try:
            for _ in range(self.env.config.max_iterations):
                async with self.open_upstream(conversation.upstream_body()) as (response, exchange):
                    with translate_upstream_errors(exchange):
                        data = await response.aread()
                    exchange.response.wrote(data)
                try:
                    body = json.loads(data)
                except ValueError:
                    raise UpstreamBroken("upstream response is not valid JSON") from None
                calls = conversation.on_body(body)
                if not calls:
                    head = intercepted_response_headers(JSON_HEADERS, self.first_headers or [])
                    await writer.respond(200, head, dumps(conversation.client_body()).encode())
                    self.record.delivered = True
                    return
                conversation.add_results(calls, await self._run_tools(calls))
            raise self._loop_limit()
        except ClientFacingError as error:
            self.record.outcome = f"error: {error.message}"
            self.record.error_status = error.status
            await write_error_response(self.api, writer, error)

    def _loop_limit(self) -> LoopLimitExceeded:
        return LoopLimitExceeded(
            f"the agentic loop did not finish in {self.env.config.max_iterations} iterations"
        )

    def _delivered(self) -> None:
        self.record.delivered = True

    async def run_streaming(self, conversation: Conversation, writer: ResponseSink) -> None:
        with self.measured(conversation):
            await self._run_streaming(conversation, writer)

    async def _run_streaming(self, conversation: Conversation, writer: ResponseSink) -> None:
        client = ClientStream(
            self.api, writer, self.env.config, self.env.trace, delivered=self._delivered
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.relay)
            async with client.sender:
                try:
                    await self._loop(conversation, client)
                except ClientFacingError as error:
                    self.record.outcome = f"error: {error.message}"
                    self.record.error_status = error.status
                    await client.fail(error)

    async def _loop(self, conversation: Conversation, client: ClientStream) -> None:
        eager = self.env.config.stream_initiation == "eager"
        for iteration in range(self.env.config.max_iterations):
            if iteration and eager:
                await client.initiate()
            await self._iteration(conversation, client, first=not iteration)
            if conversation.failed:  # relayed as it came: the record and the log say why
                cause = self.upstream.pool.masked_text(conversation.failure)
                self.record.outcome = f"error: upstream error event: {cause}"
                # the upstream's error event, relayed, is the client's last: a client that
                # leaves once it has it (the SDKs raise on it and hang up) cut nothing
                client.end_here()
                return
            calls = conversation.end_stream()
            if not calls:
                await client.put(conversation.closing_frames())
                client.end_here()
                return
            conversation.add_results(calls, await self._run_tools(calls))
        raise self._loop_limit()

    async def _iteration(
        self, conversation: Conversation, client: ClientStream, *, first: bool
    ) -> None:
        """One upstream request of the loop, its events relayed through the conversation;
        the ``first`` one's response headers are the client's."""
        async with self.open_upstream(conversation.upstream_body()) as (response, exchange):
            if first:
                client.relay_headers(self.first_headers or [])
            await self._pump(response, exchange, conversation, client)

    async def _pump(
        self,
        response: UpstreamResponse,
        exchange: UpstreamExchange,
        conversation: Conversation,
        client: ClientStream,
    ) -> None:
        decoder = SSEDecoder()
        broken: UpstreamBroken | None = None
        with translate_upstream_errors(exchange):
            async with body_chunks(response) as chunks:
                async for chunk in chunks:
                    exchange.response.wrote(chunk)
                    frames: list[bytes] = []
                    try:
                        for event in decoder.feed(chunk):
                            frames += conversation.on_event(event)
                            if conversation.failed:
                                break
                    except UpstreamBroken as exc:
                        broken = exc  # the events before the broken one still go out
                    await client.put(self.shown(frames, conversation))
                    if conversation.complete:
                        # what the upstream sends after its last event changes nothing
                        client.end_here()
                    if conversation.failed or broken is not None:
                        break
        if broken is not None:
            raise broken


class recorded:
    """Note how an interception ended when the client left or it was cancelled, and hand
    the record to ``recorder`` however it ended.

    A client that leaves once it has its whole answer (``record.delivered``: the SDKs and
    Codex hang up on the final event, while the proxy may still be reading the upstream's
    end or closing the stream) cut nothing: its interception stays ``ok``, so a replay
    checks it. A class, not a generator: it runs on every request."""

    __slots__ = ("record", "recorder")

    def __init__(self, record: Interception, recorder: Recorder | None) -> None:
        self.record = record
        self.recorder = recorder

    def __enter__(self) -> Interception:
        return self.record

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        try:
            if error is not None:
                note_interruption(self.record, error)
        finally:
            if self.recorder is not None:
                self.recorder(self.record)


class interruptions_noted:
    """Set the record's outcome when the client left or the interception was cancelled."""

    __slots__ = ("record",)

    def __init__(self, record: Interception) -> None:
        self.record = record

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is not None:
            note_interruption(self.record, error)


def note_interruption(record: Interception, error: BaseException) -> None:
    """What ``error``, ending an interception, says of how it ended: a client that left,
    or a cancellation (what the streaming nursery's tasks raise arrives in a group)."""
    if isinstance(error, ClientDisconnected):
        _cut(record, "client disconnected")
    elif isinstance(error, trio.Cancelled):
        _cut(record, "cancelled")
    elif isinstance(error, BaseExceptionGroup):
        if error.subgroup(ClientDisconnected) is not None:
            _cut(record, "client disconnected")
        elif error.subgroup(trio.Cancelled) is not None:
            _cut(record, "cancelled")


def _cut(record: Interception, how: str) -> None:
    if not record.delivered:
        record.outcome = how


class translate_upstream_errors:
    """Turn httpx's transport errors into the client-facing upstream errors (a class, not
    a generator: it wraps every upstream send and read)."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: UpstreamExchange | None = None) -> None:
        self.exchange = exchange

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, httpx.TransportError):
            raise _translated(exc, self.exchange) from exc


def _translated(exc: httpx.TransportError, exchange: UpstreamExchange | None) -> ClientFacingError:
    if exchange is not None:
        exchange.error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout("upstream did not accept a connection in time")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream timed out: {type(exc).__name__}")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnreachable(f"upstream unreachable: {exc}")
    return UpstreamBroken(f"upstream connection lost: {type(exc).__name__}")
