"""One monitor pass over one model: evaluate the windows its monitors judge, judge them.

Monitors are grouped by (window, segment column); each group is evaluated once, over
the spans it judges and no others (a pass reads a bounded number of windows, however
long the history):

- a **tumbling** window: the latest closed window of that size (see
  :mod:`assay.monitors.windows`), and the one before it when a condition compares with
  the ``previous`` window;
- a **sliding** window: the span ending now (and the span before it), every pass;
- **windows restated by late labels**: a closed tumbling window older than the latest,
  whose hourly buckets were rebuilt since the last pass (its labels arrived late), is
  judged again by the group's ``metric`` monitors — the only ones labels can change —
  as an alert of its own (label ``window_start``). While that alert is pending or
  firing the window is judged on every pass, so ``for:`` and the resolve hysteresis
  work as for the latest window; windows that ended more than the model's
  ``late_label_horizon`` ago are no longer judged, and their alerts resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from assay.monitors.config import ModelMonitoring, Monitor, parse_duration
from assay.monitors.rules import evaluate_all, evaluate_past
from assay.monitors.signals import Signal
from assay.monitors.windows import latest_closed, previous, sliding, window_start
from assay.service.evaluations import evaluate_spans, parse_window, refresh_rollups
from assay.service.rollups import RollupExecutor
from assay.store.base import Store

OnEvaluation = Callable[[str, str, dict[str, Any]], None]
Span = tuple[datetime, datetime]


def restated_hours(
    store: Store,
    model: ModelMonitoring,
    now: datetime,
    pending: set[datetime],
    persist: Callable[[set[datetime]], None],
    *,
    executor: RollupExecutor | None = None,
) -> set[datetime]:
    """Rebuild ``model``'s dirty buckets; the hours whose windows must be judged again.

    Those are the rebuilt hours (and the ones an evaluation request rebuilt since the last
    pass) that fall in a window late labels can restate, plus ``pending`` (taken by a pass
    that did not finish). ``persist`` gets them before the rebuild, and before the store
    forgets the hours requests noted, so a crash loses none.
    ``executor`` builds the buckets' states (default: in this process; ``engine: ray``).
    """
    dirty = store.dirty_buckets(model.tenant, model.name)
    noted = store.restated(model.tenant, model.name)
    hours = set(pending) | _judged_again(model, now, {d.bucket for d in dirty} | noted)
    if hours - pending:
        persist(hours)
    store.forget_restated(model.tenant, model.name, noted)  # saved, or past the horizon
    refresh_rollups(store, model.tenant, model.name, dirty, note=False, executor=executor)
    return hours


def model_signals(
    store: Store,
    model: ModelMonitoring,
    now: datetime,
    on_evaluation: OnEvaluation,
    *,
    restated: Iterable[datetime] = (),
    active: Iterable[dict[str, Any]] = (),
) -> list[Signal]:
    """The signals of every monitor of ``model`` at ``now``.

    ``restated``: hours whose windows late labels restated (from :func:`restated_hours`);
    ``active``: the alert book's pending and firing alerts. ``on_evaluation(tenant, model,
    result)`` receives each group's evaluation, whose last window is the one judged (for
    the gauges of ``/metrics``). Rollups are read as they are (see :func:`restated_hours`).

    >>> import tempfile
    >>> from datetime import UTC
    >>> from assay.store.duckdb_store import DuckDBStore
    >>> from assay.store.model import ModelSpec
    >>> store = DuckDBStore(tempfile.mkdtemp())
    >>> _ = store.register_model("acme", ModelSpec(name="m", task="binary", features={}))
    >>> model = ModelMonitoring.model_validate({"name": "m", "tenant": "acme",
    ...     "expected_rows_per_window": 100, "monitors": [{"name": "volume",
    ...     "kind": "data_quality", "metric": "volume", "condition": {"value": 0.5}}]})
    >>> now = datetime(2026, 11, 21, 9, tzinfo=UTC)
    >>> [s.summary for s in model_signals(store, model, now, lambda *a: None)]
    ['volume 0 < 0.5 on m, window 2026-11-20..2026-11-21']
    >>> store.close()
    """
    restated, active = set(restated), list(active)
    signals: list[Signal] = []
    for (label, segment), monitors in _groups(model).items():
        shape = model.window_of(monitors[0])
        size = parse_window(shape.size)
        bounds = sorted(
            {m.range_quantiles for m in monitors if m.metric == "out_of_range"} | {(0.0, 1.0)}
        )
        compares = any(m.condition.compare_to == "previous" for m in monitors)
        latest = sliding(now, size) if shape.kind == "sliding" else latest_closed(now, size)
        current = [previous(latest), latest] if compares else [latest]
        late = [m for m in monitors if m.kind == "metric" and shape.kind == "tumbling"]
        starts, expired = _past_windows(model, late, size, now, restated, active)
        signals.extend(expired)
        past = {(s, s + size) for s in starts}
        if any(m.condition.compare_to == "previous" for m in late):
            past |= {previous(span) for span in past}
        result = evaluate_spans(store, model.tenant, model.name, [*current, *past],
                                window=label, segment=segment, range_bounds=bounds,
                                refresh_first=False)  # fmt: skip
        ends = {_iso(end) for _, end in current}
        now_windows = [w for w in result["windows"] if w["end"] in ends]
        on_evaluation(model.tenant, model.name, {**result, "windows": now_windows})
        reference = result.get("reference_metrics")
        scoped = model.model_copy(update={"monitors": monitors})
        signals.extend(evaluate_all(scoped, {label: now_windows}, reference, now=now))
        if starts:
            scoped = model.model_copy(update={"monitors": late})
            signals.extend(evaluate_past(scoped, {label: result["windows"]}, {label: starts},
                                         reference))  # fmt: skip
    return signals


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _groups(model: ModelMonitoring) -> dict[tuple[str, str | None], list[Monitor]]:
    """Monitors by (window label, segment column): one evaluation each."""
    groups: dict[tuple[str, str | None], list[Monitor]] = {}
    for monitor in model.monitors:
        key = (model.window_of(monitor).label, monitor.segment)
        groups.setdefault(key, []).append(monitor)
    return groups


def _horizon(model: ModelMonitoring) -> timedelta:
    return timedelta(seconds=parse_duration(model.late_label_horizon))


def _in_reach(start: datetime, size: timedelta, now: datetime, horizon: timedelta) -> bool:
    """Closed before the latest closed window, and ended within the horizon."""
    return start + size <= latest_closed(now, size)[0] and start + size >= now - horizon


def _judged_again(model: ModelMonitoring, now: datetime, hours: set[datetime]) -> set[datetime]:
    """The ``hours`` that fall in a window some metric monitor would judge again."""
    sizes = {parse_window(model.window_of(m).size) for m in model.monitors
             if m.kind == "metric" and model.window_of(m).kind == "tumbling"}  # fmt: skip
    horizon = _horizon(model)
    return {h for h in hours
            if any(_in_reach(window_start(h, s), s, now, horizon) for s in sizes)}  # fmt: skip


def _past_windows(
    model: ModelMonitoring,
    monitors: list[Monitor],
    size: timedelta,
    now: datetime,
    restated: set[datetime],
    active: list[dict[str, Any]],
) -> tuple[list[datetime], list[Signal]]:
    """Starts of the past windows to judge, and the resolutions of those out of reach."""
    if not monitors:
        return [], []
    horizon = _horizon(model)
    names = {m.name for m in monitors}
    starts = {window_start(h, size) for h in restated}
    expired: list[Signal] = []
    for alert in active:
        labels = alert["labels"]
        if (labels.get("tenant"), labels.get("model")) != (model.tenant, model.name):
            continue
        if labels.get("monitor") not in names or "window_start" not in labels:
            continue
        start = datetime.fromisoformat(labels["window_start"])
        if _in_reach(start, size, now, horizon):
            starts.add(start)
        else:
            expired.append(_expiry(labels, start, size, model.late_label_horizon))
    return sorted(s for s in starts if _in_reach(s, size, now, horizon)), expired


def _expiry(labels: dict[str, str], start: datetime, size: timedelta, horizon: str) -> Signal:
    """A past window's alert resolving: the window is no longer judged."""
    summary = (f"{labels.get('monitor')} on {labels.get('model')}, window starting "
               f"{labels['window_start']}: no longer judged, it ended more than "
               f"late_label_horizon {horizon} ago")  # fmt: skip
    return Signal(labels=dict(labels), value=None, threshold=None, breached=False,
                  recovered=True, window_start=start, window_end=start + size,
                  summary=summary, severity=labels.get("severity", "warning"))  # fmt: skip


__all__ = ["model_signals", "restated_hours"]
