"""A small correct pass-through relay, and four bugs to plant in it, for black-box tests.

Not aibridge: an independent trio + h11 proxy that forwards each request to one upstream
and relays the answer as it comes, byte for byte. It is what ``--oracles generic`` must
pass without a single false positive, and, with a bug planted, must catch:

* ``split``: re-frames the SSE stream per socket read and drops an event cut across reads;
* ``drop-stop``: drops Anthropic's ``content_block_stop`` events;
* ``early-200``: answers 200 (event stream) before it knows the upstream's status;
* ``leak``: reads the upstream answer to its end after the client has left.
"""

from __future__ import annotations

import json
from typing import Literal

import h11
import trio

Bug = Literal["split", "drop-stop", "early-200", "leak"]
_HOP_BY_HOP = {b"connection", b"transfer-encoding", b"content-length", b"keep-alive", b"host"}
READ_TIMEOUT = 30.0


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
            if self.bug == "early-200":
                stream_head = [(b"content-type", b"text/event-stream")]
                early = h11.Response(status_code=200, headers=stream_head)
                await stream.send_all(client.send(early))
            frames = _Frames(None)
            while True:
                try:
                    event = await _next_event(conn, up)
                except (h11.RemoteProtocolError, trio.BrokenResourceError, EOFError):
                    if client.our_state is h11.SEND_RESPONSE:
                        await _send_json(client, stream, 502, "the upstream closed the connection")
                    return  # mid-body: hang up without ending the message, so the client knows
                if isinstance(event, h11.Response):
                    # The SSE plants re-frame event streams only, as a relay that parses SSE would.
                    sse = any(v.startswith(b"text/event-stream") for _, v in event.headers)
                    frames = _Frames(self.bug if sse else None)
                    if self.bug != "early-200":
                        kept = [(k, v) for k, v in event.headers if k.lower() not in _HOP_BY_HOP]
                        response = h11.Response(status_code=event.status_code, headers=kept)
                        await stream.send_all(client.send(response))
                elif isinstance(event, h11.Data):
                    data = frames.feed(bytes(event.data))
                    if data:
                        await self._send(client, stream, data)
                elif isinstance(event, h11.EndOfMessage):
                    await stream.send_all(client.send(h11.EndOfMessage()))
                    return

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


async def _send_json(
    client: h11.Connection, stream: trio.SocketStream, status: int, message: str
) -> None:
    body = json.dumps({"error": {"type": "api_error", "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
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
