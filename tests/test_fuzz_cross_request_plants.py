"""The planted cross-request bugs of #28, each found by a campaign with a signature of its
own, a repro file that replays to it and a page that shows the requests' lanes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibridge_cli.fuzz import recording_oracle
from aibridge_cli.fuzz.campaign import load_repro, write_repro
from aibridge_cli.fuzz.evidence import gather
from aibridge_cli.fuzz.pool_timeline import TOLD_WRONG
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.sim.marks import REQUEST_LANES
from aibridge_cli.views.repro import repro_page

from .cross_request_plants import PLANTS, planted_campaign

SHAPES = {
    "cooling key used": "attempt N at N s used key N, cooling from N s until N s",
    "shorter cooldown wins": (
        "key N has N s of cooldown left at N s; its longest Retry-After asks N s"
    ),
    "recording line lost": recording_oracle.LOST,
    "Retry-After from the longest cooldown": TOLD_WRONG,
}


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_a_planted_bug_is_found_with_its_signature_repro_and_lanes(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    oracle = PLANTS[name][2]
    campaign = planted_campaign(name, monkeypatch)
    (finding,) = [f for f in campaign.findings if f.oracle == oracle]
    assert finding.violation.shape == SHAPES[name]
    # the repro file replays to the same signature
    header, scenario, plan = load_repro(write_repro(finding, tmp_path))
    assert (header["oracle"], header["shape"]) == (oracle, SHAPES[name])
    violations, _ = Judge(header["stream_initiation"], frozenset(header["oracles"])).evaluate(
        scenario, plan
    )
    assert (oracle, SHAPES[name]) in {(v.oracle, v.shape) for v in violations}
    # its page: each request's lanes, headed with its index; each attempt from its sender
    evidence = gather(finding)
    page = repro_page(evidence)
    for request in range(scenario.requests):
        assert f'class="request" data-request="{request}"' in page
        assert f">request {request}, starts at " in page
        for lane in REQUEST_LANES:
            assert f'data-lane="{lane}" data-marks=' in page
            assert f">{lane.split()[0]} {request}</text>" in page
    attempts = [m for m in evidence.run.marks or [] if m.kind == "attempt"]
    assert attempts
    for mark in attempts:
        assert mark.request is not None
        assert f'data-kind="attempt" data-step="{mark.step}" data-request="{mark.request}"' in page
