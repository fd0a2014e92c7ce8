"""The key pools as the operator gives them: on the command line, in a key file, or in
the environment; every key checked before anything starts.

A key given on the command line is in every local user's ``ps`` for as long as the proxy
runs, so a pool is better given in the environment or in a key file that only its owner
can read (refused otherwise, with the ``chmod`` to run). A key is sent as a header value:
one holding a line break, a space or another character outside printable ASCII is refused
here, not answered with a 502 on every request later; an empty one is refused, not read
as "no pool". Messages name where the key came from and what is wrong with it, never the
key itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError

# Permission bits a key file may not have: any access by the group or other users.
OTHERS_ACCESS = stat.S_IRWXG | stat.S_IRWXO


def checked_key(key: str, source: str) -> str:
    """``key`` when it can go in a header as it is; a ``ConfigError`` naming ``source``
    (an option, a variable, ``file:line``) and the offending character otherwise."""
    if not key:
        raise ConfigError(
            f"{source} is empty", hint="give a key, or leave the option out to forward clients' own"
        )
    for position, char in enumerate(key, 1):
        if not "!" <= char <= "~":  # printable ASCII, no space
            raise ConfigError(
                f"{source}: the key holds {char!r} at character {position}",
                hint="a key is printable ASCII without spaces or line breaks: check how it "
                "was pasted",
            )
    return key


def read_key_file(path: Path, option: str) -> list[str]:
    """The keys of a key file, in order: one a line, blank lines and ``#`` comments
    skipped. Refused when other users may open it, or when it holds no key."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{option} {path}: not a regular file")
        if mode & OTHERS_ACCESS:
            raise ConfigError(
                f"{option} {path} can be read by other users (mode {stat.S_IMODE(mode):04o})",
                hint=f"run: chmod 600 {path}",
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the key file is not UTF-8 text") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(checked_key(line, f"{path}:{number}"))
    if not keys:
        raise ConfigError(f"{option} {path} holds no key", hint="one key a line")
    return keys


def pool_keys(given: Sequence[str], key_file: Path | None, option: str, env_var: str) -> list[str]:
    """A provider's pool: the keys given with ``option`` (repeated), then those of its key
    file; when neither is given, the comma-separated ``env_var``."""
    keys = [checked_key(key, option) for key in given]
    if key_file is not None:
        keys += read_key_file(key_file, f"{option}-file")
    if given or key_file is not None:
        return keys
    listed = (key.strip() for key in os.environ.get(env_var, "").split(","))
    return [checked_key(key, env_var) for key in listed if key]
