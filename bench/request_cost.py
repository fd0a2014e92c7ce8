"""The proxy's own cost per request, in instructions: a small blocking request and a
6-event stream through ``aibridge serve``, counted by valgrind's callgrind.

Wall and CPU time on a shared 2-core VM swing by 2x from one minute to the next; the
instruction count of the proxy process does not. The proxy runs under
``valgrind --tool=callgrind`` (with ``--dump-instr=no``), the bench upstream and the lean
client outside it; after a warm-up the client sends ``--small`` requests of a kind, then
``--large``, each in a fresh proxy, and the difference of the two totals over the
difference in requests is the cost of one request, start-up and shutdown cancelled out.

    python bench/request_cost.py [--small 100] [--large 400] [--tree DIR]

``--tree DIR`` counts the ``aibridge_cli`` of another source tree (an older version).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, Client, Service, bench_upstream, messages_body, serve_argv, spawn

KINDS = ("blocking", "stream")


def proxy_argv(upstream: Service, out: Path) -> list[str]:
    valgrind = ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}"]
    return serve_argv(f"http://{upstream.host}:{upstream.port}", runner=[*valgrind, sys.executable])


async def drive(service: Service, kind: str, n: int) -> None:
    client = Client(service)
    body = messages_body(True, 6) if kind == "stream" else messages_body(False)
    try:
        for _ in range(20 + n):  # 20 to warm up: imports, connections, caches
            result = await client.request(body)
            if result.status != 200 or result.error:
                raise SystemExit(f"request failed: {result.status} {result.error}")
    finally:
        await client.aclose()


def instructions(upstream: Service, kind: str, n: int, tree: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        with spawn(
            "aibridge", proxy_argv(upstream, out), "/anthropic/v1/messages", timeout=300, cwd=tree
        ) as service:
            trio.run(drive, service, kind, n)
            service.process.send_signal(signal.SIGTERM)
            service.process.wait(120)
        text = out.read_text()
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    assert match is not None, "no totals in the callgrind output"
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=400)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--kind", choices=KINDS, action="append")
    args = parser.parse_args()
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode:
        raise SystemExit("valgrind is not installed")
    print(f"tree {args.tree}, load {os.getloadavg()[0]:.1f}")
    print("| request | instructions per request |")
    print("|---|---:|")
    with bench_upstream() as upstream:
        for kind in args.kind or KINDS:
            small = instructions(upstream, kind, args.small, args.tree)
            large = instructions(upstream, kind, args.large, args.tree)
            per = (large - small) / (args.large - args.small)
            print(f"| {kind} | {per / 1e6:.3f} million |", flush=True)


if __name__ == "__main__":
    main()
