"""A lean HTTP/1.1 client for the simulation: one request, paced reads, raw results.

It keeps what the wire said (status, headers, body bytes, whether the message ended)
instead of interpreting it, so the oracles can judge a response no SDK would accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import h11
import trio

from ..headers import Headers


@dataclass(frozen=True)
class Pace:
    """How the client reads: a delay before chosen reads, a read size, an early hang-up."""

    delays: Mapping[int, float] = field(default_factory=dict)
    read_size: int = 65536
    disconnect_after: int | None = None  # body bytes; None: read to the end


@dataclass
class ClientResult:
    status: int | None = None
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    protocol_error: str | None = None
    disconnected: bool = False


async def exchange(
    stream: trio.abc.Stream,
    method: str,
    target: str,
    body: bytes,
    pace: Pace,
    note: Callable[[str, bytes], None] | None = None,
    host: str = "proxy.sim",
) -> ClientResult:
    """Send one request over ``stream`` and read the response at the given pace; ``host``
    is the Host header (a real proxy's guard admits only the address it serves)."""
    result = ClientResult()
    conn = h11.Connection(h11.CLIENT)
    head = h11.Request(
        method=method,
        target=target,
        headers=[
            ("host", host),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
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
                delay = pace.delays.get(reads, 0.0)
                if delay:
                    await trio.sleep(delay)
                try:
                    data = await stream.receive_some(pace.read_size)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                reads += 1
                if note is not None:
                    note(f"client read {len(data)} bytes", bytes(data))
                conn.receive_data(bytes(data))
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
