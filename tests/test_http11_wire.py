"""The lean client's own HTTP/1.1 bytes against h11's: the request it writes is h11's
byte for byte, and a response reads as h11 reads it (status, headers, body parts, whether
the connection may serve again), bad framing an error with h11's words, whether the
bytes come whole or one at a time."""

from __future__ import annotations

import h11
import pytest

from aibridge_cli.proxy.http11_wire import ProtocolError, ResponseReader, encode_request

MAX_HEAD = 1024
Outcome = tuple[object, ...]


def h11_reads(feeds: list[bytes]) -> Outcome:
    """What the client on h11 made of ``feeds`` (then the connection's end)."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    connection.send(h11.Request(method="POST", target="/", headers=[("Host", "up")]))
    connection.send(h11.EndOfMessage())
    pending = [*feeds, b""]
    head: tuple[int, list[tuple[bytes, bytes]]] | None = None
    parts: list[bytes] = []
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = pending.pop(0)
                connection.receive_data(data)
                if not data and connection.their_state is h11.SEND_RESPONSE:
                    return ("error", "upstream closed without a response")
            elif isinstance(event, h11.Response):
                head = event.status_code, [(k, v) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError as error:
        return ("error", str(error))
    again = connection.our_state is h11.DONE and connection.their_state is h11.DONE
    # A body its peer ended by closing: h11 would hand the connection back, to fail at
    # the next request ("unexpected ConnectionClosed"); the reader says it is done.
    return ("ok", head, parts, again and pending != [])


def wire_reads(feeds: list[bytes]) -> Outcome:
    """What ``ResponseReader`` makes of the same bytes."""
    reader = ResponseReader(MAX_HEAD)
    pending = [*feeds, b""]
    parts: list[bytes] = []
    try:
        while (head := reader.head()) is None:
            reader.receive(pending.pop(0))
        while not reader.ended:
            got = reader.body()
            parts += got
            if not got and not reader.ended:
                reader.receive(pending.pop(0))
    except ProtocolError as error:
        return ("error", str(error))
    status, headers = head
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return ("ok", (status, raw), parts, reader.keep_alive)


OK_HEAD = b"HTTP/1.1 200 OK\r\n"
RESPONSES = {
    "length": OK_HEAD + b"content-length: 5\r\nx-request-id: r1\r\n\r\nhello",
    "length-repeated": OK_HEAD + b"Content-Length: 2, 2\r\ncontent-length: 2\r\n\r\n{}",
    "chunked": OK_HEAD
    + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
    "chunked-trailer": OK_HEAD + b"Transfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\nt: v\r\n\r\n",
    "chunked-wins": OK_HEAD + b"transfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n0\r\n\r\n",
    "informational-first": b"HTTP/1.1 100 Continue\r\n\r\n"
    + OK_HEAD
    + b"content-length: 0\r\n\r\n",
    "no-content": b"HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n",
    "until-close": OK_HEAD + b"content-type: text/plain\r\n\r\nall of it",
    "http10": b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx",
    "close": OK_HEAD + b"Connection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\ncontent-length: 1\n\nx",
    "folded": OK_HEAD + b"x-long: a\r\n  b\r\ncontent-length: 0\r\n\r\n",
    "ows": OK_HEAD + b"x-a:\t v \t\r\nx-b:\r\ncontent-length: 0\r\n\r\n",
    "no-reason": b"HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n",
    "error-status": b"HTTP/1.1 429 Too Many Requests\r\n"
    + b"retry-after: 3\r\ncontent-length: 2\r\n\r\n{}",
    # framing the reader must refuse
    "bad-status-line": b"HTTP/1.1 2000 OK\r\n\r\n",
    "not-http": b"SSH-2.0-OpenSSH\r\n\r\n",
    "low-status": b"HTTP/1.1 099 Odd\r\n\r\n",
    "switch-unasked": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "leading-blank": b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    "leading-space": b" HTTP/1.1 200 OK",
    "conflicting-length": OK_HEAD + b"content-length: 2\r\ncontent-length: 3\r\n\r\n{}",
    "conflicting-list": OK_HEAD + b"content-length: 2, 3\r\n\r\n{}",
    "bad-length": OK_HEAD + b"content-length: -1\r\n\r\n",
    "long-length": OK_HEAD + b"content-length: 123456789012345678901\r\n\r\n",
    "gzip-coding": OK_HEAD + b"transfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "two-codings": OK_HEAD + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
    "bad-header": OK_HEAD + b"bad header: x\r\n\r\n",
    "fold-first": OK_HEAD + b" x: y\r\n\r\n",
    "nul-in-value": OK_HEAD + b"x: a\x00b\r\n\r\n",
    "bad-chunk-size": OK_HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "bad-chunk-footer": OK_HEAD + b"transfer-encoding: chunked\r\n\r\n2\r\nabXY1\r\nc\r\n0\r\n\r\n",
    "after-good-chunk": OK_HEAD + b"transfer-encoding: chunked\r\n\r\n2\r\nab\r\nq\r\n",
    "bad-trailer": OK_HEAD + b"transfer-encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
    "short-length": OK_HEAD + b"content-length: 10\r\n\r\nabc",
    "short-chunked": OK_HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nab",
    "short-chunk-header": OK_HEAD + b"transfer-encoding: chunked\r\n\r\n5",
    "short-head": OK_HEAD + b"content-length: 1\r\n",
    "nothing": b"",
    "head-too-long": OK_HEAD + b"x: " + b"y" * 2000,
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_a_response_reads_as_h11_reads_it_whole_or_byte_by_byte(name: str) -> None:
    data = RESPONSES[name]
    whole = wire_reads([data])
    assert whole == h11_reads([data])
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert wire_reads(one_by_one) == h11_reads(one_by_one)


def test_the_corpus_has_both_good_and_broken_responses() -> None:
    verdicts = {wire_reads([data])[0] for data in RESPONSES.values()}
    assert verdicts == {"ok", "error"}


def test_a_bad_framing_after_good_parts_comes_after_them() -> None:
    reader = ResponseReader(MAX_HEAD)
    reader.receive(RESPONSES["after-good-chunk"])
    assert reader.head() == (200, [("transfer-encoding", "chunked")])
    assert reader.body() == [b"ab"]
    with pytest.raises(ProtocolError, match="illegal chunk header"):
        reader.body()


def test_bytes_after_a_response_are_the_next_responses() -> None:
    reader = ResponseReader(MAX_HEAD)
    reader.receive(RESPONSES["length"] + RESPONSES["chunked"])
    assert reader.head() is not None
    assert reader.body() == [b"hello"]
    assert (reader.ended, reader.keep_alive, reader.idle) == (True, True, False)
    reader.next_cycle()
    assert reader.head() is not None
    assert reader.body() == [b"abc", b"de"]
    assert (reader.ended, reader.idle) == (True, True)


HEADERS = [
    (b"Host", b"api.example"),
    (b"Accept", b"*/*"),
    (b"anthropic-version", b"2023-06-01"),
    (b"x-api-key", b"sk-\xe9t\xe9"),  # a byte beyond ASCII, as a client sent it
    (b"x-empty", b""),
    (b"Content-Length", b"2"),
]


def test_the_request_is_h11s_byte_for_byte() -> None:
    connection = h11.Connection(h11.CLIENT)
    # h11 writes Host first wherever it stands: so does the lean client
    reordered = [*HEADERS[1:3], HEADERS[0], *HEADERS[3:]]
    expected = connection.send(h11.Request(method=b"POST", target=b"/v1?x=1", headers=reordered))
    expected += connection.send(h11.Data(data=b"{}")) + connection.send(h11.EndOfMessage())
    assert encode_request(b"POST", b"/v1?x=1", reordered, b"{}") == expected


@pytest.mark.parametrize(
    "header",
    [
        (b"x-key", b"sk-1\r\nx-injected: 1"),  # a key with a line break
        (b"x-key", b" padded"),
        (b"x-key", b"a\x00b"),
        (b"bad name", b"v"),
        (b"", b"v"),
    ],
)
def test_a_header_h11_would_refuse_is_refused(header: tuple[bytes, bytes]) -> None:
    headers = [*HEADERS, header]
    with pytest.raises(h11.LocalProtocolError):
        h11.Connection(h11.CLIENT).send(h11.Request(method="POST", target="/", headers=headers))
    with pytest.raises(ProtocolError, match="illegal request head"):
        encode_request(b"POST", b"/", headers, b"{}")


def test_a_body_its_content_length_does_not_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="Content-Length"):
        encode_request(b"POST", b"/", HEADERS, b"{}!")
    with pytest.raises(ProtocolError, match="Content-Length only"):
        encode_request(b"POST", b"/", [*HEADERS, (b"Transfer-Encoding", b"chunked")], b"{}")
