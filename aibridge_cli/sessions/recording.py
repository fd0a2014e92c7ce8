"""Fixture files on disk: loading them, and appending interceptions as they complete.

The writer is the proxy's recorder. Each interception is one line written with a single
``os.write`` and then fsynced, so a proxy killed at any moment (SIGKILL included) leaves a
file whose complete lines are every interception that finished; at worst the last line
is cut, which the loader reports and skips.

Recording never changes bytes it did not write, and a file it created and wrote no
interception to is removed when it closes. It appends only to a file that is empty
or a fixture recorded with the same proxy settings (its header line says which); any
other file is refused, untouched, since a replay compares against the header's settings.
A cut last line left by an earlier crash is moved aside to ``<file>.cut`` (``.cut.1``,
...) before appending, so new lines never glue onto it and no byte is lost.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..config import ServeOptions
from ..errors import FixtureError
from ..interception import Interception
from ..proxy.keypool import mask_secrets
from .fixture import Fixture, encode_interception, header_line, parse_fixture

log = logging.getLogger("aibridge.recording")


def read_text(path: Path | str, expected: str = "") -> str:
    """A file's UTF-8 text; unreadable or not UTF-8 is a ``FixtureError`` naming
    ``file:line`` (``expected`` says what the file should have been)."""
    try:
        # A FIFO or a device would block the read for ever (or never end): refused first.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise FixtureError(f"{path}: not a regular file{expected}")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FixtureError(f"{path}:{line}: not UTF-8 text{expected}") from None


def load_fixture(path: Path | str) -> Fixture:
    """Read and parse one fixture file; every problem is a ``FixtureError``."""
    return parse_fixture(read_text(path), str(path))


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
            try:
                flags = os.O_RDWR | os.O_APPEND
                self._fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:
                self._fd = os.open(self.path, flags)
                self.created = False
            data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        except OSError as exc:
            raise FixtureError(
                f"{self.path}: cannot open for recording ({exc.strerror})",
                hint="check the path and its permissions",
            ) from None
        try:
            self._start(data, proxy)
        except BaseException:
            os.close(self._fd)
            raise

    def _start(self, data: bytes, proxy: dict[str, Any] | None) -> None:
        if not data:
            self._write_line(header_line(proxy))
            return
        header = self._header_of(data)
        if (header.proxy or {}) != (proxy or {}):
            raise FixtureError(
                f"{self.path} was recorded with other proxy settings "
                f"({_settings(header.proxy)}; this proxy: {_settings(proxy)})",
                hint="record to a new file, or run the proxy with the file's settings",
            )
        if not data.endswith(b"\n"):
            self._move_cut_line(data)

    def _header_of(self, data: bytes) -> Fixture:
        """The file's header; a file that does not start with one is refused."""
        first = data.split(b"\n", 1)[0]
        try:
            return parse_fixture(first.decode("utf-8") + "\n", str(self.path))
        except (UnicodeDecodeError, FixtureError):
            raise FixtureError(
                f"{self.path} is not an aibridge fixture (its first line is not a fixture "
                "header); nothing was written to it",
                hint="record to a new file",
            ) from None

    def _move_cut_line(self, data: bytes) -> None:
        """Move what follows the last newline to a file of its own, then cut it off."""
        keep = data.rfind(b"\n") + 1
        if keep == 0:
            os.write(self._fd, b"\n")  # a whole header, cut before its newline
            return
        for n in itertools.count():
            aside = self.path.with_name(self.path.name + (".cut" if n == 0 else f".cut.{n}"))
            try:
                fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            break
        try:
            os.write(fd, data[keep:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.ftruncate(self._fd, keep)
        log.warning(
            "%s: a cut last line (%d bytes, left by a crash) was moved to %s",
            self.path,
            len(data) - keep,
            aside,
        )

    def _write_line(self, line: str, more_secrets: Sequence[str] = ()) -> None:
        line = mask_secrets(line, [*self.secrets, *more_secrets])
        os.write(self._fd, (line + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def __call__(self, record: Interception) -> None:
        self._write_line(encode_interception(record, redact=self.redact), record.client_secrets)
        self.written += 1

    def close(self) -> None:
        """Close the file; one this writer created and wrote no interception to is
        removed (a proxy that failed to start, or served nothing, leaves nothing behind)."""
        os.close(self._fd)
        if self.created and not self.written:
            self.path.unlink(missing_ok=True)


def _settings(proxy: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((proxy or {}).items())) or "defaults"


def open_recorder(path: Path, options: ServeOptions, secrets: Sequence[str] = ()) -> FixtureWriter:
    """The recorder for ``serve --record``, ``record`` and the pytest plugin: every key the
    proxy holds, its token, and ``secrets`` (keys known to be about: the environment's)
    are scrubbed."""
    token = [options.guard.auth_token] if options.guard.auth_token else []
    return FixtureWriter(
        path,
        redact=options.redact,
        secrets=[*options.anthropic_keys, *options.openai_keys, *token, *secrets],
        proxy={
            "stream_initiation": options.stream_initiation,
            "max_iterations": options.max_iterations,
        },
    )
