"""Every operator mistake of issue #14's table: one line on stderr naming the problem and
what to do, exit 2 (127 for a command ``record`` cannot start), never a traceback, and for
``--record`` the file's bytes unchanged.

The rows run in this process through typer's runner (the same ``AibridgeGroup`` a
process goes through, minus the interpreter start); ``PROCESS_ROWS`` run again as real
subprocesses, for what only a process shows: the exit status, and stderr as a pipe.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aibridge_cli.cli import app
from aibridge_cli.sessions.fixture import header_line

NOT_UTF8 = b"\xff\xfe not UTF-8 \x80\n"
HEADER = header_line({"stream_initiation": "eager", "max_iterations": 10}) + "\n"
LAZY_HEADER = header_line({"stream_initiation": "lazy", "max_iterations": 10}) + "\n"
KEY = "sk-ant-operator-row-0123456"  # 27 characters; fake
TOOL = "[[tool]]\nname = 'bmcp_x'\ndescription = 'd'\ninput_schema = {}\n"


@dataclass
class Workspace:
    """What a row's arguments refer to: a temporary folder and a port somebody holds."""

    dir: Path
    busy_port: int

    def free_port(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    def file(self, name: str, content: bytes | str, mode: int | None = None) -> str:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if mode is not None:
            path.chmod(mode)
        return str(path)


@dataclass(frozen=True)
class Row:
    """One mistake: its arguments, the exit code, and words the one line must hold."""

    name: str
    args: Callable[[Workspace], list[str]]
    says: tuple[str, ...]
    code: int = 2
    keeps: str | None = None  # a file whose bytes must come out as they went in


def _fifo(workspace: Workspace, name: str) -> str:
    """A named pipe nobody writes to: reading it would wait for ever."""
    path = workspace.dir / name
    os.mkfifo(path)
    return str(path)


def _interception(api: str) -> str:
    simple = Path(__file__).parent.parent / "aibridge_cli/fixtures/anthropic/simple.jsonl"
    line = json.loads(simple.read_text().splitlines()[1])
    return json.dumps({**line, "api": api}) + "\n"


ROWS = [
    Row(
        "serve on a busy port",
        lambda w: ["serve", "--port", str(w.busy_port)],
        ("cannot listen on 127.0.0.1:", "Address already in use", "choose another one"),
    ),
    Row("serve --port -1", lambda w: ["serve", "--port", "-1"], ("'--port'", "-1 is not a port")),
    Row(
        "serve --port 99999",
        lambda w: ["serve", "--port", "99999"],
        ("'--port'", "99999 is not a port", "0 to 65535"),
    ),
    Row(
        "serve --host 999.1.1.1",
        lambda w: ["serve", "--host", "999.1.1.1", "--port", "0"],
        ("cannot listen on 999.1.1.1:0", "an address of this machine"),
    ),
    Row(
        "serve --log-level verbose",
        lambda w: ["serve", "--log-level", "verbose"],
        ("'--log-level'", "'verbose' is not one of", "'debug'"),
    ),
    Row(
        "serve --tools not UTF-8",
        lambda w: ["serve", "--port", "0", "--tools", w.file("tools.toml", NOT_UTF8)],
        ("tools.toml: tools file is not UTF-8 text",),
    ),
    Row(
        "serve --tools without description",
        lambda w: [
            "serve",
            "--port",
            "0",
            "--tools",
            w.file("t.toml", "[[tool]]\nname = 'a'\nresult = 'x'\ninput_schema = {}\n"),
        ],
        ("t.toml: tool #1 (a): missing 'description'",),
    ),
    Row(
        "serve --tools without input_schema",
        lambda w: [
            "serve",
            "--port",
            "0",
            "--tools",
            w.file("t.toml", "[[tool]]\nname = 'a'\nresult = 'x'\ndescription = 'd'\n"),
        ],
        ("t.toml: tool #1 (a): missing 'input_schema'",),
    ),
    Row(
        "serve --tools with no tool",
        lambda w: ["serve", "--port", "0", "--tools", w.file("t.toml", "# nothing\n")],
        ("t.toml: no [[tool]] or [[mcp]] table",),
    ),
    Row(
        "serve --tools with a missing binary",
        lambda w: [
            "serve",
            "--port",
            "0",
            "--tools",
            w.file("t.toml", TOOL + "command = ['aibridge-no-such-binary', '-x']\n"),
        ],
        ("command 'aibridge-no-such-binary' not found on PATH", "give its full path"),
    ),
    Row(
        "import a file that is not UTF-8",
        lambda w: ["import", w.file("anthropic/x.txtar", NOT_UTF8), "-o", str(w.dir / "out")],
        ("x.txtar:1: not UTF-8 text",),
    ),
    Row(
        "serve --max-body-size -5",
        lambda w: ["serve", "--max-body-size", "-5"],
        ("'--max-body-size'", "'-5' is not a size"),
    ),
    Row(
        "serve --read-timeout -1",
        lambda w: ["serve", "--read-timeout", "-1"],
        ("'--read-timeout'", "not a positive number of seconds"),
    ),
    Row(
        "serve --connect-timeout nan",
        lambda w: ["serve", "--connect-timeout", "nan"],
        ("'--connect-timeout'", "not a finite number"),
    ),
    Row(
        "serve --grace-period -3",
        lambda w: ["serve", "--grace-period", "-3"],
        ("'--grace-period'", "-3 is negative"),
    ),
    Row(
        "serve --anthropic-base-url not-a-url",
        lambda w: ["serve", "--anthropic-base-url", "not-a-url"],
        ("'--anthropic-base-url'", "not an http(s) URL with a host"),
    ),
    Row(
        "serve --allow-origin null",
        lambda w: ["serve", "--port", "0", "--allow-origin", "null"],
        ("--allow-origin null", "sandboxed", "give the page's own origin"),
    ),
    Row(
        "serve --allow-origin '*' with a key pool",
        lambda w: ["serve", "--port", "0", "--allow-origin", "*", "--anthropic-key", KEY],
        ("--allow-origin '*'", "every web page", "--insecure-open"),
    ),
    Row(
        "serve --auth-token blank",
        lambda w: ["serve", "--port", "0", "--auth-token", " "],
        ("--auth-token is blank", "at least 16 characters"),
    ),
    Row(
        "serve --auth-token too short",
        lambda w: ["serve", "--port", "0", "--auth-token", "abc123"],
        ("--auth-token is 6 characters", "at least 16 characters"),
    ),
    Row(
        "serve --anthropic-key-file readable by others",
        lambda w: ["serve", "--port", "0", "--anthropic-key-file", w.file("k", KEY, 0o644)],
        ("k can be read by other users (mode 0644)", "chmod 600 "),
    ),
    Row(
        "serve --openai-key-file missing",
        lambda w: ["serve", "--port", "0", "--openai-key-file", str(w.dir / "none.keys")],
        ("none.keys: cannot read the key file", "No such file"),
    ),
    Row(
        "serve --anthropic-key-file with no key",
        lambda w: ["serve", "--port", "0", "--anthropic-key-file", w.file("e", "# x\n\n", 0o600)],
        ("e holds no key",),
    ),
    Row(
        "serve --anthropic-key-file with a bad line",
        lambda w: [
            "serve",
            "--port",
            "0",
            "--anthropic-key-file",
            w.file("b", f"{KEY}\nsk-ant two words\n", 0o600),
        ],
        ("b:2: the key holds ' ' at character 7",),
    ),
    Row(
        "record --openai-key-file readable by others",
        lambda w: [
            "record",
            "-o",
            str(w.dir / "r.jsonl"),
            "--openai-key-file",
            w.file("o", KEY, 0o640),
            "--",
            "true",
        ],
        ("o can be read by other users (mode 0640)", "chmod 600 "),
    ),
    Row(
        "serve --anthropic-key ''",
        lambda w: ["serve", "--port", "0", "--anthropic-key", ""],
        ("--anthropic-key is empty", "leave the option out"),
    ),
    Row(
        "serve --anthropic-key with CR/LF",
        lambda w: ["serve", "--port", "0", "--anthropic-key", KEY + "\r\n"],
        ("--anthropic-key: the key holds '\\r' at character 28",),
    ),
    Row(
        "serve --openai-key with a non-visible character",
        lambda w: ["serve", "--port", "0", "--openai-key", "sk-proj-\u200babc"],
        ("--openai-key: the key holds '\\u200b' at character 9",),
    ),
    Row(
        "serve --anthropic-base-url with a query",
        lambda w: ["serve", "--anthropic-base-url", "https://api.anthropic.com/?x=1"],
        ("'--anthropic-base-url'", "has a query or a fragment"),
    ),
    Row(
        "serve --openai-base-url with a fragment",
        lambda w: ["serve", "--openai-base-url", "https://api.openai.com/v1#frag"],
        ("'--openai-base-url'", "has a query or a fragment"),
    ),
    Row(
        "serve --record on a file that is not a fixture",
        lambda w: ["serve", "--port", "0", "--record", w.file("n.txt", "a\nb")],
        ("n.txt is not an aibridge fixture", "nothing was written to it", "record to a new"),
        keeps="n.txt",
    ),
    Row(
        "serve --record on a fixture recorded with other settings",
        lambda w: ["serve", "--port", "0", "--record", w.file("lazy.jsonl", LAZY_HEADER)],
        ("lazy.jsonl was recorded with other proxy settings", "stream_initiation=lazy"),
        keeps="lazy.jsonl",
    ),
    Row(
        "serve --record on a fixture with a bad line before good ones",
        lambda w: [
            "serve",
            "--port",
            "0",
            "--record",
            w.file("mid.jsonl", HEADER + '{"cut": \n' + _interception("anthropic")),
        ],
        ("mid.jsonl:2: not valid JSON", "nothing was written to the file", "record to a new"),
        keeps="mid.jsonl",
    ),
    Row(
        "serve --record /dev/full",
        lambda w: ["serve", "--port", "0", "--record", "/dev/full"],
        ("/dev/full: cannot record there (No space left on device)", "free space"),
    ),
    Row(
        "record -o /dev/full",
        lambda w: ["record", "-o", "/dev/full", "--", "true"],
        ("/dev/full: cannot record there (No space left on device)",),
    ),
    Row(
        "show --html over the fixture shown",
        lambda w: ["show", w.file("s.jsonl", HEADER), "--html", str(w.dir / "s.jsonl")],
        ("s.jsonl is also an input of this command", "choose another output path"),
        keeps="s.jsonl",
    ),
    Row(
        "show --html over another fixture",
        lambda w: [
            "show",
            w.file("s.jsonl", HEADER),
            "--html",
            w.file("other.jsonl", HEADER),
        ],
        ("other.jsonl holds aibridge data", "not writing over it"),
        keeps="other.jsonl",
    ),
    Row(
        "show --html to /dev/full",
        lambda w: ["show", w.file("s.jsonl", HEADER), "--html", "/dev/full"],
        ("/dev/full: cannot write (No space left on device)", "nothing was written"),
    ),
    Row(
        "fuzz --repro with --html over the repro",
        lambda w: [
            "fuzz",
            "--repro",
            w.file("repro-1.jsonl", '{"kind": "fuzz-repro"}\n'),
            "--html",
            str(w.dir / "repro-1.jsonl"),
        ],
        ("repro-1.jsonl is also an input of this command",),
        keeps="repro-1.jsonl",
    ),
    Row(
        "record on a busy port",
        lambda w: [
            "record",
            "-o",
            str(w.dir / "r.jsonl"),
            "--port",
            str(w.busy_port),
            "--",
            "true",
        ],
        ("cannot listen on 127.0.0.1:", "Address already in use"),
    ),
    Row(
        "fuzz with its upstream port busy",
        lambda w: [
            "fuzz",
            "--target",
            f"http://127.0.0.1:{w.busy_port}",  # something listens there: the target is fine
            "--upstream-port",
            str(w.busy_port),
        ],
        ("--upstream-port", "cannot listen", "Address already in use"),
    ),
    Row(
        "record a command that does not exist",
        lambda w: ["record", "-o", str(w.dir / "r.jsonl"), "--", "aibridge-no-such-binary"],
        ("cannot run aibridge-no-such-binary", "check the command"),
        code=127,
    ),
    Row(
        "replay --target where nothing listens",
        lambda w: ["replay", "--builtin", "--target", "http://127.0.0.1:1", "--upstream-port", "5"],
        ("cannot reach --target http://127.0.0.1:1", "start the proxy there first"),
    ),
    Row(
        "replay --target at a port that never answers",
        lambda w: [
            "replay",
            "--builtin",
            "simple",
            "--target",
            f"http://127.0.0.1:{w.busy_port}",
            "--upstream-port",
            "5",
        ],
        ("--target http://127.0.0.1:", "sent no HTTP answer in 5 s", "is the proxy on that port"),
    ),
    Row(
        "replay a FIFO",
        lambda w: ["replay", _fifo(w, "session.fifo")],  # not .jsonl: the key watch reads those
        ("session.fifo: not a regular file",),
    ),
    Row(
        "replay a header-only fixture",
        lambda w: ["replay", w.file("empty.jsonl", HEADER)],
        ("empty.jsonl: nothing to replay",),
    ),
    Row(
        "replay a fixture of an unknown api",
        lambda w: ["replay", w.file("gemini.jsonl", HEADER + _interception("gemini"))],
        ("unknown api 'gemini'", "known: anthropic, openai-chat, openai-responses"),
    ),
    Row(
        "mock --timing slow",
        lambda w: ["mock", "--timing", "slow", w.file("empty.jsonl", HEADER)],
        ("'--timing'", "'slow' is not one of 'recorded', 'fast'"),
    ),
    Row(
        "fuzz --target where nothing listens",
        lambda w: ["fuzz", "--target", "http://127.0.0.1:1", "--upstream-port", str(w.free_port())],
        ("--target http://127.0.0.1:1", "cannot connect"),
    ),
    Row(
        "a misspelt option",
        lambda w: ["serve", "--prot", "80"],
        ("no such option: --prot", "see 'aibridge serve -h'"),
    ),
    Row(
        "a long value piped is not wrapped at 80 columns",
        lambda w: ["replay", w.file("x" * 120 + ".jsonl", HEADER)],
        ("x" * 120 + ".jsonl: nothing to replay",),
    ),
]

# What only a process shows is the same for every row; these cover each command kind.
PROCESS_ROWS = {
    "serve on a busy port",
    "serve --record /dev/full",
    "serve --record on a file that is not a fixture",
    "record a command that does not exist",
    "replay --target where nothing listens",
    "a long value piped is not wrapped at 80 columns",
    "serve --anthropic-key with CR/LF",
    "replay a FIFO",
}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield Workspace(tmp_path, held.getsockname()[1])


def files(workspace: Workspace) -> set[Path]:
    return {path for path in workspace.dir.rglob("*") if path.is_file()}


def run(
    row: Row, workspace: Workspace, invoke: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    """Run the row, then check the exit code, the one line and the kept file's bytes."""
    args = row.args(workspace)
    inputs = files(workspace)
    keeps = workspace.dir / row.keeps if row.keeps else None
    before = keeps.read_bytes() if keeps else b""
    code, stdout, stderr = invoke(args)
    assert code == row.code, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    line = stderr.removesuffix("\n")
    assert "\n" not in line, stderr  # one line, however long
    assert line.startswith("error: "), stderr
    for words in row.says:
        assert words in line, line
    if keeps is not None:
        assert keeps.read_bytes() == before
    assert files(workspace) == inputs  # nothing beside: no .cut file, no empty fixture


def in_process(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def in_a_subprocess(args: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb"},  # no COLUMNS: a pipe, 80 by default
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_a_mistake_is_one_line_and_exit_2(row: Row, workspace: Workspace) -> None:
    run(row, workspace, in_process)


PROCESS = [r for r in ROWS if r.name in PROCESS_ROWS]


@pytest.mark.parametrize("row", PROCESS, ids=[r.name for r in PROCESS])
def test_a_mistake_is_one_line_and_exit_2_in_a_process(row: Row, workspace: Workspace) -> None:
    run(row, workspace, in_a_subprocess)


def test_with_debug_the_traceback_is_shown(workspace: Workspace) -> None:
    result = CliRunner().invoke(app, ["--debug", "serve", "--port", str(workspace.busy_port)])
    assert result.exit_code == 1
    assert "ListenError" in repr(result.exception)


# Mistakes made in the environment rather than on the command line.
ENV_ROWS = [
    (
        Row(
            "a bad AIBRIDGE_DEBUG",
            lambda w: ["serve", "--port", "0"],
            ("invalid value for '--debug'", "(from AIBRIDGE_DEBUG)", " -h'"),
        ),
        {"AIBRIDGE_DEBUG": "maybe"},
    ),
]


@pytest.mark.parametrize(("row", "env"), ENV_ROWS, ids=[r.name for r, _ in ENV_ROWS])
@pytest.mark.parametrize("where", ["in-process", "process"])
def test_a_mistake_in_the_environment_is_one_line_and_exit_2(
    row: Row, env: dict[str, str], where: str, workspace: Workspace
) -> None:
    def in_process_with_env(args: list[str]) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, args, env=env, prog_name="aibridge")
        return result.exit_code, result.stdout, result.stderr

    def in_a_subprocess_with_env(args: list[str]) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "aibridge_cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "TERM": "dumb", **env},
        )
        return done.returncode, done.stdout, done.stderr

    run(row, workspace, in_process_with_env if where == "in-process" else in_a_subprocess_with_env)


@pytest.fixture
def chatty_port() -> Iterator[int]:
    """A port whose server greets every connection with a line that is not HTTP (an SSH
    server's banner), as a mistyped --target finds."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        stop = threading.Event()

        def greet() -> None:
            server.settimeout(0.1)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=greet, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        stop.set()
        thread.join()


@pytest.mark.parametrize("command", ["replay", "fuzz"])
def test_a_target_that_does_not_speak_http_is_blamed_at_once(
    command: str, chatty_port: int, workspace: Workspace
) -> None:
    target = f"http://127.0.0.1:{chatty_port}"
    args = ["--target", target, "--upstream-port", str(workspace.free_port())]
    row = Row(
        f"{command} --target at a port that speaks something else",
        lambda w: [command, *(["--builtin", "simple"] if command == "replay" else []), *args],
        (f"--target {target} answered something that is not HTTP: b'SSH-2.0-OpenSSH_9.6",),
    )
    run(row, workspace, in_process)


def test_no_arguments_is_the_help_and_no_error_line() -> None:
    code, out, err = in_a_subprocess([])
    assert code == 2  # no command given: the help, as a usage answer
    assert "Usage:" in out
    assert "Commands" in out
    assert err == ""  # was "error: ; see 'aibridge -h'": a mistake with no words
