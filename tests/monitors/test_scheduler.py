"""The monitor schedule end to end on a real DuckDB store, with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.monitors.signals import Notification
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"}, segments=[])
CONFIG = {
    "models": [{
        "name": "fraud", "tenant": "acme", "min_rows": 10,
        "monitors": [{"name": "auc-floor", "kind": "metric", "metric": "roc_auc",
                      "condition": {"op": "<", "value": 0.8}, "window": "1d",
                      "severity": "critical", "resolve_hysteresis": 0.01}],
    }]
}  # fmt: skip


def _day(store: DuckDBStore, day: int, *, good: bool, day0: datetime = DAY0) -> None:
    """200 labelled predictions on ``day``: perfectly ranked (good) or perfectly reversed."""
    rng = np.random.default_rng(day)
    n = 200
    label = np.tile([0.0, 1.0], n // 2)
    score = np.where(label == 1, 0.9, 0.1) if good else np.where(label == 1, 0.1, 0.9)
    stamps = [day0 + timedelta(days=day, minutes=int(m)) for m in rng.integers(0, 1440, n)]
    ids = [f"d{day}-{i}" for i in range(n)]
    ts = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    events = pa.table({"id": ids, "version": ["v1"] * n, "timestamp": ts, "score": score,
                       "amount": rng.normal(size=n)})  # fmt: skip
    prepared = predictions_from_arrow(SPEC, events, IngestLimits())
    store.append_predictions("acme", "fraud", prepared.table)
    labels = pa.table({"id": ids, "label": label, "timestamp": ts})
    store.append_labels("acme", "fraud", labels_from_arrow(SPEC, labels, IngestLimits()).table)


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "data")
    s.register_model("acme", SPEC)
    yield s
    s.close()


def _scheduler(store: DuckDBStore, state: Path, clock: list[datetime],
               sent: list[Notification]) -> MonitorScheduler:  # fmt: skip
    return MonitorScheduler(store, MonitoringConfig.model_validate(CONFIG), state,
                            deliver=sent.extend, clock=lambda: clock[0])  # fmt: skip


def test_fires_once_survives_a_restart_resends_and_resolves(
    store: DuckDBStore, tmp_path: Path
) -> None:
    for day in range(3):
        _day(store, day, good=day < 2)  # day 2 ranks every pair wrongly: roc_auc 0
    clock = [DAY0 + timedelta(days=3, minutes=30)]
    sent: list[Notification] = []
    first = _scheduler(store, tmp_path, clock, sent)
    notes = first.run_once()
    assert [(n.status, n.labels["monitor"], n.labels["severity"]) for n in notes] == [
        ("firing", "auc-floor", "critical")
    ]
    assert notes[0].value == pytest.approx(0.0)
    assert first.run_once() == []  # still firing: no repeat before the resend interval
    assert [a["labels"]["monitor"] for a in first.active("acme")] == ["auc-floor"]
    assert first.active("other") == []

    restarted = _scheduler(store, tmp_path, clock, sent)  # state comes from the data dir
    assert restarted.run_once() == []
    clock[0] += timedelta(minutes=6)  # past the default 5-minute resend interval
    assert [n.status for n in restarted.run_once()] == ["firing"]

    _day(store, 3, good=True)  # the next day is ranked perfectly: recovered
    clock[0] = DAY0 + timedelta(days=4, minutes=30)
    resolved = restarted.run_once()
    assert [n.status for n in resolved] == ["resolved"]
    assert restarted.active() == []
    assert len(sent) == 3


def test_a_missing_model_is_reported_not_fatal(store: DuckDBStore, tmp_path: Path) -> None:
    config = {"models": [{**CONFIG["models"][0], "name": "ghost"}, CONFIG["models"][0]]}
    for day in range(3):
        _day(store, day, good=day < 2)
    scheduler = MonitorScheduler(store, MonitoringConfig.model_validate(config), tmp_path,
                                 clock=lambda: DAY0 + timedelta(days=3, hours=1))  # fmt: skip
    notes = scheduler.run_once()
    assert [n.labels["model"] for n in notes] == ["fraud"]
    assert "ghost" in scheduler.last_errors


def _write_config(path: Path, tenant: str = "acme") -> Path:
    import yaml

    config = {"models": [{**CONFIG["models"][0], "tenant": tenant}], "sinks": {"console": True}}
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_monitors_once_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assay.cli.main import app

    data = tmp_path / "data"
    store = DuckDBStore(data)
    store.register_model("acme", SPEC)
    # the CLI's clock is the real one: the three days before today
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(3):
        _day(store, day, good=day < 2, day0=today - timedelta(days=3))
    store.close()
    config = _write_config(tmp_path / "assay.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["run-monitors", "--once", "--config", str(config),
                                 "--data-dir", str(data)])  # fmt: skip
    assert result.exit_code == 0, result.output
    # the latest closed day (day 2, ranked backwards) is judged now: one alert fires
    assert "1 notification(s); 1 alert(s) pending or firing" in result.output
    assert "auc-floor" in result.output  # the console sink's line
    again = runner.invoke(app, ["run-monitors", "--once", "--config", str(config),
                                "--data-dir", str(data)])  # fmt: skip
    assert "0 notification(s); 1 alert(s) pending or firing" in again.output  # state kept


def test_alerts_route_shows_the_tenants_own_alerts(store: DuckDBStore, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assay.control import open_control_store
    from assay.server.app import create_app

    for day in range(3):
        _day(store, day, good=day < 2)
    control = open_control_store(tmp_path / "control")
    _, mine = control.create_key("acme", "read", actor="test")
    _, theirs = control.create_key("other", "read", actor="test")
    app = create_app(store, control)
    clock = [DAY0 + timedelta(days=3, minutes=30)]
    app.state.scheduler = _scheduler(store, tmp_path, clock, [])
    app.state.scheduler.run_once()
    client = TestClient(app)
    seen = client.get("/v1/alerts", headers={"Authorization": f"Bearer {mine}"}).json()
    assert [a["labels"]["monitor"] for a in seen["alerts"]] == ["auc-floor"]
    assert seen["alerts"][0]["state"] == "firing"
    other = client.get("/v1/alerts", headers={"Authorization": f"Bearer {theirs}"}).json()
    assert other == {"alerts": []}
    control.close()


def test_relative_to_reference_uses_the_references_own_metrics(
    store: DuckDBStore, tmp_path: Path
) -> None:
    from assay.service.evaluations import evaluate_windows, reference_from_range

    for day in range(3):
        _day(store, day, good=day < 2)
    # days 0-1 are perfectly ranked: the reference's roc_auc is 1 (hand-worked)
    reference_from_range(store, "acme", "fraud", start=DAY0, end=DAY0 + timedelta(days=2))
    result = evaluate_windows(store, "acme", "fraud", window="1d")
    assert result["reference_metrics"]["roc_auc"] == pytest.approx(1.0)
    config = {"models": [{**CONFIG["models"][0], "monitors": [{
        "name": "auc-drop", "kind": "metric", "metric": "roc_auc", "window": "1d",
        "condition": {"type": "relative", "op": "<", "compare_to": "reference",
                      "change_pct": 10}}]}]}  # fmt: skip
    scheduler = MonitorScheduler(store, MonitoringConfig.model_validate(config), tmp_path,
                                 clock=lambda: DAY0 + timedelta(days=3, hours=1))  # fmt: skip
    [note] = scheduler.run_once()  # day 2's roc_auc 0 is more than 10% below 1
    assert note.status == "firing" and note.labels["monitor"] == "auc-drop"


def test_a_rollout_that_must_roll_back_raises_a_critical_alert(
    store: DuckDBStore, tmp_path: Path
) -> None:
    """Canary v2 ranks every pair wrongly (accuracy 0 against 1): the pass alerts, once."""
    _day(store, 0, good=True)
    rng = np.random.default_rng(7)
    n = 400
    label = np.tile([0.0, 1.0], n // 2)
    ids = [f"c-{i}" for i in range(n)]
    ts = pa.array([DAY0 + timedelta(minutes=int(m)) for m in rng.integers(0, 1440, n)],
                  pa.timestamp("us", tz="UTC"))  # fmt: skip
    score = np.where(label == 1, 0.1, 0.9)
    events = pa.table({"id": ids, "version": ["v2"] * n, "timestamp": ts,
                       "score": score, "amount": rng.normal(size=n)})  # fmt: skip
    store.append_predictions(
        "acme", "fraud", predictions_from_arrow(SPEC, events, IngestLimits()).table
    )
    store.append_labels("acme", "fraud", pa.table({"id": ids, "label": label, "timestamp": ts}))
    policy = {"metrics": [{"metric": "accuracy", "margin": 0.05}]}
    store.put_rollout("acme", "fraud", "v2-canary", {"name": "v2-canary", "champion": "v1",
                      "challenger": "v2", "mode": "canary", "policy": policy})  # fmt: skip
    clock = [DAY0 + timedelta(days=1, minutes=30)]
    sent: list[Notification] = []
    scheduler = _scheduler(store, tmp_path, clock, sent)
    notes = [n for n in scheduler.run_once() if n.labels["monitor"] == "rollout-rollback"]
    assert [(n.status, n.labels["rollout"], n.labels["severity"]) for n in notes] == [
        ("firing", "v2-canary", "critical")
    ]
    assert notes[0].annotations["summary"].startswith("roll back fraud v2 to v1")
    assert [n for n in scheduler.run_once() if n.labels["monitor"] == "rollout-rollback"] == []
    store.delete_rollout("acme", "fraud", "v2-canary")
