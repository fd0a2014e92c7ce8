"""The server's own response writer against h11's: the same bytes, the same keep-alive
decision and the same refusals, for every mix of request and response that shapes them."""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aibridge_cli.headers import SSE_HEADERS
from aibridge_cli.proxy.http11_response import Body, Peer, request_keep_alive, response_head

# (method, version, connection header): None for no request read (a 400 for a broken head)
REQUESTS: list[tuple[bytes, bytes, str | None] | None] = [
    (b"GET", b"1.1", None),
    (b"POST", b"1.1", None),
    (b"HEAD", b"1.1", None),
    (b"POST", b"1.1", "close"),
    (b"POST", b"1.1", "Keep-Alive, CLOSE"),
    (b"GET", b"1.0", None),
    (b"HEAD", b"1.0", None),
    (b"CONNECT", b"1.1", None),
    None,
]
HEADER_SETS: list[list[tuple[str, str]]] = [
    [],
    [("content-type", "application/json"), ("content-length", "5")],
    [*SSE_HEADERS, ("request-id", "req_1")],
    [("Content-Type", "text/plain"), ("Transfer-Encoding", "Chunked")],
    [("content-length", "5, 5"), ("Content-Length", "5"), ("x-a", "")],
    [("connection", "close"), ("content-length", "5")],
    [("Connection", "upgrade, keep-alive"), ("x-b", "a  b\tc")],
    [("x-a", "1"), ("Host", "example.com"), ("host", "other"), ("content-length", "5")],
    [("content-length", "5"), ("transfer-encoding", "chunked")],
]
STATUSES = [200, 204, 304, 404, 201, 299]
BODY = [b"he", b"", b"llo"]


def h11_answer(
    request: tuple[bytes, bytes, str | None] | None,
) -> h11.Connection:
    """A server-side h11 connection that has read ``request`` and may answer it."""
    connection = h11.Connection(h11.SERVER)
    if request is None:
        connection.receive_data(b"NOT A REQUEST\r\n\r\n")
        with pytest.raises(h11.RemoteProtocolError):
            connection.next_event()
        return connection
    method, version, close = request
    head = b"%s / HTTP/%s\r\nhost: x\r\n" % (method, version)
    if close is not None:
        head += b"connection: %s\r\n" % close.encode()
    connection.receive_data(head + b"\r\n")
    while type(connection.next_event()) is not h11.EndOfMessage:
        pass
    return connection


def peer_of(request: tuple[bytes, bytes, str | None] | None) -> Peer:
    if request is None:
        return Peer(None, None, keep_alive=True)
    method, version, close = request
    headers = [("host", "x")] + ([] if close is None else [("connection", close)])
    return Peer(method, version, request_keep_alive(version, headers))


def framed(body: Body, parts: list[bytes]) -> bytes:
    """The body bytes after the head: each part framed, then the end."""
    return b"".join(body.data(part) for part in parts) + body.end()


@pytest.mark.parametrize(
    ("request_", "headers", "status"), list(itertools.product(REQUESTS, HEADER_SETS, STATUSES))
)
def test_the_wire_is_h11s(
    request_: tuple[bytes, bytes, str | None] | None, headers: list[tuple[str, str]], status: int
) -> None:
    connection = h11_answer(request_)
    silent = (
        status in (204, 304)
        or (request_ is not None and request_[0] == b"HEAD")
        or (request_ is not None and request_[0] == b"CONNECT" and status < 300)
    )
    parts = [] if silent else BODY  # five bytes, as every declared length says
    try:
        expected = connection.send(h11.Response(status_code=status, headers=headers)) or b""
        expected += b"".join(connection.send(h11.Data(data=part)) or b"" for part in parts)
        expected += connection.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        # h11 refuses it (a body counted against a length it does not match): so do we
        with pytest.raises(h11.LocalProtocolError):
            framed(response_head(status, headers, peer_of(request_)).body, parts)
        return
    head = response_head(status, headers, peer_of(request_))
    assert head.data + framed(head.body, parts) == expected
    assert head.keep_alive == (connection.our_state is h11.DONE)


BAD_HEADERS: list[list[tuple[str, str]]] = [
    [("bad name", "x")],
    [("x-a", "one\r\nx-injected: two")],
    [("x-a\r\nx-injected", "two")],
    [("x-a", "two\nx-b: three")],
    [("x-a", " leading space")],
    [("x-a", "trailing space ")],
    [("x-a", "nul\x00")],
    [("x-a", "form\x0cfeed")],
    [("x-a", "vertical\x0btab")],
    [("x-a", "tab at the end\t")],
    [("x-a", "\tat the start")],
    [("x-a", "fine"), ("x-b", " second starts with a space")],
    [("x-a", "first ends with a tab\t"), ("x-b", "fine")],
    [("", "empty name")],
    [("content-length", "5"), ("content-length", "6")],
    [("content-length", "5, 6")],
    [("content-length", "five")],
    [("transfer-encoding", "gzip")],
    [("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_what_h11_refuses_is_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(h11.LocalProtocolError):
        h11_answer(REQUESTS[0]).send(h11.Response(status_code=200, headers=headers))
    with pytest.raises(h11.LocalProtocolError):
        response_head(200, headers, peer_of(REQUESTS[0]))


def test_a_header_that_is_not_ascii_is_refused_as_by_h11() -> None:
    with pytest.raises(UnicodeEncodeError):
        h11.Response(status_code=200, headers=[("x-a", "café")])
    with pytest.raises(UnicodeEncodeError):
        response_head(200, [("x-a", "café")], peer_of(REQUESTS[0]))


@pytest.mark.parametrize("status", [100, 101, 199, 1000])
def test_a_status_outside_200_to_999_is_refused(status: int) -> None:
    with pytest.raises(h11.LocalProtocolError):
        response_head(status, [], peer_of(REQUESTS[0]))


def test_the_body_refuses_what_its_length_does_not_allow() -> None:
    peer = peer_of(REQUESTS[0])
    with pytest.raises(h11.LocalProtocolError, match="Too much data"):
        response_head(200, [("content-length", "2")], peer).body.data(b"abc")
    with pytest.raises(h11.LocalProtocolError, match="Too little data"):
        response_head(200, [("content-length", "2")], peer).body.end()
    body = response_head(200, [], peer).body
    assert body.end() == b"0\r\n\r\n"
    with pytest.raises(h11.LocalProtocolError):
        body.data(b"late")


_TOKEN = st.text("abcXYZ-_!~0", min_size=1, max_size=6)
_VALUE = st.text("ab \t,:;\r\n\x00\x0b\x0c\x01\x7fé", max_size=6)
_NAMES = st.sampled_from(["content-length", "connection", "transfer-encoding", "Host"]) | _TOKEN
_VALUES = st.sampled_from(["0", "3", "3, 3", "close", "keep-alive", "chunked"]) | _VALUE


@settings(max_examples=300, deadline=None)
@given(
    request_=st.sampled_from(REQUESTS),
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
    status=st.sampled_from(STATUSES),
)
def test_any_head_is_written_or_refused_as_h11_does(
    request_: tuple[bytes, bytes, str | None] | None, headers: list[tuple[str, str]], status: int
) -> None:
    connection = h11_answer(request_)
    try:
        expected: bytes | type[Exception] = (
            connection.send(h11.Response(status_code=status, headers=headers)) or b""
        )
    except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
        expected = type(exc)
    try:
        got: bytes | type[Exception] = response_head(status, headers, peer_of(request_)).data
    except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
        got = type(exc)
    if isinstance(expected, bytes):
        assert got == expected
    else:  # refused; with two faults, which is found first may differ
        assert not isinstance(got, bytes)
