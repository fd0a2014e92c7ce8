"""What a client's socket takes at once, asked of the kernel without a trip through
trio's scheduler.

trio makes every socket operation a checkpoint: a write the kernel takes at once still
parks the task until the scheduler's next pass (30 thousand instructions under
callgrind, trio 0.35), and a bounded write costs a cancel scope too (57 thousand). The
server's writes almost always fit the socket's buffer, so it asks here first and falls
back to trio's wait only for what is left. Streams that are not sockets (the
simulation's in-memory ones) are never asked: they keep trio's checkpoints, and the
fuzzer's schedules with them.
"""

from __future__ import annotations

import os
import select

import trio


def socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket under ``stream``, or None for a stream that is not a plain socket.

    None on Windows too: a socket there is no file descriptor ``os.write`` can take."""
    if os.name != "posix" or not isinstance(stream, trio.SocketStream):
        return None
    return stream.socket


def write_now(sock: trio.socket.SocketType, data: bytes) -> int:
    """Write what the kernel takes of ``data`` without blocking; the number of bytes.

    A socket closed or reset raises ``OSError`` (a closed one's descriptor is -1: it is
    asked each time, never kept, so a number reused by another socket is never written)."""
    try:
        return os.write(sock.fileno(), data)
    except BlockingIOError:
        return 0


def writable_now(sock: trio.socket.SocketType) -> bool:
    """True when the kernel would take bytes on ``sock`` right now (one syscall)."""
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        ready = poller.poll(0)
    except (OSError, ValueError):
        return False  # closed: the wait reports it
    return bool(ready) and bool(ready[0][1] & select.POLLOUT)
