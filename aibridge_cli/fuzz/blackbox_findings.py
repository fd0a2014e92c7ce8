"""A black-box finding as the simulated campaign's are: a repro file, a page, a rerun.

The target's interleavings are its own, so a black-box iteration cannot be replayed
byte for byte; what can be kept is what we control: the scenario, the plan (with the
leak probe's slow answer in it), the client's settings and the target's declared
configuration. ``aibridge fuzz --repro FILE`` sends that iteration to the target again
and judges it (``--target``/``--upstream-port`` override the file's).

The page is the simulated reproducer's page drawn from what we saw of the run: the
client's request and each read (the bytes the target wrote, as the client got them), and
each request the upstream got with its answer and key. The target is one lane ("relay");
what it does inside is not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..sim.marks import Mark
from ..sim.world import WorldResult
from .blackbox_upstream import UpstreamRequest
from .campaign import Finding, Origin
from .oracles import Violation
from .plan import Plan
from .scenario import Scenario
from .target import BlackBoxSettings, ClientConfig, stall_past

MODE = "black-box"


def iteration_marks(
    started: float,
    reads: Sequence[tuple[float, bytes]],
    requests: Sequence[UpstreamRequest],
    keys: Sequence[int | None],
    left: float,
) -> list[Mark]:
    """The marks of one black-box iteration, in time order (seconds since it started)."""
    timed: list[tuple[float, int, Mark]] = [
        (started, 0, Mark(0, 0.0, "client", "request", "the client's request"))
    ]
    for n, request in enumerate(requests):
        reply = request.reply
        status = None if reply.fault == "reset-before-body" else reply.status
        label = f"{'retry' if request.repeat else 'request'} {n}: {status or 'reset'}"
        key = keys[n] if n < len(keys) else None
        mark = Mark(0, 0.0, "upstream", "attempt", label, status=status, key=key, exchange=n)
        timed.append((request.time, 1, mark))
    for at, data in reads:
        if data:  # what the target wrote, as the client read it
            timed.append((at, 2, Mark(0, 0.0, "relay", "write", "the target wrote", data)))
        timed.append((at, 3, Mark(0, 0.0, "client", "read", f"read {len(data)} bytes", data)))
    timed.append((left, 4, Mark(0, 0.0, "client", "done", "the client is done")))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [
        Mark(
            step,
            round(at - started, 6),
            m.lane,
            m.kind,
            m.label,
            m.data,
            m.status,
            m.key,
            m.exchange,
        )
        for step, (at, _, m) in enumerate(timed)
    ]


def timeline(marks: Sequence[Mark]) -> tuple[str, ...]:
    """The marks as text lines: seconds, lane, what happened."""
    return tuple(f"{m.time:9.4f}s {m.lane:8} {m.label}" for m in marks)


def finding(
    settings: BlackBoxSettings,
    iteration: int,
    iteration_seed: int,
    scenario: Scenario,
    plan: Plan,
    violations: Sequence[Violation],
    world: WorldResult,
    count: int = 1,
    oracle: str | None = None,
) -> Finding:
    """A black-box iteration as a ``Finding`` (its violation: ``oracle``'s, or the first)."""
    violation = next((v for v in violations if v.oracle == oracle), None)
    if violation is None:
        violation = violations[0] if violations else Violation("none", "the plan passed")
    return Finding(
        origin=Origin(settings.seed, iteration, iteration_seed),
        scenario=scenario,
        stream_initiation="eager",  # not ours to set: the target's own
        oracles=settings.oracles,
        original=plan,
        plan=plan,
        violation=violation,
        violations=tuple(violations),
        timeline=timeline(world.marks or ()),
        shrink_runs=0,
        client=world.client,
        count=count,
    )


def repro_header(
    settings: BlackBoxSettings, leak_probe: bool, framing: str, request_pad: int
) -> dict[str, Any]:
    """What a black-box repro file holds beyond the simulated one's header: the target,
    what of the iteration is not in its plan, the client's settings."""
    client = settings.client
    return {
        "mode": MODE,
        "target": settings.url,
        "upstream_port": settings.upstream_port,
        "leak_probe": leak_probe,
        "framing": framing,
        "request_pad": request_pad,
        "client_paths": [list(p) for p in client.paths],
        "model": client.model,
        # the names only: a header's value may be a gateway's secret
        "client_header_names": [name for name, _ in client.headers],
        "target_tools": None if settings.target_tools is None else sorted(settings.target_tools),
        "strict": settings.strict,
        "stall_past": settings.stall_past,
    }


def settings_from_header(
    header: dict[str, Any], scenario: Scenario, client: ClientConfig
) -> BlackBoxSettings:
    """A one-iteration campaign's settings from a black-box repro file's header. The
    command line's ``client`` settings win; its header values are never in the file."""
    tools = header.get("target_tools")
    paths = tuple((str(a), str(p)) for a, p in header.get("client_paths", ()))
    return BlackBoxSettings(
        url=str(header["target"]),
        upstream_port=int(header["upstream_port"]),
        scenarios=(scenario,),
        seed=int(header["seed"]),
        iterations=1,
        oracles=frozenset(header["oracles"]),
        client=ClientConfig(
            client.paths or paths, client.model or header.get("model"), client.headers
        ),
        target_tools=None if tools is None else frozenset(tools),
        strict=bool(header.get("strict", False)),
        stall_past=stall_past(header.get("stall_past")),
    )


__all__ = [
    "MODE",
    "finding",
    "iteration_marks",
    "repro_header",
    "settings_from_header",
    "timeline",
]
