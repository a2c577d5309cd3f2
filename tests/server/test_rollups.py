"""Rollups at the service level: merged hourly states equal a full recomputation.

The full recomputation scans the window's rows from the store and evaluates them with
scikit-learn (and with ``assay.evaluate`` on the same rows, which reads them once, with no
rollups); only buckets marked dirty are rebuilt.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import assay
from assay.engine import local
from assay.service import evaluations, ingest, rollups
from assay.service.ingest import IngestLimits
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

from .conftest import BASE, FRAUD, RTOL, Events, assert_metrics, make_events, sklearn_binary

TENANT, MODEL = "acme", "fraud"
SPEC = ModelSpec(**FRAUD)
POINT_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "ece",
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path)
    store.register_model(TENANT, SPEC)
    yield store
    store.close()


def add_predictions(store: DuckDBStore, ev: Events, idx: Any = None) -> None:
    body = orjson.dumps({"events": ev.predictions(idx)})
    batch = ingest.predictions_from_json(SPEC, body, IngestLimits())
    store.append_predictions(TENANT, MODEL, batch.table)


def add_labels(store: DuckDBStore, ev: Events, idx: Any) -> Any:
    body = orjson.dumps({"labels": ev.labels(idx)})
    return store.append_labels(
        TENANT, MODEL, ingest.labels_from_json(SPEC, body, IngestLimits()).table
    )


def dirty(store: DuckDBStore) -> set[tuple[str, datetime]]:
    return {(d.version, d.bucket) for d in store.dirty_buckets(TENANT, MODEL)}


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# -- the full recomputation --------------------------------------------------------------------


def recompute(
    store: DuckDBStore, start: datetime, end: datetime, segment: str | None = None
) -> dict[str, Any]:
    """rows, labeled and sklearn metrics of the stored rows in [start, end)."""
    rows = store.scan(TENANT, MODEL, start=start, end=end)
    if segment is not None:
        rows = rows.filter(
            pc.equal(pc.fill_null(rows.column("segment.channel"), "(null)"), segment)
        )
    labeled = rows.filter(pc.is_valid(rows.column("label")))
    y = labeled.column("label").to_numpy().astype(int)
    score = labeled.column("score").to_numpy()
    sent = labeled.column("prediction").to_numpy(zero_copy_only=False).astype(float)
    pred = np.where(np.isnan(sent), score >= SPEC.threshold, sent).astype(int)
    return {
        "rows": rows.num_rows,
        "labeled": labeled.num_rows,
        "metrics": sklearn_binary(y, score, pred),
        "table": labeled,
        "pred": pred,
    }


def assert_window_equals_recomputation(store: DuckDBStore, window: dict[str, Any]) -> None:
    start = datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
    full = recompute(store, start, end)
    assert (window["rows"], window["labeled"]) == (full["rows"], full["labeled"])
    assert_metrics(window["metrics"], full["metrics"])
    # assay.evaluate reads the same rows in one pass, without rollups
    table = full["table"]
    one_pass = pa.table(
        {
            "target": table.column("label"),
            "score": table.column("score"),
            "prediction": pa.array(full["pred"]),
        }
    )
    direct = assay.evaluate(
        one_pass, task="binary", target="target", score="score", prediction="prediction"
    ).to_dict()["metrics"]["overall"]
    for name in POINT_METRICS:
        assert window["metrics"][name] == pytest.approx(direct[name], rel=RTOL), name
    for value, part in window.get("segments", {}).items():
        seg = recompute(store, start, end, segment=value)
        assert (part["rows"], part["labeled"]) == (seg["rows"], seg["labeled"])
        assert_metrics(part["metrics"], seg["metrics"])


def evaluate(store: DuckDBStore, **kwargs: Any) -> list[dict[str, Any]]:
    return evaluations.evaluate_windows(store, TENANT, MODEL, **kwargs)["windows"]


# -- equality with the recomputation ----------------------------------------------------------


def test_rollups_equal_a_full_recomputation_also_after_late_labels(store: DuckDBStore) -> None:
    ev = make_events(70, 600, days=3)
    add_predictions(store, ev)
    rng = np.random.default_rng(71)
    order = rng.permutation(ev.n)
    add_labels(store, ev, order[:250])
    windows = evaluate(store, window="1d", segment="channel")
    assert len(windows) == 3
    for window in windows:
        assert_window_equals_recomputation(store, window)
    # late labels for two of the days, in two batches
    add_labels(store, ev, order[250:330])
    add_labels(store, ev, order[330:420])
    for window in evaluate(store, window="1d", segment="channel"):
        assert_window_equals_recomputation(store, window)
    for window in evaluate(store, window="6h"):
        assert_window_equals_recomputation(store, window)


def test_labels_before_their_predictions(store: DuckDBStore) -> None:
    ev = make_events(72, 400, days=2)
    first, second = np.arange(0, 200), np.arange(200, 400)
    add_predictions(store, ev, first)
    evaluate(store)
    # labels for everything: half match, half wait for their predictions
    answer = add_labels(store, ev, np.arange(ev.n))
    assert (answer.accepted, answer.unmatched) == (400, 200)
    assert {b for _, b in dirty(store)} <= {hour_of(ev.ts[i]) for i in first}
    add_predictions(store, ev, second[::-1])  # and in reverse order
    windows = evaluate(store, window="1d", segment="channel")
    assert sum(w["labeled"] for w in windows) == ev.n
    for window in windows:
        assert_window_equals_recomputation(store, window)
    for window, day in zip(windows, (0, 1), strict=True):
        mask = ev.day == day
        assert_metrics(
            window["metrics"], sklearn_binary(ev.y[mask], ev.score[mask], ev.pred()[mask])
        )


# -- dirty buckets ------------------------------------------------------------------------------


def test_a_late_label_marks_only_its_predictions_bucket(store: DuckDBStore) -> None:
    ev = make_events(73, 200, days=2)
    add_predictions(store, ev)
    assert dirty(store) == {(ev.version[i], hour_of(ev.ts[i])) for i in range(ev.n)}
    evaluate(store)
    assert dirty(store) == set()
    add_labels(store, ev, [17])
    assert dirty(store) == {(ev.version[17], hour_of(ev.ts[17]))}
    evaluate(store)
    add_labels(store, ev, [17])  # a duplicate changes nothing
    assert dirty(store) == set()
    stranger = {"labels": [{"id": "no-such-event", "label": 1}]}
    batch = ingest.labels_from_json(SPEC, orjson.dumps(stranger), IngestLimits())
    assert store.append_labels(TENANT, MODEL, batch.table).unmatched == 1
    assert dirty(store) == set()


def test_only_dirty_buckets_are_rebuilt(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = make_events(74, 300, days=3)
    add_predictions(store, ev)
    before = evaluate(store, window="1d")
    # labels for events of exactly two (version, hour) buckets
    keys = [(ev.version[i], hour_of(ev.ts[i])) for i in range(ev.n)]
    chosen = sorted(set(keys))[:: max(1, len(set(keys)) // 2)][:2]
    idx = [i for i, k in enumerate(keys) if k in chosen]
    add_labels(store, ev, idx)
    assert dirty(store) == set(chosen)

    built: list[tuple[str, datetime]] = []
    scanned: list[tuple[Any, Any, Any]] = []
    bucket_rollups, scan = rollups.bucket_rollups, store.scan

    def counting_rollups(spec: ModelSpec, version: str, bucket: datetime, rows: Any) -> Any:
        built.append((version, bucket))
        return bucket_rollups(spec, version, bucket, rows)

    def counting_scan(*args: Any, **kwargs: Any) -> Any:
        scanned.append((kwargs.get("version"), kwargs.get("start"), kwargs.get("end")))
        return scan(*args, **kwargs)

    monkeypatch.setattr(rollups, "bucket_rollups", counting_rollups)
    monkeypatch.setattr(store, "scan", counting_scan)
    after = evaluate(store, window="1d")
    assert sorted(built) == chosen
    assert sorted(scanned) == [(v, b, b + timedelta(hours=1)) for v, b in chosen]
    # windows without the new labels are untouched
    touched = {evaluations._window_start(b, timedelta(days=1)) for _, b in chosen}
    for old, new in zip(before, after, strict=True):
        start = datetime.fromisoformat(old["start"].replace("Z", "+00:00"))
        if start not in touched:
            assert new == old
    built.clear()
    scanned.clear()
    evaluate(store, window="1d")
    assert built == [] and scanned == []
    assert rollups.refresh(store, TENANT, MODEL) == []


# -- merging -------------------------------------------------------------------------------------


def test_merging_order_does_not_matter(store: DuckDBStore) -> None:
    ev = make_events(75, 500, days=1, hours=tuple(range(24)))
    add_predictions(store, ev)
    add_labels(store, ev, np.arange(0, ev.n, 3))
    rollups.refresh(store, TENANT, MODEL)
    parts = store.load_rollups(TENANT, MODEL)
    assert len(parts) > 20
    labeled = np.zeros(ev.n, bool)
    labeled[::3] = True
    expected = sklearn_binary(ev.y[labeled], ev.score[labeled], ev.pred()[labeled])

    def result(order: list[Any]) -> dict[str, Any]:
        states = rollups.merge_all([rollups.unpack(r.states) for r in order])
        metric = [s for name, s in sorted(states.items()) if name.startswith("metric:")]
        return local.finish(metric, seed=0)

    def tree(order: list[Any]) -> dict[str, Any]:
        bundles = [rollups.unpack(r.states) for r in order]
        while len(bundles) > 1:
            bundles = [rollups.merge_all(bundles[i : i + 2]) for i in range(0, len(bundles), 2)]
        metric = [s for name, s in sorted(bundles[0].items()) if name.startswith("metric:")]
        return local.finish(metric, seed=0)

    rng = random.Random(76)
    results = [result(parts), result(parts[::-1]), tree(parts)]
    for _ in range(3):
        shuffled = parts[:]
        rng.shuffle(shuffled)
        results.append(result(shuffled))
        results.append(tree(shuffled))
    for got in results:
        assert_metrics(got, expected)
        assert got["confusion_matrix"] == results[0]["confusion_matrix"]
        assert got["n"] == int(labeled.sum())


def test_bucket_boundaries_are_utc_hours(store: DuckDBStore) -> None:
    edge = BASE + timedelta(hours=5)
    ev = make_events(77, 4, days=1)
    ev.ts = [
        edge - timedelta(microseconds=1),
        edge,
        edge + timedelta(minutes=59, seconds=59),
        edge + timedelta(hours=1),
    ]
    ev.version[:] = "v1"
    add_predictions(store, ev)
    assert {b for _, b in dirty(store)} == {
        edge - timedelta(hours=1),
        edge,
        edge + timedelta(hours=1),
    }
    windows = evaluate(store, window="1h")
    assert [(w["start"], w["rows"]) for w in windows] == [
        ("2026-03-01T04:00:00Z", 1),
        ("2026-03-01T05:00:00Z", 2),
        ("2026-03-01T06:00:00Z", 1),
    ]
    assert all(datetime.fromisoformat(w["start"][:-1]).replace(tzinfo=UTC) for w in windows)
