"""Rules: one monitor's judgement of one window evaluation, as :class:`Signal` s.

A *window* is one entry of ``evaluate_windows(...)["windows"]``: ``start``, ``end``,
``version``, ``rows``, ``labeled``, ``label_completeness``, ``metrics`` (``name`` and
``name_ci``), ``drift`` (per feature, and ``"(output) score"``), ``data_quality`` (per
numeric feature: ``out_of_range``) and, when evaluated with a segment column, ``segments``
(per value: ``rows``, ``labeled``, ``label_completeness``, ``metrics``).

What each kind of monitor reads:

- ``metric``: ``metrics[metric]``. Every metric in a window is computed from labeled rows,
  so the window (or segment) needs ``min_rows`` rows *and* ``min_label_completeness``.
- ``drift``: the effect ``psi`` (default), ``jensen_shannon`` or ``wasserstein_normed`` of
  one feature, of every feature (``feature: "*"``) or of the model output
  (``feature: score``); the condition must say ``op: ">"`` (a large effect is bad). With
  ``metric: drifted`` the drift rule's own verdict (significant *and* large, with false
  discovery control across features) is used and the condition is ignored.
- ``data_quality``: ``null_rate`` (the current null share of a feature), ``unseen_share``
  (share of categories never seen in the reference; categorical features only) and
  ``volume`` (``rows / expected_rows_per_window``; not gated on ``min_rows``, since a low
  volume is what it detects) and ``out_of_range`` (the share of a numeric feature's
  non-null values outside the reference's range: its [min, max], or the reference
  quantiles the monitor's ``bounds`` name, e.g. ``[0.001, 0.999]``). Null and unseen
  shares and ranges are measured against the stored reference, so they need one.
- ``latency``: the window's ``p50``, ``p95`` (default) or ``p99`` of the events'
  ``latency_ms``; ``error_rate``: the share of events with ``error: true``. Windows where no
  event reported them are not judged.

Hysteresis: a breached signal is ``recovered`` only once its value is on the good side of
the threshold by at least ``resolve_hysteresis`` (for ``< 0.80`` with 0.01: breached below
0.80, recovered at 0.81 or more); the alert lifecycle keeps the state in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from assay.monitors.config import Condition, ModelMonitoring, Monitor, parse_duration
from assay.monitors.signals import Signal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OUTPUT_PREFIX = "(output) "

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class _Reading:
    """A value read from a window, its interval, or why it cannot be judged."""

    value: float | None
    ci: tuple[float, float] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Entity:
    """One judged thing: the whole window, a segment value or a feature."""

    labels: dict[str, str]
    where: str
    reading: _Reading
    previous: _Reading | None


def evaluate_monitor(
    model: ModelMonitoring,
    monitor: Monitor,
    tenant: str,
    window: dict[str, Any],
    previous: dict[str, Any] | None,
    reference_metrics: Mapping[str, Any] | None,
) -> list[Signal]:
    """Judge one window: one signal per entity (window, segment value or feature).

    ``previous`` is the window before (for ``compare_to: previous``), and
    ``reference_metrics`` the reference's metrics (``{"roc_auc": 0.86, ...}``, for
    ``compare_to: reference``); either may be None, which leaves such a condition unjudged.

    >>> model = ModelMonitoring(name="fraud", tenant="acme", min_rows=10)
    >>> auc = Monitor(name="auc", kind="metric", metric="roc_auc",
    ...               condition=Condition(op="<", value=0.8))
    >>> window = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z",
    ...           "version": None, "rows": 500, "labeled": 500, "label_completeness": 1.0,
    ...           "metrics": {"roc_auc": 0.74, "roc_auc_ci": [0.70, 0.78]}}
    >>> [signal] = evaluate_monitor(model, auc, "acme", window, None, None)
    >>> signal.breached, signal.summary
    (True, 'roc_auc 0.74 < 0.8 on fraud, window 2026-11-20..2026-11-21')
    """
    base_labels = {
        **monitor.labels,
        "tenant": tenant,
        "model": model.name,
        "monitor": monitor.name,
        "severity": monitor.severity,
        "window": model.window_of(monitor).label,
    }
    if window.get("version") is not None:
        base_labels["version"] = str(window["version"])
    start, end = _moment(window["start"]), _moment(window["end"])
    span = _span(start, end)
    name = _value_name(monitor)
    signals = []
    for entity in _entities(model, monitor, window, previous):
        breached, recovered, threshold, detail = _judge(
            monitor, entity.reading, entity.previous, reference_metrics
        )
        where = f"on {model.name}{entity.where}, window {span}"
        value = entity.reading.value
        if breached is None:
            summary = f"{name} not judged {where}: {detail}"
        else:
            op = monitor.condition.op if breached else f"not {monitor.condition.op}"
            shown = "no threshold" if threshold is None else f"{op} {threshold:.4g}"
            if monitor.metric == "drifted":
                shown = "drifted" if breached else "not drifted"
                summary = f"{entity.where.strip(' ()') or name} {shown} {where}"
            else:
                summary = f"{name} {value:.4g} {shown} {where}{detail}"
        signals.append(
            Signal(
                labels={**base_labels, **entity.labels},
                value=value,
                threshold=threshold,
                breached=breached,
                recovered=recovered,
                window_start=start,
                window_end=end,
                summary=summary,
                severity=monitor.severity,
                for_seconds=parse_duration(monitor.for_),
                annotations={**monitor.annotations, "summary": summary},
            )
        )
    return signals


def evaluate_all(
    model: ModelMonitoring,
    windows_by_size: Mapping[str, list[dict[str, Any]]],
    reference_metrics: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
) -> list[Signal]:
    """Judge, for every monitor, the latest closed window of its size (or its sliding window).

    ``windows_by_size`` maps a window label (``"1d"``, ``"7d sliding"``: see
    :meth:`ModelMonitoring.window_of`) to its windows, as ``evaluate_windows`` returns
    them (in any order). A tumbling window is closed when it spans its whole size and has
    ended by ``now`` (default: the current time); the closed window before it is passed as
    ``previous``. A sliding window is judged every pass: the latest one, with the window
    of the same size just before it as ``previous``. A monitor without a window to judge
    yields nothing.

    >>> model = ModelMonitoring(name="fraud", tenant="acme", min_rows=10, monitors=[
    ...     Monitor(name="auc", kind="metric", metric="roc_auc", window="1d",
    ...             condition=Condition(op="<", value=0.8))])
    >>> def day(d, auc):
    ...     return {"start": f"2026-11-{d}T00:00:00Z", "end": f"2026-11-{d + 1}T00:00:00Z",
    ...             "rows": 100, "labeled": 100, "label_completeness": 1.0,
    ...             "metrics": {"roc_auc": auc}}
    >>> now = datetime(2026, 11, 21, 12, tzinfo=UTC)  # the 21st is still open
    >>> [s] = evaluate_all(model, {"1d": [day(19, 0.9), day(20, 0.7), day(21, 0.5)]}, None,
    ...                    now=now)
    >>> s.value, s.window_start.day
    (0.7, 20)
    """
    now = datetime.now(UTC) if now is None else _moment(now)
    signals: list[Signal] = []
    for monitor in model.monitors:
        shape = model.window_of(monitor)
        size = timedelta(seconds=parse_duration(shape.size))
        candidates = windows_by_size.get(shape.label, [])
        if shape.kind == "tumbling":
            candidates = [w for w in candidates if _closed(w, size, now)]
        closed = sorted(candidates, key=lambda w: _moment(w["start"]))
        if not closed:
            continue
        previous = closed[-2] if len(closed) > 1 else None
        if (
            shape.kind == "sliding"
            and previous is not None
            and previous["end"] != closed[-1]["start"]
        ):
            previous = None  # not the span just before
        signals.extend(
            evaluate_monitor(model, monitor, model.tenant, closed[-1], previous, reference_metrics)
        )
    return signals


def evaluate_past(
    model: ModelMonitoring,
    windows_by_size: Mapping[str, list[dict[str, Any]]],
    starts_by_size: Mapping[str, Iterable[datetime]],
    reference_metrics: Mapping[str, Any] | None,
) -> list[Signal]:
    """Judge again, for every metric monitor, the past windows that late labels restated.

    ``starts_by_size`` maps a tumbling window label (``"1d"``) to the starts of the windows
    to judge, found (whole) in ``windows_by_size`` with the window before each as its
    ``previous``. Only ``metric`` monitors are judged: labels change nothing else. Each
    signal carries the label ``window_start`` (``2026-11-03T00:00:00Z``), so a restated
    window is an alert of its own that never flips the alert of the latest window.

    >>> model = ModelMonitoring(name="fraud", tenant="acme", min_rows=10, monitors=[
    ...     Monitor(name="auc", kind="metric", metric="roc_auc", window="1d",
    ...             condition=Condition(op="<", value=0.8))])
    >>> old = {"start": "2026-11-03T00:00:00Z", "end": "2026-11-04T00:00:00Z", "rows": 100,
    ...        "labeled": 100, "label_completeness": 1.0, "metrics": {"roc_auc": 0.7}}
    >>> [s] = evaluate_past(model, {"1d": [old]}, {"1d": [datetime(2026, 11, 3, tzinfo=UTC)]},
    ...                     None)
    >>> s.breached, s.labels["window"], s.labels["window_start"]
    (True, '1d', '2026-11-03T00:00:00Z')
    """
    signals: list[Signal] = []
    for monitor in model.monitors:
        shape = model.window_of(monitor)
        if monitor.kind != "metric" or shape.kind != "tumbling":
            continue
        size = timedelta(seconds=parse_duration(shape.size))
        by_start = {_moment(w["start"]): w for w in windows_by_size.get(shape.label, [])}
        for start in sorted(set(starts_by_size.get(shape.label, ()))):
            window = by_start.get(start)
            if window is None or _moment(window["end"]) != start + size:
                continue
            previous = by_start.get(start - size)
            when = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            for signal in evaluate_monitor(
                model, monitor, model.tenant, window, previous, reference_metrics
            ):
                signals.append(
                    replace(
                        signal,
                        labels={**signal.labels, "window_start": when},
                        annotations={**signal.annotations, "judged": "again, after late labels"},
                    )
                )
    return signals


# -- reading values -------------------------------------------------------------------


def _entities(
    model: ModelMonitoring,
    monitor: Monitor,
    window: dict[str, Any],
    previous: dict[str, Any] | None,
) -> list[_Entity]:
    kind = monitor.kind
    if kind in ("latency", "error_rate"):
        previous_reading = _opt(_operations_of, model, monitor, previous)
        return [_Entity({}, "", _operations(monitor, window), previous_reading)]
    if monitor.segment is not None:
        return _segment_entities(model, monitor, window, previous)
    if kind == "metric":
        return [
            _Entity(
                {}, "", _metric(model, monitor, window), _opt(_metric, model, monitor, previous)
            )
        ]
    if kind == "data_quality" and monitor.metric == "volume":
        return [_Entity({}, "", _volume(model, window), _opt(_volume_of, model, monitor, previous))]
    return _feature_entities(model, monitor, window, previous)


def _opt(
    read: Callable[[ModelMonitoring, Monitor, dict[str, Any]], _Reading],
    model: ModelMonitoring,
    monitor: Monitor,
    group: dict[str, Any] | None,
) -> _Reading | None:
    return None if group is None else read(model, monitor, group)


def _segment_entities(
    model: ModelMonitoring,
    monitor: Monitor,
    window: dict[str, Any],
    previous: dict[str, Any] | None,
) -> list[_Entity]:
    column = monitor.segment
    segments = window.get("segments")
    if segments is None:
        reason = f"the window was evaluated without the segment column {column!r}"
        return [_Entity({"segment": f"{column}=*"}, "", _Reading(None, reason=reason), None)]
    before = (previous or {}).get("segments") or {}
    read = _metric if monitor.kind == "metric" else _volume_of
    return [
        _Entity(
            {"segment": f"{column}={value}"},
            f" ({column}={value})",
            read(model, monitor, group),
            _opt(read, model, monitor, before.get(value)),
        )
        for value, group in sorted(segments.items(), key=lambda item: str(item[0]))
    ]


def _metric(model: ModelMonitoring, monitor: Monitor, group: dict[str, Any]) -> _Reading:
    name = str(monitor.metric)
    rows = group.get("rows") or 0
    if rows < model.min_rows:
        return _Reading(None, reason=f"{rows} rows, fewer than min_rows {model.min_rows}")
    completeness = group.get("label_completeness")
    if completeness is None or completeness < model.min_label_completeness:
        shown = "unknown" if completeness is None else f"{completeness:.2f}"
        return _Reading(
            None,
            reason=f"label completeness {shown} below {model.min_label_completeness:.2f}",
        )
    metrics = group.get("metrics") or {}
    value = metrics.get(name)
    if value is None:
        why = (metrics.get("undefined") or {}).get(name, "not computed for this window")
        return _Reading(None, reason=f"{name} is undefined: {why}")
    ci = metrics.get(f"{name}_ci")
    return _Reading(float(value), None if ci is None else (float(ci[0]), float(ci[1])))


def _operations(monitor: Monitor, group: dict[str, Any]) -> _Reading:
    """``latency`` (metric p50, p95 or p99; p95 by default, in ms) or ``error_rate``."""
    ops = group.get("operations") or {}
    if monitor.kind == "latency":
        quantile = monitor.metric or "p95"
        value = ops.get(f"latency_{quantile}_ms")
        field = "latency_ms"
    else:
        value = ops.get("error_rate")
        field = "error"
    if value is None:
        return _Reading(None, reason=f"no event in the window carries {field}")
    return _Reading(float(value))


def _operations_of(model: ModelMonitoring, monitor: Monitor, group: dict[str, Any]) -> _Reading:
    return _operations(monitor, group)


def _volume(model: ModelMonitoring, group: dict[str, Any]) -> _Reading:
    expected = model.expected_rows_per_window
    if not expected:
        return _Reading(None, reason="the model sets no expected_rows_per_window")
    return _Reading((group.get("rows") or 0) / expected)


def _volume_of(model: ModelMonitoring, monitor: Monitor, group: dict[str, Any]) -> _Reading:
    return _volume(model, group)


def _feature_entities(
    model: ModelMonitoring,
    monitor: Monitor,
    window: dict[str, Any],
    previous: dict[str, Any] | None,
) -> list[_Entity]:
    ranges = monitor.metric == "out_of_range"
    drift = window.get("data_quality" if ranges else "drift") or {}
    feature = monitor.feature
    if feature is None:
        reason = f"{monitor.kind} monitors name a feature (or '*' for all)"
        return [_Entity({}, "", _Reading(None, reason=reason), None)]
    if feature == "*":
        keys = sorted(k for k in drift if not k.startswith(OUTPUT_PREFIX))
        if monitor.metric == "unseen_share":
            keys = [k for k in keys if drift[k].get("type") == "categorical"]
        if not keys:
            what = "value ranges of numeric features" if ranges else "drift statistics"
            reason = f"no {what} in this window (is a reference stored?)"
            return [_Entity({"feature": "*"}, "", _Reading(None, reason=reason), None)]
    else:
        output = OUTPUT_PREFIX + feature
        keys = [output if output in drift and feature not in drift else feature]
    entities = []
    for key in keys:
        label = key.removeprefix(OUTPUT_PREFIX)
        entities.append(
            _Entity(
                {"feature": label},
                f" ({label})",
                _feature(model, monitor, window, key),
                None if previous is None else _feature(model, monitor, previous, key),
            )
        )
    return entities


def _feature(
    model: ModelMonitoring, monitor: Monitor, window: dict[str, Any], key: str
) -> _Reading:
    rows = window.get("rows") or 0
    if rows < model.min_rows:
        return _Reading(None, reason=f"{rows} rows, fewer than min_rows {model.min_rows}")
    if monitor.metric == "out_of_range":
        return _out_of_range(monitor, window, key)
    result = (window.get("drift") or {}).get(key)
    if result is None:
        return _Reading(None, reason=f"no drift statistics for {key!r} (is a reference stored?)")
    metric = monitor.metric or "psi"
    if metric == "null_rate":
        value = (result.get("null_share") or {}).get("current")
    elif metric == "unseen_share":
        if result.get("type") != "categorical":
            return _Reading(None, reason="unseen_share exists for categorical features only")
        value = result.get("unseen_share")
    elif metric == "drifted":
        drifted = result.get("drifted")
        value = None if drifted is None else float(bool(drifted))
    else:
        value = result.get(metric)
    if value is None:
        why = (result.get("undefined") or {}).get(metric) or (result.get("undefined") or {}).get(
            "all", "not defined for this feature"
        )
        return _Reading(None, reason=f"{metric} is undefined: {why}")
    return _Reading(float(value))


def _out_of_range(monitor: Monitor, window: dict[str, Any], key: str) -> _Reading:
    quality = (window.get("data_quality") or {}).get(key)
    if quality is None:
        return _Reading(
            None, reason=f"no value range for {key!r} (a numeric feature with a stored reference)"
        )
    wanted = list(monitor.range_quantiles)
    entry = next((e for e in quality.get("out_of_range") or [] if e["quantiles"] == wanted), None)
    if entry is None:
        return _Reading(None, reason=f"the window was evaluated without bounds {wanted}")
    if entry.get("share") is None:
        return _Reading(None, reason="out_of_range is undefined: no non-null values")
    return _Reading(float(entry["share"]))


# -- judging --------------------------------------------------------------------------


def _judge(
    monitor: Monitor,
    reading: _Reading,
    previous: _Reading | None,
    reference_metrics: Mapping[str, Any] | None,
) -> tuple[bool | None, bool, float | None, str]:
    """(breached, recovered, threshold, detail or the reason it is not judged)."""
    cond = monitor.condition
    if reading.reason is not None or reading.value is None:
        return None, False, cond.value, reading.reason or "no value"
    value = reading.value
    if monitor.metric == "drifted":
        return value >= 1.0, value < 1.0, None, ""
    detail = ""
    threshold = cond.value
    if cond.type == "relative":
        base, what = _base(monitor, cond, previous, reference_metrics)
        if base is None:
            return None, False, None, what
        threshold = _relative_threshold(cond, base)
        direction = "below" if cond.op in ("<", "<=") else "above"
        detail = f" ({cond.change_pct:g}% {direction} {what} {base:.4g})"
    if threshold is None:
        return None, False, None, "the condition has no threshold value"
    judged = value
    if cond.type == "statistical":
        if reading.ci is None:
            return None, False, threshold, "the metric has no interval"
        low, high = reading.ci
        judged = high if cond.op in ("<", "<=") else low
        bound = "upper" if cond.op in ("<", "<=") else "lower"
        detail = f" (95% interval {bound} bound {judged:.4g})"
    breached = _OPS[cond.op](judged, threshold)
    return (
        breached,
        _recovered(cond, value, threshold, monitor.resolve_hysteresis),
        threshold,
        detail,
    )


def _base(
    monitor: Monitor,
    cond: Condition,
    previous: _Reading | None,
    reference_metrics: Mapping[str, Any] | None,
) -> tuple[float | None, str]:
    """The value a relative condition compares against, and what it is (or why none)."""
    if cond.compare_to == "reference":
        if monitor.kind != "metric":
            return None, "only metric monitors compare to the reference"
        base = (reference_metrics or {}).get(str(monitor.metric))
        if base is None:
            return None, f"no reference value of {monitor.metric}"
        return float(base), "reference"
    if previous is None:
        return None, "no previous window to compare to"
    if previous.value is None:
        return None, f"the previous window is not judged: {previous.reason}"
    return previous.value, "previous window"


def _relative_threshold(cond: Condition, base: float) -> float:
    """``base`` moved by ``change_pct`` percent of its size towards the bad side.

    >>> _relative_threshold(Condition(type="relative", op="<", compare_to="previous",
    ...                               change_pct=10), 0.80)
    0.72
    """
    change = abs(base) * float(cond.change_pct or 0.0) / 100.0
    return round(base - change if cond.op in ("<", "<=") else base + change, 12)


def _recovered(cond: Condition, value: float, threshold: float, hysteresis: float) -> bool:
    """Whether ``value`` is on the good side of ``threshold`` by at least ``hysteresis``.

    >>> cond = Condition(op="<", value=0.8)
    >>> _recovered(cond, 0.805, 0.8, 0.01), _recovered(cond, 0.81, 0.8, 0.01)
    (False, True)
    """
    shift = hysteresis if cond.op in ("<", "<=") else -hysteresis
    return not _OPS[cond.op](value, round(threshold + shift, 12))


# -- windows --------------------------------------------------------------------------


def _value_name(monitor: Monitor) -> str:
    if monitor.kind == "drift":
        return monitor.metric or "psi"
    return str(monitor.metric or monitor.kind)


def _moment(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _closed(window: dict[str, Any], size: timedelta, now: datetime) -> bool:
    """Whole (not clipped by the requested range's end) and over by ``now``."""
    start, end = _moment(window["start"]), _moment(window["end"])
    aligned = EPOCH + ((start - EPOCH) // size) * size
    return end == aligned + size and end <= now


def _span(start: datetime, end: datetime) -> str:
    """``2026-11-20..2026-11-21`` for whole days, else ``...T10:00Z..2026-11-20T11:00Z``."""
    midnight = all(m.hour == m.minute == m.second == 0 for m in (start, end))
    form = "%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%MZ"
    return f"{start.strftime(form)}..{end.strftime(form)}"


__all__ = ["evaluate_all", "evaluate_monitor", "evaluate_past"]
