"""Benchmark 2, concurrency: many streaming requests at once through ``aibridge serve``.

Every request is a Messages stream of ``--events`` events that the bench upstream paces
(``--delay-ms`` between frames), so all of them are in flight together. Reported per
target (direct, aibridge, and LiteLLM's proxy and mitmdump when installed, one after the
other in one run): latency p50/p99 of whole streams, time to first byte p50/p99, errors,
and the process's peak RSS over the run.

    python bench/concurrency.py [--concurrency 200] [--events 100] [--delay-ms 5]
        [--only aibridge] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Result,
    Service,
    aibridge,
    bench_upstream,
    machine,
    messages_body,
    one_request,
    percentile,
    print_table,
)
from peers import litellm, mitmdump


async def burst(service: Service, concurrency: int, events: int, delay_ms: float) -> list[Result]:
    results: list[Result] = []
    body = messages_body(True, events, delay_ms)
    ready = trio.Event()

    async def one() -> None:
        await ready.wait()
        results.append(await one_request(service, body))

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(one)
        ready.set()
    return results


def row(
    name: str, results: list[Result], events: int, peak_kib: int, base_kib: int
) -> list[object]:
    ok = [r for r in results if r.error is None and r.status == 200 and r.events == events]
    latency = [r.elapsed * 1000 for r in ok]
    ttfb = [r.ttfb * 1000 for r in ok]
    errors = len(results) - len(ok)
    return [
        name,
        len(results),
        errors,
        f"{percentile(latency, 50):.0f}",
        f"{percentile(latency, 99):.0f}",
        f"{percentile(ttfb, 50):.1f}",
        f"{percentile(ttfb, 99):.1f}",
        f"{base_kib / 1024:.0f}",
        f"{peak_kib / 1024:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=5.0, help="upstream pause per frame")
    parser.add_argument("--tree", type=Path, help="run the aibridge_cli found in this directory")
    parser.add_argument(
        "--baseline", type=Path, help="also run the aibridge_cli found in this directory"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=("aibridge", "litellm", "mitmdump"),
        help="targets besides direct (default: all)",
    )
    args = parser.parse_args()
    wanted = set(args.only or ["aibridge", "litellm", "mitmdump"])
    rows = []
    tree = {"tree": args.tree} if args.tree else {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        upstream = stack.enter_context(bench_upstream(write_size=1))
        upstream.name = "direct"
        services: list[Service] = [upstream]
        if "aibridge" in wanted:
            services.append(stack.enter_context(aibridge(upstream, **tree)))
            if args.baseline:
                baseline = aibridge(
                    upstream, name="aibridge baseline", tree=args.baseline.resolve()
                )
                services.append(stack.enter_context(baseline))
        peers = {
            "litellm": lambda: litellm(upstream, Path(tmp)),
            "mitmdump": lambda: mitmdump(upstream),
        }
        for name, peer in peers.items():
            if name in wanted:
                started = stack.enter_context(peer())
                if isinstance(started, str):
                    print(started)  # not installed: said, and the run goes on
                else:
                    services.append(started)
        for service in services:
            trio.run(burst, service, 4, args.events, 0.0)  # warm-up
            base = service.rss_kib()
            service.reset_peak()
            results = trio.run(burst, service, args.concurrency, args.events, args.delay_ms)
            rows.append(row(service.name, results, args.events, service.peak_rss_kib(), base))
            failed = [r.error or r.status for r in results if r.error or r.status != 200]
            if failed:
                print(f"{service.name} errors: {failed[:3]}")
    print_table(
        f"{args.concurrency} concurrent streams of {args.events} events, "
        f"{args.delay_ms:g} ms apart ({machine()})",
        [
            "target",
            "requests",
            "errors",
            "p50 ms",
            "p99 ms",
            "TTFB p50 ms",
            "TTFB p99 ms",
            "RSS before MiB",
            "peak RSS MiB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
