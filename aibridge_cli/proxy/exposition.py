"""Prometheus's text exposition format (version 0.0.4), sans-io: metric families in, text
out. Small enough to write here rather than depend on ``prometheus-client`` (whose
registry is process-global, and whose parser the tests use to read what this writes).

A family is a name, a type, a help line and its label names; a series is one tuple of
label values. A counter's samples carry ``_total``; a histogram's, ``_bucket`` (cumulative,
``le`` ending in ``+Inf``), ``_sum`` and ``_count``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["counter", "gauge", "histogram"]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A label value longer than this is cut: clients choose model and tool names.
MAX_LABEL_VALUE = 64
# Series per family at most; past it new label sets add up in one ``overflow`` series, so a
# client sending endless model names costs a bounded amount of memory and no count is lost.
MAX_SERIES = 2000
OVERFLOW = "overflow"
_INF = 'le="+Inf"'


def escape_label(value: str) -> str:
    value = value[:MAX_LABEL_VALUE]
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


@dataclass
class _Histogram:
    buckets: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Family:
    """One metric family and its series."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms: upper bounds, ascending, +Inf implied
    values: dict[tuple[str, ...], float] = field(default_factory=dict)
    histograms: dict[tuple[str, ...], _Histogram] = field(default_factory=dict)

    def _series(self, labels: tuple[str, ...], kept: dict[tuple[str, ...], Any]) -> tuple[str, ...]:
        if labels in kept or len(kept) < MAX_SERIES:
            return labels
        return (OVERFLOW,) * len(labels)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        labels = self._series(labels, self.values)
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def set(self, labels: tuple[str, ...], value: float) -> None:
        self.values[self._series(labels, self.values)] = value

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        labels = self._series(labels, self.histograms)
        histogram = self.histograms.get(labels)
        if histogram is None:
            histogram = self.histograms[labels] = _Histogram([0] * len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                histogram.buckets[i] += 1
        histogram.total += value
        histogram.count += 1

    def _pairs(self, values: Sequence[str], extra: str = "") -> str:
        pairs = [f'{name}="{escape_label(v)}"' for name, v in zip(self.labels, values, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def lines(self) -> Iterable[str]:
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        yield f"# HELP {self.name} {help_text}"
        yield f"# TYPE {self.name} {self.kind}"
        if self.kind == "histogram":
            for labels, h in sorted(self.histograms.items()):
                for bound, count in zip(self.buckets, h.buckets, strict=True):
                    le = f'le="{format_value(bound)}"'
                    yield f"{self.name}_bucket{self._pairs(labels, le)} {count}"
                yield f"{self.name}_bucket{self._pairs(labels, _INF)} {h.count}"
                yield f"{self.name}_sum{self._pairs(labels)} {format_value(h.total)}"
                yield f"{self.name}_count{self._pairs(labels)} {h.count}"
            return
        suffix = "_total" if self.kind == "counter" else ""
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{suffix}{self._pairs(labels)} {format_value(value)}"


def render(families: Iterable[Family]) -> str:
    """The exposition of ``families``, in the order given."""
    return "".join(line + "\n" for family in families for line in family.lines())
