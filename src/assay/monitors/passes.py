"""One monitor pass over one model: evaluate the windows its monitors judge, judge them.

Monitors are grouped by (window, segment column); each group is evaluated once:

- a **tumbling** window: the windows of that size (the latest closed one is judged, the
  one before it is its ``previous``);
- a **sliding** window: the span ending now and the span before it, every pass.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from assay.monitors.config import ModelMonitoring, Monitor
from assay.monitors.rules import evaluate_all
from assay.monitors.signals import Signal
from assay.monitors.windows import previous, sliding
from assay.service.evaluations import evaluate_spans, evaluate_windows, parse_window
from assay.service.rollups import refresh
from assay.store.base import Store

OnEvaluation = Callable[[str, str, dict[str, Any]], None]


def model_signals(
    store: Store, model: ModelMonitoring, now: datetime, on_evaluation: OnEvaluation
) -> list[Signal]:
    """The signals of every monitor of ``model`` at ``now``.

    ``on_evaluation(tenant, model, result)`` receives each group's evaluation, whose last
    window is the one judged (for the gauges of ``/metrics``).
    """
    refresh(store, model.tenant, model.name)
    signals: list[Signal] = []
    for (label, segment), monitors in _groups(model).items():
        shape = model.window_of(monitors[0])
        bounds = sorted(
            {m.range_quantiles for m in monitors if m.metric == "out_of_range"} | {(0.0, 1.0)}
        )
        if shape.kind == "sliding":
            current = sliding(now, parse_window(shape.size))
            result = evaluate_spans(store, model.tenant, model.name, [previous(current), current],
                                    window=label, segment=segment, range_bounds=bounds,
                                    refresh_first=False)  # fmt: skip
        else:
            result = evaluate_windows(store, model.tenant, model.name, window=shape.size,
                                      segment=segment, range_bounds=bounds)  # fmt: skip
        on_evaluation(model.tenant, model.name, result)
        scoped = model.model_copy(update={"monitors": monitors})
        signals.extend(evaluate_all(scoped, {label: result["windows"]},
                                    result.get("reference_metrics"), now=now))  # fmt: skip
    return signals


def _groups(model: ModelMonitoring) -> dict[tuple[str, str | None], list[Monitor]]:
    """Monitors by (window label, segment column): one evaluation each."""
    groups: dict[tuple[str, str | None], list[Monitor]] = {}
    for monitor in model.monitors:
        key = (model.window_of(monitor).label, monitor.segment)
        groups.setdefault(key, []).append(monitor)
    return groups


__all__ = ["model_signals"]
