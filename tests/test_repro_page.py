"""The reproducer page's data: the seed race's marks, who wrote what, the offending bytes."""

from __future__ import annotations

import re

from aibridge_cli.config import StreamInitiation
from aibridge_cli.fuzz.campaign import Case, Finding, Origin, replay
from aibridge_cli.fuzz.catalog import builtin
from aibridge_cli.fuzz.evidence import Evidence, gather
from aibridge_cli.fuzz.plan import Cut, Fault, FaultKind, Plan, ReadDelay, world_spec
from aibridge_cli.fuzz.runner import Judge
from aibridge_cli.fuzz.signature import Signature
from aibridge_cli.fuzz.toml_scenario import load_toml_scenario
from aibridge_cli.sim.world import run_world
from aibridge_cli.views.repro import offending_range, parse_writes, repro_page

from .cross_request_plants import PLANTS

SEED_CASE = "anthropic/rate-limit-after-tool-turn"
# The seed race, shrunk: the client waits 1 ms before its first read, so the relay holds
# message_start while the loop runs the tool and gets two 429s.
SLOW_READER = Plan(read_delays=(ReadDelay(0, 0.001),))
# A schedule-dependence finding of the same scenario (seed 1, iteration 45, shrunk).
BAD_FRAME = Plan(faults=(Fault(FaultKind.MALFORMED_SSE, 0, 9),), cuts=(Cut(0, (992, 1014)),))


def finding(plan: Plan, oracle: str, mode: StreamInitiation = "lazy") -> Finding:
    (scenario,) = builtin(SEED_CASE)
    # No shape: the first violation of ``oracle`` is the one shown.
    case = Case(scenario, plan, Signature(scenario.name, oracle, ""))
    return replay(Judge(mode), case, Origin(1, 0, 0))


def seed_race() -> Evidence:
    return gather(finding(SLOW_READER, "malformed-body"))


def test_the_seed_race_marks_show_the_json_error_before_the_relays_first_frame() -> None:
    evidence = seed_race()
    marks = evidence.run.marks or []
    story = [(m.lane, m.kind, m.label) for m in marks if m.kind != "read"]
    assert story == [
        ("client", "request", "POST /anthropic/v1/messages (129 bytes)"),
        ("upstream", "attempt", "request #0 with key 0: 200"),
        ("tool", "tool", "bmcp_weather runs"),
        ("upstream", "attempt", "request #1 with key 0: 429"),
        ("upstream", "attempt", "request #2 with key 1: 429"),
        ("loop", "decision", "lazy check: not initiated, nothing queued: JSON error"),
        ("loop", "write", "wrote 201 bytes"),
        ("relay", "write", "wrote 573 bytes"),
        ("relay", "decision", "initiated set"),
        ("loop", "write", "wrote 5 bytes"),
        ("client", "done", "done: 429, 667 body bytes, complete"),
    ]
    writes = list(parse_writes(marks).values())
    first, second, last = writes
    assert (first.mark.lane, first.status, first.is_error) == ("loop", 429, True)
    assert first.describe() == "HTTP 429 head (Retry-After 20) + JSON error (201 B)"
    # the relay's superfluous start: no head on the wire, its frames join the 429's body
    assert (second.mark.lane, second.status) == ("relay", None)
    assert second.body.startswith(b"event: message_start")
    assert last.end
    assert b"".join(w.body for w in writes) == evidence.run.client.body
    assert [m.key for m in marks if m.kind == "attempt"] == [0, 0, 1]
    assert [m.status for m in marks if m.kind == "attempt"] == [200, 429, 429]


def test_the_offending_bytes_are_what_follows_the_json_error() -> None:
    body = seed_race().run.client.body
    start, end = offending_range("malformed-body", body, None) or (0, 0)
    assert body[:start].endswith(b'rate-limited"}}')
    assert body[start:end].startswith(b"event: message_start")
    assert end == len(body)
    assert offending_range("malformed-body", b'{"ok": true}', None) is None
    sse = b'event: a\ndata: {"x":1}\n\nevent: b\ndata: {not json}\n\n'
    assert offending_range("malformed-body", sse, None) == (sse.index(b"event: b"), len(sse))
    assert offending_range("schedule-dependence", b"abcXYZ", b"abcdef") == (3, 6)
    assert offending_range("schedule-dependence", b"same", b"same") is None


def test_eager_mode_is_the_control_one_writer_and_no_json_error() -> None:
    evidence = gather(finding(SLOW_READER, "malformed-body", "eager"))
    marks = evidence.run.marks or []
    assert not evidence.finding.violations
    assert next(m.lane for m in marks if m.kind == "write") == "relay"
    assert not any("lazy check" in m.label for m in marks)
    assert not any(w.status and w.status >= 400 for w in parse_writes(marks).values())


def test_the_marks_are_the_same_on_every_run_and_campaigns_record_none() -> None:
    assert seed_race().run.marks == seed_race().run.marks
    (scenario,) = builtin(SEED_CASE)
    plain = run_world(world_spec(scenario, SLOW_READER, "lazy"))
    assert plain.marks is None
    assert plain.timeline is None


def test_schedule_dependence_sets_the_canonical_run_beside_the_failing_one() -> None:
    evidence = gather(finding(BAD_FRAME, "schedule-dependence"))
    assert evidence.finding.oracle == "schedule-dependence"
    assert evidence.canonical is not None
    assert evidence.canonical.marks
    page = repro_page(evidence)
    assert page.count('<section class="run"') == 2
    # the canonical run's panel first (the verdict above them may name either run)
    assert page.index("<h2>canonical run") < page.index("<h2>this run")
    assert '<mark class="offending">' in page
    # the plan's fault is drawn on the attempt that played exchange 0, in both runs
    assert [m.exchange for m in evidence.run.marks or [] if m.kind == "attempt"] == [0]
    assert page.count(">200, malformed-sse</text>") == 2


def test_the_seed_race_page_draws_every_mark_in_its_lane() -> None:
    evidence = seed_race()
    page = repro_page(evidence)
    marks = evidence.run.marks or []
    for lane in ("client", "relay", "loop", "upstream", "tool"):
        count = sum(1 for m in marks if m.lane == lane)
        assert f'class="lane" data-lane="{lane}" data-marks="{count}"' in page
    assert page.count('<g class="mark"') == len(marks) == 14
    assert page.count('<section class="run"') == 1


def load_evidence(plant: str = "cooling key used") -> Evidence:
    """A load's run, unplanted, with its marks: by default two clients share two keys, and
    the first cools key 0."""
    scenario = load_toml_scenario(PLANTS[plant][1])
    case = Case(scenario, Plan(), Signature(scenario.name, "key-consistency", ""))
    return gather(replay(Judge("eager"), case, Origin(1, 0, 0)))


def test_a_load_s_marks_say_which_request_each_one_is_about() -> None:
    marks = load_evidence().run.marks or []
    story = [(m.request, m.lane, m.label) for m in marks if m.kind not in ("read", "write")]
    assert story == [
        (0, "client", "POST /anthropic/v1/messages at 0 s"),
        (0, "upstream", "request #0 with key 0: 429"),
        (0, "pool", "key 0 cooling (Retry-After 30)"),
        (0, "upstream", "request #1 with key 1: 200"),
        (0, "relay", "initiated set"),
        (0, "recorder", "recorded"),
        (0, "client", "done: 200, 733 body bytes, complete"),
        # the second client's attempt goes over the first one's upstream connection: it is
        # still drawn as the second request's
        (1, "client", "POST /anthropic/v1/messages at 1 s"),
        (1, "upstream", "request #2 with key 1: 200"),
        (1, "relay", "initiated set"),
        (1, "recorder", "recorded"),
        (1, "client", "done: 200, 739 body bytes, complete"),
    ]
    # each request's writes are read by a client of its own: both heads are heads
    heads = [(w.mark.request, w.status) for w in parse_writes(marks).values() if w.status]
    assert heads == [(0, 200), (1, 200)]


def test_a_load_s_page_groups_each_request_s_lanes_then_the_shared_ones() -> None:
    evidence = load_evidence()
    marks = evidence.run.marks or []
    page = repro_page(evidence)
    lanes = re.findall(
        r'<g class="lane" data-lane="(\w+)" data-marks="(\d+)"(?: data-request="(\d)")?', page
    )
    expected = [
        (lane, str(sum(1 for m in marks if m.lane == lane and m.request == r)), str(r))
        for r in (0, 1)
        for lane in ("client", "relay", "loop")
    ] + [
        (lane, str(sum(1 for m in marks if m.lane == lane)), "")
        for lane in ("upstream", "pool", "recorder", "tool")
    ]
    assert lanes == expected
    assert ">request 0, starts at 0</text>" in page
    assert ">request 1, starts at 1 s</text>" in page
    assert page.count('<g class="mark"') == len(marks)
    # each client's body on its own
    assert "Request 0&#x27;s body (200)" in page
    assert "Hello again." in page.split("Request 1&#x27;s body (200)", 1)[1]


def test_each_client_s_429_head_shows_the_retry_after_it_was_told() -> None:
    evidence = load_evidence("Retry-After from the longest cooldown")
    writes = parse_writes(evidence.run.marks or []).values()
    assert [(w.mark.request, w.describe()) for w in writes] == [
        (0, "HTTP 429 head (Retry-After 10) + JSON error (188 B)"),
        (1, "HTTP 429 head (Retry-After 9) + JSON error (187 B)"),
    ]
