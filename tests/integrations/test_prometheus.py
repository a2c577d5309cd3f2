"""Evaluation gauges on ``/metrics``, and a real Prometheus scraping a real ``assay serve``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from assay.integrations.grafana import grafana_dashboard
from assay.integrations.prometheus_rules import prometheus_rules
from assay.monitors.config import MonitoringConfig
from assay.server.telemetry import Telemetry

from .conftest import HOST, assay_command, free_port, require_binary, stop
from .test_rules_and_dashboard import dashboard_queries

DEADLINE = 25.0


def evaluation(auc: float = 0.9, *, segments: bool = True, drift: bool = True) -> dict[str, Any]:
    """An ``evaluate_windows`` answer: an older window and the latest one."""
    latest: dict[str, Any] = {
        "rows": 200, "labeled": 150, "label_completeness": 0.75,
        "metrics": {"roc_auc": auc, "roc_auc_ci": [auc - 0.05, auc + 0.03],
                    "log_loss": 0.4, "log_loss_ci": None, "ece": None, "ece_ci": None},
    }  # fmt: skip
    if segments:
        latest["segments"] = {
            "web": {"rows": 80, "labeled": 80, "label_completeness": 1.0,
                    "metrics": {"roc_auc": 0.7, "roc_auc_ci": [0.6, 0.8]}},
        }  # fmt: skip
    if drift:
        latest["drift"] = {
            "amount": {"type": "numeric", "psi": 0.31, "jensen_shannon": 0.12,
                       "wasserstein_normed": 0.4, "drifted": True, "ks": {"p_value": 0.0}},
            "country": {"type": "categorical", "psi": 0.01, "jensen_shannon": 0.002,
                        "drifted": False},
        }  # fmt: skip
    old = {"rows": 5, "labeled": 0, "label_completeness": 0.0, "metrics": {"roc_auc": 0.1}}
    return {"model": "fraud", "window": "1d", "version": "v2", "segment": "channel",
            "windows": [old, latest]}  # fmt: skip


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(sample name, labels) -> value`` of an exposition text."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_gauges_of_the_latest_window() -> None:
    t = Telemetry()
    t.record_evaluation("acme", "fraud", evaluation())
    found = samples(t.render("acme"))
    where = {"tenant": "acme", "model": "fraud", "version": "v2", "window": "1d"}
    auc = {**where, "segment": "", "metric": "roc_auc"}
    assert value(found, "assay_model_metric", **auc) == 0.9
    assert value(found, "assay_model_metric_lower", **auc) == pytest.approx(0.85)
    assert value(found, "assay_model_metric_upper", **auc) == pytest.approx(0.93)
    web = {**where, "segment": "channel=web", "metric": "roc_auc"}
    assert value(found, "assay_model_metric", **web) == 0.7
    assert value(found, "assay_model_metric_upper", **web) == 0.8
    loss = {**where, "segment": "", "metric": "log_loss"}
    assert value(found, "assay_model_metric", **loss) == 0.4
    assert value(found, "assay_model_metric_lower", **loss) is None  # no interval
    names = {name for name, labels in found if dict(labels).get("metric") == "ece"}
    assert names == set()  # undefined: no series
    assert value(found, "assay_label_completeness", **where, segment="") == 0.75
    assert value(found, "assay_label_completeness", **where, segment="channel=web") == 1.0
    assert value(found, "assay_window_rows", **where, segment="") == 200
    drift = {"tenant": "acme", "model": "fraud", "window": "1d"}
    for statistic, expected in (("psi", 0.31), ("jensen_shannon", 0.12),
                                ("wasserstein_normed", 0.4), ("drifted", 1.0)):  # fmt: skip
        assert value(found, "assay_feature_drift", **drift, feature="amount",
                     statistic=statistic) == expected  # fmt: skip
    assert value(found, "assay_feature_drift", **drift, feature="country",
                 statistic="drifted") == 0.0  # fmt: skip
    assert value(found, "assay_series_dropped_total", tenant="acme") == 0.0
    # a newer evaluation replaces the values; a value that becomes undefined disappears
    newer = evaluation(0.6)
    newer["windows"][-1]["metrics"]["log_loss"] = None
    t.record_evaluation("acme", "fraud", newer)
    found = samples(t.render("acme"))
    assert value(found, "assay_model_metric", **auc) == 0.6
    assert value(found, "assay_model_metric", **loss) is None


def test_tenants_never_see_each_other() -> None:
    t = Telemetry()
    t.count_events("acme", "fraud", "predictions", "accepted", 3)
    t.record_evaluation("acme", "fraud", evaluation())
    t.record_evaluation("globex", "secret-model", evaluation())
    text = t.render("acme").decode()
    assert "globex" not in text and "secret-model" not in text
    assert 'assay_ingested_events_total{kind="predictions",model="fraud"' in text
    other = t.render("globex").decode()
    assert "acme" not in other and 'model="fraud"' not in other
    assert "secret-model" in other
    everything = samples(t.render(None))
    tenants = {dict(labels).get("tenant") for _, labels in everything} - {None}
    assert tenants == {"acme", "globex"}


def test_series_cap_counts_the_overflow() -> None:
    t = Telemetry(max_series_per_tenant=10)
    t.record_evaluation("acme", "fraud", evaluation())
    t.record_evaluation("globex", "m", evaluation(segments=False, drift=False))
    found = samples(t.render("acme"))
    families = ("assay_model_metric", "assay_feature_drift", "assay_label_completeness",
                "assay_window_rows")  # fmt: skip
    kept = [k for k in found if k[0].startswith(families)]
    assert len(kept) == 10
    # the latest window defines 18 series (6 whole, 5 segment, 7 drift): 8 did not fit
    assert value(found, "assay_series_dropped_total", tenant="acme") == 8
    # the cap is per tenant: globex's 6 series all fit
    assert value(samples(t.render("globex")), "assay_series_dropped_total", tenant="globex") == 0
    # updating series already kept is not an overflow
    t.record_evaluation("acme", "fraud", evaluation(0.5))
    found = samples(t.render("acme"))
    assert value(found, "assay_series_dropped_total", tenant="acme") == 16
    kept_now = {k for k in found if k[0] == "assay_model_metric"}
    assert all(found[k] in (0.5, 0.4, 0.7) for k in kept_now)


# -- a real Prometheus scraping a real assay serve -------------------------------------


@dataclass
class Running:
    url: str
    data_dir: Path
    log: Path


@pytest.fixture
def assay_server(tmp_path: Path) -> Iterator[Running]:
    data_dir, port, log = tmp_path / "assay-data", free_port(), tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*assay_command(), "serve", "--data-dir", str(data_dir), "--host", HOST,
             "--port", str(port), "--metrics-public"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://{HOST}:{port}"
    try:
        wait_for(lambda: _ok(f"{url}/healthz"), f"assay serve:\n{log.read_text()}", process)
        yield Running(url, data_dir, log)
    finally:
        stop(process)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(check: Any, what: str, process: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if process is not None:
            assert process.poll() is None, f"exited: {what}"
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def create_key(data_dir: Path) -> str:
    done = subprocess.run(
        [*assay_command(), "keys", "create", "--data-dir", str(data_dir), "--tenant", "acme",
         "--role", "admin"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def load_data(server: Running) -> None:
    """A model with predictions and labels of the last hours, and an evaluation."""
    headers = {"Authorization": f"Bearer {create_key(server.data_dir)}"}
    rng = np.random.default_rng(7)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    n = 300
    y = rng.random(n) < 0.4
    score = np.clip(0.3 + 0.4 * y + 0.3 * rng.random(n) - 0.15, 0.01, 0.99)
    hours = [now - timedelta(hours=int(h)) for h in rng.integers(1, 3, n)]
    events = [{"id": f"e{i}", "version": "v1", "timestamp": hours[i].isoformat(),
               "score": float(score[i]), "features": {"amount": float(rng.lognormal(3, 1))},
               "segments": {"channel": ["app", "web"][i % 2]}} for i in range(n)]  # fmt: skip
    labels = [{"id": f"e{i}", "label": int(y[i]), "timestamp": now.isoformat()}
              for i in range(n)]  # fmt: skip
    spec = {"name": "fraud", "task": "binary", "features": {"amount": "numeric"},
            "segments": ["channel"]}  # fmt: skip
    with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
        assert client.post("/v1/models", json=spec).status_code == 201
        answer = client.post("/v1/models/fraud/predictions", json={"events": events})
        assert answer.status_code == 200, answer.text
        answer = client.post("/v1/models/fraud/labels", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        span = {"start": (now - timedelta(hours=3)).isoformat(),
                "end": (now + timedelta(hours=1)).isoformat()}  # fmt: skip
        answer = client.post("/v1/models/fraud/reference", json=span)
        assert answer.status_code == 200, answer.text
        answer = client.get("/v1/models/fraud/evaluations",
                            params={"window": "1d", "segment": "channel"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["windows"][-1]["metrics"]["roc_auc"] > 0.5


BREACHED = {"models": [{"name": "fraud", "tenant": "acme", "monitors": [
    {"name": "auc-is-a-number", "kind": "metric", "metric": "roc_auc",
     "condition": {"op": ">=", "value": 0}, "severity": "critical",
     "annotations": {"runbook_url": "https://runbooks.example/auc"}},
]}]}  # fmt: skip


@pytest.fixture
def prometheus(tmp_path: Path, assay_server: Running) -> Iterator[str]:
    binary = require_binary("prometheus", "prometheus")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(prometheus_rules(MonitoringConfig.model_validate(BREACHED))))
    target = assay_server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "assay", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [target]}]}],
    }  # fmt: skip
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port, log = free_port(), tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={HOST}:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://{HOST}:{port}"
    try:
        wait_for(lambda: _ok(f"{url}/-/ready"), f"prometheus:\n{log.read_text()}", process)
        yield url
    finally:
        stop(process)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5.0).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def firing(url: str, name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5.0).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_prometheus_scrapes_assay_and_a_generated_rule_fires(
    assay_server: Running, prometheus: str
) -> None:
    load_data(assay_server)
    series = wait_for(lambda: query(prometheus, 'assay_model_metric{metric="roc_auc"}'),
                      "assay_model_metric in Prometheus")  # fmt: skip
    # Prometheus drops empty labels: the whole window's series has no segment label
    labels = {s["metric"].get("segment", "") for s in series}
    assert labels == {"", "channel=app", "channel=web"}
    assert all(s["metric"]["tenant"] == "acme" and s["metric"]["window"] == "1d" for s in series)
    assert wait_for(lambda: query(prometheus, 'assay_feature_drift{feature="amount"}'),
                    "assay_feature_drift in Prometheus")  # fmt: skip
    assert query(prometheus, "assay_label_completeness")
    alerts = wait_for(lambda: firing(prometheus, "auc_is_a_number"), "the alert firing")
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["monitor"] == "auc-is-a-number"
    assert alerts[0]["annotations"]["runbook_url"] == "https://runbooks.example/auc"
    # every query of the Grafana dashboard runs in Prometheus and finds its series
    board = grafana_dashboard(MonitoringConfig.model_validate(BREACHED))
    queries = dashboard_queries(board)
    assert {title for title, _ in queries} == {p["title"] for p in board["panels"]
                                              if p.get("targets")}  # fmt: skip
    for title, expr in queries:
        assert query(prometheus, expr), f"{title}: no series for {expr}"


# -- gauges survive a restart of assay serve ---------------------------------------------


def _monitored_data(data_dir: Path) -> float:
    """Yesterday's 400 labelled predictions in a fresh store; scikit-learn's ROC AUC."""
    from sklearn.metrics import roc_auc_score

    from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
    from assay.store.duckdb_store import DuckDBStore
    from assay.store.model import ModelSpec

    spec = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"})
    rng = np.random.default_rng(12)
    n = 400
    y = (rng.random(n) < 0.4).astype(float)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday -= timedelta(days=1)
    stamps = pa.array([yesterday + timedelta(minutes=int(m)) for m in rng.integers(0, 1440, n)],
                      pa.timestamp("us", tz="UTC"))  # fmt: skip
    ids = [f"e{i}" for i in range(n)]
    events = pa.table({"id": ids, "version": ["v1"] * n, "timestamp": stamps, "score": score,
                       "amount": rng.normal(size=n)})  # fmt: skip
    store = DuckDBStore(data_dir)
    try:
        store.register_model("acme", spec)
        prepared = predictions_from_arrow(spec, events, IngestLimits())
        store.append_predictions("acme", "fraud", prepared.table)
        labels = pa.table({"id": ids, "label": y, "timestamp": stamps})
        store.append_labels("acme", "fraud", labels_from_arrow(spec, labels, IngestLimits()).table)
    finally:
        store.close()
    return float(roc_auc_score(y, score))


def _serve_with(config: dict[str, Any], data_dir: Path, log: Path) -> tuple[Any, str]:
    path = log.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*assay_command(), "serve", "--data-dir", str(data_dir), "--host", HOST,
             "--port", str(port), "--metrics-public", "--config", str(path)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, f"http://{HOST}:{port}"


def _auc_gauge(url: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=2.0).content
    except httpx.TransportError:
        return None
    where = {"tenant": "acme", "model": "fraud", "version": "", "segment": "", "window": "1d",
             "metric": "roc_auc"}  # fmt: skip
    return value(samples(text), "assay_model_metric", **where)


def test_evaluation_gauges_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    expected = _monitored_data(data_dir)
    monitor = {"name": "auc", "kind": "metric", "metric": "roc_auc", "window": "1d",
               "condition": {"op": "<", "value": 0.5}}  # fmt: skip
    config = {"schedule_interval": "1h",
              "models": [{"name": "fraud", "tenant": "acme", "min_rows": 10,
                          "monitors": [monitor]}]}  # fmt: skip
    first, url = _serve_with(config, data_dir, tmp_path / "first.log")
    try:
        gauge = wait_for(lambda: _auc_gauge(url), "the first pass's gauges", first)
        assert gauge == pytest.approx(expected, abs=1e-12)
    finally:
        stop(first)
    assert (data_dir / "metric-gauges.json").exists()

    # restarted with a monitor whose evaluation fails (the model has no segment "channel"):
    # only the saved gauges can answer
    broken = {**config, "models": [{**config["models"][0],
                                    "monitors": [{**monitor, "segment": "channel"}]}]}  # fmt: skip
    log = tmp_path / "second.log"
    second, url = _serve_with(broken, data_dir, log)
    try:
        wait_for(lambda: "is not a segment" in log.read_text(), "the failing pass", second)
        assert _auc_gauge(url) == pytest.approx(expected, abs=1e-12)
    finally:
        stop(second)


def test_saved_gauges_reload_within_the_cap_and_skip_what_is_not_a_gauge(tmp_path: Path) -> None:
    t = Telemetry()
    t.record_evaluation("acme", "fraud", evaluation())
    path = tmp_path / "gauges.json"
    t.save_gauges(path)
    saved = path.stat().st_mtime_ns
    t.save_gauges(path)  # nothing changed: not rewritten
    assert path.stat().st_mtime_ns == saved
    restored = Telemetry()
    assert restored.load_gauges(path) == 18  # 6 whole-window, 5 segment, 7 drift series
    assert samples(restored.render("acme")) == samples(t.render("acme"))
    capped = Telemetry(max_series_per_tenant=4)
    assert capped.load_gauges(path) == 4
    data = json.loads(path.read_text())
    data["gauges"]["acme"].append(["assay_not_a_gauge", ["x"], 1.0])
    data["gauges"]["acme"].append(["assay_window_rows", ["too", "few"], 1.0])
    path.write_text(json.dumps(data))
    assert Telemetry().load_gauges(path) == 18
    assert Telemetry().load_gauges(tmp_path / "missing.json") == 0
