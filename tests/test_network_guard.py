"""The plugin's network guard (pytest_plugin/network_guard.py), on its own: every client
path to a socket is refused for a non-loopback host, loopback and allowed hosts pass,
and the socket module is as it was afterwards."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import trio

from aibridge_cli.pytest_plugin.network_guard import (
    BlockedConnection,
    BlockedLookup,
    NetworkGuard,
    exempt,
)

FAR = "10.255.255.1"  # refused before any packet leaves


def test_names_and_addresses_outside_are_refused_before_any_traffic() -> None:
    with NetworkGuard() as guard:
        with pytest.raises(httpx.ConnectError, match=r"blocked a connection to api\.anthropic"):
            httpx.get("https://api.anthropic.com/v1/models")
        with pytest.raises(BlockedLookup):
            socket.getaddrinfo("api.openai.com", 443)
        with socket.socket() as sock, pytest.raises(BlockedConnection):
            sock.connect((FAR, 80))
        with socket.socket(socket.AF_INET6) as sock, pytest.raises(BlockedConnection):
            sock.connect_ex(("2001:db8::1", 443))
    assert guard.blocked == [
        "api.anthropic.com:443",
        "api.openai.com:443",
        f"{FAR}:80",
        "[2001:db8::1]:443",
    ]


def test_trio_and_asyncio_clients_are_refused_too() -> None:
    async def with_trio() -> None:
        await trio.open_tcp_stream("api.anthropic.com", 443)

    async def with_asyncio() -> None:
        await asyncio.open_connection("api.openai.com", 443)

    with NetworkGuard() as guard:
        with pytest.raises(OSError, match="blocked"):
            trio.run(with_trio)
        with pytest.raises(OSError, match="blocked"):
            asyncio.run(with_asyncio())
    assert guard.blocked == ["api.anthropic.com:443", "api.openai.com:443"]


def test_loopback_passes_and_the_socket_module_is_restored() -> None:
    originals = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with NetworkGuard() as guard:
            with socket.create_connection(server.getsockname()):
                pass
            with socket.create_connection(("localhost", server.getsockname()[1])):
                pass
    assert guard.blocked == []
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == originals


def test_an_allowed_name_and_the_addresses_it_resolves_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under the guard, the network itself is a fake: nothing leaves the machine."""
    looked_up: list[str] = []
    connected: list[object] = []

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connected.append(address))
    with NetworkGuard(["db.example.test"]) as guard, socket.socket() as sock:
        ((*_, address),) = socket.getaddrinfo("db.example.test", 5432)
        sock.connect(address)
        with pytest.raises(BlockedConnection):
            sock.connect(("192.0.2.8", 5432))  # an address the allowed name did not give
    assert looked_up == ["db.example.test"]
    assert connected == [("192.0.2.7", 5432)]
    assert guard.blocked == ["192.0.2.8:5432"]


def test_the_plugin_s_own_requests_pass_in_their_tasks_and_threads_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A recording proxy's request runs under ``exempt()``: the tasks it starts and the
    threads trio resolves names on pass; a task outside it does not."""
    looked_up: list[str] = []

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    async def main() -> list[str]:
        refused: list[str] = []

        async def proxy_request() -> None:
            with exempt():
                await trio.socket.getaddrinfo("api.anthropic.com", 443)
                async with trio.open_nursery() as nursery:  # a task it starts
                    nursery.start_soon(trio.socket.getaddrinfo, "api.openai.com", 443)

        async def code_under_test() -> None:
            try:
                await trio.socket.getaddrinfo("api.anthropic.com", 443)
            except OSError as exc:
                refused.append(str(exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(proxy_request)
            nursery.start_soon(code_under_test)
        return refused

    with NetworkGuard() as guard:
        refused = trio.run(main)
    assert looked_up == ["api.anthropic.com", "api.openai.com"]
    assert guard.blocked == ["api.anthropic.com:443"]
    assert len(refused) == 1
