"""A load records through one recorder: the recording oracle (every interception served
recorded exactly once, whole), beside a recorder that loses a line when two end at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibridge_cli.fuzz import recording_oracle
from aibridge_cli.fuzz.campaign import Settings, run_campaign
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.evidence import gather
from aibridge_cli.fuzz.plan import Plan
from aibridge_cli.fuzz.recording_oracle import recording_problems
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.toml_scenario import load_toml_scenario
from aibridge_cli.interception import ClientRequest, Interception
from aibridge_cli.sim.recorder import MemoryRecorder
from aibridge_cli.views.repro import repro_page

from .cross_request_plants import interrupted_recorded_twice, recording_line_lost

TOGETHER = Path(__file__).parent / "scenarios" / "two-clients-end-together.toml"


def interception(path: str) -> Interception:
    return Interception("anthropic", ClientRequest("POST", path, [], {"n": path}), 0.0)


def recorded(*records: Interception) -> MemoryRecorder:
    recorder = MemoryRecorder()
    for record in records:
        recorder(record)
    return recorder


def problems(
    handed: list[Interception], recorder: MemoryRecorder, answered: int, requests: int = 2
) -> list[str]:
    found = recording_problems(handed, recorder.lines, recorder.text, answered, requests)
    return [shape for _, shape in found]


def test_every_interception_once_whole_is_clean_and_each_failure_has_its_shape() -> None:
    a, b = interception("/a"), interception("/b")
    assert problems([a, b], recorded(b, a), 2) == []  # any order
    assert problems([a, b], recorded(b), 2) == [recording_oracle.LOST]
    assert problems([a, b], recorded(a, b, b), 2) == [recording_oracle.DOUBLED]
    assert problems([a], recorded(a, b), 1) == [recording_oracle.FOREIGN]
    assert problems([a], recorded(a), 2) == [recording_oracle.UNHANDED]
    # two interceptions alike are two lines alike: each must be there
    twin = interception("/a")
    assert problems([a, twin], recorded(a, twin), 2) == []
    assert problems([a, twin], recorded(a), 2) == [recording_oracle.LOST]


def test_an_interception_handed_over_twice_or_more_than_requests_is_a_finding() -> None:
    a, b = interception("/a"), interception("/b")
    # the recording agrees with what was handed over: only the handing tells
    assert problems([a, a], recorded(a, a), 2) == [recording_oracle.HANDED_TWICE]
    assert problems([a, b], recorded(a, b), 2, requests=1) == [recording_oracle.SURPLUS]
    assert problems([a, b], recorded(a, b), 2, requests=2) == []


def test_a_line_cut_or_glued_to_another_does_not_parse_back() -> None:
    a, b = interception("/a"), interception("/b")
    glued = recorded(a, b)
    glued.lines[:] = [glued.lines[0] + glued.lines[1]]
    assert recording_oracle.UNREADABLE in problems([a, b], glued, 2)
    cut = recorded(a)
    cut.lines[0] = cut.lines[0][:-5]
    assert recording_oracle.UNREADABLE in problems([a], cut, 1)


def judged() -> tuple[list[str], int, int]:
    violations, world = Judge("eager").evaluate(load_toml_scenario(TOGETHER), Plan())
    assert world.recording is not None
    return [v.shape for v in violations], len(world.handed), len(world.recording.lines)


def campaign() -> set[tuple[str, str]]:
    found = run_campaign(Settings((load_toml_scenario(TOGETHER),), 1, 20), investigate=False)
    return {(v.oracle, v.shape) for outcome in found.failures for v in outcome.violations}


def test_two_clients_ending_together_are_both_recorded() -> None:
    assert judged() == ([], 2, 2)
    assert campaign() == set()


def test_a_recorder_losing_a_line_when_two_end_together_is_a_recording_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording_line_lost(monkeypatch)
    assert judged() == ([recording_oracle.LOST], 2, 1)
    assert campaign() == {("recording", recording_oracle.LOST)}


def test_an_interrupted_interception_handed_over_twice_is_found_in_a_load_and_a_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenarios = (load_toml_scenario(TOGETHER), *builtin("loads/socket-turns"))
    clean = run_campaign(Settings(scenarios, 1, 40), investigate=False)
    assert clean.failures == []
    interrupted_recorded_twice(monkeypatch)
    found = run_campaign(Settings(scenarios, 1, 40), investigate=False)
    shapes = {(o.scenario, v.oracle, v.shape) for o in found.failures for v in o.violations}
    assert {name for name, _, _ in shapes} == {s.name for s in scenarios}
    assert {(oracle, shape) for _, oracle, shape in shapes} == {
        ("recording", recording_oracle.HANDED_TWICE)
    }


def test_a_recording_finding_on_a_socket_has_a_page_with_the_recorder_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a socket of several responses is one request that records: its page's lanes are
    # the one-request row and the recorder (its page used to fail on the record mark)
    interrupted_recorded_twice(monkeypatch)
    found = run_campaign(Settings(tuple(builtin("loads/socket-turns")), 1, 40))
    (finding,) = [f for f in found.findings if f.oracle == "recording"]
    page = repro_page(gather(finding))
    assert 'data-lane="recorder" data-marks=' in page
    assert 'data-kind="record"' in page
    assert 'class="request"' not in page


def test_one_request_worlds_record_nothing() -> None:
    scenario = builtin("anthropic/simple#streaming")[0]
    _, world = Judge("eager").evaluate(scenario, Plan())
    assert world.recording is None
    assert world.handed == []
