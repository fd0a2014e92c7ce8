"""The bytes of the server's HTTP/1.1 responses: the head and the body's framing, sans-io.

Theory of operation. Until #27 every response went through h11's ``send``: each header
checked by two regular expressions, the list rebuilt up to three times, and an event
object, a state transition and a writer per body part. The proxy's heads are its own or
an upstream's already parsed, and that was 0.2 million instructions of a 2.9 million
request. This module writes the bytes h11 0.16 writes for the same response (a test
holds the two side by side) for less:

* ``response_head`` turns a status and headers into the head's bytes. Names and values
  are checked as strictly as h11 checks them, with one regular expression for all the
  names and one for all the values (neither may hold a line break, so joining them on
  one cannot let a bad one pass), and encoded as ASCII, as h11 does.
* The framing follows RFC 9112 §6 as h11 does: a 204, a 304 and the answer to a HEAD
  have no body; otherwise ``Transfer-Encoding: chunked`` beats ``Content-Length``; with
  neither, an HTTP/1.1 client gets a chunked body and an HTTP/1.0 one a body that ends
  with the connection. The header lines h11 rewrites are rewritten the same way and
  moved to the end: ``Content-Length`` dropped from a chunked or close-delimited body,
  ``Transfer-Encoding: chunked`` set, ``Connection: close`` when the connection will not
  be kept alive (the request asked, the client speaks HTTP/1.0, or the body ends with
  the connection).
* ``Body`` frames what follows the head and refuses what h11 refuses: more or fewer
  bytes than the ``Content-Length`` said, anything after the end.

Errors are ``h11.LocalProtocolError``, the server's as before; a non-ASCII header is
``UnicodeEncodeError``, as it was from h11.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from h11 import LocalProtocolError

from ..headers import TOKEN

# h11's grammar (h11/_abnf.py): a name is a token; a value is field-content or nothing,
# that is no NUL, no white space but spaces and tabs, and those not at either end. Here
# for names and values joined by line breaks, which neither may hold (counted apart).
_NAMES = re.compile(rf"{TOKEN}(?:\n{TOKEN})*")
_NOT_IN_VALUES = ("\x00", "\r", "\f", "\v", "\n ", "\n\t", " \n", "\t\n")
_DIGITS = re.compile(r"[0-9]+")

_LENGTHS = frozenset({"content-length", "transfer-encoding"})


class Peer(NamedTuple):
    """What the request said that shapes the answer's framing."""

    method: bytes | None  # None: no request was read (a 400 for a broken head)
    http_version: bytes | None
    keep_alive: bool  # neither ``Connection: close`` nor HTTP/1.0


def request_keep_alive(http_version: bytes, headers: Sequence[tuple[str, str]]) -> bool:
    """False when a request with these headers (names lower-case) closes its connection."""
    if http_version < b"1.1":
        return False
    return "close" not in _comma_values(headers, "connection")


def _comma_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [
        part
        for key, value in headers
        if key.lower() == name
        for part in (piece.strip() for piece in value.lower().split(","))
        if part
    ]


class Body:
    """The framing of one response's body: ``data`` and ``end`` give the bytes to send."""

    __slots__ = ("_remaining", "chunked", "ended", "switched")

    def __init__(
        self, *, chunked: bool = False, length: int | None = None, switched: bool = False
    ) -> None:
        self.chunked = chunked
        self._remaining = length  # None: the body ends with the connection
        self.ended = False
        # A 2xx to CONNECT: the connection is no longer HTTP's, h11 sends nothing more.
        self.switched = switched

    def data(self, data: bytes) -> bytes:
        if self.ended:
            raise LocalProtocolError("can't send data after the end of the response")
        if self.switched:
            raise LocalProtocolError("the connection switched protocols")
        if self._remaining is not None:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise LocalProtocolError("Too much data for declared Content-Length")
            return data
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return data

    def end(self) -> bytes:
        if self.ended:
            raise LocalProtocolError("the response has ended already")
        if self.switched:
            raise LocalProtocolError("the connection switched protocols")
        self.ended = True
        if self._remaining:
            raise LocalProtocolError("Too little data for declared Content-Length")
        return b"0\r\n\r\n" if self.chunked else b""


class Head(NamedTuple):
    """A response head's bytes, its body's framing, and whether the connection stays."""

    data: bytes
    body: Body
    keep_alive: bool


def response_head(status: int, headers: Sequence[tuple[str, str]], peer: Peer) -> Head:
    """The head of a response to ``peer``, as h11 would write it."""
    if not 200 <= status < 1000:
        raise LocalProtocolError(f"a response's status is in [200, 1000), not {status}")
    if headers:
        _check(headers)
    lines = list(headers)
    keys = [name.lower() for name, _ in lines]  # once: each pass below asks
    length, coded = None, False
    if not _LENGTHS.isdisjoint(keys):
        length, coded, lines = _normalised(lines, keys)
        keys = [name.lower() for name, _ in lines]
    no_body = status in (204, 304) or (peer.method == b"CONNECT" and status < 300)
    chunked = need_close = False
    if not no_body and (coded or length is None):
        length = None
        if coded or "content-length" in keys:
            lines = [line for line, key in zip(lines, keys, strict=True) if key not in _LENGTHS]
            keys = [key for key in keys if key not in _LENGTHS]
        if peer.http_version is None or peer.http_version < b"1.1":
            need_close = peer.method != b"HEAD"
        else:
            lines.append(("Transfer-Encoding", "chunked"))
            keys.append("transfer-encoding")
            chunked = True
    connection = _comma_values(lines, "connection") if "connection" in keys else []
    if not peer.keep_alive or need_close:
        kept = sorted({*connection, "close"} - {"keep-alive"})
        lines = [line for line, key in zip(lines, keys, strict=True) if key != "connection"]
        lines.extend(("Connection", value) for value in kept)
        connection = kept
    # No request read: the answer to a broken one, after which nothing is understood.
    keep_alive = peer.keep_alive and peer.method is not None and "close" not in connection
    if peer.method == b"CONNECT" and status < 300:
        body, keep_alive = Body(length=0, switched=True), False
    elif peer.method == b"HEAD" or no_body:
        body = Body(length=0)
    else:
        body = Body(chunked=chunked, length=length)
    if "host" in keys:
        lines.sort(key=lambda line: line[0].lower() != "host")  # h11 writes Host first
    text = "".join([f"{name}: {value}\r\n" for name, value in lines])
    return Head(b"HTTP/1.1 %d \r\n%s\r\n" % (status, text.encode("ascii")), body, keep_alive)


def _normalised(
    lines: list[tuple[str, str]], keys: list[str]
) -> tuple[int | None, bool, list[tuple[str, str]]]:
    """The declared length, whether a coding is declared, and the lines with
    ``Content-Length`` and ``Transfer-Encoding`` as h11 normalises them: one length kept
    (repeats that agree dropped), the coding lower-cased; conflicts and codings other
    than chunked refused."""
    if keys.count("content-length") == 1 and "transfer-encoding" not in keys:
        value = lines[keys.index("content-length")][1]
        if value.isdigit():  # ASCII (checked): 0-9 only; the usual case, kept as it is
            return int(value), False, lines
    out: list[tuple[str, str]] = []
    length: str | None = None
    coding = False
    for (name, value), key in zip(lines, keys, strict=True):
        if key == "content-length":
            lengths = {part.strip() for part in value.split(",")}
            if len(lengths) != 1:
                raise LocalProtocolError("conflicting Content-Length headers")
            value = lengths.pop()
            if not _DIGITS.fullmatch(value):
                raise LocalProtocolError("bad Content-Length")
            if length is not None:
                if length != value:
                    raise LocalProtocolError("conflicting Content-Length headers")
                continue
            length = value
        elif key == "transfer-encoding":
            if coding:
                raise LocalProtocolError(
                    "multiple Transfer-Encoding headers", error_status_hint=501
                )
            value = value.lower()
            if value != "chunked":
                raise LocalProtocolError(
                    "Only Transfer-Encoding: chunked is supported", error_status_hint=501
                )
            coding = True
        out.append((name, value))
    return (None if length is None else int(length)), coding, out


def _check(headers: Sequence[tuple[str, str]]) -> None:
    """Refuse a header h11 would refuse: a name not a token, a value not field-content
    (a line break, a NUL, white space at either end), anything not ASCII."""
    names = "\n".join([name for name, _ in headers])
    values = "\n".join([value for _, value in headers])
    if not (names.isascii() and values.isascii()):
        names.encode("ascii")  # UnicodeEncodeError, as from h11
        values.encode("ascii")
    breaks = len(headers) - 1  # the joins' own: one more is a line break in a header
    if (
        _NAMES.fullmatch(names)
        and names.count("\n") == breaks
        and values.count("\n") == breaks
        and not _bad_values(values)
    ):
        return
    for name, value in headers:
        if "\n" in name or not _NAMES.fullmatch(name):
            raise LocalProtocolError(f"illegal header name {name!r}")
        if "\n" in value or _bad_values(value):
            raise LocalProtocolError(f"illegal value of header {name!r}")
    raise AssertionError("every header is legal alone")


def _bad_values(values: str) -> bool:
    """True when values joined by line breaks hold one h11 refuses: a NUL, a white space
    other than spaces and tabs, or those at either end of a value. (Substring searches in
    C: cheaper than a regular expression trying three alternatives at each character.)"""
    if values[:1] in (" ", "\t") or values[-1:] in (" ", "\t"):
        return True
    return any(bad in values for bad in _NOT_IN_VALUES)
