"""Settings that would hand the key pool to strangers are refused or warned about: a
``null`` origin, ``*`` with a pool, a short or blank token; keys come from a file only
when nobody else can read it; each key option says the command line is visible; a
refusal's log line names the client. (The one-line refusals are rows of
``test_cli_errors.py``; here, what those rows cannot show.)"""

from __future__ import annotations

import logging
from pathlib import Path

import h11
import httpx
import pytest
import typer

from aibridge_cli.cli import app
from aibridge_cli.config import GuardConfig, ServeOptions
from aibridge_cli.errors import ConfigError
from aibridge_cli.options import Upstreams, serve_options
from aibridge_cli.pool_keys import read_key_file
from aibridge_cli.proxy.run import proxy_guard

from .cli_process import run_cli
from .conftest import WATCH, StackFactory
from .test_load_faults import open_client

TOKEN = "aibridge-unsafe-settings-token-0123456789"
KEYS = ["sk-ant-from-file-0000-AAAA", "sk-ant-from-file-1111-BBBB"]


def key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "anthropic.keys"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_key_file_holds_one_key_a_line_skipping_blanks_and_comments(tmp_path: Path) -> None:
    path = key_file(tmp_path, f"# the team's pool\n\n  {KEYS[0]}  \n# spare:\n{KEYS[1]}\n\n")
    assert read_key_file(path, "--anthropic-key-file") == KEYS


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620])
def test_a_key_file_other_users_can_open_is_refused_with_the_chmod_to_run(
    tmp_path: Path, mode: int
) -> None:
    path = key_file(tmp_path, KEYS[0] + "\n", mode)
    with pytest.raises(ConfigError) as refused:
        read_key_file(path, "--anthropic-key-file")
    assert f"chmod 600 {path}" in str(refused.value.hint)
    assert KEYS[0] not in str(refused.value)


def test_serve_and_record_take_keys_from_files_after_those_on_the_command_line(
    tmp_path: Path,
) -> None:
    anthropic = key_file(tmp_path, "\n".join(KEYS))
    openai = tmp_path / "openai.keys"
    openai.write_text("sk-proj-file-2222-CCCC\n")
    openai.chmod(0o400)
    upstreams = Upstreams(
        "https://a.example",
        "https://o.example/v1",
        ["sk-ant-cli-9999-ZZZZ"],
        None,
        anthropic,
        openai,
    )
    options = serve_options(
        host="127.0.0.1",
        port=0,
        upstreams=upstreams,
        tools=None,
        stream_initiation="eager",
        max_iterations=10,
    )
    assert list(options.anthropic_keys) == ["sk-ant-cli-9999-ZZZZ", *KEYS]
    assert list(options.openai_keys) == ["sk-proj-file-2222-CCCC"]


async def test_serve_with_a_key_file_serves_its_keys(tmp_path: Path) -> None:
    """The whole way: ``serve --anthropic-key-file`` as a process, its status page."""
    from .test_guard_cli import open_serve, stop_serve

    WATCH.note(KEYS)
    path = key_file(tmp_path, "\n".join(KEYS) + "\n")
    process, port = await open_serve("--anthropic-key-file", str(path))
    try:
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"http://127.0.0.1:{port}/aibridge/status")).json()
    finally:
        output = await stop_serve(process)
    shown = [k["key"] for k in status["providers"]["anthropic"]["keys"]]
    assert shown == ["sk-a…AAAA", "sk-a…BBBB"]
    assert not any(key in output for key in KEYS)


@pytest.mark.parametrize("command", ["serve", "record"])
@pytest.mark.parametrize(
    "option", ["--anthropic-key", "--openai-key", "--anthropic-key-file", "--openai-key-file"]
)
def test_each_key_option_says_where_keys_are_safer(command: str, option: str) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    params = group.commands[command].params
    (param,) = [p for p in params if option in getattr(p, "opts", [])]
    text = " ".join(str(getattr(param, "help", "")).split())
    if option.endswith("-file"):
        assert "not readable by other users" in text
    else:
        assert "a command line is visible to other users" in text


def test_the_first_serve_example_keeps_its_key_off_the_command_line() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    first = next(line for line in readme.splitlines() if "aibridge serve --" in line)
    assert "--anthropic-key " not in first
    assert "--openai-key " not in first
    assert "AIBRIDGE_ANTHROPIC_KEYS" in first or "-key-file" in first


def test_a_wildcard_origin_warns_and_with_a_pool_needs_insecure_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aibridge")
    proxy_guard(ServeOptions(guard=GuardConfig(allowed_origins=("*",))))
    assert "every web page" in caplog.text
    pooled = ServeOptions(anthropic_keys=["sk-ant-0000"], guard=GuardConfig(allowed_origins=("*",)))
    with pytest.raises(ConfigError, match="every web page you open") as refused:
        proxy_guard(pooled)
    assert "--insecure-open" in str(refused.value.hint)
    caplog.clear()
    opened = GuardConfig(allowed_origins=("*",), insecure_open=True)
    proxy_guard(ServeOptions(anthropic_keys=["sk-ant-0000"], guard=opened))
    assert "every web page you open may spend your keys" in caplog.text


async def test_a_refusal_is_logged_with_the_client_address(
    stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aibridge")
    s = await stack([], keys=["sk-ant-pool-0000"], guard=GuardConfig(auth_token=TOKEN))
    async with httpx.AsyncClient() as http:
        await http.post(s.proxy_url + "/anthropic/v1/messages", json={})  # no token: 401
    client = await open_client(s.proxy_url)
    too_large = [("host", client.host), ("content-length", str(10**12))]
    await client.stream.send_all(
        client.h11.send(h11.Request(method="POST", target="/healthz", headers=too_large))
    )
    assert (await client.read_response()).status == 413
    await client.stream.aclose()
    lines = [r.getMessage() for r in caplog.records]
    refusals = [line for line in lines if line.startswith(("refused", "rejected"))]
    assert len(refusals) == 2, lines
    for line in refusals:
        assert " from 127.0.0.1:" in line


async def test_a_short_token_stops_serve_as_a_process() -> None:
    done = await run_cli("serve", "--port", "0", "--auth-token", "short")
    assert done.returncode == 2
    assert done.stderr.decode().startswith("error: --auth-token is 5 characters")
