"""Sliding windows: spans, labels, and the alert lifecycle over a real store.

Each judged value is checked against scikit-learn's ``roc_auc_score`` over the raw rows
whose timestamps fall in the span (written in the test), never against Assay's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from assay.errors import ConfigError
from assay.monitors.config import ModelMonitoring, MonitoringConfig, load_config
from assay.monitors.rules import evaluate_all
from assay.monitors.scheduler import MonitorScheduler
from assay.monitors.signals import Notification
from assay.monitors.windows import latest_closed, previous, sliding
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

H0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SPEC = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"}, segments=[])
BAD_HOURS = (6, 7)


def test_spans_by_hand() -> None:
    now = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
    assert sliding(now, timedelta(hours=3)) == (now.replace(minute=0) - 2 * HOUR,
                                                now.replace(minute=0) + HOUR)  # fmt: skip
    on_the_hour = datetime(2026, 11, 21, 10, tzinfo=UTC)  # nothing of the next hour yet
    assert sliding(on_the_hour, timedelta(days=1)) == (on_the_hour - timedelta(days=1),
                                                       on_the_hour)  # fmt: skip
    week = latest_closed(now, timedelta(weeks=1))  # weeks count from the epoch (a Thursday)
    assert week == (datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))
    assert previous(week) == (datetime(2026, 11, 5, tzinfo=UTC), week[0])


def test_a_bare_size_takes_the_declared_kind_and_ambiguity_is_an_error(tmp_path: Path) -> None:
    auc = {"name": "auc", "kind": "metric", "metric": "roc_auc", "condition": {"value": 0.8}}
    model = ModelMonitoring.model_validate({"name": "m", "tenant": "t",
        "windows": [{"size": "7d", "kind": "sliding"}, {"size": "1d"}],
        "monitors": [{**auc, "window": "7d"}, {**auc, "window": "1d"},
                     {**auc, "window": "7d tumbling"}, {**auc, "window": "2d"}]})  # fmt: skip
    assert [model.window_of(m).label for m in model.monitors] == [
        "7d sliding", "1d", "7d", "2d"]  # fmt: skip
    path = tmp_path / "assay.yaml"
    path.write_text(yaml.safe_dump({"models": [{"name": "m", "tenant": "t",
        "windows": [{"size": "7d", "kind": "sliding"}, {"size": "7d"}],
        "monitors": [{**auc, "window": "7d"}]}]}))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "models[0]"
    assert "monitors[0].window: 7d is declared both" in str(info.value)
    assert "'7d sliding'" in str(info.value)


def _window(start: datetime, hours: int, auc: float | None) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": (start + hours * HOUR).isoformat(),
            "rows": 500, "labeled": 500, "label_completeness": 1.0,
            "metrics": {"roc_auc": auc}}  # fmt: skip


def test_rules_judge_the_latest_sliding_span_with_the_one_before_as_previous() -> None:
    model = ModelMonitoring.model_validate({"name": "fraud", "tenant": "acme", "min_rows": 10,
        "windows": [{"size": "3h", "kind": "sliding"}],
        "monitors": [{"name": "drop", "kind": "metric", "metric": "roc_auc", "window": "3h",
                      "condition": {"type": "relative", "op": "<", "compare_to": "previous",
                                    "change_pct": 10}}]})  # fmt: skip
    now = H0 + timedelta(hours=7, minutes=20)  # a sliding span need not have closed
    current, before = sliding(now, 3 * HOUR), previous(sliding(now, 3 * HOUR))
    windows = [_window(current[0], 3, 0.70), _window(before[0], 3, 0.80)]
    [signal] = evaluate_all(model, {"3h sliding": windows}, None, now=now)
    assert signal.labels["window"] == "3h sliding"
    assert (signal.value, signal.threshold, signal.breached) == (0.70, 0.72, True)
    # a tumbling window of the same size is a different series: not judged by this monitor
    assert evaluate_all(model, {"3h": windows}, None, now=now) == []
    # a span that is not the one just before is no previous: the condition is not judged
    gap = [_window(current[0], 3, 0.70), _window(before[0] - HOUR, 3, 0.80)]
    [unjudged] = evaluate_all(model, {"3h sliding": gap}, None, now=now)
    assert unjudged.breached is None


def _hours(store: DuckDBStore) -> pa.Table:
    """20 labelled rows an hour for 12 hours: perfectly ranked, reversed in BAD_HOURS."""
    rng = np.random.default_rng(1)
    parts = []
    for hour in range(12):
        label = np.tile([0.0, 1.0], 10)
        bad = hour in BAD_HOURS
        score = np.where(label == 1, 0.1 if bad else 0.9, 0.9 if bad else 0.1)
        stamps = [H0 + hour * HOUR + timedelta(minutes=int(m)) for m in rng.integers(0, 60, 20)]
        parts.append(pa.table({
            "id": [f"h{hour}-{i}" for i in range(20)], "version": ["v1"] * 20,
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")), "score": score,
            "amount": rng.normal(size=20), "label": label}))  # fmt: skip
    rows = pa.concat_tables(parts)
    events = rows.drop_columns(["label"])
    prepared = predictions_from_arrow(SPEC, events, IngestLimits())
    store.append_predictions("acme", "fraud", prepared.table)
    labels = rows.select(["id", "label", "timestamp"])
    store.append_labels("acme", "fraud", labels_from_arrow(SPEC, labels, IngestLimits()).table)
    return rows


def _sklearn_auc(rows: pa.Table, span: tuple[datetime, datetime]) -> float:
    stamps = np.array([t.timestamp() for t in rows.column("timestamp").to_pylist()])
    inside = (stamps >= span[0].timestamp()) & (stamps < span[1].timestamp())
    y = rows.column("label").to_numpy()[inside]
    return float(roc_auc_score(y, rows.column("score").to_numpy()[inside]))


def test_sliding_alert_lifecycle_on_a_real_store(tmp_path: Path) -> None:
    """for: 10m, fires below 0.5, resolves at 0.9 or more (threshold 0.5 + hysteresis 0.4)."""
    store = DuckDBStore(tmp_path / "data")
    store.register_model("acme", SPEC)
    try:
        rows = _hours(store)
        config = MonitoringConfig.model_validate({
            "models": [{"name": "fraud", "tenant": "acme", "min_rows": 10,
                        "windows": [{"size": "3h", "kind": "sliding"}],
                        "monitors": [{"name": "auc", "kind": "metric", "metric": "roc_auc",
                                      "window": "3h", "condition": {"op": "<", "value": 0.5},
                                      "for": "10m", "resolve_hysteresis": 0.4}]}],
            "sinks": {"alertmanager": {"url": "http://127.0.0.1:9", "resend_interval": "1d"}},
        })  # fmt: skip
        clock = [H0]
        sent: list[Notification] = []
        seen: list[dict[str, Any]] = []
        scheduler = MonitorScheduler(store, config, tmp_path, deliver=sent.extend,
                                     clock=lambda: clock[0],
                                     on_evaluation=lambda t, m, r: seen.append(r))  # fmt: skip

        def at(hour: int, minute: int, second: int = 0) -> list[str]:
            clock[0] = H0 + timedelta(hours=hour, minutes=minute, seconds=second)
            notes = scheduler.run_once()
            window = seen[-1]["windows"][-1]
            span = sliding(clock[0], 3 * HOUR)
            assert (window["start"], window["end"]) == tuple(
                t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in span)  # fmt: skip
            assert window["metrics"]["roc_auc"] == pytest.approx(_sklearn_auc(rows, span))
            return [n.status for n in notes]

        assert at(6, 30) == []  # hours 4-6: one of three reversed, AUC 2/3: not below 0.5
        assert _sklearn_auc(rows, sliding(clock[0], 3 * HOUR)) == pytest.approx(2 / 3)
        assert at(7, 30) == []  # hours 5-7: AUC 1/3 -> pending
        assert [a["state"] for a in scheduler.active()] == ["pending"]
        assert scheduler.active()[0]["labels"]["window"] == "3h sliding"
        assert at(7, 39, 59) == []  # 9m59s: still pending
        assert at(7, 40) == ["firing"]  # exactly for: 10m
        assert at(8, 30) == []  # hours 6-8: 1/3, still firing, nothing new
        assert at(9, 30) == []  # hours 7-9: 2/3 is not below 0.5 but not >= 0.9: firing
        assert [a["state"] for a in scheduler.active()] == ["firing"]
        assert at(10, 30) == ["resolved"]  # hours 8-10: 1.0
        assert [n.labels["window"] for n in sent] == ["3h sliding", "3h sliding"]
    finally:
        store.close()
