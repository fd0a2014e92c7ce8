"""What every page shares: safe markup, the document around a body, style, time axes.

Everything a page shows came off the wire (bodies, headers, names an upstream chose), so
markup is built only through ``el``: its text children and attribute values are escaped,
and only ``Html`` (markup this module built) passes through as it is. A page is one file:
the style and the little script are inline, nothing is fetched.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

# Bodies are shown up to this size; the fixture or repro file holds the rest.
BODY_LIMIT = 64 * 1024
NONE = "\u2013"  # an en dash: nothing to show
TIMES = "\u00d7"  # a multiplication sign: how many of a kind


class Html(str):
    """Markup that is safe as it is: built by ``el``, never read off the wire."""

    __slots__ = ()


def esc(value: object) -> Html:
    """``value`` as text in markup; ``Html`` stays as it is."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object]) -> Html:
    return Html("".join(esc(part) for part in parts))


def _attrs(attrs: dict[str, object]) -> str:
    out = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        # ``class_`` for the keyword, ``data_lane`` for ``data-lane``
        key = name.rstrip("_").replace("_", "-")
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    return "".join(out)


def el(tag: str, *children: object, **attrs: object) -> Html:
    """``<tag attrs>children</tag>``: every child and attribute value escaped."""
    return Html(f"<{tag}{_attrs(attrs)}>{join(children)}</{tag}>")


def void(tag: str, **attrs: object) -> Html:
    """An element without content (``meta``, ``br``)."""
    return Html(f"<{tag}{_attrs(attrs)}>")


def table(head: Iterable[object], rows: Iterable[Iterable[object]], **attrs: object) -> Html:
    return el(
        "table",
        el("thead", el("tr", *(el("th", cell) for cell in head))),
        el("tbody", *(el("tr", *(el("td", cell) for cell in row)) for row in rows)),
        **attrs,
    )


def pre_text(data: bytes | str, limit: int = BODY_LIMIT) -> Html:
    """Bytes as readable text in a ``pre``, cut at ``limit`` with a note of what was cut."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = raw[:limit].decode("utf-8", errors="replace")
    cut = len(raw) - limit
    note = el("span", f"\n… {cut:,} more bytes", class_="cut") if cut > 0 else ""
    return el("pre", text, note, class_="body")


# -- numbers --------------------------------------------------------------------------------
def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return NONE
    if ms >= 10_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def fmt_seconds(seconds: float) -> str:
    """Simulated seconds as a short label (``0``, ``12 ms``, ``1.5 s``)."""
    if seconds == 0:
        return "0"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.4g} ms"
    return f"{seconds:.4g} s"


def fmt_bytes(size: int) -> str:
    if size < 10_000:
        return f"{size} B"
    if size < 10_000_000:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def nice_ticks(end: float, count: int = 8) -> list[float]:
    """Round tick values (1, 2, 5 times a power of ten) from 0 to at least ``end``."""
    if end <= 0:
        return [0.0]
    raw = end / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(end / step - 1e-9) + 1)]


# -- the document ---------------------------------------------------------------------------
STYLE = """
:root { --client:#2563eb; --relay:#7c3aed; --loop:#0d9488; --upstream:#ea580c;
  --tool:#16a34a; --error:#dc2626; --fault:#be185d; --muted:#6b7280; --line:#e5e7eb;
  --bg:#ffffff; --fg:#111827; --panel:#f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.2rem 1.6rem 3rem; font: 14px/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 1.35rem; margin: 0 0 .3rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 .4rem; padding-top: .6rem;
  border-top: 2px solid var(--line); }
h3 { font-size: .95rem; margin: 1.1rem 0 .3rem; }
p.meta, .muted { color: var(--muted); margin: .2rem 0; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; }
table { border-collapse: collapse; margin: .3rem 0 .6rem; }
th, td { text-align: left; padding: .2rem .7rem .2rem 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12.5px; }
td.num, th.num { text-align: right; }
pre.body { background: var(--panel); border: 1px solid var(--line); padding: .5rem .7rem;
  white-space: pre-wrap; word-break: break-all; max-height: 28rem; overflow: auto;
  margin: .3rem 0; }
.cut { color: var(--muted); font-style: italic; }
details { margin: .3rem 0; }
summary { cursor: pointer; color: #374151; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-size: 12px;
  font-weight: 600; color: #fff; background: var(--muted); }
.badge.ok { background: var(--tool); } .badge.bad { background: var(--error); }
.facts { display: flex; flex-wrap: wrap; gap: .2rem 1.4rem; margin: .4rem 0; }
.facts div span { color: var(--muted); margin-right: .3rem; }
.legend { display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .4rem 0; font-size: 12.5px; }
.legend i { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
  vertical-align: -1px; margin-right: .3rem; }
svg.chart { width: 100%; height: auto; display: block; background: #fff;
  border: 1px solid var(--line); }
svg.chart text { font: 11px system-ui, sans-serif; }
svg.chart text:not([fill]) { fill: #374151; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart text.tick { fill: var(--muted); }
svg.chart .cursor { stroke: #111827; stroke-width: .8; stroke-dasharray: 3 3; }
.lane-client { fill: var(--client); } .lane-relay { fill: var(--relay); }
.lane-loop { fill: var(--loop); } .lane-upstream { fill: var(--upstream); }
.lane-tool { fill: var(--tool); } .lane-error { fill: var(--error); }
.lane-fault { fill: var(--fault); }
mark.offending { background: #fecaca; color: #7f1d1d; text-decoration: underline wavy var(--error);
  text-decoration-skip-ink: none; }
a { color: var(--client); }
@media print { details { display: block; } }
"""

# A crosshair on every chart: where the pointer is, in the chart's own time. Charts work
# without it; ``data-axis`` says whether time runs across (x) or down (y).
SCRIPT = """
(function () {
  for (const svg of document.querySelectorAll('svg.chart[data-t1]')) {
    const down = svg.dataset.axis === 'y';
    const p0 = +svg.dataset.p0, p1 = +svg.dataset.p1;
    const t1 = +svg.dataset.t1, unit = svg.dataset.unit || '';
    const ns = 'http://www.w3.org/2000/svg';
    const line = document.createElementNS(ns, 'line');
    const label = document.createElementNS(ns, 'text');
    line.setAttribute('class', 'cursor');
    line.style.display = label.style.display = 'none';
    svg.append(line, label);
    const box = svg.viewBox.baseVal;
    svg.addEventListener('mousemove', function (event) {
      const matrix = svg.getScreenCTM();
      if (!matrix) return;
      const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
      const pos = down ? point.y : point.x;
      if (pos < p0 || pos > p1) { line.style.display = label.style.display = 'none'; return; }
      const time = (pos - p0) / (p1 - p0) * t1;
      line.style.display = label.style.display = '';
      if (down) {
        line.setAttribute('x1', 0); line.setAttribute('x2', box.width);
        line.setAttribute('y1', pos); line.setAttribute('y2', pos);
        label.setAttribute('x', 4); label.setAttribute('y', pos - 3);
      } else {
        line.setAttribute('x1', pos); line.setAttribute('x2', pos);
        line.setAttribute('y1', 0); line.setAttribute('y2', box.height);
        label.setAttribute('x', pos + 4); label.setAttribute('y', 12);
      }
      label.textContent = time.toPrecision(4) + unit;
    });
    svg.addEventListener('mouseleave', function () {
      line.style.display = label.style.display = 'none';
    });
  }
})();
"""


def document(title: str, *body: object, style: str = "", script: str = "") -> str:
    """A whole HTML page around ``body``: the shared style and script, then the page's own."""
    head = el(
        "head",
        void("meta", charset="utf-8"),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", title),
        Html(f"<style>{STYLE}{style}</style>"),
    )
    scripts = Html(f"<script>{SCRIPT}{script}</script>")
    return "<!DOCTYPE html>\n" + el("html", head, el("body", *body, scripts), lang="en") + "\n"


def svg(*parts: object, width: float, height: float, label: str, **attrs: object) -> Html:
    """An inline SVG chart ``width`` by ``height`` in its own units, scaled to the page."""
    classes = " ".join(["chart", *([str(attrs.pop("class_"))] if "class_" in attrs else [])])
    return el(
        "svg",
        *parts,
        class_=classes,
        viewBox=f"0 0 {width:g} {height:g}",
        role="img",
        aria_label=label,
        xmlns="http://www.w3.org/2000/svg",
        **attrs,
    )


def legend(items: Iterable[tuple[str, str]]) -> Html:
    """Colour keys: (lane class, label)."""
    return el(
        "div",
        *(
            el("span", el("i", class_=f"lane-{kind}", style=f"background:var(--{kind})"), text)
            for kind, text in items
        ),
        class_="legend",
    )


def badge(text: str, good: bool) -> Html:
    return el("span", text, class_=f"badge {'ok' if good else 'bad'}")
