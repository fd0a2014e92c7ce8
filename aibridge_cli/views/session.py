"""The session page: every interception of a fixture, its stream's chunks over time.

Per interception: the facts (status, tokens, duration, time to first event), a chart with
one lane for the client and one per upstream exchange (plus the tool turns between them),
the key attempts with their usage, the injected tool calls, and the request and
responses themselves. A lane draws one mark per chunk while there are few; past
``MARKS_PER_LANE`` it draws bins of time instead, so a 10,000-event stream is a few
hundred shapes, not 10,000, and the page stays quick. Tables list the first
``ROWS_SHOWN`` events; the fixture holds every one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..interception import Chunk, Interception
from ..sessions.fixture import Fixture
from ..sessions.summary import StreamFacts, Summary, TimedEvent, ToolTurn
from .page import (
    NONE,
    TIMES,
    Html,
    badge,
    document,
    el,
    fmt_bytes,
    fmt_ms,
    fmt_seconds,
    legend,
    nice_ticks,
    pre_text,
    svg,
    table,
)

MARKS_PER_LANE = 400
BINS = 240
ROWS_SHOWN = 200

# The chart's geometry, in viewBox units.
_WIDTH = 1000
_GUTTER = 210  # lane labels
_RIGHT = 30
_AXIS = 24
_LANE = 34
_BAR = 24


@dataclass(frozen=True)
class _Lane:
    kind: str  # client, upstream, tool: the colour
    name: str
    detail: str
    chunks: Sequence[Chunk]
    events: Sequence[TimedEvent]
    bad: bool = False


@dataclass
class _Group:
    """Chunks drawn as one mark: one chunk, or every chunk in a bin of time."""

    start: float
    end: float
    count: int = 0
    size: int = 0
    names: Counter[str] = field(default_factory=Counter)


class _Chart:
    """Maps milliseconds to x across the chart."""

    def __init__(self, end_ms: float) -> None:
        self.ticks = nice_ticks(max(end_ms, 1.0))
        self.end = self.ticks[-1]

    def x(self, ms: float) -> float:
        return _GUTTER + ms / self.end * (_WIDTH - _GUTTER - _RIGHT)


def session_page(fixture: Fixture, summaries: Sequence[Summary]) -> str:
    """The whole page for ``fixture``; ``summaries`` are its interceptions' facts, in order."""
    parts: list[object] = [
        el("h1", "aibridge session ", el("code", fixture.path)),
        el(
            "p",
            f"{len(summaries)} interception(s) · recorded {fixture.created or 'at an unknown time'}"
            f" by aibridge {fixture.tool_version or '?'}"
            + "".join(f" · {k} {v}" for k, v in sorted(fixture.proxy.items())),
            class_="meta",
        ),
        *(el("p", warning, class_="meta") for warning in fixture.warnings),
        _overview(summaries),
        legend(
            [
                ("client", "bytes written to the client"),
                ("upstream", "bytes from the upstream"),
                ("error", "an error answer"),
                ("tool", "tool turn between exchanges"),
            ]
        ),
    ]
    for i, (record, summary) in enumerate(zip(fixture.interceptions, summaries, strict=True)):
        parts.append(_interception(i + 1, record, summary))
    return document(f"aibridge session: {fixture.path}", *parts)


def _overview(summaries: Sequence[Summary]) -> Html:
    head = ["#", "label", "api", "model", "status", "tokens in/out", "tool calls", "keys tried"]
    head += ["duration", "first event"]
    rows = []
    for i, s in enumerate(summaries, start=1):
        usage = s.usage
        rows.append(
            [
                i,
                el("a", s.label, href=f"#i{i}"),
                s.api,
                s.model,
                _status_badge(s.status),
                f"{usage.input_tokens} / {usage.output_tokens}",
                ", ".join(s.injected) or NONE,
                ", ".join(f"{a.key or 'client key'} {a.verdict}" for a in s.attempts) or NONE,
                fmt_ms(s.duration_ms),
                fmt_ms(s.client.first_event_ms),
            ]
        )
    return table(head, rows, class_="overview")


def _status_badge(status: int | None) -> Html:
    return badge(str(status) if status is not None else "none", status is not None and status < 400)


def _interception(number: int, record: Interception, s: Summary) -> Html:
    usage = s.usage
    facts = [
        ("api", s.api),
        ("model", s.model or NONE),
        ("mode", "stream" if s.stream else "blocking"),
        ("outcome", s.outcome),
        ("tokens", f"{usage.input_tokens} in, {usage.output_tokens} out"),
        ("duration", fmt_ms(s.duration_ms)),
        ("first event", fmt_ms(s.client.first_event_ms)),
        ("client events", str(len(s.client.events))),
    ]
    return el(
        "section",
        el("h2", f"#{number} {s.label} ", _status_badge(s.status), id=f"i{number}"),
        el("div", *(el("div", el("span", k), v) for k, v in facts), class_="facts"),
        _chart(record, s),
        el("h3", "Upstream attempts and usage"),
        _attempts(s),
        *_tool_calls(record),
        el("h3", "Request, responses"),
        _request(record),
        _response_details(
            "client response", record.response.headers, record.response.chunks, s.client
        ),
        *(
            _response_details(
                f"upstream #{i} {ex.method} {ex.path} ({a.key or 'client key'} → {a.verdict})",
                ex.response.headers,
                ex.response.chunks,
                a.facts,
                request_body=ex.request_body,
            )
            for i, (ex, a) in enumerate(zip(record.upstream, s.attempts, strict=True), start=1)
        ),
        class_="interception",
        data_api=s.api,
        data_events=len(s.client.events),
    )


# -- the chart ------------------------------------------------------------------------------
def _chart(record: Interception, s: Summary) -> Html:
    lanes = [
        _Lane(
            "client",
            "client",
            f"← {s.status if s.status is not None else 'no status'} · {s.client.chunks} chunks",
            record.response.chunks,
            s.client.events,
            bad=s.status is None or s.status >= 400,
        )
    ]
    for i, (ex, a) in enumerate(zip(record.upstream, s.attempts, strict=True), start=1):
        bad = a.facts.status is None or a.facts.status >= 400
        lanes.append(
            _Lane(
                "upstream",
                f"upstream #{i}",
                f"{a.key or 'client key'} → {a.verdict}",
                ex.response.chunks,
                a.facts.events,
                bad=bad,
            )
        )
    chart = _Chart(s.duration_ms or 0.0)
    turns = [t for t in s.tool_turns if t.after + 1 < len(s.attempts)]
    rows = len(lanes) + (1 if turns else 0)
    height = _AXIS + rows * _LANE + 6
    parts: list[object] = [_axis(chart, height)]
    for row, lane in enumerate(lanes):
        parts.append(
            _lane(chart, row, lane, first_event=s.client.first_event_ms if row == 0 else None)
        )
    if turns:
        parts.append(_tool_lane(chart, len(lanes), s, turns))
    return svg(
        *parts,
        width=_WIDTH,
        height=height,
        label=f"chunks over time: {len(lanes)} lanes",
        data_axis="x",
        data_p0=_GUTTER,
        data_p1=_WIDTH - _RIGHT,
        data_t1=f"{chart.end:g}",
        data_unit=" ms",
    )


def _axis(chart: _Chart, height: int) -> Html:
    parts = []
    for tick in chart.ticks:
        x = chart.x(tick)
        parts.append(
            el("line", class_="grid", x1=f"{x:.1f}", x2=f"{x:.1f}", y1=_AXIS - 6, y2=height)
        )
        parts.append(
            el(
                "text",
                fmt_seconds(tick / 1000),
                class_="tick",
                x=f"{x:.1f}",
                y=12,
                text_anchor="middle",
            )
        )
    return el("g", *parts, class_="axis")


def _lane(chart: _Chart, row: int, lane: _Lane, first_event: float | None) -> Html:
    top = _AXIS + row * _LANE
    base = top + _LANE - 6
    parts: list[object] = [
        el("text", lane.name, x=6, y=top + 14, font_weight="600"),
        el("text", lane.detail, x=6, y=top + 27, class_="tick"),
        el("line", class_="grid", x1=_GUTTER, x2=_WIDTH - _RIGHT, y1=base, y2=base),
    ]
    marks = _marks(chart, lane, base)
    parts += marks
    if first_event is not None:
        x = chart.x(first_event)
        parts.append(
            el(
                "line",
                el("title", f"first event at {fmt_ms(first_event)}"),
                x1=f"{x:.1f}",
                x2=f"{x:.1f}",
                y1=top + 2,
                y2=base,
                stroke="var(--fg)",
                stroke_dasharray="2 2",
            )
        )
    return el(
        "g",
        *parts,
        class_="lane",
        data_lane=lane.kind,
        data_chunks=len(lane.chunks),
        data_events=len(lane.events),
        data_marks=len(marks),
    )


def _events_by_chunk(events: Sequence[TimedEvent]) -> dict[int, Counter[str]]:
    by_chunk: dict[int, Counter[str]] = {}
    for event in events:
        by_chunk.setdefault(event.chunk, Counter())[event.name] += 1
    return by_chunk


def _names(counts: Counter[str], most: int = 4) -> str:
    shown = ", ".join(
        f"{name} {TIMES}{n}" if n > 1 else name for name, n in counts.most_common(most)
    )
    return shown + (", …" if len(counts) > most else "")


def _marks(chart: _Chart, lane: _Lane, base: float) -> list[Html]:
    """One bar per chunk (or per bin of time when there are many), height by bytes; red
    when it is (or holds) an error."""
    by_chunk = _events_by_chunk(lane.events)
    if len(lane.chunks) <= MARKS_PER_LANE:
        groups = [
            _Group(c.offset_ms, c.offset_ms, 1, len(c.data), by_chunk.get(i, Counter()))
            for i, c in enumerate(lane.chunks)
        ]
    else:
        groups = _bins(chart, lane.chunks, by_chunk)
    if not groups:
        return []
    biggest = max(g.size for g in groups) or 1
    marks = []
    for g in groups:
        kind = "error" if lane.bad or "error" in g.names else lane.kind
        x0, x1 = chart.x(g.start), chart.x(g.end)
        width = max(x1 - x0, 2.5)
        height = max(_BAR * math.sqrt(g.size / biggest), 3.0)
        when = fmt_ms(g.start) if g.count == 1 else f"{fmt_ms(g.start)} to {fmt_ms(g.end)}"
        what = f"{g.count} chunks, " if g.count > 1 else ""
        names = f" · {_names(g.names)}" if g.names else ""
        title = f"{lane.name} {when}: {what}{fmt_bytes(g.size)}{names}"
        marks.append(
            el(
                "rect",
                el("title", title),
                class_=f"mark lane-{kind}",
                x=f"{x0 - (1.2 if g.count == 1 else 0):.1f}",
                y=f"{base - height:.1f}",
                width=f"{width:.1f}",
                height=f"{height:.1f}",
                opacity="0.85",
            )
        )
    return marks


def _bins(
    chart: _Chart, chunks: Sequence[Chunk], by_chunk: dict[int, Counter[str]]
) -> list[_Group]:
    step = chart.end / BINS
    bins: dict[int, _Group] = {}
    for i, chunk in enumerate(chunks):
        slot = min(int(chunk.offset_ms / step), BINS - 1)
        group = bins.get(slot)
        if group is None:
            group = bins[slot] = _Group(slot * step, (slot + 1) * step)
        group.count += 1
        group.size += len(chunk.data)
        group.names.update(by_chunk.get(i, ()))
    return [bins[slot] for slot in sorted(bins)]


def _tool_lane(chart: _Chart, row: int, s: Summary, turns: Sequence[ToolTurn]) -> Html:
    top = _AXIS + row * _LANE
    base = top + _LANE - 6
    parts: list[object] = [
        el("text", "tool turns", x=6, y=top + 14, font_weight="600"),
        el(
            "text",
            f"{sum(len(t.calls) for t in turns)} injected call(s)",
            x=6,
            y=top + 27,
            class_="tick",
        ),
    ]
    drawn = 0
    for turn in turns:
        start = s.attempts[turn.after].facts.last_ms
        end = s.attempts[turn.after + 1].facts.first_ms
        if start is None or end is None:
            continue
        x0, x1 = chart.x(start), chart.x(end)
        names = ", ".join(turn.calls)
        parts.append(
            el(
                "rect",
                el(
                    "title",
                    f"after upstream #{turn.after + 1} ({fmt_ms(start)}), before upstream "
                    f"#{turn.after + 2} answered ({fmt_ms(end)}): ran {names}",
                ),
                class_="mark lane-tool",
                x=f"{x0:.1f}",
                y=base - 16,
                width=f"{max(x1 - x0, 2.5):.1f}",
                height=16,
                opacity="0.8",
            )
        )
        parts.append(el("text", names, x=f"{x1 + 4:.1f}", y=base - 4))
        drawn += 1
    return el(
        "g",
        *parts,
        class_="lane",
        data_lane="tool",
        data_chunks=0,
        data_events=len(turns),
        data_marks=drawn,
    )


# -- tables and bodies ----------------------------------------------------------------------
def _attempts(s: Summary) -> Html:
    head = ["#", "key", "answer", "first byte", "last byte", "chunks", "bytes", "events"]
    head += ["input tokens", "output tokens", "tool calls asked"]
    rows: list[list[object]] = []
    for i, a in enumerate(s.attempts, start=1):
        f = a.facts
        rows.append(
            [
                i,
                el("code", a.key or "client key"),
                a.verdict,
                fmt_ms(f.first_ms),
                fmt_ms(f.last_ms),
                f.chunks,
                fmt_bytes(f.size),
                len(f.events),
                f.usage.input_tokens,
                f.usage.output_tokens,
                ", ".join(f.tool_calls) or NONE,
            ]
        )
    usage = s.usage
    rows.append(["total", "", "", "", "", "", "", "", usage.input_tokens, usage.output_tokens, ""])
    return table(head, rows, class_="attempts")


def _tool_calls(record: Interception) -> list[Html]:
    if not record.tool_calls:
        return []
    rows = [
        [c.name, el("code", _json(c.input)), c.result, "error" if c.is_error else "ok"]
        for c in record.tool_calls
    ]
    return [
        el("h3", "Injected tool calls"),
        table(["tool", "input", "result", ""], rows, class_="tools"),
    ]


def _json(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(
        value,
        ensure_ascii=False,
        indent=1 if isinstance(value, dict) and len(str(value)) > 80 else None,
    )


def _request(record: Interception) -> Html:
    req = record.request
    body = (
        req.body
        if isinstance(req.body, bytes)
        else json.dumps(req.body, ensure_ascii=False, indent=2)
    )
    return el(
        "details",
        el("summary", f"client request {req.method} {req.path}"),
        table(["header", "value"], [[k, v] for k, v in req.headers], class_="headers"),
        pre_text(body),
    )


def _response_details(
    title: str,
    headers: Sequence[tuple[str, str]],
    chunks: Sequence[Chunk],
    facts: StreamFacts,
    request_body: Any = None,
) -> Html:
    parts: list[object] = [el("summary", title)]
    if request_body is not None:
        parts += [el("div", "sent", class_="muted"), pre_text(_json(request_body))]
    parts.append(table(["header", "value"], [[k, v] for k, v in headers], class_="headers"))
    events = facts.events
    if events:
        rows = [[fmt_ms(e.ms), e.name, fmt_bytes(e.size)] for e in events[:ROWS_SHOWN]]
        parts.append(table(["at", "event", "size"], rows, class_="events"))
        if len(events) > ROWS_SHOWN:
            parts.append(el("p", f"… and {len(events) - ROWS_SHOWN:,} more events", class_="cut"))
    parts.append(pre_text(b"".join(c.data for c in chunks)))
    return el("details", *parts)
