"""Codex CLI's time to its first answer over WebSocket mode: direct against the scripted
upstream, and through ``aibridge serve``, interleaved rounds.

Codex CLI with its built-in provider speaks the Responses API's WebSocket mode first; before
aibridge took the upgrade it answered 405 and Codex fell back to HTTP after about 6.3 s.
Each round runs ``codex exec "say hi"`` once direct and once proxied, with a fresh HOME,
and times it from launch to the answer on its stdout (it exits right after). The
difference is what the proxy costs a session's first answer.

    python bench/codex_websocket.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from aibridge_cli.fakes.scripted_upstream import Reply, ScriptedUpstream, SeenRequest
from aibridge_cli.proxy.server import Server
from aibridge_cli.sse import encode_event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import open_serve, serve_argv

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "Hi from the scripted upstream."


def codex_path() -> str:
    local = ROOT / ".clients" / "node_modules" / ".bin" / "codex"
    found = str(local) if local.exists() else shutil.which("codex")
    if found is None:
        sys.exit("Codex CLI is not installed (.clients/node_modules/.bin or PATH)")
    return found


def answer(seen: SeenRequest, index: int) -> Reply:
    item = {
        "id": f"msg_{index}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
    }
    response = {
        "id": f"resp_{index}",
        "object": "response",
        "status": "completed",
        "model": "gpt-x",
        "output": [item],
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
    }
    events = [
        (
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": {**response, "status": "in_progress", "output": []},
            },
        ),
        (
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "sequence_number": 1,
                "output_index": 0,
                "item": item,
            },
        ),
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": 2, "response": response},
        ),
    ]
    import json

    return Reply(
        200,
        [("content-type", "text/event-stream")],
        [encode_event(name, json.dumps(data)) for name, data in events],
    )


async def run_codex(codex: str, base_url: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "OPENAI_API_KEY": "sk-bench-client-0000"}
        env.pop("OPENAI_BASE_URL", None)
        started = trio.current_time()
        done = await trio.run_process(
            [
                codex,
                "exec",
                "--skip-git-repo-check",
                "-c",
                f'openai_base_url="{base_url}"',
                "say hi",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        elapsed = trio.current_time() - started
    output = done.stdout.decode() + done.stderr.decode()
    if ANSWER not in output or "Falling back from WebSockets" in output:
        raise SystemExit(f"codex did not answer over WebSocket:\n{output[-2000:]}")
    return elapsed


async def start_proxy(upstream_url: str) -> tuple[trio.Process, str]:
    # no Anthropic upstream here: its base URL is the same, unused
    return await open_serve(serve_argv(upstream_url, upstream_url + "/v1", log_level="info"))


async def main(rounds: int) -> None:
    codex = codex_path()
    async with trio.open_nursery() as nursery:
        upstream = ScriptedUpstream(script=answer)
        server = Server(upstream)
        host, port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
        upstream_url = f"http://{host}:{port}"
        proc, proxy_url = await start_proxy(upstream_url)
        direct: list[float] = []
        proxied: list[float] = []
        try:
            for _ in range(rounds):
                direct.append(await run_codex(codex, upstream_url + "/v1"))
                proxied.append(await run_codex(codex, proxy_url + "/openai/v1"))
        finally:
            proc.terminate()
            await proc.wait()
            server.shutdown()
        assert proc.stderr is not None
        log = b""
        while chunk := await proc.stderr.receive_some(65536):
            log += chunk
    # the proxy's own time per response.create, upstream included (its log line)
    inside = [float(ms) for ms in re.findall(rb"response\.create (\d+)ms", log)]
    load = os.getloadavg()[0]
    print(f"codex exec, {rounds} interleaved rounds, load {load:.1f} on {os.cpu_count()} cores")
    print("| path | median s | min s |")
    print("|---|---|---|")
    print(f"| direct | {statistics.median(direct):.2f} | {min(direct):.2f} |")
    print(f"| aibridge serve | {statistics.median(proxied):.2f} | {min(proxied):.2f} |")
    diffs = [p - d for p, d in zip(proxied, direct, strict=True)]
    print(f"| difference (per round) | {statistics.median(diffs):+.2f} | {min(diffs):+.2f} |")
    if inside:
        print(
            f"\nin the proxy, per response.create ({len(inside)}): median"
            f" {statistics.median(inside):.0f} ms, max {max(inside):.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    trio.run(main, parser.parse_args().rounds)
