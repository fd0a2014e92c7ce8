"""A watch over the whole test run: no key may appear in what the run logged or recorded.

Every key a key pool was built with and every credential a client sent the proxy is
noted as the run goes; every log record (the ``aibridge`` loggers at DEBUG, so the
quietest line counts too) is kept as text; at the end, every log line and every ``.jsonl``
file the run left under its temporary directory (recordings, reproducers, fixtures from
subprocesses too) is searched for each key whole and for its hidden middle, the part a
masked key never shows. A find fails the run (``conftest.py`` wires it up).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path


def fragments(secret: str) -> Iterator[str]:
    """The key, and its middle when long enough to mean something on its own."""
    yield secret
    middle = secret[8:-4]
    if len(middle) >= 8:
        yield middle


class KeyWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.secrets: set[str] = set()
        self.lines: list[tuple[str, str]] = []  # (where, text)

    def note(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if len(s) >= 8)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is not this watch's business
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.lines.append((f"log {record.name}", text))

    def leaks(self, files: Iterable[Path] = ()) -> list[str]:
        """Where a key shows, one line per find (empty: the run kept every key to itself)."""
        texts = list(self.lines)
        for path in files:
            try:
                texts.append((str(path), path.read_text("utf-8", "replace")))
            except OSError:
                continue
        found = []
        for secret in sorted(self.secrets):
            pieces = list(fragments(secret))
            for where, text in texts:
                if any(piece in text for piece in pieces):
                    found.append(f"{where}: holds {secret[:6]}… (a key, or its middle)")
        return found
