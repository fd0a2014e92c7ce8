"""A small correct pass-through relay, and bugs to plant in it, for black-box tests.

Not aibridge: an independent trio + h11 proxy that forwards each request to one upstream
and relays the answer as it comes, byte for byte. It is what ``--oracles generic`` must
pass without a single false positive, and, with a bug planted, must catch:

* ``split``: re-frames the SSE stream per socket read and drops an event cut across reads;
* ``drop-stop``: drops Anthropic's ``content_block_stop`` events;
* ``early-200``: answers 200 (event stream) before it knows the upstream's status;
* ``leak``: reads the upstream answer to its end after the client has left;
* ``retry-late``: when the upstream breaks off mid-body, sends the request again and
  relays the new answer after the bytes already sent;
* ``overload-400``: an upstream 500/529 reaches the client as a 400;
* ``drop-field``: the request goes up without its ``max_tokens`` (or ``temperature``);
* ``late-request``: waits in a queue, then calls the upstream for a client that left;
* ``clean-end``: an upstream that breaks off mid-body gets a clean end of message;
* ``strip-ids``: the upstream's request id headers are not passed on.

Correct variants, which must pass too: ``retry`` retries once when the upstream fails
before any byte went to the client (a 5xx, a reset); ``queue`` waits in the same queue as
``late-request`` but drops a request whose client left meanwhile; ``html-502`` answers
its own 502 as an HTML page; ``buffer`` holds each answer whole before relaying it (a 502
page when the upstream breaks off); ``rewrap`` gives upstream errors its own body, their
status and error type kept.
"""

from __future__ import annotations

import json
from typing import Literal

import h11
import trio

Bug = Literal[
    "split",
    "drop-stop",
    "early-200",
    "leak",
    "retry-late",
    "overload-400",
    "drop-field",
    "late-request",
    "clean-end",
    "strip-ids",
    # not bugs: a relay that retries once before it answers, one with a queue in front,
    # one whose own errors are HTML pages, one that holds every answer whole, one that
    # re-wraps upstream error bodies (their status and error type kept)
    "retry",
    "queue",
    "html-502",
    "buffer",
    "rewrap",
]
_HOP_BY_HOP = {b"connection", b"transfer-encoding", b"content-length", b"keep-alive", b"host"}
_IDS = {b"request-id", b"x-request-id"}
READ_TIMEOUT = 30.0
QUEUE_DELAY = 0.4


class PassThroughRelay:
    def __init__(self, upstream: tuple[str, int], bug: Bug | None = None) -> None:
        self.upstream = upstream
        self.bug = bug

    async def serve(self, stream: trio.SocketStream) -> None:
        client = h11.Connection(h11.SERVER)
        try:
            request, body = await _read_request(client, stream)
        except (h11.RemoteProtocolError, trio.BrokenResourceError, EOFError):
            await stream.aclose()
            return
        try:
            await self._relay(client, stream, request, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass  # the client left: the upstream connection was closed with the nursery
        finally:
            await stream.aclose()

    async def _relay(
        self, client: h11.Connection, stream: trio.SocketStream, request: h11.Request, body: bytes
    ) -> None:
        # A queue in front of the upstream (a rate limiter, a slow auth lookup). The control
        # watches whether its client is still there meanwhile; the plant does not.
        if self.bug == "queue" and await _client_left(stream, QUEUE_DELAY):
            return
        if self.bug == "late-request":
            await trio.sleep(QUEUE_DELAY)
        if self.bug == "drop-field":
            body = _drop_field(body)
        if self.bug == "early-200":
            stream_head = [(b"content-type", b"text/event-stream")]
            early = h11.Response(status_code=200, headers=stream_head)
            await stream.send_all(client.send(early))
        retries = 1 if self.bug in ("retry", "retry-late") else 0
        while not await self._attempt(client, stream, request, body, retries > 0):
            retries -= 1

    async def _attempt(
        self,
        client: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes,
        may_retry: bool,
    ) -> bool:
        """One upstream attempt relayed to the client; False: try again."""
        up = await trio.open_tcp_stream(*self.upstream)
        async with up:
            conn = h11.Connection(h11.CLIENT)
            headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
            head = h11.Request(
                method=request.method,
                target=request.target,
                headers=[(b"host", b"upstream"), (b"content-length", b"%d" % len(body)), *headers],
            )
            await up.send_all(
                conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
            )
            frames = _Frames(None)
            held: h11.Response | None = None  # "buffer", "rewrap": the answer is held whole
            body_held = b""
            while True:
                try:
                    event = await _next_event(conn, up)
                except (h11.RemoteProtocolError, trio.BrokenResourceError, EOFError):
                    committed = client.our_state is not h11.SEND_RESPONSE
                    if may_retry and (not committed or self.bug == "retry-late"):
                        return False  # "retry": nothing sent yet; "retry-late": the plant
                    if not committed:
                        html = self.bug in ("html-502", "buffer")
                        await _send_error(client, stream, 502, "the upstream broke off", html)
                    elif self.bug == "clean-end":
                        await stream.send_all(client.send(h11.EndOfMessage()))  # the plant
                    return True  # mid-body: hang up, the message unended, so the client knows
                if isinstance(event, h11.Response):
                    if may_retry and event.status_code >= 500 and self.bug == "retry":
                        return False  # a server error, before any byte went to the client
                    # The SSE plants re-frame event streams only, as a relay that parses SSE would.
                    sse = any(v.startswith(b"text/event-stream") for _, v in event.headers)
                    frames = _Frames(self.bug if sse else None)
                    status = event.status_code
                    if self.bug == "overload-400" and status in (500, 529):
                        status = 400  # the plant: an overload told as the client's mistake
                    dropped = _HOP_BY_HOP | (_IDS if self.bug == "strip-ids" else set())
                    kept = [(k, v) for k, v in event.headers if k.lower() not in dropped]
                    response = h11.Response(status_code=status, headers=kept)
                    if self.bug == "buffer" or (self.bug == "rewrap" and status >= 400):
                        held = response
                    elif client.our_state is h11.SEND_RESPONSE:
                        await stream.send_all(client.send(response))
                elif isinstance(event, h11.Data):
                    data = frames.feed(bytes(event.data))
                    if held is not None:
                        body_held += data
                    elif data:
                        await self._send(client, stream, data)
                elif isinstance(event, h11.EndOfMessage):
                    if held is not None:
                        if self.bug == "rewrap":
                            body_held = _rewrapped(body_held)
                        await stream.send_all(client.send(held) + client.send(h11.Data(body_held)))
                    await stream.send_all(client.send(h11.EndOfMessage()))
                    return True

    async def _send(self, client: h11.Connection, stream: trio.SocketStream, data: bytes) -> None:
        try:
            await stream.send_all(client.send(h11.Data(data=data)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.bug != "leak":
                raise
            # The plant: keep reading the upstream for a client that is gone.


class _Frames:
    """What to forward of each upstream read: all of it, unless a bug re-frames it."""

    def __init__(self, bug: Bug | None) -> None:
        self.bug = bug
        self.buffer = b""

    def feed(self, data: bytes) -> bytes:
        if self.bug == "split":
            # The plant: each read is taken as whole events; a partial last one is dropped.
            return b"".join(e + b"\n\n" for e in data.split(b"\n\n")[:-1])
        if self.bug != "drop-stop":
            return data
        self.buffer += data
        *events, self.buffer = self.buffer.split(b"\n\n")
        return b"".join(
            e + b"\n\n" for e in events if not e.startswith(b"event: content_block_stop")
        )


async def _client_left(stream: trio.SocketStream, seconds: float) -> bool:
    """Wait ``seconds``, watching whether the client hung up meanwhile."""
    with trio.move_on_after(seconds):
        try:
            data = await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return True
        if not data:
            return True
        await trio.sleep_forever()  # a pipelined byte: not ours to read; wait the rest
    return False


def _drop_field(body: bytes) -> bytes:
    """The plant: the request body without its ``max_tokens`` (or ``temperature``)."""
    data = json.loads(body)
    for name in ("max_tokens", "max_output_tokens", "max_completion_tokens", "temperature"):
        if name in data:
            del data[name]
            break
    return json.dumps(data).encode()


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            if isinstance(event, h11.ConnectionClosed):
                raise EOFError
            return event
        with trio.fail_after(READ_TIMEOUT):
            data = await stream.receive_some(65536)
        conn.receive_data(data)


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request, bytes]:
    request: h11.Request | None = None
    body = b""
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, body


def _rewrapped(body: bytes) -> bytes:
    """An upstream error body in the relay's own words, its error type kept."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return body
    kind = error.get("type", "api_error") if isinstance(error, dict) else "api_error"
    wrapped = {"error": {"type": kind, "message": "the upstream refused", "source": "relay"}}
    return json.dumps(wrapped).encode()


async def _send_error(
    client: h11.Connection, stream: trio.SocketStream, status: int, message: str, html: bool
) -> None:
    """The relay's own error: JSON, or an HTML page as reverse proxies write them."""
    if html:
        body = f"<html><body><h1>{status} Bad Gateway</h1>{message}</body></html>".encode()
        media = b"text/html"
    else:
        body = json.dumps({"error": {"type": "api_error", "message": message}}).encode()
        media = b"application/json"
    headers = [(b"content-type", media), (b"content-length", b"%d" % len(body))]
    await stream.send_all(
        client.send(h11.Response(status_code=status, headers=headers))
        + client.send(h11.Data(data=body))
        + client.send(h11.EndOfMessage())
    )


async def serve_relay(
    relay: PassThroughRelay,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``relay`` on a free loopback port; reports the port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(relay.serve, listeners)
