"""Running the ``aibridge`` CLI as a subprocess in tests."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import IO

import trio

CLI = [sys.executable, "-m", "aibridge_cli"]


async def start_cli(*args: str, stderr: IO[bytes] | None = None) -> tuple[trio.Process, str]:
    """Start a serving command (its log lines to ``stderr``, the test's by default);
    returns the process and the URL it announced."""
    proc = await trio.lowlevel.open_process([*CLI, *args], stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    buffer = b""
    with trio.fail_after(30):
        while b"\n" not in buffer:
            data = await proc.stdout.receive_some(4096)
            if not data:
                raise AssertionError(f"{args[0]} exited before listening: {buffer!r}")
            buffer += data
    match = re.search(rb"listening on (http://\S+)", buffer)
    assert match is not None, buffer
    return proc, match.group(1).decode()


async def stop_cli(proc: trio.Process) -> int:
    """SIGTERM and wait (bounded); the stdout pipe is closed."""
    proc.terminate()
    with trio.fail_after(30):
        code = await proc.wait()
    if proc.stdout is not None:
        await proc.stdout.aclose()
    return code


async def run_cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(120):
        return await trio.run_process(
            [*CLI, *args], capture_stdout=True, capture_stderr=True, check=False, cwd=cwd
        )
