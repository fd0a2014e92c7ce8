"""The lean upstream client's HTTP/1.1 bytes, sans-io: the request it writes and the
response it reads.

Why not h11: h11 runs every message through a state machine, validates each header by
a regular expression per name and per value, and builds an event object per body part;
for the two upstream messages of a request that was a tenth of the proxy's CPU. Here the
request's head is one format and one regular expression over the whole of it (its bytes
are ours: the defaults, the client's headers the server parsed, a pool key), and the
response is read by one object per connection that keeps h11's rules, so a peer's bad
framing is still an error, with h11's words:

* a status line, header lines (a bare ``\\n`` ends a line too; an obsolete folded line
  is joined to the one before) and a blank line, within ``max_head`` bytes; 1xx answers
  are skipped, and a 101 nobody asked for is an error;
* the body framed by ``Transfer-Encoding: chunked`` (no other coding), else by
  ``Content-Length`` (repeated values must agree), else by the connection's end; none
  for 204 and 304;
* a connection serves the next request only when the response ended by its framing,
  over HTTP/1.1, without ``Connection: close``; bytes after it stay in the buffer for
  the next response, as h11 keeps them.
"""

from __future__ import annotations

import re

from ..headers import TOKEN, WireHeaders

_TOKEN = TOKEN.encode()
_VCHAR = rb"[^\x00\s]"  # h11's field_vchar: any byte but NUL and whitespace
_VALUE = rb"(?:%s+(?:[ \t]+%s+)*)?" % (_VCHAR, _VCHAR)
# A request head as h11 would accept it for writing, in one match.
_REQUEST_HEAD = re.compile(
    rb"%s [\x21-\x7e]+ HTTP/1\.1\r\n(?:%s: %s\r\n)*\r\n" % (_TOKEN, _TOKEN, _VALUE)
)
_STATUS_LINE = re.compile(
    rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: (?:[ \t]|%s)*)?" % _VCHAR  # the reason is unused
)
_HEADER_LINE = re.compile(rb"(%s):[ \t]*(%s)[ \t]*" % (_TOKEN, _VALUE))
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
_FOLD = re.compile(rb"[ \t]+")
_NO_BODY = (204, 304)
_CLOSED = (
    "peer closed connection without sending complete message body (received {} bytes, expected {})"
)


class ProtocolError(Exception):
    """Bytes that are not HTTP/1.1 as h11 reads or writes it."""


def encode_request(method: bytes, target: bytes, headers: WireHeaders, body: bytes) -> bytes:
    """The request as h11 writes it (``Host`` first, the others in their order, then
    the body), its head checked as h11 checks it; the headers must frame the body by
    ``Content-Length``."""
    host = [(name, value) for name, value in headers if name.lower() == b"host"]
    rest = [(name, value) for name, value in headers if name.lower() != b"host"]
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    lines += [b"%s: %s\r\n" % pair for pair in (*host, *rest)]
    lines.append(b"\r\n")
    head = b"".join(lines)
    # one line per header (a value holding a line break would be two), each as h11 checks it
    if head.count(b"\n") != len(headers) + 2 or _REQUEST_HEAD.fullmatch(head) is None:
        raise ProtocolError(f"illegal request head: {head!r}")
    lengths = {value.strip() for name, value in headers if name.lower() == b"content-length"}
    if lengths != {str(len(body)).encode()}:
        raise ProtocolError("the body's length is not its Content-Length")
    if any(name.lower() == b"transfer-encoding" for name, _ in headers):
        raise ProtocolError("the lean client frames bodies by Content-Length only")
    return head + body


def _comma_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """h11's ``get_comma_header``: the values of ``name``, split at commas, lower-case."""
    out: list[bytes] = []
    for key, value in headers:
        if key == name:
            out += [part.strip().lower() for part in value.split(b",") if part.strip()]
    return out


class ResponseReader:
    """One connection's responses: bytes in (``receive``), a head (``head``) and body
    parts (``body``) out. Errors are ``ProtocolError`` with h11's messages."""

    def __init__(self, max_head: int) -> None:
        self.max_head = max_head
        self._buffer = bytearray()
        self._eof = False
        self.next_cycle()

    def next_cycle(self) -> None:
        """Ready for the next response on this connection."""
        self.ended = False  # the body was read to its end
        self.keep_alive = True  # the connection may serve another request afterwards
        self._framing = ""  # "length", "chunked" or "close"
        self._remaining = 0  # of a Content-Length body, or of the current chunk
        self._length = 0
        self._discard = b""  # what must follow a chunk's data
        self._trailer = False
        self._error: ProtocolError | None = None

    def receive(self, data: bytes) -> None:
        """Bytes read from the connection; ``b""`` is its end."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def idle(self) -> bool:
        """Nothing buffered: whatever arrives next is the next response's."""
        return not self._buffer

    def head(self) -> tuple[int, list[tuple[str, str]]] | None:
        """The final response's status and headers (names lower-case), 1xx skipped;
        None until its head is all in."""
        while True:
            lines = self._lines()
            if lines is None:
                if self._buffer and self._buffer[0] < 0x21:
                    raise ProtocolError("illegal request line")  # h11's words
                if len(self._buffer) > self.max_head:
                    raise ProtocolError("Receive buffer too long")
                if self._eof:
                    raise ProtocolError("upstream closed without a response")
                return None
            if not lines:
                raise ProtocolError("no response line received")
            status = _STATUS_LINE.fullmatch(lines[0])
            if status is None:
                raise ProtocolError(f"illegal status line: {bytearray(lines[0])!r}")
            code = int(status[2])
            headers = _header_fields(lines[1:])
            if code < 100:
                raise ProtocolError(
                    f"InformationalResponse status_code should be in range [100, 200), not {code}"
                )
            if code == 101:
                raise ProtocolError(
                    "Received server _SWITCH_UPGRADE event without a pending proposal"
                )
            if code >= 200:
                headers = self._frame(code, status[1], headers)
                return code, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]

    def _lines(self) -> list[bytes] | None:
        """h11's ``maybe_extract_lines``: the lines up to a blank one, taken off."""
        buffer = self._buffer
        if buffer[:1] == b"\n":
            del buffer[:1]
            return []
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            return []
        blank = _BLANK_LINE.search(buffer)
        if blank is None:
            return None
        block = bytes(buffer[: blank.start()])
        del buffer[: blank.end()]
        return [line[:-1] if line[-1:] == b"\r" else line for line in block.split(b"\n")]

    def _frame(
        self, code: int, version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Check the framing headers and note the body's framing; the headers back as
        h11 gives them (one ``content-length``, ``transfer-encoding`` lower-case)."""
        lengths: set[bytes] = set()
        codings = 0
        kept = headers
        for name, value in headers:
            if name == b"content-length":
                values = {length.strip() for length in value.split(b",")}
                if len(values) != 1 or (lengths and values != lengths):
                    raise ProtocolError("conflicting Content-Length headers")
                length = values.pop()
                if _CONTENT_LENGTH.fullmatch(length) is None or len(length) > 20:
                    raise ProtocolError("bad Content-Length")
                if lengths or length != value:
                    kept = _normalized(headers)
                lengths.add(length)
            elif name == b"transfer-encoding":
                codings += 1
                if codings > 1:
                    raise ProtocolError("multiple Transfer-Encoding headers")
                if value.lower() != b"chunked":
                    raise ProtocolError("Only Transfer-Encoding: chunked is supported")
                if value != b"chunked":
                    kept = _normalized(headers)
        if b"close" in _comma_values(headers, b"connection") or version < b"1.1":
            self.keep_alive = False
        if code in _NO_BODY:
            self._framing, self._remaining = "length", 0
        elif codings:
            self._framing = "chunked"
        elif lengths:
            self._framing, self._remaining = "length", int(lengths.pop())
        else:
            self._framing = "close"
            self.keep_alive = False  # its end is the connection's
        self._length = self._remaining
        return kept

    def body(self) -> list[bytes]:
        """The body's parts buffered so far (one per chunk, or part of one), ``ended``
        set at its end. Framing that breaks after good parts raises on the next call."""
        if self._error is not None:
            raise self._error
        parts: list[bytes] = []
        try:
            while not self.ended:
                part = self._next_part()
                if part is None:
                    break
                if part:
                    parts.append(part)
        except ProtocolError as error:
            if not parts:
                raise
            self._error = error
        return parts

    def _next_part(self) -> bytes | None:
        """One part, ``b""`` for framing read past, None when more bytes are needed."""
        framing = self._framing
        if framing == "length":
            if not self._remaining:
                self.ended = True
                return b""
            return self._take(self._remaining) or self._starved()
        if framing == "chunked":
            return self._chunked()
        buffer = self._buffer  # framed by the connection's end
        if buffer:
            part = bytes(buffer)
            del buffer[:]
            return part
        if self._eof:
            self.ended = True
            return b""
        return None

    def _chunked(self) -> bytes | None:
        buffer = self._buffer
        if self._trailer:
            lines = self._lines()
            if lines is None:
                return self._starved()
            _header_fields(lines)
            self.ended = True
            return b""
        if self._discard:
            got = bytes(buffer[: len(self._discard)])
            if not got:
                return self._starved()
            if got != self._discard[: len(got)]:
                raise ProtocolError(
                    f"malformed chunk footer: {bytearray(got)!r} (expected {self._discard!r})"
                )
            del buffer[: len(got)]
            self._discard = self._discard[len(got) :]
            if self._discard:
                return self._starved()
        if not self._remaining:
            end = buffer.find(b"\r\n")
            if end < 0:
                return self._starved()
            line = bytes(buffer[: end + 2])
            header = _CHUNK_HEADER.fullmatch(line)
            if header is None:
                raise ProtocolError(f"illegal chunk header: {bytearray(line)!r}")
            del buffer[: end + 2]
            self._remaining = int(header[1], 16)
            if not self._remaining:
                self._trailer = True
                return b""
        part = self._take(self._remaining)
        if not part:
            return self._starved()
        if not self._remaining:
            self._discard = b"\r\n"
        return part

    def _take(self, most: int) -> bytes:
        buffer = self._buffer
        part = bytes(buffer[:most])
        del buffer[: len(part)]
        self._remaining -= len(part)
        return part

    def _starved(self) -> bytes | None:
        """More bytes are needed: fine unless too many wait or the connection ended."""
        if len(self._buffer) > self.max_head:
            raise ProtocolError("Receive buffer too long")
        if not self._eof:
            return None
        if self._buffer:
            raise ProtocolError("peer unexpectedly closed connection")
        if self._framing == "length":
            raise ProtocolError(_CLOSED.format(self._length - self._remaining, self._length))
        raise ProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )


def _normalized(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Rare framing headers as h11 rewrites them: the first ``content-length`` alone,
    holding its one value; ``transfer-encoding`` in lower case."""
    out: list[tuple[bytes, bytes]] = []
    length_seen = False
    for name, value in headers:
        if name == b"content-length":
            if length_seen:
                continue
            length_seen = True
            value = value.split(b",")[0].strip()
        elif name == b"transfer-encoding":
            value = value.lower()
        out.append((name, value))
    return out


def _header_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Header lines as (lower-case name, value), obsolete folding joined (h11's rules)."""
    joined: list[bytes] = []
    for line in lines:
        fold = _FOLD.match(line)
        if fold is not None:
            if not joined:
                raise ProtocolError("continuation line at start of headers")
            joined[-1] += b" " + line[fold.end() :]
        else:
            joined.append(line)
    fields = []
    for line in joined:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(f"illegal header line: {bytearray(line)!r}")
        fields.append((match[1].lower(), match[2]))
    return fields
