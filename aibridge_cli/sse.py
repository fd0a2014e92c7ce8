"""Server-sent events, sans-io: bytes in, events out, and back.

Theory of operation: ``SSEDecoder.feed`` takes bytes exactly as they arrive (a frame may
be split at any byte, several frames may come in one chunk) and returns every event that
became complete. Lines end in CRLF, LF or CR; a CR at the very end of a chunk ends its
line at once (a stream in CR line endings may end there, and its last event must not
wait for a byte that never comes), and an LF that starts the next chunk is the rest of
that CRLF, not a line of its own: it is kept at the head of the next event's ``raw``, so
the events' raw bytes still add up to the bytes that came. Each event keeps ``raw``, the exact
bytes it was made from, so a relay can pass an untouched event on without re-encoding it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. ``event`` is None when the frame had no ``event:`` field.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, which
    tripled the cost of making one, and a relay makes one per event it passes on.
    """

    event: str | None
    data: str
    raw: bytes = b""
    id: str | None = None


class SSEDecoder:
    """Incremental SSE parser (WHATWG rules: comments, multi-line data, optional space)."""

    def __init__(self) -> None:
        self._buffer = b""  # bytes from the start of the current frame
        self._scan = 0  # where in _buffer the unparsed lines begin
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._has_fields = False
        self._after_cr = False  # the last chunk ended in CR: an LF next belongs to it

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they completed, in order."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk[:1] == b"\n":
                self._scan += 1  # the LF of a CRLF whose CR ended the last chunk
        if b"\r" not in buffer:
            return self._feed_lf(buffer)
        events: list[SSEEvent] = []
        pos = self._scan
        frame_start = 0
        size = len(buffer)
        for match in _LINE_END.finditer(buffer, pos):
            end = match.end()
            if end == size and match.group() == b"\r":
                self._after_cr = True  # maybe the first half of a CRLF split by the read
            line = buffer[pos : match.start()]
            pos = end
            if line:
                self._field(line)
            elif self._has_fields:
                events.append(self._dispatch(buffer[frame_start:end]))
                frame_start = end
            else:
                frame_start = end  # a stray blank line
        self._buffer = buffer[frame_start:]
        self._scan = pos - frame_start
        return events

    def _feed_lf(self, buffer: bytes) -> list[SSEEvent]:
        """``feed`` for bytes without a CR, what every provider sends: ``find`` beats the
        regular expression about twofold, and a relay decodes every byte it passes on.

        A frame that starts where no field is pending and is exactly ``event: E`` and
        ``data: D`` lines, or a lone ``data: D`` line (the shapes every provider sends),
        is taken whole, without going line by line.
        """
        events: list[SSEEvent] = []
        pos = self._scan
        frame_start = 0
        find = buffer.find
        startswith = buffer.startswith
        while True:
            if pos == frame_start and not self._has_fields:
                end = find(b"\n\n", pos)
                if end < 0:
                    break
                if startswith(b"event: ", pos):
                    line_end = find(b"\n", pos)
                    if line_end < end and find(b"\n", line_end + 1) == end:
                        if startswith(b"data: ", line_end + 1):
                            events.append(
                                SSEEvent(
                                    buffer[pos + 7 : line_end].decode("utf-8", "replace"),
                                    buffer[line_end + 7 : end].decode("utf-8", "replace"),
                                    buffer[pos : end + 2],
                                )
                            )
                            pos = frame_start = end + 2
                            continue
                elif startswith(b"data: ", pos) and find(b"\n", pos) == end:
                    events.append(
                        SSEEvent(
                            None,
                            buffer[pos + 6 : end].decode("utf-8", "replace"),
                            buffer[pos : end + 2],
                        )
                    )
                    pos = frame_start = end + 2
                    continue
            end = find(b"\n", pos)
            if end < 0:
                break
            if end != pos:
                self._field(buffer[pos:end])
            elif self._has_fields:
                events.append(self._dispatch(buffer[frame_start : end + 1]))
                frame_start = end + 1
            else:
                frame_start = end + 1  # a stray blank line
            pos = end + 1
        self._buffer = buffer[frame_start:]
        self._scan = pos - frame_start
        return events

    def pending(self) -> bool:
        """True when bytes of an unfinished event are held (a stream cut mid-frame)."""
        return self._has_fields or bool(self._buffer[self._scan :].strip())

    def _field(self, line: bytes) -> None:
        if line[:6] == b"data: ":  # the usual line, without the general parse
            self._data.append(line[6:].decode("utf-8", errors="replace"))
            self._has_fields = True
            return
        if line[:1] == b":":
            return  # comment
        text = line.decode("utf-8", errors="replace")
        name, sep, value = text.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        self._has_fields = True
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value

    def _dispatch(self, raw: bytes) -> SSEEvent:
        event = SSEEvent(self._event, "\n".join(self._data), raw, self._id)
        self._event = None
        self._data = []
        self._id = None
        self._has_fields = False
        return event


def encode_event(event: str | None, data: str) -> bytes:
    """One SSE frame: an optional ``event:`` line, ``data:`` lines, a blank line."""
    head = f"event: {event}\n" if event is not None else ""
    if "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in data.splitlines())
    else:
        body = f"data: {data}\n"
    return f"{head}{body}\n".encode()
