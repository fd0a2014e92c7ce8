"""Does a ``--target`` speak HTTP? One short exchange, before a replay or a black-box
campaign sends it anything, so a port that accepts connections but is something else
(an SSH server, a database, a program that never answers) is one line blaming the
target within seconds, not every request timing out and the fixture taking the blame.

The replay asks ``GET /healthz``: any HTTP status answers it (an aibridge proxy serves
it itself; another proxy relays or refuses it). A black-box campaign has bound its mock
upstream already, so a relay would forward that request to a socket nobody serves yet
and never answer: it sends a request without a ``Host`` instead, which an HTTP/1.1 server
must refuse itself (RFC 9112, 3.2) and a relay cannot forward, and lets the target close
the connection on it.
"""

from __future__ import annotations

import trio

# A proper request (replay) and one an HTTP/1.1 server answers without forwarding (fuzz).
HEALTH_REQUEST = "GET /healthz HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n"
UNFORWARDABLE_REQUEST = "GET / HTTP/1.1\r\nconnection: close\r\n\r\n"


def answer_problem(data: bytes, allow_close: bool) -> str | None:
    """What is wrong with a target's answer: its first bytes (at least 5, or all it sent
    before closing the connection); None when it speaks HTTP."""
    if data.startswith(b"HTTP/"):
        return None
    if data:
        return f"answered something that is not HTTP: {data[:40]!r}"
    return None if allow_close else "closed the connection without an HTTP answer"


async def probe_http(
    stream: trio.abc.Stream, request: str, patience: float, *, allow_close: bool = False
) -> str | None:
    """Send ``request`` on ``stream`` and judge the answer; a problem within ``patience``
    seconds (silence is one), or None for a target that speaks HTTP."""
    data = b""
    with trio.move_on_after(patience):
        try:
            await stream.send_all(request.encode("ascii"))
            while len(data) < 5:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break  # closed
                data += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # reset: judged on what came before
        return answer_problem(data, allow_close)
    return f"accepted the connection but sent no HTTP answer in {patience:g} s"
