"""A lean HTTP/1.1 client for the simulation: one request (or one WebSocket message),
paced reads, raw results.

It keeps what the wire said (status, headers, body bytes, whether the message ended)
instead of interpreting it, so the oracles can judge a response no SDK would accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import h11
import trio
import wsproto
import wsproto.utilities
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WSRequest

from ..headers import FrozenHeaders, Headers
from ..providers.openai_responses_ws import is_last_message, sse_view


@dataclass(frozen=True)
class Pace:
    """How the client reads: a delay before chosen reads, a read size, an early hang-up."""

    delays: Mapping[int, float] = field(default_factory=dict)
    read_size: int = 65536
    disconnect_after: int | None = None  # body bytes; None: read to the end
    start_after: float = 0.0  # seconds before the request goes out (a fractional clock)


@dataclass
class ClientResult:
    status: int | None = None
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    protocol_error: str | None = None
    disconnected: bool = False
    messages: list[str] = field(default_factory=list)  # WebSocket mode: as they came
    # A socket with several responses: each one's own result, its messages from its
    # response.create to the one that ends it (empty for a socket with one response)
    responses: list[ClientResult] = field(default_factory=list)


async def exchange(
    stream: trio.abc.Stream,
    method: str,
    target: str,
    body: bytes,
    pace: Pace,
    note: Callable[[str, bytes], None] | None = None,
    host: str = "proxy.sim",
    extra_headers: FrozenHeaders = (),
) -> ClientResult:
    """Send one request over ``stream`` and read the response at the given pace; ``host``
    is the Host header (a real proxy's guard admits only the address it serves),
    ``extra_headers`` go after the request's own (a black-box target's client auth)."""
    result = ClientResult()
    if pace.start_after:
        await trio.sleep(pace.start_after)
    conn = h11.Connection(h11.CLIENT)
    head = h11.Request(
        method=method,
        target=target,
        headers=[
            ("host", host),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            *extra_headers,
        ],
    )
    await stream.send_all(
        conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    )
    reads = 0
    parts: list[bytes] = []
    if pace.disconnect_after == 0:
        result.disconnected = True  # hang up as soon as the request is out
        return result
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await _paced_read(stream, pace, reads, note))
                reads += 1
            elif isinstance(event, h11.Response):
                result.status = event.status_code
                result.headers = [(k.decode(), v.decode()) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
                if (
                    pace.disconnect_after is not None
                    and sum(map(len, parts)) >= pace.disconnect_after
                ):
                    result.disconnected = True
                    break
            elif isinstance(event, h11.EndOfMessage):
                result.complete = True
                break
            else:
                break  # ConnectionClosed or PAUSED
    except h11.RemoteProtocolError as exc:
        result.protocol_error = str(exc)
    result.body = b"".join(parts)
    if pace.disconnect_after is not None and not result.complete:
        result.disconnected = True
    return result


async def _paced_read(
    stream: trio.abc.Stream, pace: Pace, index: int, note: Callable[[str, bytes], None] | None
) -> bytes:
    """Read ``index`` (after its planned delay); b"" when the stream ended or broke."""
    delay = pace.delays.get(index, 0.0)
    if delay:
        await trio.sleep(delay)
    try:
        data = bytes(await stream.receive_some(pace.read_size))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        data = b""
    if note is not None:
        note(f"client read {len(data)} bytes", data)
    return data


async def websocket_exchange(
    stream: trio.abc.Stream,
    target: str,
    body: bytes,
    pace: Pace,
    note: Callable[[str, bytes], None] | None = None,
    creates: Sequence[bytes] = (),
    on_create: Callable[[int], None] | None = None,
) -> ClientResult:
    """Open a WebSocket on ``target``, send ``body`` as one message and read the messages
    that answer it (to the response's end) at the given pace; then each of ``creates`` in
    turn, as Codex sends its next turn once the previous response ended (its terminal
    event or an error). ``on_create(k)`` is called before response ``k``'s message goes out.

    The result is the messages' SSE view (``openai_responses_ws.sse_view``): the oracles
    judge it with the grammar and normalization of an HTTP stream. A refused upgrade is
    kept as the HTTP answer it is. With ``creates``, ``responses`` holds each response's
    own view; a message after a response's end belongs to the next one, as a client
    would take it.
    """
    result = ClientResult()
    conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(conn.send(WSRequest(host="proxy.sim", target=target)))
    messages: list[str] = []
    responses: list[list[str]] = [[]]
    parts: list[str] = []
    received = 0
    reads = 0
    opened = False
    refused: list[bytes] = []
    closed = False
    try:
        while True:
            # the pace counts the reads of the answer, not the handshake's
            data = await _paced_read(stream, pace, reads if opened else -1, note)
            reads += opened
            conn.receive_data(data or None)
            for event in conn.events():
                if isinstance(event, AcceptConnection):
                    opened = True
                    if pace.disconnect_after == 0:
                        result.disconnected = True
                        return result
                    if on_create is not None:
                        on_create(0)
                    await stream.send_all(conn.send(Message(data=body.decode())))
                elif isinstance(event, RejectConnection):
                    result.status = event.status_code
                    result.headers = [(k.decode(), v.decode()) for k, v in event.headers]
                    result.complete = not event.has_body
                elif isinstance(event, RejectData):
                    refused.append(bytes(event.data))
                    result.complete = event.body_finished
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    received += len(event.data.encode())
                    if event.message_finished:
                        messages.append("".join(parts))
                        responses[-1].append(messages[-1])
                        parts = []
                        ended = is_last_message(messages[-1]) and not result.complete
                        if ended and len(responses) <= len(creates):
                            # the next turn, on the same socket
                            if on_create is not None:
                                on_create(len(responses))
                            message = creates[len(responses) - 1].decode()
                            responses.append([])
                            await stream.send_all(conn.send(Message(data=message)))
                        elif ended:
                            # The last response is over: close, and keep what still comes
                            # before the proxy's close (nothing should: the oracles see it).
                            result.complete = True
                            await stream.send_all(conn.send(CloseConnection(code=1000)))
                    cut = pace.disconnect_after
                    if cut is not None and received >= cut and not result.complete:
                        result.disconnected = True
                        break
                elif isinstance(event, Ping) and not result.complete:
                    await stream.send_all(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    closed = True
            if closed or result.disconnected or not data or (result.status and result.complete):
                break
    except wsproto.utilities.RemoteProtocolError as exc:
        result.protocol_error = str(exc)
    if refused or result.status is not None:
        result.body = b"".join(refused)
        return result
    result.messages = messages
    status, headers, view = sse_view(messages)
    if opened:
        result.status, result.headers, result.body = status, headers, view
    if pace.disconnect_after is not None and not result.complete:
        result.disconnected = True
    if creates and opened:
        result.responses = [
            _response_view(own, k < len(responses) - 1 or result.complete, result.disconnected)
            for k, own in enumerate(responses)
        ]
    return result


def _response_view(messages: list[str], complete: bool, disconnected: bool) -> ClientResult:
    """One response of a socket as a result of its own: its messages' SSE view."""
    if not messages:
        return ClientResult(disconnected=disconnected)  # no answer came
    status, headers, view = sse_view(messages)
    return ClientResult(
        status,
        headers,
        view,
        complete,
        disconnected=disconnected and not complete,
        messages=messages,
    )
