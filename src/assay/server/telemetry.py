"""Prometheus exposition of the server's own counters, scoped per tenant.

Each scrape renders the series of one tenant (the key's) or of all tenants (a public
``/metrics``), so one tenant never sees another's model names.

Besides the ingest counters, :meth:`Telemetry.record_evaluation` keeps the latest
evaluated window of each model as gauges:

- ``assay_model_metric{tenant,model,version,segment,window,metric}``: the point estimate;
  its 95% interval is in ``assay_model_metric_lower`` and ``assay_model_metric_upper``
  (same labels; separate series so Grafana can fill the band and a rule can compare a
  bound with a threshold).
- ``assay_feature_drift{tenant,model,window,feature,statistic}``: ``psi``,
  ``jensen_shannon``, ``wasserstein_normed`` and ``drifted`` (1 or 0).
- ``assay_label_completeness{tenant,model,version,segment,window}`` and
  ``assay_window_rows{tenant,model,version,segment,window}``.

``version`` is ``""`` for an evaluation over all versions; ``segment`` is ``""`` for the
whole window and ``column=value`` (``channel=web``) for a segment. A value that becomes
undefined (``None``) removes its series. The series of one tenant are capped
(``max_series_per_tenant``); a new series beyond the cap is dropped and counted in
``assay_series_dropped_total{tenant}``.

:meth:`Telemetry.save_gauges` and :meth:`Telemetry.load_gauges` keep these gauges in a
JSON file (``assay serve --config`` saves them in the data directory after every monitor
pass and loads them at start), so ``/metrics`` answers with the last evaluated values
right after a restart, before the first pass.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DEFAULT_MAX_SERIES_PER_TENANT = 10_000
DRIFT_STATISTICS = ("psi", "jensen_shannon", "wasserstein_normed", "drifted")

# gauge family -> (help text, label names after ``tenant``)
_METRIC_LABELS = ("model", "version", "segment", "window", "metric")
_WINDOW_LABELS = ("model", "version", "segment", "window")
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "assay_model_metric": ("Latest evaluated window: metric estimate", _METRIC_LABELS),
    "assay_model_metric_lower": ("Latest evaluated window: 95% interval lower bound",
                                 _METRIC_LABELS),
    "assay_model_metric_upper": ("Latest evaluated window: 95% interval upper bound",
                                 _METRIC_LABELS),
    "assay_feature_drift": ("Latest evaluated window: drift against the reference",
                            ("model", "window", "feature", "statistic")),
    "assay_label_completeness": ("Latest evaluated window: share of rows with a label",
                                 _WINDOW_LABELS),
    "assay_window_rows": ("Latest evaluated window: prediction rows", _WINDOW_LABELS),
    "assay_serving_latency_ms": ("Latest evaluated window: serving latency quantile (ms)",
                                 (*_WINDOW_LABELS, "quantile")),
    "assay_serving_error_rate": ("Latest evaluated window: share of failed serving calls",
                                 _WINDOW_LABELS),
}  # fmt: skip

SeriesKey = tuple[str, tuple[str, ...]]  # (family, label values after the tenant)
_GAUGES_VERSION = 1


def evaluation_series(model: str, evaluation: Mapping[str, Any]) -> dict[SeriesKey, float | None]:
    """The gauge values of the latest window of an evaluation (``None``: undefined).

    >>> ev = {"window": "1d", "version": None, "segment": None, "windows": [
    ...     {"rows": 10, "label_completeness": 0.5, "metrics": {"auc": 0.9,
    ...      "auc_ci": [0.8, 0.95]}, "drift": {"x": {"psi": 0.3, "drifted": True}}}]}
    >>> for key, value in sorted(evaluation_series("m", ev).items()):
    ...     print(key[0], key[1], value)
    assay_feature_drift ('m', '1d', 'x', 'drifted') 1.0
    assay_feature_drift ('m', '1d', 'x', 'psi') 0.3
    assay_label_completeness ('m', '', '', '1d') 0.5
    assay_model_metric ('m', '', '', '1d', 'auc') 0.9
    assay_model_metric_lower ('m', '', '', '1d', 'auc') 0.8
    assay_model_metric_upper ('m', '', '', '1d', 'auc') 0.95
    assay_window_rows ('m', '', '', '1d') 10.0
    """
    windows = evaluation.get("windows") or []
    if not windows:
        return {}
    latest = windows[-1]
    size = str(evaluation.get("window") or "")
    version = str(evaluation.get("version") or latest.get("version") or "")
    out: dict[SeriesKey, float | None] = {}

    def summary(segment: str, part: Mapping[str, Any]) -> None:
        where = (model, version, segment, size)
        out[("assay_window_rows", where)] = _number(part.get("rows"))
        out[("assay_label_completeness", where)] = _number(part.get("label_completeness"))
        if "operations" in part:  # latency and errors of the serving calls
            ops = part["operations"] or {}
            for quantile in ("p50", "p95", "p99"):
                key = ("assay_serving_latency_ms", (*where, quantile))
                out[key] = _number(ops.get(f"latency_{quantile}_ms"))
            out[("assay_serving_error_rate", where)] = _number(ops.get("error_rate"))
        metrics = part.get("metrics") or {}
        for name, value in metrics.items():
            if name.endswith("_ci") or isinstance(value, bool):
                continue
            if not isinstance(value, int | float | None):
                continue  # not a scalar metric (a matrix, a per-class table, ...)
            labels = (*where, name)
            out[("assay_model_metric", labels)] = _number(value)
            ci = metrics.get(f"{name}_ci")
            bounds = ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
            out[("assay_model_metric_lower", labels)] = _number(bounds[0])
            out[("assay_model_metric_upper", labels)] = _number(bounds[1])

    summary("", latest)
    column = evaluation.get("segment")
    for value, part in (latest.get("segments") or {}).items():
        summary(f"{column}={value}" if column else str(value), part)
    for feature, result in (latest.get("drift") or {}).items():
        if not isinstance(result, Mapping):
            continue
        for statistic in DRIFT_STATISTICS:
            if statistic in result:
                key = ("assay_feature_drift", (model, size, str(feature), statistic))
                out[key] = _number(result[statistic])
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class Telemetry:
    """Counters of ingested events and batch latencies, keyed by tenant."""

    def __init__(self, max_series_per_tenant: int = DEFAULT_MAX_SERIES_PER_TENANT) -> None:
        self.max_series_per_tenant = max_series_per_tenant
        self.gauges: dict[str, dict[SeriesKey, float]] = {}  # tenant -> series -> value
        self.dropped: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self.events: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self.batches: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.queue_depth = 0
        self._saved: str | None = None  # the text last written by save_gauges

    def count_events(self, tenant: str, model: str, kind: str, outcome: str, n: int) -> None:
        """Add ``n`` events of ``kind`` (predictions/labels) with ``outcome``."""
        with self._lock:
            self.events[(tenant, model, kind, outcome)] += n

    def count_batch(self, tenant: str, model: str, kind: str, status: int) -> None:
        """Count one batch request and its HTTP status."""
        with self._lock:
            self.batches[(tenant, model, kind, str(status))] += 1

    def observe_latency(self, tenant: str, kind: str, seconds: float) -> None:
        """Record one batch's latency."""
        with self._lock:
            counts = self.latency.setdefault((tenant, kind), [0.0] * (len(LATENCY_BUCKETS) + 2))
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            counts[-1] += seconds

    def record_evaluation(self, tenant: str, model: str, evaluation: Mapping[str, Any]) -> None:
        """Keep the latest window of ``evaluation`` (``evaluate_windows``' dict) as gauges.

        A series already present is updated; an undefined value removes its series; a
        new series beyond ``max_series_per_tenant`` is dropped and counted.
        """
        series = evaluation_series(model, evaluation)
        with self._lock:
            mine = self.gauges.setdefault(tenant, {})
            for key, value in series.items():
                if value is None:
                    mine.pop(key, None)
                elif key in mine or len(mine) < self.max_series_per_tenant:
                    mine[key] = value
                else:
                    self.dropped[tenant] += 1

    def save_gauges(self, path: str | Path) -> None:
        """Write the evaluation gauges to ``path`` (atomically; unchanged ones are not rewritten).

        >>> import tempfile
        >>> t = Telemetry()
        >>> t.record_evaluation("acme", "m", {"window": "1d", "windows": [{"rows": 7}]})
        >>> path = Path(tempfile.mkdtemp()) / "gauges.json"
        >>> t.save_gauges(path)
        >>> restored = Telemetry()
        >>> restored.load_gauges(path)
        1
        >>> restored.gauges == t.gauges
        True
        """
        with self._lock:
            data = {"version": _GAUGES_VERSION, "gauges": {
                tenant: [[name, list(labels), value] for (name, labels), value in series.items()]
                for tenant, series in self.gauges.items()}}  # fmt: skip
        text = json.dumps(data, sort_keys=True)
        if text == self._saved:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        self._saved = text

    def load_gauges(self, path: str | Path) -> int:
        """Add the gauges saved in ``path`` (if it exists) not recorded since; how many.

        Series of unknown families or with the wrong number of labels are skipped, and the
        per-tenant cap applies.
        """
        path = Path(path)
        if not path.exists():
            return 0
        data = json.loads(path.read_text())
        if data.get("version") != _GAUGES_VERSION:
            return 0
        loaded = 0
        with self._lock:
            for tenant, rows in (data.get("gauges") or {}).items():
                mine = self.gauges.setdefault(str(tenant), {})
                for name, labels, value in rows:
                    family = GAUGES.get(name)
                    key = (name, tuple(str(v) for v in labels))
                    if family is None or len(labels) != len(family[1]) or key in mine:
                        continue
                    if len(mine) < self.max_series_per_tenant:
                        mine[key] = float(value)
                        loaded += 1
        return loaded

    def render(self, tenant: str | None) -> bytes:
        """Exposition text of ``tenant``'s series (all tenants when ``None``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(self, tenant))
        return generate_latest(registry)


class _Snapshot:
    def __init__(self, telemetry: Telemetry, tenant: str | None):
        self.telemetry = telemetry
        self.tenant = tenant

    def _mine(self, tenant: str) -> bool:
        return self.tenant is None or tenant == self.tenant

    def collect(self) -> Iterator[Metric]:
        t = self.telemetry
        with t._lock:
            events = CounterMetricFamily(
                "assay_ingested_events", "Events received, by outcome",
                labels=["tenant", "model", "kind", "outcome"],
            )  # fmt: skip
            for key, value in t.events.items():
                if self._mine(key[0]):
                    events.add_metric(list(key), value)
            batches = CounterMetricFamily(
                "assay_ingest_batches", "Batch requests, by HTTP status",
                labels=["tenant", "model", "kind", "status"],
            )  # fmt: skip
            for key, value in t.batches.items():
                if self._mine(key[0]):
                    batches.add_metric(list(key), value)
            latency = HistogramMetricFamily(
                "assay_ingest_batch_seconds", "Batch latency until durable",
                labels=["tenant", "kind"],
            )  # fmt: skip
            for (tenant, kind), counts in t.latency.items():
                if not self._mine(tenant):
                    continue
                cumulative, running = [], 0.0
                for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
                    running += count
                    cumulative.append((str(bound), running))
                running += counts[len(LATENCY_BUCKETS)]
                cumulative.append(("+Inf", running))
                latency.add_metric([tenant, kind], cumulative, counts[-1])
            depth = GaugeMetricFamily("assay_write_queue_depth", "Batches waiting to be written")
            depth.add_metric([], t.queue_depth)
            gauges = {
                name: GaugeMetricFamily(name, text, labels=["tenant", *labels])
                for name, (text, labels) in GAUGES.items()
            }
            dropped = CounterMetricFamily(
                "assay_series_dropped", "Evaluation series not kept: the tenant's cap was reached",
                labels=["tenant"],
            )  # fmt: skip
            for tenant, series in t.gauges.items():
                if not self._mine(tenant):
                    continue
                for (name, labels), value in series.items():
                    gauges[name].add_metric([tenant, *labels], value)
                dropped.add_metric([tenant], t.dropped.get(tenant, 0.0))
        yield from (events, batches, latency, depth, *gauges.values(), dropped)
