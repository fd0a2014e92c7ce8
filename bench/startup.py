"""Start-up of ``aibridge``'s commands: ``--help`` pages, a one-iteration fuzz campaign,
and ``serve``'s time until it prints ``listening on``, this tree against another.

Each case runs as the console script does (``from aibridge_cli.cli import main``) in a
fresh interpreter with the tree first on ``PYTHONPATH``, the trees interleaved round by
round (this one, the baseline, this one...) so that load on a shared machine falls on
both alike; medians of wall and CPU time (the child's user + system). Bytecode is written
and a warm-up run precedes the rounds, as for an installed tool (``PYTHONDONTWRITEBYTECODE``
is unset for the children). ``--instructions`` adds one run of each case under valgrind's
callgrind: the figure that does not move with the load.

    python bench/startup.py [--rounds 15] [--baseline DIR] [--instructions] [--only help]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, machine, median, print_table

ENTRY = "import sys; from aibridge_cli.cli import main; sys.argv[0] = 'aibridge'; main()"
CASES: dict[str, list[str]] = {
    "help": ["--help"],
    "serve --help": ["serve", "--help"],
    "show --help": ["show", "--help"],
    "fuzz --help": ["fuzz", "--help"],
    "fuzz --iterations 1": ["fuzz", "--iterations", "1", "--jobs", "1", "--seed", "7"],
    "serve, to listening": ["serve", "--port", "0", "--log-level", "warning"],
}
LISTENING = "serve, to listening"


def environment(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(tree), "COLUMNS": "100"}


def argv(args: Sequence[str], runner: Sequence[str] = ()) -> list[str]:
    return [*runner, sys.executable, "-c", ENTRY, *args]


def run_once(tree: Path, case: str, runner: Sequence[str] = ()) -> tuple[float, float]:
    """Wall and CPU seconds of one run; ``serve`` is timed until it listens, then stopped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # a campaign writes its findings here
        proc = subprocess.Popen(
            argv(CASES[case], runner),
            cwd=tmp,
            env=environment(tree),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        if case == LISTENING:
            line = proc.stdout.readline()
            wall = time.perf_counter() - start
            if "listening on" not in line:
                raise SystemExit(f"serve did not start: {line!r}")
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        else:
            proc.communicate(timeout=600)
            wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def instructions(tree: Path, case: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--dump-instr=no",
            f"--callgrind-out-file={out}",
        ]
        log = Path(tmp) / "valgrind.log"
        run_once(tree, case, [*valgrind, f"--log-file={log}"])
        found = re.search(r"Collected : (\d+)", log.read_text())
        assert found is not None, log.read_text()
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="another tree holding aibridge_cli")
    parser.add_argument("--instructions", action="store_true", help="also count them")
    parser.add_argument("--only", action="append", choices=list(CASES), help="repeatable")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    cases = args.only or list(CASES)
    load = os.getloadavg()
    rows = []
    for case in cases:
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for tree in trees.values():
            run_once(tree, case)  # bytecode written, caches warm
        for _ in range(args.rounds):
            for name, tree in trees.items():
                times[name].append(run_once(tree, case))
        for name, tree in trees.items():
            walls = [w for w, _ in times[name]]
            cpus = [c for _, c in times[name]]
            row: list[object] = [case, name, f"{median(walls):.3f}", f"{min(walls):.3f}"]
            row.append(f"{median(cpus):.3f}")
            if args.instructions:
                row.append(f"{instructions(tree, case) / 1e6:,.0f}")
            rows.append(row)
    columns = ["case", "tree", "wall median s", "wall best s", "CPU median s"]
    if args.instructions:
        columns.append("instructions (M)")
    end = os.getloadavg()
    print_table(
        f"aibridge start-up, {args.rounds} interleaved rounds; {machine()}; load average "
        f"{load[0]:.2f} at the start, {end[0]:.2f} at the end",
        columns,
        rows,
    )


if __name__ == "__main__":
    main()
