"""Windows restated by late labels are judged again, as alerts of their own.

A real DuckDB store and a controlled clock. Day 2 is judged only once its labels arrive
(three days later); its first labels rank badly (ROC AUC 0.7), the rest well (0.925 for
the whole day). Values are checked against scikit-learn on the labelled rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

import assay.monitors.passes
from assay.monitors.config import MonitoringConfig
from assay.monitors.rules import evaluate_past
from assay.monitors.scheduler import MonitorScheduler
from assay.monitors.signals import Notification
from assay.service.evaluations import evaluate_windows
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SPEC = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"}, segments=[])
DAY2 = "2026-11-03T00:00:00Z"


def config(**model: Any) -> MonitoringConfig:
    return MonitoringConfig.model_validate({"models": [{
        "name": "fraud", "tenant": "acme", "min_rows": 10, "min_label_completeness": 0.5,
        "monitors": [
            {"name": "auc-floor", "kind": "metric", "metric": "roc_auc", "window": "1d",
             "condition": {"op": "<", "value": 0.8}, "for": "30m",
             "resolve_hysteresis": 0.01},
            {"name": "amount-drift", "kind": "drift", "feature": "amount", "window": "1d",
             "condition": {"op": ">", "value": 0.2}}],
        **model}]})  # fmt: skip


class Days:
    """Six days of predictions; day 2's labels in two late batches (A: 100 rows, B: 100)."""

    def __init__(self, store: DuckDBStore):
        self.store = store
        self.scores: dict[str, float] = {}
        self.labels: dict[str, float] = {}
        rng = np.random.default_rng(4)
        for day in range(6):
            ids = [f"d{day}-{i}" for i in range(200)]
            label = np.tile([1.0, 0.0], 100)
            if day == 2:  # batch A (rows 0-99): positives 35 x 0.9 and 15 x 0.2, negatives 0.5
                # batch B (rows 100-199): positives 0.95, negatives 0.05
                a = np.where(label[:100] == 1, np.r_[[0.9] * 70, [0.2] * 30], 0.5)
                score = np.r_[a, np.where(label[100:] == 1, 0.95, 0.05)]
            else:
                score = np.where(label == 1, 0.8, 0.2)
            self.scores.update(zip(ids, score.tolist(), strict=True))
            self.labels.update(zip(ids, label.tolist(), strict=True))
            stamps = [DAY0 + day * DAY + timedelta(minutes=int(m))
                      for m in rng.integers(0, 1440, 200)]  # fmt: skip
            events = pa.table({"id": ids, "version": ["v1"] * 200,
                               "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                               "score": score, "amount": rng.normal(size=200)})  # fmt: skip
            prepared = predictions_from_arrow(SPEC, events, IngestLimits())
            store.append_predictions("acme", "fraud", prepared.table)
            if day < 2:
                self.label([f"d{day}-{i}" for i in range(200)])

    def label(self, ids: list[str]) -> float:
        """Send the labels of ``ids``; scikit-learn's ROC AUC of everything labelled on day 2."""
        stamp = pa.array([DAY0 + 5 * DAY] * len(ids), pa.timestamp("us", tz="UTC"))
        table = pa.table({"id": ids, "label": [self.labels[i] for i in ids], "timestamp": stamp})
        self.store.append_labels("acme", "fraud",
                                 labels_from_arrow(SPEC, table, IngestLimits()).table)  # fmt: skip
        self.sent = [*getattr(self, "sent", []), *ids]
        day2 = [i for i in self.sent if i.startswith("d2-")]
        if not day2:
            return float("nan")
        return float(roc_auc_score([self.labels[i] for i in day2], [self.scores[i] for i in day2]))


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "data")
    s.register_model("acme", SPEC)
    yield s
    s.close()


def batch(name: str) -> list[str]:
    return [f"d2-{i}" for i in (range(100) if name == "A" else range(100, 200))]


def test_late_labels_fire_and_resolve_the_restated_window(
    store: DuckDBStore, tmp_path: Path
) -> None:
    days = Days(store)
    t0 = DAY0 + 5 * DAY + timedelta(hours=1)  # the latest closed day (4) has no labels yet
    clock = [t0]
    sent: list[Notification] = []

    def scheduler() -> MonitorScheduler:
        return MonitorScheduler(store, config(), tmp_path, deliver=sent.extend,
                                clock=lambda: clock[0])  # fmt: skip

    def at(offset: timedelta, on: MonitorScheduler) -> list[str]:
        clock[0] = t0 + offset
        return [n.status for n in on.run_once()]

    first = scheduler()
    assert at(timedelta(0), first) == []
    assert first.active() == []
    auc_a = days.label(batch("A"))
    assert auc_a == pytest.approx(0.7)  # 35 of 50 positives above every negative
    # an evaluation request rebuilds the restated buckets before the next pass
    evaluate_windows(store, "acme", "fraud", window="1d")
    assert store.dirty_buckets("acme", "fraud") == []
    assert at(timedelta(minutes=10), first) == []  # day 2 judged again: pending (for: 30m)
    [pending] = first.active()
    assert pending["state"] == "pending" and pending["value"] == pytest.approx(auc_a)
    assert pending["labels"]["window_start"] == DAY2 and pending["labels"]["window"] == "1d"
    assert at(timedelta(minutes=39, seconds=59), first) == []  # judged again while pending
    assert at(timedelta(minutes=40), first) == ["firing"]  # exactly 30 minutes later
    assert sent[0].labels["window_start"] == DAY2 and sent[0].value == pytest.approx(auc_a)
    assert sent[0].annotations["judged"] == "again, after late labels"
    assert "window 2026-11-03..2026-11-04" in sent[0].annotations["summary"]

    restarted = scheduler()  # mid-incident: state from the data dir, no duplicate
    assert at(timedelta(minutes=41), restarted) == []
    assert at(timedelta(minutes=44, seconds=59), restarted) == []
    assert at(timedelta(minutes=45), restarted) == ["firing"]  # the 5-minute re-send

    auc_all = days.label(batch("B"))
    assert auc_all == pytest.approx(0.925)  # recovered past 0.8 + 0.01
    assert at(timedelta(minutes=50), restarted) == ["resolved"]
    assert sent[-1].value == pytest.approx(auc_all)
    assert restarted.active() == []
    assert all(n.labels.get("window_start") == DAY2 for n in sent)  # never the latest window
    assert {n.labels["monitor"] for n in sent} == {"auc-floor"}  # drift is not judged again


def test_hours_an_evaluation_rebuilt_are_judged_after_a_restart(
    store: DuckDBStore, tmp_path: Path
) -> None:
    """The rebuilt hours are kept in the store, not in the server that rebuilt them: the
    restarted server's first pass still judges day 2 again (so does another replica's, on
    PostgreSQL; the store contract suite checks both backends keep them)."""
    days = Days(store)
    clock = [DAY0 + 5 * DAY + timedelta(hours=1)]
    MonitorScheduler(store, config(), tmp_path, clock=lambda: clock[0]).run_once()
    auc_a = days.label(batch("A"))
    evaluate_windows(store, "acme", "fraud", window="1d")  # a request rebuilds day 2's hours
    assert store.dirty_buckets("acme", "fraud") == []
    store.close()
    clock[0] += timedelta(minutes=10)
    reopened = DuckDBStore(tmp_path / "data")
    try:
        restarted = MonitorScheduler(reopened, config(), tmp_path, clock=lambda: clock[0])
        assert restarted.run_once() == []
        [pending] = restarted.active()
        assert pending["labels"]["window_start"] == DAY2
        assert pending["value"] == pytest.approx(auc_a)
    finally:
        reopened.close()


def test_hours_a_request_noted_survive_a_pass_that_could_not_save_them(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store forgets the hours a request noted only after the pass has saved them."""
    days = Days(store)
    clock = [DAY0 + 5 * DAY + timedelta(hours=1)]
    MonitorScheduler(store, config(), tmp_path, clock=lambda: clock[0]).run_once()
    days.label(batch("A"))
    evaluate_windows(store, "acme", "fraud", window="1d")  # a request rebuilds day 2's hours

    def disk_full(self: MonitorScheduler) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(MonitorScheduler, "_save", disk_full)
        with pytest.raises(OSError):
            MonitorScheduler(store, config(), tmp_path, clock=lambda: clock[0]).run_once()
    after = MonitorScheduler(store, config(), tmp_path, clock=lambda: clock[0])
    assert after.run_once() == []
    assert [a["labels"]["window_start"] for a in after.active()] == [DAY2]
    assert store.restated("acme", "fraud") == set()  # saved and judged: forgotten


def test_a_past_windows_alert_resolves_beyond_the_horizon(
    store: DuckDBStore, tmp_path: Path
) -> None:
    days = Days(store)
    clock = [DAY0 + 5 * DAY + timedelta(hours=1)]
    scheduler = MonitorScheduler(store, config(late_label_horizon="3d"), tmp_path,
                                 clock=lambda: clock[0])  # fmt: skip
    days.label(batch("A"))
    assert scheduler.run_once() == []  # pending
    clock[0] += timedelta(minutes=30)
    assert [n.status for n in scheduler.run_once()] == ["firing"]
    clock[0] = DAY0 + 6 * DAY + timedelta(seconds=1)  # day 2 ended 3 days and 1 s ago
    assert [n.status for n in scheduler.run_once()] == ["resolved"]
    assert scheduler.active() == []


def test_restated_hours_survive_a_crash_mid_pass(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = Days(store)
    clock = [DAY0 + 5 * DAY + timedelta(hours=1)]
    cfg = config()
    MonitorScheduler(store, cfg, tmp_path, clock=lambda: clock[0]).run_once()
    days.label(batch("A"))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(assay.monitors.passes, "model_signals", crash)
    with pytest.raises(RuntimeError):
        MonitorScheduler(store, cfg, tmp_path, clock=lambda: clock[0]).run_once()
    assert store.dirty_buckets("acme", "fraud") == []  # rebuilt before the crash
    monkeypatch.undo()
    after = MonitorScheduler(store, cfg, tmp_path, clock=lambda: clock[0])
    assert after.run_once() == []
    assert [a["labels"]["window_start"] for a in after.active()] == [DAY2]


def test_only_metric_monitors_and_whole_windows_are_judged_again() -> None:
    model = config().models[0]
    day2 = {"start": DAY2, "end": "2026-11-04T00:00:00Z", "rows": 200, "labeled": 200,
            "label_completeness": 1.0, "metrics": {"roc_auc": 0.5},
            "drift": {"amount": {"type": "numeric", "psi": 0.9}}}  # fmt: skip
    start = datetime(2026, 11, 3, tzinfo=UTC)
    [signal] = evaluate_past(model, {"1d": [day2]}, {"1d": [start]}, None)
    assert signal.labels["monitor"] == "auc-floor" and signal.breached is True
    clipped = {**day2, "end": "2026-11-03T12:00:00Z"}
    assert evaluate_past(model, {"1d": [clipped]}, {"1d": [start]}, None) == []
    assert evaluate_past(model, {"1d": [day2]}, {"1h": [start]}, None) == []
