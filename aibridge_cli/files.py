"""Files aibridge writes that can hold traffic: private to their owner, whole or absent.

Every such file (a recording, a session or reproducer page, a repro file, a report, a
plugin cassette) is created 0600: it holds prompts, answers and masked keys. Two ways to
write one, both sans trio:

- ``append_whole`` adds one record to an open append-only file: all of its bytes or none
  (a short write is continued; on a failure the file is cut back to its length before),
  so a reader never meets part of a record, whatever the disk does.
- ``write_private`` writes a whole file through a temporary file beside it and a rename,
  so a full disk leaves the old file (or none), never a cut one. It refuses a path that is
  one of the command's inputs, or an aibridge fixture or repro file: a typo must not turn
  a recording into an HTML page.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import FixtureError

PRIVATE = 0o600
# The first-line keys that mark a file as aibridge's own data: a fixture's header and a
# fuzz repro file's header (sessions/fixture.py and fuzz/campaign.py write them).
FIXTURE_MARK = "aibridge_fixture"
REPRO_KIND = "fuzz-repro"
_PEEK = 64 * 1024


class TornWrite(OSError):
    """A failed append whose partial bytes could not be cut off: the file's last line is
    part of a record, and nothing more may be appended to it."""


def append_whole(fd: int, data: bytes, before_sync: Callable[[], None] | None = None) -> None:
    """Append ``data`` to ``fd`` (opened ``O_APPEND``) and fsync it; on failure the file
    is cut back to its length before and the ``OSError`` raised (``TornWrite`` when even
    that failed). ``before_sync`` is called once the bytes are the system's (a killed
    process can no longer lose them), before the fsync that keeps them through a crash
    of the machine."""
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written == 0:  # a regular file never does this; do not spin on a device
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        if before_sync is not None:
            before_sync()
        os.fsync(fd)
    except OSError as exc:
        try:
            if os.fstat(fd).st_size != start:
                os.ftruncate(fd, start)
        except OSError as cut:
            why = f"{exc.strerror}; cutting back failed: {cut.strerror}"
            raise TornWrite(exc.errno, why) from exc
        raise


def write_private(
    path: Path, data: str | bytes, *, inputs: Sequence[Path] = (), spare_data: bool = False
) -> None:
    """Write ``path`` whole (0600) or leave it as it was; a ``FixtureError`` names what
    went wrong (it is one of ``inputs``, the disk refused, or with ``spare_data`` it
    holds aibridge data: a page or a report never replaces a fixture)."""
    refuse_overwrite(path, inputs, spare_data=spare_data)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if path.exists() and not path.is_file():
            _write_in_place(path, raw)  # /dev/stdout, a pipe: nothing to rename over
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_by_rename(path, raw)
    except OSError as exc:
        raise FixtureError(
            f"{path}: cannot write ({exc.strerror or exc}); nothing was written",
            hint="free some space or choose another path",
        ) from None


def refuse_overwrite(path: Path, inputs: Sequence[Path] = (), *, spare_data: bool = True) -> None:
    """A ``FixtureError`` when writing ``path`` would destroy one of ``inputs`` or (with
    ``spare_data``) a file of aibridge data: a fixture, a repro file."""
    for given in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, given):
                raise FixtureError(
                    f"{path} is also an input of this command; writing it would destroy it",
                    hint="choose another output path",
                )
    if spare_data and _holds_aibridge_data(path):
        raise FixtureError(
            f"{path} holds aibridge data (a fixture or a repro file); not writing over it",
            hint="choose another output path, or remove that file first",
        )


def _holds_aibridge_data(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as file:
            first = file.read(_PEEK).split(b"\n", 1)[0]
        obj = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and (FIXTURE_MARK in obj or obj.get("kind") == REPRO_KIND)


def _write_by_rename(path: Path, raw: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        try:
            os.fchmod(fd, PRIVATE)  # an older temporary may have kept other bits
            append_whole(fd, raw)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_in_place(path: Path, raw: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
