"""Rollup refreshes on a real local Ray runtime write the in-process rollups, byte for byte.

The service reads each dirty bucket's rows and hands them to Ray tasks (``engine: ray``);
the stored rollups must equal those of an in-process refresh of the same events, and a
window's metrics must equal scikit-learn's on the window's events (computed here from the
generated arrays, not from the store). One runtime (2 CPUs) serves the session
(tests/engine/conftest.py); a runtime the executor starts itself is tested in a separate
process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.monitors.wiring import rollup_executor
from assay.service import ray_rollups, rollups
from assay.service.evaluations import evaluate_windows
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.service.ray_rollups import RayRollupExecutor, RaySent
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

TENANT = "acme"
SPEC = ModelSpec(name="fraud", task="binary",
                 features={"amount": "numeric", "country": "categorical"},
                 segments=["channel"])  # fmt: skip
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
HOURS, N = 30, 9_000  # 30 hours of two versions: 60 dirty buckets of about 150 rows


@dataclass
class Events:
    """Seeded events, and what scikit-learn needs to check a window."""

    ids: list[str]
    version: np.ndarray
    hour: np.ndarray
    stamp: list[datetime]
    score: np.ndarray
    channel: np.ndarray
    y: np.ndarray
    labeled: np.ndarray
    table: pa.Table

    def rows_per_bucket(self) -> dict[tuple[str, datetime], int]:
        """Events per (version, hour bucket)."""
        out: dict[tuple[str, datetime], int] = {}
        for v, h in zip(self.version, self.hour, strict=True):
            key = (str(v), DAY0 + timedelta(hours=int(h)))
            out[key] = out.get(key, 0) + 1
        return out


@pytest.fixture(scope="module")
def events() -> Events:
    rng = np.random.default_rng(11)
    hour = rng.integers(0, HOURS, N)
    stamp = [DAY0 + timedelta(hours=int(h), seconds=int(s))
             for h, s in zip(hour, rng.integers(0, 3600, N), strict=True)]  # fmt: skip
    version = np.where(rng.random(N) < 0.6, "v1", "v2")
    y = (rng.random(N) < 0.3).astype(float)
    score = 1 / (1 + np.exp(-(rng.normal(size=N) + 1.4 * y - 1.0)))
    amount = rng.lognormal(3, 1, N)
    amount[rng.random(N) < 0.03] = np.nan
    country = [None if i % 41 == 0 else c
               for i, c in enumerate(rng.choice(["DE", "FR", "US"], N))]  # fmt: skip
    channel = rng.choice(["web", "app", "partner"], N)
    ids = [f"e{i}" for i in range(N)]
    table = pa.table({"id": ids, "version": version,
                      "timestamp": pa.array(stamp, pa.timestamp("us", tz="UTC")),
                      "score": score, "amount": pa.array(amount, from_pandas=True),
                      "country": country, "channel": channel})  # fmt: skip
    labeled = rng.random(N) < 0.7
    return Events(ids, version, hour, stamp, score, channel, y, labeled, table)


def filled(path: Path, ev: Events) -> DuckDBStore:
    """A store holding the events and the labels of the labeled ones (all buckets dirty)."""
    store = DuckDBStore(path)
    store.register_model(TENANT, SPEC)
    limits = IngestLimits(max_events=N)
    store.append_predictions(TENANT, "fraud", predictions_from_arrow(SPEC, ev.table, limits).table)
    idx = np.flatnonzero(ev.labeled)
    labels = pa.table({"id": [ev.ids[i] for i in idx], "label": ev.y[idx],
                       "timestamp": pa.array([DAY0 + timedelta(days=3)] * idx.size,
                                             pa.timestamp("us", tz="UTC"))})  # fmt: skip
    store.append_labels(TENANT, "fraud", labels_from_arrow(SPEC, labels, limits).table)
    return store


def stored(store: DuckDBStore) -> list[tuple[Any, ...]]:
    """Every rollup (overall and per channel), as comparable tuples."""
    out = []
    for column in ("", "channel"):
        for r in store.load_rollups(TENANT, "fraud", segment_column=column):
            out.append((r.version, r.bucket, r.segment_column, r.segment_value, r.rows,
                        r.labeled, r.states))  # fmt: skip
    return sorted(out)


@pytest.fixture(scope="module")
def in_process(events: Events, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    """The rollups an in-process refresh writes (the reference of every Ray refresh)."""
    store = filled(tmp_path_factory.mktemp("in-process"), events)
    assert len(rollups.refresh(store, TENANT, "fraud")) == 2 * HOURS
    out = stored(store)
    store.close()
    return out


def sklearn_window(ev: Events, mask: np.ndarray) -> dict[str, float]:
    """rows, labeled and the point metrics of the events in ``mask``, by scikit-learn."""
    lab = mask & ev.labeled
    y, s = ev.y[lab], ev.score[lab]
    return {"rows": int(mask.sum()), "labeled": int(lab.sum()),
            "roc_auc": roc_auc_score(y, s), "accuracy": accuracy_score(y, s >= 0.5),
            "log_loss": log_loss(y, s), "brier": brier_score_loss(y, s)}  # fmt: skip


def assert_window(window: dict[str, Any], expected: dict[str, float]) -> None:
    assert (window["rows"], window["labeled"]) == (expected["rows"], expected["labeled"])
    for name in ("roc_auc", "accuracy", "log_loss", "brier"):
        assert window["metrics"][name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12)


def test_a_refresh_on_ray_writes_the_in_process_rollups(
    ray_runtime: Any, events: Events, in_process: list, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    store = filled(tmp_path, events)
    executor = RayRollupExecutor(min_rows=0, task_rows=2_000)

    def not_here(*args: Any) -> None:
        raise AssertionError("a bucket was built in the server process")

    # the driver's copies fail: every bucket must be built in a Ray worker
    monkeypatch.setattr(ray_rollups, "bucket_rollups", not_here)
    monkeypatch.setattr(rollups, "bucket_rollups", not_here)
    done = rollups.refresh(store, TENANT, "fraud", executor=executor, per_transaction=16)
    monkeypatch.undo()
    assert len(done) == 2 * HOURS and store.dirty_buckets(TENANT, "fraud") == []
    assert stored(store) == in_process  # same rows, same states, byte for byte
    # a task is sent once it holds 2,000 rows, or at the end of a transaction of 16 buckets
    counts = events.rows_per_bucket()
    tasks = 0
    for first in range(0, len(done), 16):
        held = 0
        for item in done[first : first + 16]:
            held += counts[(item.version, item.bucket)]
            tasks, held = (tasks + 1, 0) if held >= 2_000 else (tasks, held)
        tasks += held > 0
    assert (executor.sent.buckets, executor.sent.rows, executor.sent.tasks) == (2 * HOURS, N, tasks)
    executor.close()
    assert ray_runtime.is_initialized()  # a runtime it did not start is left running

    # a day's window of v1, overall and per channel, from the Ray-built rollups
    answer = evaluate_windows(store, TENANT, "fraud", version="v1", window="1d",
                              segment="channel")  # fmt: skip
    day = (events.version == "v1") & (events.hour < 24)
    assert_window(answer["windows"][0], sklearn_window(events, day))
    for value in ("app", "partner", "web"):
        part = answer["windows"][0]["segments"][value]
        assert_window(part, sklearn_window(events, day & (events.channel == value)))
    store.close()


def test_buckets_go_to_ray_once_a_refresh_has_read_min_rows(
    ray_runtime: Any, events: Events, in_process: list, tmp_path: Path
) -> None:
    store = filled(tmp_path, events)
    order = store.dirty_buckets(TENANT, "fraud")  # the order refresh reads them in
    counts = events.rows_per_bucket()
    cumulative = np.cumsum([counts[(d.version, d.bucket)] for d in order])
    min_rows = N // 2
    on_ray = cumulative >= min_rows  # the bucket that reaches the threshold goes too
    executor = RayRollupExecutor(min_rows=min_rows, task_rows=1_000)
    rollups.refresh(store, TENANT, "fraud", executor=executor)
    expected_rows = int(
        sum(counts[(d.version, d.bucket)] for d, r in zip(order, on_ray, strict=True) if r)
    )
    assert 0 < on_ray.sum() < len(order)
    assert (executor.sent.buckets, executor.sent.rows) == (int(on_ray.sum()), expected_rows)
    assert stored(store) == in_process
    store.close()


def test_a_refresh_below_min_rows_never_contacts_ray(
    events: Events, in_process: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = filled(tmp_path, events)
    executor = RayRollupExecutor(min_rows=N + 1)

    def no_runtime() -> None:
        raise AssertionError("Ray was contacted")

    monkeypatch.setattr(executor, "runtime", no_runtime)
    rollups.refresh(store, TENANT, "fraud", executor=executor)
    assert executor.sent == RaySent() and stored(store) == in_process
    store.close()


def test_when_ray_is_unreachable_the_refresh_goes_on_in_process(
    events: Events, in_process: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A real address where nothing listens: the connection is refused at once (Ray alone
    would retry it for minutes) and the refresh goes on in process. This process may run
    the tests' Ray runtime, which the executor would use: it is made to look absent."""
    import socket

    import ray

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"ray://127.0.0.1:{probe.getsockname()[1]}"
    store = filled(tmp_path, events)
    executor = RayRollupExecutor(address=address, min_rows=100)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with caplog.at_level(logging.WARNING, logger="assay.rollups"):
        done = rollups.refresh(store, TENANT, "fraud", executor=executor)
    monkeypatch.undo()
    assert len(done) == 2 * HOURS and stored(store) == in_process
    assert executor.sent == RaySent() and not executor.started
    [record] = [r for r in caplog.records if r.name == "assay.rollups"]
    message = record.getMessage()
    assert address in message and "in process" in message and "Connection refused" in message
    executor.close()
    store.close()


def monitoring(**engine: Any) -> MonitoringConfig:
    return MonitoringConfig.model_validate({"engine": engine, "models": [{
        "name": "fraud", "tenant": TENANT, "min_rows": 10,
        "monitors": [{"name": "auc", "kind": "metric", "metric": "roc_auc", "window": "1d",
                      "condition": {"op": "<", "value": 0.99}}]}]})  # fmt: skip


def test_the_monitor_schedule_hands_its_refresh_to_ray(
    ray_runtime: Any, events: Events, in_process: list, tmp_path: Path
) -> None:
    """``engine: ray`` in assay.yaml: a pass rebuilds the dirty buckets on Ray and judges
    day 1 (hours 24-29, both versions) and day 0, which the labels restated, with
    scikit-learn's ROC AUC."""
    store = filled(tmp_path / "data", events)
    config = monitoring(name="ray", ray_min_rows=0)
    executor = rollup_executor(config.engine)
    assert isinstance(executor, RayRollupExecutor) and executor.min_rows == 0
    seen: list[dict[str, Any]] = []
    scheduler = MonitorScheduler(store, config, tmp_path, rollups=executor,
                                 on_evaluation=lambda t, m, result: seen.append(result),
                                 clock=lambda: DAY0 + timedelta(days=2, hours=1))  # fmt: skip
    notes = scheduler.run_once()
    assert executor.sent.buckets == 2 * HOURS and stored(store) == in_process
    [window] = seen[0]["windows"]
    day1 = sklearn_window(events, events.hour >= 24)
    assert_window(window, day1)
    value = {n.labels.get("window_start"): n.value for n in notes if n.labels["monitor"] == "auc"}
    day0 = sklearn_window(events, events.hour < 24)  # restated by its late labels
    assert value == {None: pytest.approx(day1["roc_auc"], rel=1e-9),
                     "2026-03-02T00:00:00Z": pytest.approx(day0["roc_auc"], rel=1e-9)}  # fmt: skip
    scheduler.close()
    assert ray_runtime.is_initialized()  # the shared runtime was not the executor's
    store.close()


SERVER_PROCESS = """
import json, sys, threading, time
from datetime import UTC, datetime
import ray
from assay.monitors.config import MonitoringConfig
from assay.monitors.wiring import build_scheduler
from assay.store.duckdb_store import DuckDBStore

config = MonitoringConfig.model_validate(json.loads(sys.argv[1]))
store = DuckDBStore(sys.argv[2])
scheduler, dispatcher = build_scheduler(store, config, sys.argv[2])
scheduler.clock = lambda: datetime(2026, 3, 4, 1, tzinfo=UTC)
passed = threading.Event()
scheduler.after_pass = passed.set
before = ray.is_initialized()
scheduler.start()  # as `assay serve` does: passes on the schedule's thread
assert passed.wait(90), "no monitor pass within 90 s"
during = (ray.is_initialized(), scheduler.rollups.started, scheduler.rollups.sent.buckets)
scheduler.stop()  # the schedule's thread ends before the runtime is shut down
alive = ray.get(ray.remote(lambda: "alive").remote())
started = time.monotonic()
scheduler.close()
dispatcher.close()
store.close()
print(json.dumps({"before": before, "during": during, "alive": alive,
                  "after": ray.is_initialized(), "close_seconds": time.monotonic() - started}))
"""


def test_the_server_starts_a_local_runtime_on_first_use_and_shuts_it_down(
    events: Events, in_process: list, tmp_path: Path
) -> None:
    """In a process without Ray running (a separate one: the shared runtime is untouched),
    the schedule's first large refresh starts a local runtime from its thread; the
    runtime outlives that thread and ``close()`` shuts it down promptly."""
    filled(tmp_path, events).close()
    config = monitoring(name="ray", ray_min_rows=0, ray_cpus=1).model_dump(
        by_alias=True, exclude_unset=True
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SERVER_PROCESS),
                           json.dumps(config), str(tmp_path)],
                          capture_output=True, text=True, timeout=150, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] is False and report["during"] == [True, True, 2 * HOURS]
    assert report["alive"] == "alive" and report["after"] is False
    assert report["close_seconds"] < 30
    store = DuckDBStore(tmp_path)
    assert stored(store) == in_process
    store.close()


def test_get_evaluations_rebuilds_with_the_configured_engine(
    ray_runtime: Any, events: Events, tmp_path: Path
) -> None:
    """`assay serve` with `engine: ray` sets app.state.rollups: GET /evaluations uses it."""
    from fastapi.testclient import TestClient

    from assay.cli.serve import build_app

    filled(tmp_path, events).close()  # the data dir as a server finds it: every bucket dirty
    app = build_app(tmp_path, None, {}, False)
    executor = RayRollupExecutor(min_rows=0, task_rows=2_000)
    app.state.rollups = executor
    _, key = app.state.control.create_key(TENANT, "read", actor="test")
    with TestClient(app) as client:
        response = client.get(
            "/v1/models/fraud/evaluations",
            params={"version": "v1", "window": "1d"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    assert executor.sent.buckets == 2 * HOURS  # every dirty bucket was built by Ray
    day = (events.version == "v1") & (events.hour < 24)
    assert_window(response.json()["windows"][0], sklearn_window(events, day))
    executor.close()
    app.state.store.close()
    app.state.control.close()
