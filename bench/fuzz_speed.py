"""Benchmark 4, fuzz speed: iterations/s per core for each built-in scenario, and scaling
with ``--jobs``.

Each measurement runs ``aibridge fuzz`` as a subprocess with a fixed seed and subtracts
a 1-iteration run of the same command (interpreter start, imports, set-up), so the rate
is the campaign's own. Per core: iterations over the CPU seconds the run used (children
included), which other load on the machine disturbs less than wall time. Both runs are
repeated (``--repeat``) and the fastest of each kept: on a shared machine the same run's
CPU time varies by half again from one minute to the next, and the minimum is the stable
figure.

    python bench/fuzz_speed.py [--iterations 200] [--repeat 3] [--jobs 1 --jobs 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, machine, print_table


def list_scenarios() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "aibridge_cli", "fuzz", "--list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    names = []
    for line in out.splitlines():
        cell = line.strip("│┃ ").split("│")[0].strip()  # the name column (--list adds others)
        if "/" in cell and " " not in cell:
            names.append(cell)
    return names


def run(iterations: int, scenario: str | None, jobs: int, out: str) -> tuple[float, float]:
    """Wall and CPU seconds of one fuzz campaign."""
    argv = [
        sys.executable,
        "-m",
        "aibridge_cli",
        "fuzz",
        "--iterations",
        str(iterations),
        "--seed",
        "7",
        "--jobs",
        str(jobs),
        "--json",
        "--out",
        out,
    ]
    if scenario:
        argv += ["--scenario", scenario]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def rate(
    iterations: int, scenario: str | None, jobs: int, out: str, repeat: int = 1
) -> tuple[float, float]:
    """Iterations per wall second and per CPU second, set-up subtracted; best of ``repeat``."""
    ones, many = [], []
    for _ in range(repeat):  # interleaved, so a slow minute hits both kinds of run
        ones.append(run(jobs, scenario, jobs, out))
        many.append(run(iterations, scenario, jobs, out))
    wall_1, cpu_1 = (min(column) for column in zip(*ones, strict=True))
    wall_n, cpu_n = (min(column) for column in zip(*many, strict=True))
    n = iterations - jobs
    return n / max(wall_n - wall_1, 1e-9), n / max(cpu_n - cpu_1, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, action="append", default=[])
    parser.add_argument("--scenario", action="append", default=[])
    args = parser.parse_args()
    scenarios = args.scenario or list_scenarios()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for scenario in scenarios:
            per_wall, per_cpu = rate(args.iterations, scenario, 1, out, args.repeat)
            rows.append([scenario, f"{per_wall:,.0f}", f"{per_cpu:,.0f}"])
        print_table(
            f"Fuzz iterations per second, one job ({machine()})",
            ["scenario", "iterations/s", "per CPU second"],
            rows,
        )
        scaling = []
        base = None
        for jobs in args.jobs or [1, 2]:
            per_wall, _ = rate(args.iterations * jobs, None, jobs, out, args.repeat)
            base = base or per_wall
            scaling.append([jobs, f"{per_wall:,.0f}", f"{per_wall / base:.2f}"])
        # (no CPU column: the workers' CPU is not reliably counted as the run's children)
        print_table(
            "All scenarios, scaling with --jobs", ["jobs", "iterations/s", "x one job"], scaling
        )


if __name__ == "__main__":
    main()
