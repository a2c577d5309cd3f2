"""Window evaluations of a stored model: merged rollups → metrics, drift, completeness.

>>> parse_window("1d"), parse_window("6h")
(datetime.timedelta(days=1), datetime.timedelta(seconds=21600))
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import numpy as np
import pyarrow as pa

from assay.engine import local
from assay.errors import InputError
from assay.service.rollups import (
    BUCKET,
    RollupExecutor,
    merge_all,
    pack,
    refresh,
    states_of,
    unpack,
)
from assay.stats import DriftRule, NumericSampleState, State
from assay.store.base import FEATURE_PREFIX, DirtyBucket, Rollup, Store
from assay.store.model import ModelSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_HOUR = datetime.max.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
_WINDOW = re.compile(r"^(\d+)([hdw])$")
MAX_WINDOWS = 1000
MAX_WINDOW = timedelta(weeks=520)
FULL_RANGE = ((0.0, 1.0),)


def parse_window(text: str) -> timedelta:
    """``1h``, ``6h``, ``1d``, ``7d``, ``1w``: a whole number of hours (the bucket size)."""
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InputError(
            f"window {text!r} is not a duration such as 1h, 6h, 1d or 7d",
            field="window",
        )
    hours = int(match.group(1)) * {"h": 1, "d": 24, "w": 168}[match.group(2)]
    if hours > MAX_WINDOW / timedelta(hours=1):
        raise InputError(f"window {text!r} is longer than {MAX_WINDOW.days} days", field="window")
    return timedelta(hours=hours)


def evaluate_windows(
    store: Store,
    tenant: str,
    model: str,
    *,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: str = "1d",
    segment: str | None = None,
    rule: DriftRule | None = None,
    seed: int = 0,
    range_bounds: Sequence[tuple[float, float]] = FULL_RANGE,
    executor: RollupExecutor | None = None,
) -> dict[str, Any]:
    """Metrics, drift, data quality and label completeness per window (tumbling, UTC).

    Dirty buckets are rebuilt first, by ``executor`` (default: in this process).

    Rollups hold whole hours, so ``start`` is rounded down and ``end`` up to the hour;
    each window reports the span it covers (clipped to that range). ``range_bounds``:
    the reference quantile pairs whose out-of-range shares ``data_quality`` reports
    (see :func:`out_of_range`).
    """
    spec = store.get_model(tenant, model)
    size = parse_window(window)
    _check_segment(spec, segment)
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end <= start:
        raise InputError("end must be after start", field="end")
    if start is not None:
        start = _window_start(start, BUCKET)
    if end is not None and _window_start(end, BUCKET) != end and end < _LAST_HOUR:
        end = _window_start(end, BUCKET) + BUCKET
    refresh_rollups(store, tenant, model, executor=executor)
    rule = rule or DriftRule()
    reference = load_reference_states(store, tenant, model)
    overall = _by_window(store.load_rollups(tenant, model, version=version, start=start,
                                            end=end), size)  # fmt: skip
    if len(overall) > MAX_WINDOWS:
        raise InputError(
            f"{len(overall)} windows requested; at most {MAX_WINDOWS}",
            field="window",
            hint="use a larger window or a shorter time range",
        )
    by_segment: dict[datetime, dict[str, list[Rollup]]] = defaultdict(lambda: defaultdict(list))
    if segment is not None:
        for r in store.load_rollups(tenant, model, version=version, start=start, end=end,
                                    segment_column=segment):  # fmt: skip
            by_segment[_window_start(r.bucket, size)][r.segment_value].append(r)
    parts = _Parts(spec, reference, rule, seed, range_bounds)
    windows = []
    for window_start, rollups in sorted(overall.items()):
        first = window_start if start is None else max(window_start, start)
        last = window_start + size if end is None else min(window_start + size, end)
        grouped = by_segment[window_start] if segment is not None else None
        windows.append(parts.entry(first, last, version, rollups, grouped))
    return _answer(model, window, version, segment, parts, windows)


def evaluate_spans(
    store: Store,
    tenant: str,
    model: str,
    spans: Sequence[tuple[datetime, datetime]],
    *,
    window: str,
    segment: str | None = None,
    rule: DriftRule | None = None,
    seed: int = 0,
    range_bounds: Sequence[tuple[float, float]] = FULL_RANGE,
    refresh_first: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_windows`' answer for exactly the given spans, of all versions.

    Each ``(start, end)`` (whole hours, UTC) is one window of the answer, in order of
    start, even when it holds no rows (``rows`` 0): a monitor pass reads only the windows
    it judges, and an empty window is a volume of zero, not a missing answer. ``window``
    names the spans' kind in the answer (``"1d"``, ``"7d sliding"``). Rollups are read
    once per span; ``refresh_first=False`` skips rebuilding the dirty buckets first.

    >>> import tempfile
    >>> from assay.store.duckdb_store import DuckDBStore
    >>> from assay.store.model import ModelSpec
    >>> store = DuckDBStore(tempfile.mkdtemp())
    >>> _ = store.register_model("acme", ModelSpec(name="m", task="binary", features={}))
    >>> day = datetime(2026, 11, 20, tzinfo=UTC)
    >>> answer = evaluate_spans(store, "acme", "m", [(day, day + timedelta(days=1))],
    ...                         window="1d")
    >>> [(w["start"], w["rows"]) for w in answer["windows"]]
    [('2026-11-20T00:00:00Z', 0)]
    >>> store.close()
    """
    spec = store.get_model(tenant, model)
    _check_segment(spec, segment)
    spans = sorted({(_utc(a), _utc(b)) for a, b in spans})
    for a, b in spans:
        if b <= a or _window_start(a, BUCKET) != a or _window_start(b, BUCKET) != b:
            raise InputError(f"span {_iso(a)}..{_iso(b)} is not whole hours", field="spans")
    if refresh_first:
        refresh_rollups(store, tenant, model)
    parts = _Parts(spec, load_reference_states(store, tenant, model), rule or DriftRule(), seed,
                   range_bounds)  # fmt: skip
    windows = []
    for a, b in spans:
        grouped: dict[str, list[Rollup]] | None = None
        if segment is not None:
            grouped = defaultdict(list)
            for r in store.load_rollups(tenant, model, start=a, end=b, segment_column=segment):
                grouped[r.segment_value].append(r)
        rollups = store.load_rollups(tenant, model, start=a, end=b)
        windows.append(parts.entry(a, b, None, rollups, grouped))
    return _answer(model, window, None, segment, parts, windows)


def refresh_rollups(
    store: Store,
    tenant: str,
    model: str,
    dirty: list[DirtyBucket] | None = None,
    *,
    note: bool = True,
    executor: RollupExecutor | None = None,
) -> list[DirtyBucket]:
    """Rebuild the rollups of exactly ``dirty`` (default: the buckets dirty now); return them.

    With ``note`` the rebuilt hours are noted in the store (:meth:`Store.note_restated`),
    so the monitor schedule judges the windows they restate again (late labels) even when
    an evaluation request rebuilt them first: in another replica, or before a restart.
    Buckets dirtied meanwhile stay dirty.
    ``executor`` builds the buckets' states (default: in this process; the monitor
    schedule may hand large refreshes to Ray, see :mod:`assay.service.ray_rollups`).

    >>> import tempfile
    >>> from assay.store.duckdb_store import DuckDBStore
    >>> from assay.store.model import ModelSpec
    >>> store = DuckDBStore(tempfile.mkdtemp())
    >>> _ = store.register_model("acme", ModelSpec(name="m", task="binary", features={}))
    >>> refresh_rollups(store, "acme", "m")  # nothing stored, nothing dirty
    []
    >>> store.close()
    """
    dirty = store.dirty_buckets(tenant, model) if dirty is None else dirty
    if not dirty:
        return dirty
    if note:
        store.note_restated(tenant, model, {d.bucket for d in dirty})
    return refresh(store, tenant, model, dirty, executor=executor)


def _check_segment(spec: ModelSpec, segment: str | None) -> None:
    if segment is not None and segment not in spec.segments:
        raise InputError(
            f"{segment!r} is not a segment of model {spec.name!r}",
            field="segment",
            hint=f"segments: {', '.join(spec.segments) or 'none'}",
        )


class _Parts:
    """What every window entry of one answer is measured against."""

    def __init__(self, spec: ModelSpec, reference: dict[str, State] | None, rule: DriftRule,
                 seed: int, range_bounds: Sequence[tuple[float, float]]):  # fmt: skip
        self.spec, self.reference, self.rule = spec, reference, rule
        self.seed, self.range_bounds = seed, range_bounds

    def entry(self, start: datetime, end: datetime, version: str | None, rollups: list[Rollup],
              by_value: dict[str, list[Rollup]] | None) -> dict[str, Any]:  # fmt: skip
        """One window: its summary, drift and data quality, and its segments' summaries."""
        states = merge_all([unpack(r.states) for r in rollups])  # once per window
        entry = {"start": _iso(start), "end": _iso(end), "version": version,
                 **_summary(rollups, states, self.seed)}  # fmt: skip
        entry["drift"] = drift_against(self.spec, self.reference, states, self.rule)
        entry["data_quality"] = data_quality(self.spec, self.reference, states,
                                             self.range_bounds)  # fmt: skip
        if by_value is not None:
            entry["segments"] = {
                value: _summary(group, merge_all([unpack(r.states) for r in group]), self.seed)
                for value, group in sorted(by_value.items())
            }
        return entry


def _answer(model: str, window: str, version: str | None, segment: str | None, parts: _Parts,
            windows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "model": model,
        "window": window,
        "version": version,
        "segment": segment,
        "reference": parts.reference is not None,
        "reference_metrics": reference_metrics(parts.reference, parts.seed),
        "drift_rule": parts.rule.describe() if parts.reference is not None else None,
        "windows": windows,
    }


def _by_window(rollups: list[Rollup], size: timedelta) -> dict[datetime, list[Rollup]]:
    grouped: dict[datetime, list[Rollup]] = defaultdict(list)
    for r in rollups:
        grouped[_window_start(r.bucket, size)].append(r)
    return grouped


def _window_start(bucket: datetime, size: timedelta) -> datetime:
    bucket = bucket.astimezone(UTC)
    return EPOCH + ((bucket - EPOCH) // size) * size


def _summary(rollups: list[Rollup], states: dict[str, State], seed: int) -> dict[str, Any]:
    """Rows, label completeness, metrics and operations of merged rollup ``states``."""
    rows = sum(r.rows for r in rollups)
    labeled = sum(r.labeled for r in rollups)
    metric_states = [s for name, s in sorted(states.items()) if name.startswith("metric:")]
    return {
        "rows": rows,
        "labeled": labeled,
        "label_completeness": labeled / rows if rows else None,
        "metrics": local.finish(metric_states, seed=seed) if metric_states else {},
        "operations": operations(states),
    }


def operations(states: dict[str, State]) -> dict[str, Any]:
    """Latency quantiles and error rate of the serving calls that reported them.

    >>> from assay.stats import NumericSampleState
    >>> ops = operations({"ops:latency": NumericSampleState.from_batch(np.arange(1.0, 101.0)),
    ...                   "ops:error": NumericSampleState.from_batch(np.array([0.0, 1, 0, 0]))})
    >>> ops["latency_p50_ms"], ops["latency_p95_ms"], ops["error_rate"]
    (50.5, 95.05, 0.25)
    """
    out: dict[str, Any] = {"latency_count": 0, "error_count": 0, "error_rate": None}
    out.update({f"latency_{q}_ms": None for q in ("p50", "p95", "p99")})
    latency, error = states.get("ops:latency"), states.get("ops:error")
    if latency is not None and latency.data["values"].size:
        values = latency.data["values"]
        p50, p95, p99 = np.quantile(values, [0.5, 0.95, 0.99])
        out.update(latency_count=int(values.size), latency_p50_ms=float(p50),
                   latency_p95_ms=float(p95), latency_p99_ms=float(p99))  # fmt: skip
    if error is not None and error.data["values"].size:
        flags = error.data["values"]
        out.update(error_count=int(flags.size), error_rate=float(flags.mean()))
    return out


def drift_against(
    spec: ModelSpec, reference: dict[str, State] | None, states: dict[str, State], rule: DriftRule
) -> dict[str, Any]:
    """Drift of each feature (and the model output) against the reference."""
    if reference is None:
        return {}
    results: dict[str, dict[str, Any]] = {}
    for name, kind in spec.features.items():
        key = f"feature:{name}"
        if key in reference and key in states:
            results[name] = local.drift_of(kind, reference[key], states[key])
    rule.apply(results)
    for key in ("output:score", "output:prediction"):
        if key in reference and key in states:
            output = {key.split(":")[1]: local.drift_of("numeric", reference[key], states[key])}
            DriftRule(rule.alpha, "none", rule.effect, rule.min_effect).apply(output)
            results.update({f"(output) {k}": v for k, v in output.items()})
    return results


def data_quality(
    spec: ModelSpec,
    reference: dict[str, State] | None,
    states: dict[str, State],
    range_bounds: Sequence[tuple[float, float]] = FULL_RANGE,
) -> dict[str, Any]:
    """Per numeric feature: ``{"out_of_range": [...]}``, one entry per quantile pair.

    Empty without a reference (the expected range is the reference's).

    >>> spec = ModelSpec(name="m", task="binary", features={"x": "numeric"})
    >>> ref = {"feature:x": NumericSampleState.from_batch(np.arange(10.0))}
    >>> cur = {"feature:x": NumericSampleState.from_batch(np.array([-1.0, 4.0, 20.0, 5.0]))}
    >>> [e["share"] for e in data_quality(spec, ref, cur)["x"]["out_of_range"]]
    [0.5]
    """
    if reference is None:
        return {}
    out: dict[str, Any] = {}
    for name, kind in spec.features.items():
        ref, cur = reference.get(f"feature:{name}"), states.get(f"feature:{name}")
        if kind != "numeric" or not isinstance(ref, NumericSampleState):
            continue
        if not isinstance(cur, NumericSampleState):
            continue
        out[name] = {"out_of_range": [out_of_range(ref, cur, q) for q in range_bounds]}
    return out


def out_of_range(
    reference: NumericSampleState, current: NumericSampleState, quantiles: tuple[float, float]
) -> dict[str, Any]:
    """Share of the current non-null values outside the reference's ``quantiles`` range.

    The bounds are ``numpy.quantile(reference, quantiles)`` (linear interpolation; the
    default ``(0, 1)`` is the reference's [min, max]); a value is out of range when it is
    strictly below the lower or strictly above the upper bound. Nulls are not counted
    (the null rate reports them). ``share`` is None when either side has no values.

    >>> ref = NumericSampleState.from_batch(np.arange(11.0))  # 0..10
    >>> cur = NumericSampleState.from_batch(np.array([-1.0, 0.0, 5.0, 10.0, 12.0, np.nan]))
    >>> r = out_of_range(ref, cur, (0.0, 1.0))
    >>> r["bounds"], r["below"], r["above"], r["share"]
    ([0.0, 10.0], 1, 1, 0.4)
    >>> out_of_range(ref, cur, (0.1, 0.9))["bounds"]
    [1.0, 9.0]
    """
    low_q, high_q = (float(q) for q in quantiles)
    entry: dict[str, Any] = {"quantiles": [low_q, high_q], "bounds": None, "below": 0,
                             "above": 0, "count": current.count, "share": None}  # fmt: skip
    if reference.count == 0 or current.count == 0:
        return entry
    ref, cur = reference.sorted_values(), current.sorted_values()
    low, high = (float(b) for b in np.quantile(ref, [low_q, high_q]))
    below = int(np.searchsorted(cur, low, side="left"))
    above = int(cur.size - np.searchsorted(cur, high, side="right"))
    entry.update(bounds=[low, high], below=below, above=above,
                 share=(below + above) / cur.size)  # fmt: skip
    return entry


# -- references -------------------------------------------------------------------------


def reference_from_table(spec: ModelSpec, table: pa.Table) -> dict[str, State]:
    """Feature (and output) states of a reference data set.

    Columns are named by feature (``amount``) or canonically (``feature.amount``); a
    ``score`` (binary) or ``prediction`` (regression) column adds the output's reference.
    """
    states: dict[str, State] = {}
    names = set(table.column_names)
    for name, kind in spec.features.items():
        column = next((c for c in (FEATURE_PREFIX + name, name) if c in names), None)
        if column is None:
            raise InputError(f"the reference lacks feature {name!r}", field=name)
        states[f"feature:{name}"] = local.feature_state(name, kind, table.column(column))
    output = {"binary": "score", "regression": "prediction"}.get(spec.task)
    if output and output in names:
        states[f"output:{output}"] = local.feature_state(output, "numeric", table.column(output))
    if table.num_rows == 0:
        raise InputError("the reference has no rows", field="reference")
    return states


def reference_metrics(reference: dict[str, State] | None, seed: int = 0) -> dict[str, Any] | None:
    """The reference's own metrics, when it was made from labelled stored predictions."""
    if reference is None:
        return None
    states = [s for name, s in sorted(reference.items()) if name.startswith("metric:")]
    return local.finish(states, seed=seed) if states else None


def save_reference(
    store: Store,
    tenant: str,
    model: str,
    table: pa.Table,
    meta: dict[str, Any],
    *,
    with_metrics: bool = False,
) -> dict[str, Any]:
    """Store the reference built from ``table``; returns its description.

    ``with_metrics`` (a scan of stored predictions with their labels) also keeps the
    reference's metric states, which relative-to-reference monitors compare against.
    """
    spec = store.get_model(tenant, model)
    states = states_of(spec, table) if with_metrics else reference_from_table(spec, table)
    info = {**meta, "rows": table.num_rows, "created_at": _iso(datetime.now(UTC))}
    store.save_reference(tenant, model, pack(states), info)
    return info


def reference_from_range(
    store: Store, tenant: str, model: str, *, start: datetime, end: datetime,
    version: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Make the predictions of [start, end) (one version, or all) the model's reference."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise InputError("end must be after start", field="end")
    rows = store.scan(tenant, model, version=version, start=start, end=end)
    if rows.num_rows == 0:
        raise InputError("no stored predictions in that time range", field="start")
    meta = {"source": "stored predictions", "start": _iso(start), "end": _iso(end),
            "version": version}  # fmt: skip
    return save_reference(store, tenant, model, rows, meta, with_metrics=True)


def load_reference_states(store: Store, tenant: str, model: str) -> dict[str, State] | None:
    """The model's reference states, if one was stored."""
    stored = store.load_reference(tenant, model)
    return None if stored is None else unpack(stored[0])


@overload
def _utc(moment: datetime) -> datetime: ...
@overload
def _utc(moment: None) -> None: ...
def _utc(moment: datetime | None) -> datetime | None:
    """An aware UTC time; a naive one is read as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "BUCKET",
    "evaluate_spans",
    "evaluate_windows",
    "parse_window",
    "reference_from_range",
    "refresh_rollups",
    "save_reference",
]
