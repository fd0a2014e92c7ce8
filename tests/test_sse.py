"""The SSE decoder, fed each case whole, one byte at a time, and with trailing data."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aibridge_cli.sse import SSEDecoder, SSEEvent, encode_event

# (wire bytes, the events they hold as (event, data, raw))
CASES: list[tuple[bytes, list[tuple[str | None, str, bytes]]]] = [
    (b"event: ping\ndata: {}\n\n", [("ping", "{}", b"event: ping\ndata: {}\n\n")]),
    (b"data: a\r\n\r\n", [(None, "a", b"data: a\r\n\r\n")]),
    (
        b"data: a\r\rdata: b\r\n\r\n",
        [(None, "a", b"data: a\r\r"), (None, "b", b"data: b\r\n\r\n")],
    ),
    (b"data: one\ndata: two\n\n", [(None, "one\ntwo", b"data: one\ndata: two\n\n")]),
    (b"data:nospace\n\n", [(None, "nospace", b"data:nospace\n\n")]),
    (b"data:  two spaces\n\n", [(None, " two spaces", b"data:  two spaces\n\n")]),
    (b": comment\n\n", []),
    (
        b": keep-alive\nevent: x\ndata: 1\n\n",
        [("x", "1", b": keep-alive\nevent: x\ndata: 1\n\n")],
    ),
    (b"\n\n\nevent: x\ndata: 1\n\n", [("x", "1", b"event: x\ndata: 1\n\n")]),
    (
        b"event: a\ndata: 1\n\nevent: b\ndata: 2\r\n\r\n",
        [("a", "1", b"event: a\ndata: 1\n\n"), ("b", "2", b"event: b\ndata: 2\r\n\r\n")],
    ),
    (b"data\n\n", [(None, "", b"data\n\n")]),
    (
        "data: caf\u00e9 \u2603\n\n".encode(),
        [(None, "caf\u00e9 \u2603", "data: caf\u00e9 \u2603\n\n".encode())],
    ),
]


def _shape(events: list[SSEEvent]) -> list[tuple[str | None, str, bytes]]:
    return [(e.event, e.data, e.raw) for e in events]


@pytest.mark.parametrize(("wire", "expected"), CASES)
def test_whole(wire: bytes, expected: list[tuple[str | None, str, bytes]]) -> None:
    decoder = SSEDecoder()
    assert _shape(decoder.feed(wire)) == expected
    assert not decoder.pending()


@pytest.mark.parametrize(("wire", "expected"), CASES)
def test_one_byte_at_a_time(wire: bytes, expected: list[tuple[str | None, str, bytes]]) -> None:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(len(wire)):
        events += decoder.feed(wire[i : i + 1])
    # A CR at the end of a read ends its line at once; the LF of that CRLF, read next,
    # heads the next event's raw bytes: the events and their bytes in order are the same.
    assert [(e.event, e.data) for e in events] == [(e, d) for e, d, _ in expected]
    assert b"".join(e.raw for e in events) in (
        b"".join(raw for *_, raw in expected),
        b"".join(raw for *_, raw in expected)[:-1],  # the last LF still to come
    )


@pytest.mark.parametrize(("wire", "expected"), CASES)
def test_trailing_data_is_kept_for_later(
    wire: bytes, expected: list[tuple[str | None, str, bytes]]
) -> None:
    decoder = SSEDecoder()
    trailing = b"event: next\ndata: par"
    got = decoder.feed(wire + trailing)
    assert _shape(got) == expected
    assert decoder.pending()
    assert _shape(decoder.feed(b"tial\n\n")) == [
        ("next", "partial", b"event: next\ndata: partial\n\n")
    ]
    assert not decoder.pending()


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert _shape(decoder.feed(b"\n\r")) == [(None, "a", b"data: a\r\n\r")]
    assert decoder.feed(b"\n") == []
    assert not decoder.pending()
    assert _shape(decoder.feed(b"data: b\n\n")) == [(None, "b", b"\ndata: b\n\n")]


def test_a_stream_in_cr_line_endings_gives_its_last_event_at_once() -> None:
    # The upstream may end its body (or stop for a while) right after the CR that ends
    # the last event: waiting for the next byte would lose it or hold it back.
    decoder = SSEDecoder()
    assert _shape(decoder.feed(b"data: a\r\r")) == [(None, "a", b"data: a\r\r")]


def test_id_field_is_kept() -> None:
    (event,) = SSEDecoder().feed(b"id: 7\nevent: x\ndata: y\n\n")
    assert event.id == "7"


def test_cut_mid_frame_is_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: message_start\n") == []
    assert decoder.pending()


@pytest.mark.parametrize(
    ("name", "data"),
    [("ping", '{"type": "ping"}'), (None, "plain"), ("multi", "line one\nline two")],
)
def test_encode_round_trips(name: str | None, data: str) -> None:
    frame = encode_event(name, data)
    (event,) = SSEDecoder().feed(frame)
    assert (event.event, event.data, event.raw) == (name, data, frame)


def _by_the_rules(wire: bytes) -> list[tuple[str | None, str, bytes]]:
    """The WHATWG rules line by line, for LF-only input: the decoder's fast paths must agree."""
    events: list[tuple[str | None, str, bytes]] = []
    event: str | None = None
    data: list[str] = []
    fields = False
    start = pos = 0
    for line in wire.splitlines(keepends=True):
        pos += len(line)
        if not line.endswith(b"\n"):
            break  # an unfinished line: nothing more is complete
        text = line[:-1].decode("utf-8", "replace")
        if not text:
            if fields:
                events.append((event, "\n".join(data), wire[start:pos]))
            start, event, data, fields = pos, None, [], False
        elif not text.startswith(":"):
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields = True
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    return events


_LINES = st.sampled_from(
    [
        b"event: message_start\n",
        b"event: \n",
        b'data: {"a": 1}\n',
        b"data: \xc3\xa9\n",
        b"data:x\n",
        b"data\n",
        b": ping\n",
        b"id: 7\n",
        b"retry: 10\n",
        b"\n",
    ]
)


@given(
    frames=st.lists(st.lists(_LINES, max_size=4).map(lambda ls: b"".join(ls) + b"\n"), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_split_of_lf_frames_decodes_by_the_rules(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(frames)
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for a, b in itertools.pairwise(bounds):
        events += decoder.feed(wire[a:b])
    assert _shape(events) == _by_the_rules(wire)
