"""Benchmark 1, relay cost: client <- proxy <- bench upstream, against client <- upstream.

For each target (direct, aibridge serve, and LiteLLM's proxy and mitmdump when they are
installed: ``pip install -e ".[bench]"``), in interleaved rounds so that machine noise hits
every target alike:

* events/s of a 10,000-event Messages stream (median of the rounds),
* time to first byte of a 6-event stream (median of many),
* requests/s of a small blocking request on one keep-alive connection.

``aibridge --record`` is benchmark 5, the cost of recording: the same proxy with
``--record`` (one fsynced line per interception). ``aibridge --breaker`` (``--only
breaker``) is the same proxy with its circuit breaker on; ``/metrics`` is always fed.

Ratios are to direct. ``--profile`` runs aibridge under pyinstrument (an extra).

    python bench/relay.py [--rounds 5] [--events 10000] [--only aibridge]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Client,
    Service,
    aibridge,
    bench_upstream,
    machine,
    median,
    messages_body,
    one_request,
    print_table,
)
from peers import litellm, mitmdump


async def stream_once(service: Service, events: int) -> tuple[float, int, str | None]:
    result = await one_request(service, messages_body(True, events))
    error = result.error or (None if result.status == 200 else f"status {result.status}")
    return result.elapsed, result.events, error


async def measure(
    services: list[Service], rounds: int, events: int, ttfb_n: int, rps_n: int
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {
        s.name: {
            "stream": [],
            "events": 0,
            "ttfb": [],
            "rps": [],
            "errors": [],
            "cpu": [],
            "req_cpu": [],
        }
        for s in services
    }
    clients = {s.name: Client(s) for s in services}
    small = messages_body(True, 6)
    blocking = messages_body(False)
    for s in services:  # warm-up: connections, imports, caches
        await stream_once(s, 100)
        await clients[s.name].request(blocking)
    for _ in range(rounds):
        for s in services:
            cpu = s.cpu_seconds()
            elapsed, got, error = await stream_once(s, events)
            row = out[s.name]
            row["cpu"].append(s.cpu_seconds() - cpu)  # type: ignore[union-attr]
            row["stream"].append(elapsed)  # type: ignore[union-attr]
            row["events"] = got
            if error:
                row["errors"].append(error)  # type: ignore[union-attr]
        for s in services:
            client = clients[s.name]
            for _ in range(ttfb_n // rounds):
                result = await client.request(small)
                out[s.name]["ttfb"].append(result.ttfb)  # type: ignore[union-attr]
                if result.error or result.status != 200:
                    out[s.name]["errors"].append(result.error or result.status)  # type: ignore[union-attr]
            started, cpu = time.perf_counter(), s.cpu_seconds()
            n = rps_n // rounds
            for _ in range(n):
                result = await client.request(blocking)
                if result.error or result.status != 200:
                    out[s.name]["errors"].append(result.error or result.status)  # type: ignore[union-attr]
            out[s.name]["rps"].append(n / (time.perf_counter() - started))  # type: ignore[union-attr]
            out[s.name]["req_cpu"].append((s.cpu_seconds() - cpu) / n)  # type: ignore[union-attr]
    for client in clients.values():
        await client.aclose()
    return out


def report(results: dict[str, dict[str, object]], events: int, missing: list[str]) -> None:
    direct = results["direct"]
    d_ttfb = median(direct["ttfb"])  # type: ignore[arg-type]
    d_rps = median(direct["rps"])  # type: ignore[arg-type]
    rows = []
    for name, row in results.items():
        # each round's time against direct's in the same round: noise from other
        # processes on the machine hits both sides of a pair alike
        ratios = [d / t for d, t in zip(direct["stream"], row["stream"], strict=True)]  # type: ignore[call-overload]
        cpu_us = sum(row["cpu"]) / (events * len(row["cpu"])) * 1e6  # type: ignore[arg-type]
        stream = median(row["stream"])  # type: ignore[arg-type]
        ttfb = median(row["ttfb"])  # type: ignore[arg-type]
        rps = median(row["rps"])  # type: ignore[arg-type]
        rows.append(
            [
                name,
                f"{events / stream:,.0f}",
                f"{median(ratios):.2f}",
                f"{cpu_us:.1f}",
                f"{ttfb * 1000:.2f}",
                f"{(ttfb - d_ttfb) * 1000:+.2f}",
                f"{rps:,.0f}",
                f"{rps / d_rps:.2f}",
                f"{median(row['req_cpu']) * 1e6:.0f}",  # type: ignore[arg-type]
                f"{row['events']}",
                len(row["errors"]),  # type: ignore[arg-type]
            ]
        )
    print_table(
        f"Relay cost, {events:,}-event stream and small requests ({machine()})",
        [
            "target",
            "events/s",
            "x direct",
            "CPU us/event",
            "TTFB ms",
            "added ms",
            "req/s",
            "x direct",
            "CPU us/req",
            "events seen",
            "errors",
        ],
        rows,
    )
    for name, row in results.items():
        if row["errors"]:
            print(f"{name} errors: {row['errors'][:3]}")  # type: ignore[index]
    for line in missing:
        print(f"not run: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--ttfb", type=int, default=200, help="small streams per target")
    parser.add_argument("--rps", type=int, default=1000, help="blocking requests per target")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="targets besides direct (aibridge, breaker, record, litellm, mitmdump)",
    )
    parser.add_argument("--profile", metavar="TXT", help="run aibridge under pyinstrument")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="also run the aibridge_cli package found in this directory",
    )
    parser.add_argument(
        "--write-size",
        type=int,
        default=1,
        help="upstream bytes per write, in whole frames (1: a frame per write)",
    )
    args = parser.parse_args()
    wanted = set(args.only or ["aibridge", "record", "litellm", "mitmdump"])
    missing: list[str] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        upstream = stack.enter_context(bench_upstream(args.write_size))
        upstream.name = "direct"
        services = [upstream]
        if "aibridge" in wanted:
            services.append(stack.enter_context(aibridge(upstream, profile=args.profile)))
        if args.baseline:
            services.append(
                stack.enter_context(
                    aibridge(upstream, name="aibridge baseline", tree=args.baseline.resolve())
                )
            )
        if "breaker" in wanted:  # the same proxy with its circuit breaker on (#30)
            services.append(
                stack.enter_context(aibridge(upstream, "--breaker", name="aibridge --breaker"))
            )
        if "record" in wanted:  # benchmark 5: the same proxy, recording every interception
            record = Path(tmp) / "recording.jsonl"
            services.append(
                stack.enter_context(
                    aibridge(upstream, "--record", str(record), name="aibridge --record")
                )
            )
            if args.baseline:  # the older tree recording too: before and after in one run
                services.append(
                    stack.enter_context(
                        aibridge(
                            upstream,
                            "--record",
                            str(Path(tmp) / "baseline.jsonl"),
                            name="baseline --record",
                            tree=args.baseline.resolve(),
                        )
                    )
                )
        if "litellm" in wanted:
            svc = stack.enter_context(litellm(upstream, Path(tmp)))
            services.append(svc) if isinstance(svc, Service) else missing.append(svc)
        if "mitmdump" in wanted:
            svc = stack.enter_context(mitmdump(upstream))
            services.append(svc) if isinstance(svc, Service) else missing.append(svc)
        results = trio.run(measure, services, args.rounds, args.events, args.ttfb, args.rps)
    report(results, args.events, missing)


if __name__ == "__main__":
    main()
