"""Benchmark 3, backpressure: many long streams read by slow clients.

``--streams`` concurrent Messages streams of ``--events`` events each; every client reads
``--read-size`` bytes at a time and sleeps ``--read-delay-ms`` between reads, so the
proxy's writes block long before the upstream is done. The upstream writes in blocks of
``--write-size`` bytes, as fast as it is let. A proxy that never buffers a whole stream
keeps its RSS growth bounded by its per-stream buffers, whatever the stream's length.

    python bench/backpressure.py [--streams 100] [--events 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Result, Service, messages_body, one_request


async def slow_streams(
    service: Service, streams: int, events: int, read_size: int, delay: float
) -> tuple[list[Result], int]:
    """Run the streams; return their results and the peak RSS sampled meanwhile (KiB)."""
    results: list[Result] = []
    peak = 0

    async def one() -> None:
        results.append(
            await one_request(
                service, messages_body(True, events), read_delay=delay, receive_size=read_size
            )
        )

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, service.rss_kib())
            await trio.sleep(0.05)

    async with trio.open_nursery() as outer:
        outer.start_soon(sample)
        async with trio.open_nursery() as nursery:
            for _ in range(streams):
                nursery.start_soon(one)
        outer.cancel_scope.cancel()
    return results, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--read-size", type=int, default=4096)
    parser.add_argument("--read-delay-ms", type=float, default=10.0)
    parser.add_argument(
        "--write-size",
        type=int,
        default=16384,
        help="upstream bytes per write (large: the upstream floods)",
    )
    args = parser.parse_args()
    with harness.bench_upstream(args.write_size) as upstream, harness.aibridge(upstream) as proxy:
        trio.run(one_request, proxy, messages_body(True, 1000))  # warm-up
        before = proxy.rss_kib()
        started = time.perf_counter()
        results, peak = trio.run(
            slow_streams,
            proxy,
            args.streams,
            args.events,
            args.read_size,
            args.read_delay_ms / 1000,
        )
        elapsed = time.perf_counter() - started
    complete = sum(1 for r in results if r.error is None and r.events == args.events)
    body = max((r.body_bytes for r in results), default=0)
    harness.print_table(
        f"{args.streams} slow clients x {args.events:,}-event streams "
        f"({body / 1e6:.1f} MB each), read {args.read_size} B every {args.read_delay_ms:g} ms "
        f"({harness.machine()})",
        [
            "proxy",
            "complete",
            "wall s",
            "RSS before MiB",
            "peak RSS MiB",
            "growth MiB",
            "all streams MiB",
        ],
        [
            [
                "aibridge",
                f"{complete}/{len(results)}",
                f"{elapsed:.1f}",
                f"{before / 1024:.0f}",
                f"{peak / 1024:.0f}",
                f"{(peak - before) / 1024:.0f}",
                f"{body * len(results) / 2**20:.0f}",
            ]
        ],
    )
    errors = [r.error for r in results if r.error]
    if errors:
        print(f"errors: {errors[:3]}")


if __name__ == "__main__":
    main()
