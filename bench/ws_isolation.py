"""The ws-isolation acceptance (#28): a bug planted in the WebSocket path, where one
response sees another's events, found within a 1,000-iteration campaign, beside its
control (the same campaign, unplanted).

The plant is the test suite's (``tests/test_fuzz_ws_isolation.py``): the upstream socket
kept after a response the proxy cut, the rest of its answer unread. Campaigns run in this
process (``--jobs 1``): a plant does not reach forked workers.

    python bench/ws_isolation.py [--seed 1] [--iterations 1000] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' plant

from aibridge_cli.fuzz.campaign import Campaign, Settings, load_repro, run_campaign, write_repro
from aibridge_cli.fuzz.catalog import from_file
from aibridge_cli.fuzz.runner import Judge
from tests.test_fuzz_ws_isolation import keep_the_socket_after_a_cut

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "scenarios" / "codex-session-socket.toml"


def campaign(seed: int, iterations: int) -> tuple[Campaign, float]:
    settings = Settings((from_file(SCENARIO)[0],), seed, iterations)
    started = time.perf_counter()
    found = run_campaign(settings)
    return found, time.perf_counter() - started


def report(name: str, found: Campaign, seconds: float, out: Path) -> None:
    leaks = [
        o.iteration for o in found.failures if any(v.oracle == "ws-isolation" for v in o.violations)
    ]
    print(
        f"{name}: {len(found.failures)} failing iteration(s), {len(leaks)} with ws-isolation"
        f" (first: {leaks[0] if leaks else '-'}), {seconds:.1f} s"
    )
    for finding in found.findings:
        if finding.signature.oracle != "ws-isolation":
            continue
        path = write_repro(finding, out)
        _, scenario, plan = load_repro(path)
        violations, _ = Judge("eager").evaluate(scenario, plan)
        again = finding.signature.shape in {v.shape for v in violations}
        print(f"  {finding.signature.label()} x{finding.count}: {path}, replays: {again}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("ws-isolation-repros"))
    args = parser.parse_args()
    found, seconds = campaign(args.seed, args.iterations)
    report("control", found, seconds, args.out)
    with pytest.MonkeyPatch.context() as monkeypatch:
        keep_the_socket_after_a_cut(monkeypatch)
        found, seconds = campaign(args.seed, args.iterations)
        report("planted", found, seconds, args.out)  # its repro replays with the plant


if __name__ == "__main__":
    main()
