"""What every benchmark shares: processes under test, a lean client, statistics, tables.

The processes (bench upstream, ``aibridge serve``, LiteLLM, mitmdump) run as
subprocesses; the benchmark process is the client. The client is raw trio sockets with a
hand-rolled response parser: it counts SSE events (blank-line terminators) without
decoding them, so it costs little next to what it measures.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


# -- processes --------------------------------------------------------------------------
@dataclass
class Service:
    """A running server subprocess and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    path: str  # the Messages endpoint on this service
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request

    def rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> None:
        """Restart VmHWM at the current RSS (Linux: write 5 to clear_refs)."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        except OSError:
            pass


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _wait_listening(process: subprocess.Popen[bytes], timeout: float) -> tuple[str, int]:
    """Read stdout until a ``listening on http://HOST:PORT`` line."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    os.set_blocking(process.stdout.fileno(), True)
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace")
        if not line:
            break
        seen.append(line)
        if "listening on http://" in line:
            address = line.split("listening on http://", 1)[1].strip().rstrip("/")
            host, _, port = address.rpartition(":")
            return host.strip("[]"), int(port)
    process.kill()
    raise RuntimeError("server did not report its address:\n" + "".join(seen[-20:]))


@contextmanager
def spawn(
    name: str,
    argv: Sequence[str],
    path: str,
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    port: int | None = None,
    cwd: Path = ROOT,
) -> Iterator[Service]:
    """Start a server and stop it on exit.

    Without ``port`` the server must print ``listening on http://HOST:PORT``; with one,
    it is ready once that port accepts a connection.
    """
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE if port is None else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    try:
        if port is None:
            host, bound = _wait_listening(process, timeout)
        else:
            host, bound = "127.0.0.1", _wait_port(process, port, timeout)
        yield Service(name, process, host, bound, path)
    finally:
        stop(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not listen on port {port} within {timeout:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_upstream(write_size: int = 16384) -> contextmanager[Service]:  # type: ignore[valid-type]
    argv = [
        sys.executable,
        str(BENCH / "upstream.py"),
        "--port",
        "0",
        "--write-size",
        str(write_size),
    ]
    return spawn("upstream", argv, "/v1/messages")


ANTHROPIC_POOL_KEY = "sk-ant-bench-0000000000000000"
OPENAI_POOL_KEY = "sk-bench-pool-key-1234"


def serve_argv(
    anthropic: str,
    openai: str | None = None,
    *,
    runner: Sequence[str] = (sys.executable,),
    log_level: str = "warning",
    extra: Sequence[str] = (),
) -> list[str]:
    """``aibridge serve`` on a free port with a bench key for each upstream given;
    ``runner``: what runs Python (a profiler, valgrind)."""
    argv = [*runner, "-m", "aibridge_cli", "serve", "--port", "0"]
    argv += ["--anthropic-base-url", anthropic, "--anthropic-key", ANTHROPIC_POOL_KEY]
    if openai is not None:
        argv += ["--openai-base-url", openai, "--openai-key", OPENAI_POOL_KEY]
    return [*argv, "--log-level", log_level, *extra]


async def open_serve(argv: Sequence[str], cwd: Path | None = None) -> tuple[trio.Process, str]:
    """Start ``aibridge serve`` from within trio; the process and the URL it listens on."""
    proc = await trio.lowlevel.open_process(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
    )
    assert proc.stdout is not None
    buffer = b""
    while b"\n" not in buffer:
        buffer += await proc.stdout.receive_some(4096)
    match = re.search(rb"listening on (http://\S+)", buffer)
    assert match is not None, buffer
    return proc, match.group(1).decode()


def aibridge(
    upstream: Service,
    *extra: str,
    name: str = "aibridge",
    profile: str | None = None,
    tree: Path = ROOT,
) -> contextmanager[Service]:  # type: ignore[valid-type]
    """``aibridge serve`` in front of ``upstream``; ``profile``: a pyinstrument text report
    (``.prof``: cProfile); ``tree``: a source tree to run instead (an older version)."""
    runner = [sys.executable]
    if profile and profile.endswith(".prof"):
        runner += ["-m", "cProfile", "-o", profile]
    elif profile:
        runner += ["-m", "pyinstrument", "-r", "text", "-o", profile]
    argv = serve_argv(f"http://{upstream.host}:{upstream.port}", runner=runner, extra=extra)
    return spawn(name, argv, "/anthropic/v1/messages", cwd=tree)


def find_tool(name: str) -> str | None:
    """A bench extra's executable: on PATH, beside this interpreter, or in .bench-venvs."""
    for candidate in (
        shutil.which(name),
        str(Path(sys.executable).parent / name),
        *(str(p) for p in sorted((ROOT / ".bench-venvs").glob(f"*/bin/{name}"))),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# -- the client -------------------------------------------------------------------------
@dataclass
class Result:
    status: int
    ttfb: float  # seconds from sending the request to the first body byte
    elapsed: float  # seconds from sending the request to the end of the response
    events: int
    body_bytes: int
    error: str | None = None


class ResponseReader:
    """Reads one HTTP/1.1 response off a socket: head, then a content-length or chunked body."""

    def __init__(self, stream: trio.SocketStream, buffer: bytearray, receive_size: int) -> None:
        self.stream = stream
        self.buffer = buffer
        self.receive_size = receive_size

    async def _more(self) -> None:
        data = await self.stream.receive_some(self.receive_size)
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buffer += data

    async def head(self) -> tuple[int, dict[str, str]]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._more()
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    async def body(self, headers: dict[str, str]) -> Iterator[bytes]:  # type: ignore[misc]
        """Yield body data as it arrives (an async generator)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while (eol := self.buffer.find(b"\r\n")) < 0:
                    await self._more()
                size = int(bytes(self.buffer[:eol]).split(b";")[0], 16)
                del self.buffer[: eol + 2]
                if size == 0:
                    while self.buffer.find(b"\r\n") < 0:
                        await self._more()
                    del self.buffer[: self.buffer.find(b"\r\n") + 2]
                    return
                while size:
                    if not self.buffer:
                        await self._more()
                    take = min(size, len(self.buffer))
                    yield bytes(self.buffer[:take])
                    del self.buffer[:take]
                    size -= take
                while len(self.buffer) < 2:
                    await self._more()
                del self.buffer[:2]
        elif "content-length" in headers:
            size = int(headers["content-length"])
            while size:
                if not self.buffer:
                    await self._more()
                take = min(size, len(self.buffer))
                yield bytes(self.buffer[:take])
                del self.buffer[:take]
                size -= take
        else:  # until the connection closes
            if self.buffer:
                yield bytes(self.buffer)
                self.buffer.clear()
            while data := await self.stream.receive_some(self.receive_size):
                yield data


def messages_body(stream: bool, events: int | None = None, delay_ms: float = 0) -> bytes:
    """A Messages request; a stream's shape (``bench/upstream.py``) goes in its prompt."""
    prompt = "hi" if events is None else f"hi events={events} delay-ms={delay_ms:g}"
    return json.dumps(
        {
            "model": "claude-bench",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
    ).encode()


class Client:
    """One keep-alive connection to a service."""

    def __init__(self, service: Service, *, receive_size: int = 65536) -> None:
        self.service = service
        self.receive_size = receive_size
        self.stream: trio.SocketStream | None = None
        self.buffer = bytearray()

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None

    async def request(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        read_delay: float = 0.0,
    ) -> Result:
        """POST to the service's Messages path; count SSE events in the answer."""
        service = self.service
        if self.stream is None:
            self.stream = await trio.open_tcp_stream(service.host, service.port)
            self.buffer = bytearray()
        all_headers = {
            "host": f"{service.host}:{service.port}",
            "content-type": "application/json",
            "content-length": str(len(body)),
            "x-api-key": "sk-ant-client-0000",
            "anthropic-version": "2023-06-01",
            **service.headers,
            **(headers or {}),
        }
        lines = "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
        head = f"POST {service.path} HTTP/1.1\r\n{lines}\r\n"
        started = time.perf_counter()
        ttfb = 0.0
        events = size = 0
        last = b""
        try:
            await self.stream.send_all(head.encode() + body)
            reader = ResponseReader(self.stream, self.buffer, self.receive_size)
            status, response_headers = await reader.head()
            async for data in reader.body(response_headers):
                if not ttfb:
                    ttfb = time.perf_counter() - started
                size += len(data)
                events += data.count(b"\n\n") + (last == b"\n" and data[:1] == b"\n")
                last = data[-1:]
                if read_delay:
                    await trio.sleep(read_delay)
            if response_headers.get("connection", "").lower() == "close":
                await self.aclose()
        except (OSError, ConnectionError, trio.BrokenResourceError, ValueError) as exc:
            await self.aclose()
            return Result(0, ttfb, time.perf_counter() - started, events, size, repr(exc))
        return Result(status, ttfb, time.perf_counter() - started, events, size)


async def one_request(
    service: Service, body: bytes, headers: dict[str, str] | None = None, **kwargs: float
) -> Result:
    """A request on a fresh connection, closed afterwards."""
    client = Client(service, receive_size=int(kwargs.pop("receive_size", 65536)))
    try:
        return await client.request(body, headers, **kwargs)
    finally:
        await client.aclose()


# -- numbers and tables -----------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    """nproc, CPU model and Python, for the docs."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({model}), Python {python}, {platform.system()}"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table (pastes into Markdown as is)."""
    cells = [[str(c) for c in columns], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )

    print(f"\n{title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()
