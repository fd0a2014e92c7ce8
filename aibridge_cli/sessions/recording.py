"""Fixture files on disk: loading them, and appending interceptions as they complete.

The writer is the proxy's recorder. Each interception is one line written with a single
``os.write`` and then fsynced, so a proxy killed at any moment (SIGKILL included) leaves a
file whose complete lines are every interception that finished; at worst the last line
is cut, which the loader reports and skips. A cut line left by an earlier crash is
dropped before appending, so new lines never glue onto it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..config import ServeOptions
from ..errors import FixtureError
from ..interception import Interception
from ..proxy.keypool import mask_secrets
from .fixture import Fixture, encode_interception, header_line, parse_fixture

log = logging.getLogger("aibridge.recording")


def load_fixture(path: Path | str) -> Fixture:
    """Read and parse one fixture file; every problem is a ``FixtureError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FixtureError(f"{path}:{line}: not UTF-8 text") from None
    return parse_fixture(text, str(path))


class FixtureWriter:
    """Appends interceptions to a JSONL fixture; usable as ``BridgeApp.recorder``.

    ``secrets`` are the raw keys the proxy holds: any that would still reach a line (an
    upstream echoing a key back, say) is replaced by its masked form.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        redact: Iterable[str] = (),
        secrets: Sequence[str] = (),
        proxy: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.redact = tuple(redact)
        self.secrets = [s for s in secrets if s]
        self.written = 0
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._start(proxy)
        except OSError as exc:
            raise FixtureError(f"{self.path}: cannot open for recording: {exc.strerror}") from None

    def _start(self, proxy: dict[str, Any] | None) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            self._write_line(header_line(proxy))
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a cut last line left by a crash", self.path)
            os.ftruncate(self._fd, keep)
            if keep == 0:
                self._write_line(header_line(proxy))

    def _write_line(self, line: str, more_secrets: Sequence[str] = ()) -> None:
        line = mask_secrets(line, [*self.secrets, *more_secrets])
        os.write(self._fd, (line + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def __call__(self, record: Interception) -> None:
        self._write_line(encode_interception(record, redact=self.redact), record.client_secrets)
        self.written += 1

    def close(self) -> None:
        os.close(self._fd)


def open_recorder(path: Path, options: ServeOptions) -> FixtureWriter:
    """The recorder for ``serve --record`` and ``record``: every key the proxy holds, and
    its token, is scrubbed."""
    token = [options.guard.auth_token] if options.guard.auth_token else []
    return FixtureWriter(
        path,
        redact=options.redact,
        secrets=[*options.anthropic_keys, *options.openai_keys, *token],
        proxy={
            "stream_initiation": options.stream_initiation,
            "max_iterations": options.max_iterations,
        },
    )
