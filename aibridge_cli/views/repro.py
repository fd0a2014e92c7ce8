"""The reproducer page: a fuzz finding as a sequence diagram, one lane per task.

Lanes, left to right: the client, the proxy's relay task, its loop task, the upstream and
the injected tool. Each mark of the run (``sim.marks``) is one row, in the order it
happened, simulated time running down the page: a write to the client is an arrow from
the task that wrote it (red when what it wrote is an error), an upstream attempt an arrow
from the loop to the upstream with the key tried and the answer, a decision of the engine
a diamond. Under the diagram the client's body is drawn as the strip of bytes each task
contributed, and printed with the bytes the oracle objects to highlighted. For a
schedule-dependence finding the canonical run stands beside the failing one.

A load (several clients in one world) gets a group of lanes per request, labelled with
its index and start time (its client, relay task and loop task), then the lanes its
requests share: the upstream, the key pool, the recorder and the tool. An attempt is
drawn from its request's loop lane, so which request took which key when reads across
the page; each request's writes are read by an HTTP client of their own, and each
client's body gets its strip and text.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from ..fuzz.evidence import Evidence
from ..fuzz.report import describe_plan
from ..sim.marks import LANES, REQUEST_LANES, SHARED_LANES, Lane, Mark
from ..sim.world import WorldResult
from .page import (
    TIMES,
    Html,
    badge,
    document,
    el,
    esc,
    fmt_bytes,
    fmt_seconds,
    legend,
    pre_text,
    svg,
)

_WIDTH = 980
_GUTTER = 70  # simulated time, left of the lanes
_LOAD_COLUMN = 96.0  # a load's lanes: narrower, and the page scrolls across
_HEAD = 34
_GROUP = 22  # a load's request headings, above its lanes
_ROW = 26
_LANE_TITLES: dict[Lane, str] = {
    "client": "client",
    "relay": "relay task",
    "loop": "loop task",
    "upstream": "upstream",
    "tool": "tool",
    "pool": "key pool",
    "recorder": "recorder",
}
_EVENT = re.compile(rb"^event: ?(\S+)", re.MULTILINE)

Column = tuple[int | None, Lane]  # (a load's request, or None: a lane of the whole run)


@dataclass(frozen=True)
class Layout:
    """Where each lane goes: one row of five for one request; a group per request of a
    load, then the shared lanes."""

    columns: tuple[Column, ...]
    load: bool

    @classmethod
    def of(cls, marks: Sequence[Mark]) -> Layout:
        requests = sorted({m.request for m in marks if m.request is not None})
        if not requests:
            # a socket of several responses also records: its recorder gets a lane
            used = {m.lane for m in marks}
            lanes = (*LANES, *(lane for lane in SHARED_LANES if lane in used - set(LANES)))
            return cls(tuple((None, lane) for lane in lanes), False)
        own = [(r, lane) for r in requests for lane in REQUEST_LANES]
        return cls((*own, *((None, lane) for lane in SHARED_LANES)), True)

    @property
    def column(self) -> float:
        return _LOAD_COLUMN if self.load else (_WIDTH - _GUTTER) / len(self.columns)

    @property
    def width(self) -> float:
        # a load's last lanes label their marks to the right: room for that
        return _GUTTER + self.column * (len(self.columns) + 2) if self.load else _WIDTH

    @property
    def head(self) -> float:
        return _HEAD + _GROUP if self.load else _HEAD

    def place(self, mark: Mark, lane: Lane | None = None) -> Column:
        """The column of ``mark`` (or of ``lane`` in its request)."""
        lane = lane or mark.lane
        return (mark.request, lane) if self.load and lane in REQUEST_LANES else (None, lane)

    def x(self, column: Column) -> float:
        return _GUTTER + self.column * (self.columns.index(column) + 0.5)


@dataclass
class Write:
    """One write to the client, as the client's HTTP parser read it."""

    mark: Mark
    status: int | None = None  # the status line this write carried
    retry_after: str | None = None  # and the Retry-After it told the client
    body: bytes = b""
    end: bool = False

    @property
    def events(self) -> Counter[str]:
        return Counter(name.decode("utf-8", "replace") for name in _EVENT.findall(self.body))

    @property
    def is_error(self) -> bool:
        if self.status is not None and self.status >= 400:
            return True
        if "error" in self.events:
            return True
        return self.body.lstrip().startswith(b"{") and b'"error"' in self.body

    def describe(self) -> str:
        told = f" (Retry-After {self.retry_after})" if self.retry_after is not None else ""
        parts = [f"HTTP {self.status} head{told}"] if self.status is not None else []
        events = self.events
        if events:
            names = ", ".join(
                f"{name} {TIMES}{n}" if n > 1 else name for name, n in list(events.items())[:3]
            )
            parts.append(f"SSE {names}" + (", …" if len(events) > 3 else ""))
        elif self.body.lstrip().startswith(b"{"):
            parts.append("JSON error" if b'"error"' in self.body else "JSON")
        elif self.body:
            parts.append(f"{len(self.body)} body bytes")
        if self.end and not self.body:
            parts.append("end of body")
        return " + ".join(parts) + f" ({fmt_bytes(len(self.mark.data))})"


def parse_writes(marks: Sequence[Mark]) -> dict[int, Write]:
    """The writes to the client by step, each with what it meant to an HTTP/1.1 client.

    The bytes of all writes (to one client: a load's each have their own) go through one
    h11 client connection in order, so a chunk's framing, a second head's absence and a
    body's end read as the client read them.
    """
    conns: dict[int | None, h11.Connection] = {}
    writes: dict[int, Write] = {}
    broken: set[int | None] = set()
    for mark in marks:
        if mark.kind != "write":
            continue
        write = writes[mark.step] = Write(mark)
        if mark.request in broken:
            continue
        if mark.request not in conns:
            conn = conns[mark.request] = h11.Connection(h11.CLIENT)
            conn.send(h11.Request(method="POST", target="/", headers=[("host", "proxy.sim")]))
            conn.send(h11.EndOfMessage())
        conn = conns[mark.request]
        try:
            conn.receive_data(mark.data)
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Response):
                    write.status = event.status_code
                    told = dict(event.headers).get(b"retry-after")
                    write.retry_after = told.decode("latin-1") if told is not None else None
                elif isinstance(event, h11.Data):
                    write.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    write.end = True
                else:
                    break  # NEED_DATA, PAUSED, ConnectionClosed
        except h11.RemoteProtocolError:
            broken.add(mark.request)  # the client gave up here; later writes are shown unparsed
    return writes


def offending_range(oracle: str, body: bytes, canonical: bytes | None) -> tuple[int, int] | None:
    """Where in the client's body the oracle's objection lies.

    Schedule-dependence: from the first byte that differs from the canonical run's body.
    Otherwise, a JSON body: what follows the JSON value (or where it stops parsing); an SSE
    body: the first frame whose data is not JSON.
    """
    if oracle == "schedule-dependence" and canonical is not None:
        if body == canonical:
            return None
        same = next(
            (i for i, (a, b) in enumerate(zip(body, canonical, strict=False)) if a != b),
            min(len(body), len(canonical)),
        )
        return (same, len(body)) if same < len(body) else None
    text = body.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "{":
        try:
            _, end = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError as exc:
            return _byte_range(text, exc.pos, len(text))
        if text[end:].strip():
            return _byte_range(text, end, len(text))
        return None
    position = 0
    for frame in re.split(r"(?<=\n\n)", text):
        for line in frame.splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                if data and data != "[DONE]" and not _is_json(data):
                    return _byte_range(text, position, position + len(frame))
        position += len(frame)
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _byte_range(text: str, start: int, end: int) -> tuple[int, int]:
    """Character offsets in ``text`` as byte offsets in its UTF-8 encoding."""
    return len(text[:start].encode()), len(text[:end].encode())


# -- the diagram ----------------------------------------------------------------------------
def _arrow(x0: float, x1: float, y: float, colour: str, width: float = 2.0) -> Html:
    head = 7 if x1 > x0 else -7
    return el(
        "g",
        el(
            "line",
            x1=f"{x0:.1f}",
            x2=f"{x1 - head:.1f}",
            y1=y,
            y2=y,
            stroke=colour,
            stroke_width=width,
        ),
        el("path", d=f"M{x1:.1f},{y} l{-head},-4.5 l0,9 z", fill=colour),
    )


def _label(text: str, x: float, y: float, anchor: str = "start", **attrs: object) -> Html:
    return el("text", text, x=f"{x:.1f}", y=y, text_anchor=anchor, **attrs)


def _mark(
    mark: Mark, y: float, writes: dict[int, Write], faults: dict[int, list[str]], layout: Layout
) -> Html:
    """One row's drawing for ``mark``."""
    x = layout.x(layout.place(mark))
    parts: list[object] = [
        el("title", f"step {mark.step} at {fmt_seconds(mark.time)}: {mark.label}")
    ]
    kind = mark.kind
    colour = f"var(--{mark.lane})"
    if kind == "write" and mark.step in writes:
        write = writes[mark.step]
        bad = write.is_error
        colour = "var(--error)" if bad else colour
        target = layout.x(layout.place(mark, "client"))
        parts.append(_arrow(x, target + 5, y, colour, 3.0 if bad else 2.0))
        parts.append(_label(write.describe(), target + 8, y - 6, fill=colour))
    elif kind == "attempt":
        good = mark.status is not None and mark.status < 400
        answer = "no answer" if mark.status is None else str(mark.status)
        colour = "var(--tool)" if good else "var(--error)"
        loop = layout.x(layout.place(mark, "loop"))
        if layout.load and mark.request is None:
            loop = x - 40  # no request wrote it: a stub
        parts.append(_arrow(loop, x - 5, y, "var(--upstream)"))
        parts.append(_label(f"key {mark.key}", (loop + x) / 2, y - 6, "middle"))
        parts.append(el("circle", cx=f"{x:.1f}", cy=y, r=6, fill=colour))
        injected = faults.get(mark.exchange, []) if mark.exchange is not None else []
        note = answer + "".join(f", {f.split(' at ')[0]}" for f in injected)
        title = f"step {mark.step} at {fmt_seconds(mark.time)}: {mark.label}"
        parts[0] = el("title", title + "".join(f"; fault {f}" for f in injected))
        parts.append(_label(note, x + 10, y + 4, fill=colour, font_weight="600"))
    elif kind == "request":
        loop = layout.x(layout.place(mark, "loop"))
        parts.append(_arrow(x, loop - 5, y, "var(--client)"))
        parts.append(_label(mark.label, x + 8, y - 6))
    elif kind == "decision":
        red = "JSON" in mark.label
        colour = "var(--error)" if red else colour
        d = f"M{x:.1f},{y - 7} l7,7 l-7,7 l-7,-7 z"
        parts.append(el("path", d=d, fill=colour))
        parts.append(_label(mark.label, x + 11, y + 4, fill=colour, font_weight="600"))
    elif kind in ("pool", "record"):
        if kind == "pool":  # a diamond: the pool's state changed
            shape = el("path", d=f"M{x:.1f},{y - 7} l7,7 l-7,7 l-7,-7 z", fill=colour)
        else:
            shape = el("rect", x=f"{x - 7:.1f}", y=y - 6, width=14, height=12, fill=colour)
        who = f"request {mark.request}: " if mark.request is not None else ""
        parts.append(shape)
        parts.append(_label(who + mark.label, x + 11, y + 4, fill=colour))
    elif kind == "tool":
        parts.append(el("rect", x=f"{x - 8:.1f}", y=y - 7, width=16, height=14, rx=3, fill=colour))
        parts.append(_label(mark.label, x - 12, y + 4, "end"))  # the last lane: text to the left
    else:  # read, done
        size = 3.5 if kind == "read" else 6
        parts.append(el("circle", cx=f"{x:.1f}", cy=y, r=size, fill=colour))
        parts.append(_label(mark.label, x + 9, y + 4, class_="tick" if kind == "read" else None))
    request = {"data_request": mark.request} if layout.load and mark.request is not None else {}
    return el(
        "g",
        *parts,
        class_="mark",
        data_lane=mark.lane,
        data_kind=kind,
        data_step=mark.step,
        **request,
    )


def _groups(layout: Layout, marks: Sequence[Mark]) -> list[Html]:
    """A load's request headings: its index and when its client started, over its lanes."""
    width = layout.column * len(REQUEST_LANES)
    parts: list[Html] = []
    for request in sorted({r for r, _ in layout.columns if r is not None}):
        start = next((m.time for m in marks if m.request == request and m.kind == "request"), 0)
        x = layout.x((request, REQUEST_LANES[0])) - layout.column / 2
        title = f"request {request}, starts at {fmt_seconds(start)}"
        parts.append(
            el(
                "g",
                el("rect", x=f"{x + 3:.1f}", y=4, width=f"{width - 6:.1f}", height=18, rx=4),
                _label(title, x + width / 2, 17, "middle", font_weight="600"),
                class_="request",
                data_request=request,
            )
        )
    shared = layout.x((None, SHARED_LANES[0])) - layout.column / 2
    parts.append(_label("shared by every request", shared + 6, 17, font_weight="600"))
    return parts


def sequence_diagram(marks: Sequence[Mark], faults: dict[int, list[str]]) -> Html:
    writes = parse_writes(marks)
    layout = Layout.of(marks)
    head, column = layout.head, layout.column
    height = head + _ROW * (len(marks) + 1)
    parts: list[object] = [*_groups(layout, marks)] if layout.load else []
    top = head - _HEAD
    for request, lane in layout.columns:
        x = layout.x((request, lane))
        count = sum(1 for m in marks if layout.place(m) == (request, lane))
        title = _LANE_TITLES[lane]
        if layout.load and request is not None:
            title = f"{title.split()[0]} {request}"
        parts.append(
            el(
                "g",
                el(
                    "rect",
                    x=f"{x - column / 2 + 6:.1f}",
                    y=top + 4,
                    width=f"{column - 12:.1f}",
                    height=22,
                    rx=4,
                    class_=f"lane-{lane}",
                    opacity="0.9",
                ),
                _label(title, x, top + 19, "middle", fill="#fff", font_weight="600"),
                el(
                    "line",
                    x1=f"{x:.1f}",
                    x2=f"{x:.1f}",
                    y1=top + 26,
                    y2=height,
                    class_="grid",
                    stroke_dasharray="3 4",
                ),
                class_="lane",
                data_lane=lane,
                data_marks=count,
                **({"data_request": request} if request is not None else {}),
            )
        )
    last_time: float | None = None
    width = layout.width
    for row, mark in enumerate(marks):
        y = head + _ROW * (row + 1) - 6
        if mark.time != last_time:
            parts.append(
                el("line", x1=0, x2=width, y1=y - _ROW / 2 - 2, y2=y - _ROW / 2 - 2, class_="grid")
            )
            parts.append(_label(f"t = {fmt_seconds(mark.time)}", 4, y + 4, class_="tick"))
            last_time = mark.time
        parts.append(_mark(mark, y, writes, faults, layout))
    end = marks[-1].time if marks else 0.0
    label = f"sequence of {len(marks)} marks over {fmt_seconds(end)} of simulated time"
    if not layout.load:
        return svg(*parts, width=width, height=height, label=label, class_="sequence")
    # drawn at its own size (a row of lanes per request), the page scrolls across
    drawing = svg(
        *parts,
        width=width,
        height=height,
        label=label,
        class_="sequence load",
        style=f"width: {width:g}px",
    )
    return el("div", drawing, class_="wide")


# -- the client's body ----------------------------------------------------------------------
def body_strip(writes: Sequence[Write], offending: tuple[int, int] | None) -> Html:
    """The body as bytes in order, each task's share in its colour; the objection outlined."""
    total = sum(len(w.body) for w in writes) or 1
    left, width, height = 10.0, _WIDTH - 20.0, 46
    parts: list[object] = []
    position = 0
    x = left
    for write in writes:
        if not write.body:
            continue
        w = max(width * len(write.body) / total, 3.0)
        colour = "error" if write.is_error else write.mark.lane
        label = f"{_LANE_TITLES[write.mark.lane]}: {write.describe()}"
        parts.append(
            el(
                "rect",
                el("title", f"body bytes {position}-{position + len(write.body)}: {label}"),
                x=f"{x:.1f}",
                y=8,
                width=f"{w:.1f}",
                height=22,
                class_=f"segment lane-{colour}",
                data_lane=write.mark.lane,
            )
        )
        if w > 60:
            parts.append(
                _label(_LANE_TITLES[write.mark.lane], x + 4, 23, fill="#fff", font_weight="600")
            )
        x += w
        position += len(write.body)
    if offending is not None:
        x0 = left + width * offending[0] / total
        x1 = left + width * offending[1] / total
        parts.append(
            el(
                "rect",
                x=f"{x0:.1f}",
                y=4,
                width=f"{max(x1 - x0, 3):.1f}",
                height=30,
                fill="none",
                stroke="var(--error)",
                stroke_width=2.5,
                stroke_dasharray="5 3",
            )
        )
        parts.append(_label("offending bytes", x0, 44, fill="var(--error)", font_weight="600"))
    label = "the client's body by writer"
    return svg(*parts, width=_WIDTH, height=height, label=label, class_="strip")


def body_text(body: bytes, writes: Sequence[Write], offending: tuple[int, int] | None) -> Html:
    """The body as text: each task's bytes tinted, the offending ones marked."""
    cuts = {0, len(body)}
    owners: list[tuple[int, int, Write]] = []
    position = 0
    if b"".join(w.body for w in writes) == body:
        for write in writes:
            owners.append((position, position + len(write.body), write))
            position += len(write.body)
            cuts.add(position)
    if offending is not None:
        cuts.update(offending)
    edges = sorted(c for c in cuts if 0 <= c <= len(body))
    pieces: list[object] = []
    for start, end in itertools.pairwise(edges):
        if start == end:
            continue
        owner = next((w for a, b, w in owners if a <= start < b), None)
        piece = esc(body[start:end].decode("utf-8", errors="replace"))
        if owner is not None:
            piece = el(
                "span", piece, class_=f"from-{owner.mark.lane}", title=_LANE_TITLES[owner.mark.lane]
            )
        if offending is not None and offending[0] <= start and end <= offending[1]:
            piece = el("mark", piece, class_="offending")
        pieces.append(piece)
    return el("pre", *pieces, class_="body client-body")


def run_panel(
    title: str,
    run: WorldResult,
    faults: dict[int, list[str]],
    offending: tuple[int, int] | None,
    oracle: str = "",
) -> Html:
    """One run: its facts, its diagram and its client's body (a load: each client's, with
    what ``oracle`` objects to in it)."""
    marks = run.marks or []
    writes = list(parse_writes(marks).values())
    clients = run.clients if len(run.clients) > 1 else [run.client]
    statuses = [str(c.status) if c.status is not None else "none" for c in clients]
    facts = [
        ("status", ", ".join(statuses)),
        ("body", ", ".join(fmt_bytes(len(c.body)) for c in clients)),
        ("complete", ", ".join("yes" if c.complete else "no" for c in clients)),
        ("simulated time", fmt_seconds(run.end_time)),
        ("marks", str(len(marks))),
    ]
    good = all(c.status is not None and c.status < 400 for c in clients)
    bodies: list[object] = []
    if len(clients) == 1:
        bodies += [
            el("h3", "The client's body, by the task that wrote it"),
            body_strip(writes, offending),
            body_text(run.client.body, writes, offending),
        ]
    for i, client in enumerate(clients if len(clients) > 1 else []):
        own = [w for w in writes if w.mark.request == i]
        objection = offending_range(oracle, client.body, None)
        bodies += [
            el("h3", f"Request {i}'s body ({statuses[i]}), by the task that wrote it"),
            body_strip(own, objection),
            body_text(client.body, own, objection),
        ]
    return el(
        "section",
        el("h2", title, " ", badge(facts[0][1], good)),
        el("div", *(el("div", el("span", k), v) for k, v in facts), class_="facts"),
        sequence_diagram(marks, faults),
        *bodies,
        class_="run",
        data_marks=len(marks),
    )


_EXTRA_STYLE = """
.runs { display: grid; grid-template-columns: 1fr; gap: 1.5rem; }
@media (min-width: 1300px) { .runs.pair { grid-template-columns: 1fr 1fr; } }
.verdict { border-left: 4px solid var(--error); background: #fef2f2; padding: .5rem .9rem;
  margin: .8rem 0; }
.verdict.pass { border-color: var(--tool); background: #f0fdf4; }
.verdict p { margin: .2rem 0; }
span.from-relay { background: #ede9fe; } span.from-loop { background: #ccfbf1; }
svg.sequence text { font-size: 11px; }
:root { --pool: #ca8a04; --recorder: #475569; }
.lane-pool { fill: var(--pool); } .lane-recorder { fill: var(--recorder); }
div.wide { overflow-x: auto; } svg.sequence.load { max-width: none; }
svg.sequence g.request rect { fill: var(--panel); stroke: var(--line); }
"""


def repro_page(evidence: Evidence) -> str:
    """The whole page for one finding."""
    finding = evidence.finding
    faults: dict[int, list[str]] = {}
    for fault in finding.plan.faults:
        faults.setdefault(fault.exchange, []).append(fault.describe())
    canonical = evidence.canonical
    body = evidence.run.client.body
    offending = offending_range(finding.oracle, body, canonical.client.body if canonical else None)
    failed = bool(finding.violations)
    verdict = el(
        "div",
        el(
            "p",
            el("strong", f"{finding.oracle}: " if failed else "passes: "),
            finding.violation.message,
        ),
        *(
            el("p", f"also {v.oracle}: {v.message}")
            for v in finding.violations
            if v.oracle != finding.oracle
        ),
        *(el("p", f"hygiene: {line}") for line in evidence.run.hygiene),
        class_="verdict" if failed else "verdict pass",
    )
    facts = [
        ("scenario", finding.scenario.name),
        ("seed", str(finding.seed)),
        ("iteration", f"{finding.iteration} (seed {finding.iteration_seed})"),
        ("stream initiation", finding.stream_initiation)
        if evidence.target is None
        else ("target", evidence.target),
    ]
    runs = [run_panel("this run", evidence.run, faults, offending, finding.oracle)]
    if canonical is not None:
        runs.insert(0, run_panel("canonical run (FIFO schedule)", canonical, faults, None))
    return document(
        f"aibridge fuzz: {finding.oracle} in {finding.scenario.name}",
        el(
            "h1",
            ("FAIL " if failed else "PASS ") + f"{finding.oracle}: ",
            el("code", finding.scenario.name),
        ),
        el("div", *(el("div", el("span", k), v) for k, v in facts), class_="facts"),
        verdict,
        # the plan as the repro file holds it: a page from --repro equals the campaign's
        el("h3", "Plan"),
        el("ul", *(el("li", line) for line in describe_plan(finding.plan))),
        legend(
            [
                ("client", "client"),
                ("relay", "relay task"),
                ("loop", "loop task"),
                ("upstream", "upstream"),
                ("tool", "tool / a good answer"),
                ("error", "an error written or answered"),
                *(
                    [("pool", "key pool: a key cooling or disabled"), ("recorder", "recorder")]
                    if len(evidence.run.clients) > 1
                    else []
                ),
            ]
        ),
        el("div", *runs, class_="runs pair" if canonical is not None else "runs"),
        el(
            "details",
            el("summary", f"the text timeline ({len(finding.timeline)} lines)"),
            pre_text("\n".join(finding.timeline)),
        ),
        style=_EXTRA_STYLE,
    )
