"""A disk that fills, refuses or stalls writes costs the recording, never a client's stream.

``serve --record`` runs as a child process against a scripted upstream while 40 clients
(the anthropic SDK) stream through it and the recording's disk fills: a real small tmpfs
mounted here (root only), or a file-size limit on the child (``RLIMIT_FSIZE``: a short
write, then ``EFBIG``), which runs anywhere.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anthropic
import pytest
import trio

from aibridge_cli.config import ServeOptions
from aibridge_cli.fakes.scripted_upstream import ScriptedUpstream
from aibridge_cli.files import append_whole as real_append_whole
from aibridge_cli.proxy.run import build_app, serve_proxy
from aibridge_cli.sessions import recording
from aibridge_cli.sessions.recording import FixtureWriter, load_fixture
from aibridge_cli.tools import ToolSet

from .anthropic_script import message_end, message_start, stream, text_block
from .cli_process import CLI, run_cli
from .conftest import start_server
from .test_anthropic_e2e import HELLO
from .test_pytest_plugin import Upstream, upstream
from .test_pytest_plugin import run as run_plugin

pytest_plugins = ("pytester",)
__all__ = ["upstream"]  # a fixture of the plugin's tests, used here too

REQUESTS = 40
REPLY = stream(
    message_start(),
    text_block(0, "Hello", " world", " " + "x" * 1500),  # ~3 KB a recorded line
    message_end("end_turn", 3),
)
EXPECTED_TEXT = "Hello world " + "x" * 1500
LIMIT = 40 * 1024  # room for about a dozen lines of the 40
FILLER = 24 * 1024  # taken on the tmpfs before the run, freed after it


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with ``LIMIT`` bytes free and ``FILLER`` more taken by ``filler``; skipped
    where this process may not mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={LIMIT + FILLER}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(b"f" * FILLER)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def file_size_limit(limit: int) -> Callable[[], None]:
    def limit_child() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killed proxy
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_child


class Proxy:
    """``aibridge serve --record`` in a child; its stderr kept in a file."""

    def __init__(self, proc: trio.Process, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    @classmethod
    async def start(
        cls, upstream: str, record: Path, log: Path, preexec: Callable[[], None] | None = None
    ) -> Proxy:
        args = ["serve", "--port", "0", "--anthropic-base-url", upstream, "--record", str(record)]
        with log.open("wb") as err:
            proc = await trio.lowlevel.open_process(
                [*CLI, *args], stdout=subprocess.PIPE, stderr=err, preexec_fn=preexec
            )
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                data = await proc.stdout.receive_some(1)
                assert data, read(log)
                line += data
        return cls(proc, line.decode().split()[-1], log)

    @classmethod
    @asynccontextmanager
    async def running(
        cls, upstream: str, record: Path, log: Path, preexec: Callable[[], None] | None = None
    ) -> AsyncIterator[Proxy]:
        """The proxy, killed on the way out if a failed check left it running."""
        proxy = await cls.start(upstream, record, log, preexec)
        try:
            yield proxy
        finally:
            if proxy.proc.returncode is None:
                proxy.proc.kill()
                await proxy.proc.wait()

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            code = await self.proc.wait()
        assert self.proc.stdout is not None
        await self.proc.stdout.aclose()
        return code


async def stream_all(url: str, count: int) -> list[str]:
    """``count`` streams, 8 at a time; each client's whole text (the SDK raises on a
    stream cut short of its chunked terminator or its ``message_stop``)."""
    client = anthropic.AsyncAnthropic(base_url=url + "/anthropic", api_key="k", max_retries=0)
    texts: list[str] = []
    limiter = trio.CapacityLimiter(8)

    async def one() -> None:
        async with limiter:
            async with client.messages.stream(
                model="claude-test", max_tokens=50, messages=HELLO
            ) as st:
                final = await st.get_final_message()
            assert final.stop_reason == "end_turn"
            texts.append("".join(b.text for b in final.content if b.type == "text"))

    async with client, trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return texts


def read(path: Path) -> str:
    return path.read_text()


def recording_lines(log: Path) -> list[str]:
    return [line for line in read(log).splitlines() if "recording to" in line]


async def check_full_disk_run(
    nursery: trio.Nursery,
    tmp_path: Path,
    record: Path,
    preexec: Callable[[], None] | None,
    cause: str,
) -> tuple[str, int]:
    upstream = ScriptedUpstream([REPLY] * (REQUESTS + 2))
    _, upstream_url = await start_server(nursery, upstream)
    async with Proxy.running(upstream_url, record, tmp_path / "serve.log", preexec) as proxy:
        texts = await stream_all(proxy.url, REQUESTS)
        assert await proxy.stop() == 0
    assert texts == [EXPECTED_TEXT] * REQUESTS  # every client read its whole stream

    failures = recording_lines(proxy.log)
    assert len(failures) == 1, read(proxy.log)  # one line names the failure
    assert str(record) in failures[0]
    assert cause in failures[0]
    assert "Traceback" not in read(proxy.log)
    fixture = load_fixture(record)
    assert fixture.warnings == []  # every line whole
    assert 0 < len(fixture.interceptions) < REQUESTS  # the disk filled along the way
    text = read(record)
    assert all(json.loads(line) for line in text.splitlines())
    replayed = await run_cli("replay", str(record))
    assert replayed.returncode == 0, replayed.stdout.decode() + replayed.stderr.decode()
    return text, len(fixture.interceptions)


async def restart_and_record_two_more(
    nursery: trio.Nursery, tmp_path: Path, record: Path, before: str, count: int
) -> None:
    upstream = ScriptedUpstream([REPLY] * 2)
    _, upstream_url = await start_server(nursery, upstream)
    async with Proxy.running(upstream_url, record, tmp_path / "again.log") as proxy:
        assert await stream_all(proxy.url, 2) == [EXPECTED_TEXT] * 2
        assert await proxy.stop() == 0
    after = read(record)
    assert after.startswith(before)  # no line lost
    assert len(load_fixture(record).interceptions) == count + 2
    assert recording_lines(proxy.log) == []


async def test_a_filling_tmpfs_costs_recorded_lines_never_a_stream(
    nursery: trio.Nursery, tmp_path: Path, small_disk: Path
) -> None:
    record = small_disk / "s.jsonl"
    before, count = await check_full_disk_run(
        nursery, tmp_path, record, None, "No space left on device"
    )
    (small_disk / "filler").unlink()  # room again: the same recording goes on
    await restart_and_record_two_more(nursery, tmp_path, record, before, count)


async def test_write_errors_after_a_short_write_cost_only_the_record(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    record = tmp_path / "s.jsonl"
    before, count = await check_full_disk_run(
        nursery, tmp_path, record, file_size_limit(LIMIT), "File too large"
    )
    await restart_and_record_two_more(nursery, tmp_path, record, before, count)


def fill(directory: Path) -> None:
    """Take every free byte of ``directory``'s filesystem."""
    with (directory / "everything").open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"f" * 4096)
        except OSError:
            pass


@pytest.mark.parametrize("command", ["serve", "record"])
async def test_recording_on_a_full_disk_is_one_line_and_leaves_no_file(
    small_disk: Path, command: str
) -> None:
    fill(small_disk)
    record = small_disk / "new.jsonl"
    args = ["serve", "--port", "0", "--record"] if command == "serve" else ["record", "-o"]
    done = await run_cli(*args, str(record), *(["--", "true"] if command == "record" else []))
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {record}: cannot record there (No space left on device)")
    assert not record.exists()


async def test_recording_on_a_read_only_filesystem_is_one_line(small_disk: Path) -> None:
    await trio.run_process(["mount", "-o", "remount,ro", str(small_disk)])
    record = small_disk / "new.jsonl"
    done = await run_cli("serve", "--port", "0", "--record", str(record))
    assert done.returncode == 2
    assert done.stderr.decode().startswith(
        f"error: {record}: cannot record there (Read-only file system)"
    )
    assert not record.exists()


async def test_the_relay_never_waits_for_the_disk(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that does not answer (every write held at a gate) holds up no stream; the
    records are written once it does."""
    record = tmp_path / "s.jsonl"
    writer = FixtureWriter(record)  # its header is on disk
    gate = threading.Event()

    def stuck_disk(fd: int, data: bytes, before_sync: Callable[[], None] | None = None) -> None:
        gate.wait(10)  # bounded: a relay that waited for it would stall, not hang
        real_append_whole(fd, data, before_sync)

    monkeypatch.setattr(recording, "append_whole", stuck_disk)
    upstream = ScriptedUpstream([REPLY] * 3)
    _, upstream_url = await start_server(nursery, upstream)
    options = ServeOptions(host="127.0.0.1", port=0, anthropic_base_url=upstream_url)
    app = build_app(options, tools=ToolSet(), recorder=writer)
    host, port = await nursery.start(
        lambda task_status: serve_proxy(app, options, announce=False, task_status=task_status)
    )
    try:
        with trio.fail_after(30):
            texts = await stream_all(f"http://{host}:{port}", 3)
        assert texts == [EXPECTED_TEXT] * 3  # every stream whole while no write went through
        assert len(read(record).splitlines()) == 1  # the header only: the disk still waits
    finally:
        gate.set()
        await trio.to_thread.run_sync(writer.close)
    assert len(load_fixture(record).interceptions) == 3


AGENT = """
import sys, anthropic
client = anthropic.Anthropic(max_retries=0)
for _ in range(int(sys.argv[1])):
    with client.messages.stream(model="m", max_tokens=5,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"
print("all whole")
"""


async def test_record_on_a_filling_disk_keeps_its_command_s_streams_whole(
    nursery: trio.Nursery, small_disk: Path
) -> None:
    upstream = ScriptedUpstream([REPLY] * REQUESTS)
    _, upstream_url = await start_server(nursery, upstream)
    record = small_disk / "s.jsonl"
    done = await run_cli(
        "record", "-o", str(record), "--anthropic-base-url", upstream_url,
        "--anthropic-key", "sk-ant-pool-key-0000000000",
        "--", sys.executable, "-c", AGENT, str(REQUESTS),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == "all whole\n"
    err = done.stderr.decode().splitlines()
    assert len([line for line in err if "No space left on device" in line]) == 1, err
    count = len(load_fixture(record).interceptions)
    assert 0 < count < REQUESTS
    assert err[-1] == (
        f"recorded {count} interceptions to {record}; {REQUESTS - count} not recorded "
        "(the disk refused them)"
    )


PLUGIN_TEST = """
import anthropic, pytest

@pytest.mark.aibridge(fixture={path!r})
def test_forty_streams():
    with anthropic.Anthropic(max_retries=0) as client:
        for _ in range(40):
            with client.messages.stream(
                model="claude-test", max_tokens=5,
                messages=[{{"role": "user", "content": "hi " + "x" * 1500}}],
            ) as stream:
                assert stream.get_final_message().stop_reason == "end_turn"
"""


def test_the_pytest_plugin_s_cassette_on_a_filling_disk_keeps_the_test_whole(
    pytester: pytest.Pytester, upstream: Upstream, small_disk: Path
) -> None:
    cassette = small_disk / "forty.jsonl"
    pytester.makepyfile(test_forty=PLUGIN_TEST.format(path=str(cassette)))
    result = run_plugin(pytester, "--aibridge-record=once", *upstream.options())
    result.assert_outcomes(passed=1)  # every stream whole while the disk filled
    fixture = load_fixture(cassette)
    assert fixture.warnings == []
    count = len(fixture.interceptions)
    assert 0 < count < REQUESTS
    result.stdout.fnmatch_lines([f"recorded {count} interception(s) to {cassette}"])
