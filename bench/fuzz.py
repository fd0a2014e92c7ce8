"""How fast the fuzzer runs, and how soon it finds the seed race.

    python bench/fuzz.py speed [--iterations 500]     it/s per core (CPU time), seed case
    python bench/fuzz.py jobs [--iterations 1000]     wall time of `aibridge fuzz --jobs 2`
    python bench/fuzz.py race [--seeds 20]            lazy mode, 1000 iterations per seed:
                                                      exit code, oracle, first failing iteration

CPU time is the figure to compare across machines: on a shared machine wall time also
counts other processes. Every figure is printed with the load average it was taken at.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SEED_CASE = "anthropic/rate-limit-after-tool-turn"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def speed(iterations: int) -> None:
    from aibridge_cli.fuzz.catalog import builtin
    from aibridge_cli.fuzz.runner import Draw, Judge

    scenarios = builtin(SEED_CASE)
    for mode in ("eager", "lazy"):
        judge = Judge(mode)  # type: ignore[arg-type]
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(iterations):
            judge.iteration(Draw(scenarios, 1), i)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{mode}: {iterations} iterations, {iterations / cpu:.1f} it/s per core (CPU), "
            f"{iterations / wall:.1f} it/s wall, {len(judge.canonical)} canonical runs; {load()}"
        )


def _fuzz(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "fuzz", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return done, time.perf_counter() - started


def jobs(iterations: int) -> None:
    done, wall = _fuzz(
        "--scenario",
        SEED_CASE,
        "--iterations",
        str(iterations),
        "--jobs",
        "2",
        "--seed",
        "1",
        "--json",
        "--out",
        "/tmp/aibridge-bench-fuzz",
    )
    print(
        f"aibridge fuzz --jobs 2, {iterations} iterations: exit {done.returncode}, "
        f"{wall:.1f} s wall; {load()} (the wall time counts other processes' load too)"
    )


def race(seeds: int) -> None:
    firsts = []
    for seed in range(1, seeds + 1):
        done, wall = _fuzz(
            "--scenario",
            SEED_CASE,
            "--stream-initiation",
            "lazy",
            "--iterations",
            "1000",
            "--seed",
            str(seed),
            "--jobs",
            "2",
            "--json",
            "--out",
            "/tmp/aibridge-bench-fuzz",
        )
        report = json.loads(done.stdout)
        oracles = sorted({f["oracle"] for f in report["failures"]})
        first = min(
            (f["iteration"] for f in report["failures"] if f["oracle"] == "malformed-body"),
            default=None,
        )
        firsts.append(first)
        print(
            f"seed {seed}: exit {done.returncode}, {len(report['failures'])} failing iterations "
            f"({', '.join(oracles)}), first malformed-body at iteration {first}, {wall:.1f} s",
            flush=True,
        )
    found = [f for f in firsts if f is not None]
    print(
        f"malformed-body found for {len(found)}/{seeds} seeds; "
        f"median first failing iteration {statistics.median(found) if found else None}; {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["speed", "jobs", "race"])
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.iterations or 500)
    elif args.what == "jobs":
        jobs(args.iterations or 1000)
    else:
        race(args.seeds)


if __name__ == "__main__":
    main()
