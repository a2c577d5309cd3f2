"""MetricSet: the finished numbers of a state, with intervals and reasons for gaps.

>>> m = MetricSet()
>>> m.set("accuracy", 0.9, (0.85, 0.95)); m.undefined("roc_auc", "only one class")
>>> m.to_dict()
{'accuracy': 0.9, 'accuracy_ci': [0.85, 0.95], 'roc_auc': None, 'roc_auc_ci': None, \
'undefined': {'roc_auc': 'only one class'}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricSet:
    """Metric values, their 95% intervals, undefined metrics with reasons, and extras."""

    values: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: float, interval: tuple[float, float] | None = None) -> None:
        """Record a defined metric (a non-finite value is recorded as undefined)."""
        value = float(value)
        if not math.isfinite(value):
            self.undefined(name, "the metric is not finite on this data")
            return
        self.values[name] = value
        self.intervals[name] = (
            None if interval is None else (float(interval[0]), float(interval[1]))
        )

    def undefined(self, name: str, reason: str | None) -> None:
        """Record a metric that has no value here, and why."""
        self.values[name] = None
        self.intervals[name] = None
        if reason:
            self.reasons[name] = reason

    def update(self, other: MetricSet) -> None:
        """Take every entry of ``other`` (its entries win)."""
        self.values.update(other.values)
        self.intervals.update(other.intervals)
        self.reasons.update(other.reasons)
        self.counts.update(other.counts)
        self.extra.update(other.extra)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form: ``name``, ``name_ci`` per metric, then counts, extras, reasons."""
        out: dict[str, Any] = {}
        for name, value in self.values.items():
            out[name] = value
            ci = self.intervals.get(name)
            out[f"{name}_ci"] = None if ci is None else [ci[0], ci[1]]
        out.update(self.counts)
        out.update(self.extra)
        if self.reasons:
            out["undefined"] = dict(self.reasons)
        return out
