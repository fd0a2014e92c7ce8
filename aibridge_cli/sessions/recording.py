"""Fixture files on disk: loading them, and appending interceptions as they complete.

The writer is the proxy's recorder. The proxy hands it each interception as it ends and
goes on at once; the writer's own thread encodes it as one line, appends it whole or not
at all (``files.append_whole``: short writes continued, the file cut back to its length
on a failure) and fsyncs it, so the relay never waits for the disk (a write and fsync on
the event loop stalled every stream: 0.83 of direct, docs/performance.md). A proxy
killed at any moment (SIGKILL included) leaves a file of whole lines: every interception
that finished, less those still waiting for the thread; at worst a cut last line, which
the loader reports and skips. ``close`` writes everything handed over first.

The disk never costs a client its stream: a write that fails (a full disk, a quota, an
I/O error) drops that interception, is logged once as one line, and the writer tries
again with the next one; the first that succeeds is logged with how many were dropped.
A failure that leaves part of a line behind (the cut back failed too) stops recording
for good, so nothing is ever appended after a broken line.

Recording never changes bytes it did not write, and a file it created and wrote no
interception to is removed when it closes. It appends only to a file that is empty or a
fixture recorded with the same proxy settings (its header line says which) whose every
line is valid; any other file is refused, untouched, since a replay compares against the
header's settings and a line appended after a bad one would be unreadable. A cut last
line left by an earlier crash is moved aside to ``<file>.cut`` (``.cut.1``, ...) before
appending, so new lines never glue onto it and no byte is lost.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import stat
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import trio

from ..config import ServeOptions
from ..errors import FixtureError
from ..files import PRIVATE, TornWrite, append_whole
from ..interception import Interception
from ..proxy.keypool import mask_secrets
from .fixture import Fixture, encode_interception, header_line, parse_fixture

log = logging.getLogger("aibridge.recording")
# The longest a handler waits, after its response, for its record to reach the disk.
SETTLE_TIMEOUT = 2.0


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
    return decode_text(data, path, expected)


def decode_text(data: bytes, path: Path | str, expected: str = "") -> str:
    """``data`` as UTF-8; otherwise a ``FixtureError`` naming ``path:line``."""
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
    upstream echoing a key back, say) is replaced by its masked form. ``written`` and
    ``dropped`` count the interceptions that reached the file and those the disk refused.
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
        self.dropped = 0
        self._failing: str | None = None  # the cause while writes fail
        self._dropped_before = 0  # ``dropped`` when they started failing
        self._torn = False
        self.created = False
        try:
            try:
                flags = os.O_RDWR | os.O_APPEND
                self._fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, PRIVATE)
                self.created = True
            except FileExistsError:
                self._fd = os.open(self.path, flags)
        except OSError as exc:
            raise self._cannot(exc) from None
        try:
            self._start(proxy)
        except BaseException:
            self._discard()
            raise
        # Off the hot path: the proxy hands each record over and goes on; this thread
        # encodes, writes and fsyncs them in order (see ``close``).
        self._queue: queue.SimpleQueue[Interception | None] = queue.SimpleQueue()
        self._handed = 0  # records handed over (the event loop's count)
        self._done = 0  # records the thread is through with, written or dropped
        self._progress = threading.Lock()
        # (record count, the loop's token, its event): woken by the thread, no thread hop
        self._waiters: list[tuple[int, trio.lowlevel.TrioToken, trio.Event]] = []
        self._settling = False  # the thread holds a record not yet written or dropped
        self._thread = threading.Thread(target=self._drain, name="aibridge-recorder", daemon=True)
        self._thread.start()

    def _cannot(self, exc: OSError) -> FixtureError:
        return FixtureError(
            f"{self.path}: cannot record there ({exc.strerror or exc})",
            hint="check the path, its permissions and the free space",
        )

    def _discard(self) -> None:
        os.close(self._fd)
        if self.created:
            self.path.unlink(missing_ok=True)  # no empty file left by a failed start

    def _start(self, proxy: dict[str, Any] | None) -> None:
        try:
            data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
            if not data:
                append_whole(self._fd, (header_line(proxy) + "\n").encode("utf-8"))
                return
        except OSError as exc:
            raise self._cannot(exc) from None
        header = self._header_of(data)
        if (header.proxy or {}) != (proxy or {}):
            raise FixtureError(
                f"{self.path} was recorded with other proxy settings "
                f"({_settings(header.proxy)}; this proxy: {_settings(proxy)})",
                hint="record to a new file, or run the proxy with the file's settings",
            )
        keep = data.rfind(b"\n") + 1
        self._check_lines(data[:keep])
        try:
            if keep < len(data):
                self._move_cut_line(data, keep)
        except OSError as exc:
            raise self._cannot(exc) from None

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

    def _check_lines(self, whole: bytes) -> None:
        """Every complete line must be a valid record: one appended after a bad line
        would be lost to every reader, who rejects the whole file."""
        if not whole:
            return
        try:
            parse_fixture(decode_text(whole, self.path), str(self.path))
        except FixtureError as exc:
            raise FixtureError(
                f"{exc}; nothing was written to the file",
                hint="record to a new file, or remove that line and what follows it",
            ) from None

    def _move_cut_line(self, data: bytes, keep: int) -> None:
        """Move what follows the last newline to a file of its own, then cut it off."""
        if keep == 0:
            append_whole(self._fd, b"\n")  # a whole header, cut before its newline
            return
        for n in itertools.count():
            aside = self.path.with_name(self.path.name + (".cut" if n == 0 else f".cut.{n}"))
            try:
                fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
            except FileExistsError:
                continue
            break
        try:
            append_whole(fd, data[keep:])
        except OSError:
            os.close(fd)
            aside.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.ftruncate(self._fd, keep)
        log.warning(
            "%s: a cut last line (%d bytes, left by a crash) was moved to %s",
            self.path,
            len(data) - keep,
            aside,
        )

    def __call__(self, record: Interception) -> None:
        """Hand over one finished interception, to be appended by the writer's thread:
        the relay never waits for the disk, and nothing the disk does reaches it."""
        self._handed += 1
        self._queue.put(record)

    async def settled(self) -> None:
        """Wait until every record handed over so far is written (or dropped), at most
        ``SETTLE_TIMEOUT``; its fsync may still run. The proxy waits here once a response
        has ended: the next request on that connection then finds its record in the
        file, so a proxy killed later leaves it there, while a stuck disk costs the
        connection that long at most, never a stream."""
        handed = self._handed
        event = trio.Event()
        with self._progress:
            if self._done >= handed:
                return
            self._waiters.append((handed, trio.lowlevel.current_trio_token(), event))
        with trio.move_on_after(SETTLE_TIMEOUT):
            await event.wait()

    def _drain(self) -> None:
        while (record := self._queue.get()) is not None:
            self._settling = True
            try:
                self._write(record)
            except Exception:  # a bug: its traceback, and the thread goes on
                log.exception("recording to %s: a record could not be written", self.path)
                self.dropped += 1
            self._settle()  # when the write failed (settled before its fsync otherwise)

    def _settle(self) -> None:
        """One more record is the system's, or dropped: wake ``settled``."""
        if self._settling:
            self._settling = False
            with self._progress:
                self._done += 1
                due = [w for w in self._waiters if w[0] <= self._done]
                self._waiters = [w for w in self._waiters if w[0] > self._done]
            for _, token, event in due:
                with contextlib.suppress(trio.RunFinishedError):  # nobody waits any more
                    token.run_sync_soon(event.set)

    def _write(self, record: Interception) -> None:
        line = encode_interception(record, redact=self.redact)
        line = mask_secrets(line, [*self.secrets, *record.client_secrets])
        self._append((line + "\n").encode("utf-8"))

    def _append(self, data: bytes) -> None:
        if self._torn:
            self.dropped += 1
            return
        try:
            append_whole(self._fd, data, self._settle)
        except TornWrite as exc:
            self._torn = True
            self.dropped += 1
            log.error(
                "recording to %s stopped: a write failed (%s) and left part of a line; "
                "traffic is no longer recorded",
                self.path,
                exc.strerror,
            )
            return
        except OSError as exc:
            self.dropped += 1
            if self._failing is None:
                self._failing = exc.strerror or str(exc)
                self._dropped_before = self.dropped - 1
                log.error(
                    "recording to %s failed (%s): interceptions are not recorded until a "
                    "write succeeds; the file keeps every whole line so far",
                    self.path,
                    self._failing,
                )
            return
        self.written += 1
        if self._failing is not None:
            log.warning(
                "recording to %s resumed after %d interceptions were not recorded (%s)",
                self.path,
                self.dropped - self._dropped_before,
                self._failing,
            )
            self._failing = None

    def close(self) -> None:
        """Write what was handed over, then close the file (blocking: call it where the
        proxy no longer serves, or from a thread); one this writer created and wrote no
        interception to is removed (a proxy that failed to start, or served nothing,
        leaves nothing behind)."""
        self._queue.put(None)
        self._thread.join()
        if self.written:
            os.close(self._fd)
        else:
            self._discard()


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
