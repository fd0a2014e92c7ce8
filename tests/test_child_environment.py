"""A child process aibridge starts sees no pool key, no token and no provider key it does
not need: a command tool under ``serve --tools`` and the command under ``record --``
each dump the environment they were given, and the dump is searched. And ``record``'s
command hears a SIGTERM sent to ``record``, whose status is then the command's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from aibridge_cli.child_env import KEY_PLACEHOLDER
from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream

from .anthropic_script import FINAL_TURN, TOOL_ONLY_TURN
from .cli_process import CLI, run_cli, start_cli, stop_cli
from .conftest import start_server

POOL_KEY = "sk-ant-pool-key-in-the-environment-0000"
OPENAI_POOL_KEY = "sk-openai-pool-key-in-the-environment-1111"
TOKEN = "aibridge-token-in-the-environment-2222"
PROVIDER_KEY = "sk-ant-users-own-key-3333"
OPENAI_KEY = "sk-openai-users-own-key-4444"
SECRETS = (POOL_KEY, OPENAI_POOL_KEY, TOKEN, PROVIDER_KEY)


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret aibridge may be given through the environment; a child inherits them
    unless aibridge leaves them out."""
    monkeypatch.setenv("AIBRIDGE_ANTHROPIC_KEYS", POOL_KEY)
    monkeypatch.setenv("AIBRIDGE_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PROVIDER_KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", PROVIDER_KEY)
    monkeypatch.setenv("MY_COPY_OF_THE_POOL", f"x{POOL_KEY}x")  # found by value
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AIBRIDGE_TEST_SETTING", "kept-out")
    monkeypatch.setenv("UNRELATED_SETTING", "on")


def dumper(out: Path) -> list[str]:
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    return [sys.executable, "-c", code + "; print('dumped')"]


def read_dump(path: Path) -> dict[str, str]:
    env: dict[str, str] = json.loads(path.read_text())
    blob = json.dumps(env)
    for secret in SECRETS:
        assert secret not in blob
    assert not [name for name in env if name.startswith("AIBRIDGE_")]
    return env


@pytest.mark.usefixtures("secret_environment")
async def test_a_command_tool_gets_a_few_variables_and_its_env_table(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    tools = tmp_path / "tools.toml"
    tools.write_text(
        "[[tool]]\nname = 'bmcp_weather'\ndescription = 'd'\ninput_schema = {}\n"
        f"command = {json.dumps(dumper(out))}\nenv = {{ WEATHER_UNITS = 'metric' }}\n"
    )
    upstream = ScriptedUpstream([TOOL_ONLY_TURN, FINAL_TURN])
    _, upstream_url = await start_server(nursery, upstream)
    proc, url = await start_cli(
        "serve", "--port", "0", "--tools", str(tools), "--anthropic-base-url", upstream_url
    )
    try:
        body = {
            "model": "m",
            "max_tokens": 9,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{url}/anthropic/v1/messages", json=body, headers=headers)
        assert response.status_code == 200, response.text
    finally:
        await stop_cli(proc)
    env = read_dump(out)
    assert env["WEATHER_UNITS"] == "metric"
    assert env["PATH"]
    assert "UNRELATED_SETTING" not in env  # a tool gets a short list, not the rest
    assert "OPENAI_API_KEY" not in env
    assert "ANTHROPIC_API_KEY" not in env


@pytest.mark.usefixtures("secret_environment")
async def test_record_s_command_gets_its_setup_less_every_secret(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    done = await run_cli(
        "record",
        "-o",
        str(tmp_path / "s.jsonl"),
        "--openai-key",
        OPENAI_POOL_KEY,
        "--",
        *dumper(out),
    )
    assert done.returncode == 0, done.stderr
    env = read_dump(out)
    assert env["UNRELATED_SETTING"] == "on"  # the agent under test keeps its setup
    assert env["ANTHROPIC_BASE_URL"].endswith("/anthropic")
    assert env["OPENAI_BASE_URL"].endswith("/openai/v1")
    # both providers' pools pay (AIBRIDGE_ANTHROPIC_KEYS, --openai-key): placeholders
    assert env["ANTHROPIC_API_KEY"] == env["OPENAI_API_KEY"] == KEY_PLACEHOLDER
    assert "ANTHROPIC_AUTH_TOKEN" not in env
    assert "MY_COPY_OF_THE_POOL" not in env


async def test_record_s_command_keeps_its_own_key_where_no_pool_pays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.delenv("AIBRIDGE_OPENAI_KEYS", raising=False)
    out = tmp_path / "env.json"
    done = await run_cli("record", "-o", str(tmp_path / "s.jsonl"), "--", *dumper(out))
    assert done.returncode == 0, done.stderr
    env = json.loads(out.read_text())
    assert env["OPENAI_API_KEY"] == OPENAI_KEY  # what the proxy forwards: the child's own


CHILD = """
import signal, sys, time
if sys.argv[1] == "exits-42":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
print("ready", flush=True)
time.sleep(60)
sys.exit(3)
"""


@pytest.mark.parametrize(("handling", "status"), [("exits-42", 42), ("default", 128 + 15)])
async def test_sigterm_to_record_reaches_its_command_whose_status_it_exits_with(
    tmp_path: Path, handling: str, status: int
) -> None:
    argv = [*CLI, "record", "-o", str(tmp_path / "s.jsonl"), "--", sys.executable, "-c"]
    proc = await trio.lowlevel.open_process(
        [*argv, CHILD, handling], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    try:
        with trio.fail_after(30):
            seen = b""
            while not seen.endswith(b"\n"):
                seen += await proc.stdout.receive_some(100)
            assert seen == b"ready\n"
            proc.terminate()
            assert await proc.wait() == status
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.stdout.aclose()
