"""The recording oracle, sans-io: every interception a load served recorded once, whole.

A load world gives its proxy a recorder (``sim/recorder.py``) and notes, beside it, every
interception the proxy handed over. Whatever the schedule, the recording must hold each
of them exactly once, as the line the fixture format makes of it, and the whole file must
parse back through that format (``parse_fixture``) into as many interceptions: a line
lost or doubled when two interceptions end at once, or one cut or glued to another, is a
finding. Every client that got a status line was served by an interception, so the proxy
must have handed over at least that many; and each interception answers one client
request (a load's client, a socket's ``response.create``), so no more than there were
requests, and never the same one twice. Comparing the recording with what was handed
over alone would take an interception handed over twice for two served alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..errors import FixtureError
from ..interception import Interception
from ..sessions.fixture import encode_interception, parse_fixture

LOST = "an interception missing from the recording"
DOUBLED = "an interception recorded more than once"
FOREIGN = "a recorded line that is no interception served"
UNREADABLE = "a recording that does not parse back"
UNHANDED = "an interception never handed to the recorder"
HANDED_TWICE = "an interception handed to the recorder more than once"
SURPLUS = "more interceptions handed to the recorder than client requests"


def recording_problems(
    handed: Sequence[Interception], lines: Sequence[str], text: str, answered: int, requests: int
) -> list[tuple[str, str]]:
    """(message, shape) for each way the recording ``lines`` (the file ``text``) fails
    the interceptions ``handed`` over, ``answered`` of the ``requests`` clients' requests
    having got a status line."""
    problems: list[tuple[str, str]] = []
    if len(handed) < answered:
        problems.append(
            (f"{answered} clients got an answer, the recorder was handed {len(handed)}", UNHANDED)
        )
    handings = Counter(id(record) for record in handed)
    twice = [n for n, record in enumerate(handed) if handings.pop(id(record), 1) > 1]
    if twice:
        message = f"interception(s) {', '.join(map(str, twice))} handed to the recorder again"
        problems.append((message, HANDED_TWICE))
    elif len(handed) > requests:
        message = f"{len(handed)} interceptions handed to the recorder for {requests} request(s)"
        problems.append((message, SURPLUS))
    try:
        parsed = parse_fixture(text, "<recording>")
    except FixtureError as exc:
        problems.append((f"the recording does not parse back: {exc}", UNREADABLE))
    else:
        if parsed.warnings or len(parsed.interceptions) != len(lines):
            problems.append(
                (
                    f"the recording parses back into {len(parsed.interceptions)} "
                    f"interception(s), not its {len(lines)} line(s)",
                    UNREADABLE,
                )
            )
        else:
            for n, (back, line) in enumerate(zip(parsed.interceptions, lines, strict=True)):
                if encode_interception(back) != line:
                    message = f"recorded line {n + 1} does not parse back into what it says"
                    problems.append((message, UNREADABLE))
    recorded = Counter(lines)
    encoded = [encode_interception(record) for record in handed]  # once each
    expected = Counter(encoded)
    for n, (record, line) in enumerate(zip(handed, encoded, strict=True)):
        times = recorded[line]
        if times == expected[line]:
            continue
        what = f"interception {n} ({record.request.method} {record.request.path}, {record.outcome})"
        if times < expected[line]:
            problems.append((f"{what} recorded {times} time(s), not {expected[line]}", LOST))
        else:
            problems.append((f"{what} recorded {times} times, not {expected[line]}", DOUBLED))
        recorded[line] = expected[line]  # one problem per distinct line
    foreign = sum(times for line, times in recorded.items() if line not in expected)
    if foreign:
        problems.append((f"{foreign} recorded line(s) match no interception served", FOREIGN))
    return problems
