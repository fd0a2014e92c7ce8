"""The recorder a load world gives its proxy: the fixture format's lines, in memory.

The proxy's real recorder (``sessions/recording.FixtureWriter``) encodes and appends on a
thread of its own and fsyncs every line, which a virtual-time world cannot schedule: the
thread runs on the machine's time, so what it had written when the clients were done
would depend on the machine. This one does what the thread does with each record (one
``encode_interception`` line, appended whole) at the moment the proxy hands it over, in
the handing task, so a world stays one exact run; the file's bytes are its ``text``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..interception import Interception
from ..sessions.fixture import encode_interception, header_line

# A fixed creation time: the header never reads the real clock.
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryRecorder:
    """A ``Recorder``: each interception handed over becomes one line of ``lines``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, record: Interception) -> None:
        self.write(record)

    def write(self, record: Interception) -> None:
        self.lines.append(encode_interception(record))

    @property
    def text(self) -> str:
        """The fixture file these lines make, header first."""
        return "".join(line + "\n" for line in [header_line(None, CREATED), *self.lines])
