"""No silent live call: while a test that uses aibridge runs, a connection to a host other
than loopback (and the hosts allowed) is refused and remembered, and the test fails
naming it.

Why at the socket: the plugin points ``ANTHROPIC_BASE_URL``/``OPENAI_BASE_URL`` at its
server for the test, but a client built before (at import time, in a session fixture
made before the first aibridge test) read them earlier and would go to the real API,
silently, with whatever key it found. Every Python client ends in
``socket.getaddrinfo`` (a name) and ``socket.socket.connect`` (an address), whatever its
HTTP library or event loop (trio and asyncio call both): the guard replaces both for
the length of the test, as pytest-recording's ``--block-network`` does, and puts them
back after. Names are refused before they are looked up, so a blocked test fails at
once, with the host's name, and never waits on DNS.

While recording, the plugin's own proxy must reach the upstream: its requests run under
``exempt()``, a context variable, which trio hands on to the tasks a request starts and
to the threads it resolves names on (``trio.to_thread`` runs in a copy of the caller's
context). So even then the code under test reaches no host by itself, and the upstream's
host is not opened to it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_EXEMPT: ContextVar[bool] = ContextVar("aibridge_network_guard_exempt", default=False)


@contextmanager
def exempt() -> Iterator[None]:
    """Sockets opened inside (and in what it starts) pass the guard: the plugin's proxy."""
    token = _EXEMPT.set(True)
    try:
        yield
    finally:
        _EXEMPT.reset(token)


class BlockedConnection(ConnectionRefusedError):
    """A connection the guard refused; the test fails afterwards naming its host."""


class BlockedLookup(socket.gaierror):
    """A name lookup the guard refused (before any DNS traffic)."""


def _is_local(host: str) -> bool:
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class NetworkGuard:
    """A context manager: sockets refuse every host but loopback and ``allowed`` inside.

    ``blocked`` lists each refused ``host:port`` once, in order. One guard at a time.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {host.lower() for host in allowed if host}
        self.blocked: list[str] = []
        self._lock = threading.Lock()
        self._saved: tuple[Any, Any, Any] | None = None

    def permits(self, host: Any) -> bool:
        """True for no host (a listening socket's lookup), loopback, the allowed, and any
        host inside ``exempt()``."""
        if host is None or host in ("", b"") or _EXEMPT.get():
            return True
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        return _is_local(text) or text.lower() in self.allowed

    def _refused(self, host: Any, port: Any) -> str:
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        where = f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
        with self._lock:
            if where not in self.blocked:
                self.blocked.append(where)
        return (
            f"aibridge blocked a connection to {where}: a test using aibridge reaches "
            "only aibridge's server and loopback"
        )

    def __enter__(self) -> NetworkGuard:
        if self._saved is not None:
            raise RuntimeError("this NetworkGuard is already on")
        getaddrinfo = socket.getaddrinfo
        connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
        self._saved = (getaddrinfo, connect, connect_ex)
        guard = self

        def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if not guard.permits(host):
                raise BlockedLookup(errno.EACCES, guard._refused(host, port))
            found = getaddrinfo(host, port, *args, **kwargs)
            if host is not None and str(host).lower() in guard.allowed:
                # an allowed name's addresses are allowed too: the connect that follows
                with guard._lock:
                    guard.allowed.update(str(info[4][0]).lower() for info in found)
            return found

        def checked(sock: Any, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
                if not guard.permits(address[0]):
                    raise BlockedConnection(errno.ECONNREFUSED, guard._refused(*address[:2]))

        def guarded_connect(sock: Any, address: Any) -> None:
            checked(sock, address)
            connect(sock, address)

        def guarded_connect_ex(sock: Any, address: Any) -> int:
            checked(sock, address)
            result: int = connect_ex(sock, address)
            return result

        socket.getaddrinfo = guarded_getaddrinfo
        socket.socket.connect = guarded_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved is None:
            return
        getaddrinfo, connect, connect_ex = self._saved
        self._saved = None
        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
