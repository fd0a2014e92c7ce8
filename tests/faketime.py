"""Moving a real client's wall clock, for the tests that need tomorrow (Claude Code writes
today's date into its prompt): libfaketime preloaded into a dynamically linked child.
Codex CLI is a static binary, which no preload can shift."""

from __future__ import annotations

from pathlib import Path

_LIBS = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
]
FAKETIME = next((lib for lib in _LIBS if lib.exists()), None)
"""Debian's ``faketime`` package's library, or None where it is not installed."""

A_DAY_ON: dict[str, str] = (
    {
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME": "+1d",
        # timers keep the real clock; no state shared with the processes the child starts
        # (git, a shell): each reads the offset from its environment
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DISABLE_SHM": "1",
    }
    if FAKETIME is not None
    else {}
)
"""The environment that puts a child a day ahead; empty without libfaketime."""
