"""``aibridge serve`` with MCP servers: ``--mcp-required``, shutdown within the grace period,
the status page, and ``--help`` without the SDK."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio

from .cli_process import run_cli, start_cli, stop_cli
from .mcp_util import WEATHER_SERVER, stdio_entry, write_tools

SILENT = {
    "name": "silent",
    "command": [sys.executable, "-c", "import time; time.sleep(60)"],
    "connect_timeout": 0.5,
}


async def test_mcp_required_makes_a_silent_server_fatal_in_one_line(tmp_path: Path) -> None:
    tools = write_tools(tmp_path / "tools.toml", SILENT)
    done = await run_cli("serve", "--port", "0", "--tools", str(tools), "--mcp-required")
    assert done.returncode == 2
    stderr = " ".join(done.stderr.decode().split())  # rich wraps at the terminal width
    assert stderr == (
        "error: mcp server silent: TimeoutError: no answer to initialize in 0.5 s (--mcp-required)"
    )
    assert b"listening" not in done.stdout


async def test_without_mcp_required_serve_runs_without_the_silent_servers_tools(
    tmp_path: Path,
) -> None:
    tools = write_tools(tmp_path / "tools.toml", SILENT, stdio_entry("wx", tmp_path / "c.jsonl"))
    proc, url = await start_cli("serve", "--port", "0", "--tools", str(tools))
    try:
        async with httpx.AsyncClient() as http:
            status = (await http.get(url + "/aibridge/status")).json()
        states = {m["name"]: (m["state"] == "ready", bool(m["tools"])) for m in status["mcp"]}
        assert states == {"silent": (False, False), "wx": (True, True)}
        assert all(not name.startswith("bmcp_silent_") for name in status["tools"])
        assert "bmcp_wx_forecast" in status["tools"]
        started = time.monotonic()
    finally:
        code = await stop_cli(proc)
    # The grace period (10 s by default) bounds the drain; the MCP servers stop after it.
    assert time.monotonic() - started < 10
    assert code == 0


async def test_a_ready_mcp_server_stops_with_serve(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    server = [sys.executable, "-c", _RECORD_PID_THEN_SERVE.format(pid_file=str(pid_file))]
    entry = stdio_entry("wx", tmp_path / "c.jsonl", command=server)
    tools = write_tools(tmp_path / "tools.toml", entry)
    proc, _ = await start_cli("serve", "--port", "0", "--tools", str(tools), "--grace-period", "3")
    pid = int(pid_file.read_text())
    assert await stop_cli(proc) == 0
    with trio.fail_after(5):
        while "zombie" not in _state(pid):  # noqa: ASYNC110 - polled: another process
            await trio.sleep(0.05)


_RECORD_PID_THEN_SERVE = (
    "import os, runpy, sys\n"
    'open({pid_file!r}, "w").write(str(os.getpid()))\n'
    'sys.argv = ["weather.py"]\n'
    f'runpy.run_path({WEATHER_SERVER!r}, run_name="__main__")\n'
)


def _state(pid: int) -> str:
    """The process's status text; "zombie" once it is gone."""
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_help_loads_no_mcp_code() -> None:
    code = "import sys; from aibridge_cli.cli import main; sys.argv=['aibridge','--help']\n"
    code += "try:\n    main()\nexcept SystemExit:\n    pass\n"
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
