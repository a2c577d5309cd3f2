"""PostgreSQL only: several replicas (stores) sharing one database at the same time.

Plus the optional dependency and connection errors, which need no server.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
import pytest

from assay.errors import MissingDependencyError, StoreUnavailableError
from assay.store import sql
from assay.store.base import Idempotency, Rollup, empty_prediction_table, label_schema
from assay.store.model import ModelSpec

T = TypeVar("T")
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
SPEC = ModelSpec(name="m", task="binary", segments=["channel"])


def _store(url: str) -> Any:
    from assay.store.postgres_store import PostgresStore

    return PostgresStore(url)


def _parallel(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..n-1)`` in ``n`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _predictions(keys: list[int]) -> pa.Table:
    rows = [
        {"id": f"e{k:05d}", "version": f"v{k % 2}", "timestamp": T0 + (k % 360) * MINUTE,
         "score": (k % 100) / 100, "prediction": float(k % 2), "segment.channel": "web"}
        for k in keys
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=empty_prediction_table(SPEC))


def _labels(keys: list[int]) -> pa.Table:
    rows = [{"id": f"e{k:05d}", "label": float(k % 3 == 0), "timestamp": T0} for k in keys]
    return pa.Table.from_pylist(rows, schema=label_schema(SPEC))


def test_replicas_starting_together_migrate_once(postgres_schema_url: str) -> None:
    import psycopg

    stores = _parallel(6, lambda _: _store(postgres_schema_url))
    assert [s.schema_version() for s in stores] == [sql.SCHEMA_VERSION] * 6
    with psycopg.connect(postgres_schema_url) as conn:
        versions = conn.execute("SELECT version FROM assay_schema ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, sql.SCHEMA_VERSION + 1)]
    for store in stores:
        store.close()


def test_replicas_registering_together_get_distinct_models(postgres_schema_url: str) -> None:
    stores = [_store(postgres_schema_url) for _ in range(3)]
    specs = [ModelSpec(name=f"m{i}", task="regression") for i in range(12)]
    made = _parallel(12, lambda i: stores[i % 3].register_model("acme", specs[i]))
    assert made == [(spec, True) for spec in specs]
    same = ModelSpec(name="same", task="binary")
    again = _parallel(9, lambda i: stores[i % 3].register_model("acme", same))
    assert sorted(created for _, created in again) == [False] * 8 + [True]
    schema = empty_prediction_table(specs[0])
    for i, spec in enumerate(specs):
        row = {"id": f"r{i}", "version": "v", "timestamp": T0, "score": None, "prediction": 1.0}
        events = pa.Table.from_pylist([row], schema=schema)
        stores[(i + 1) % 3].append_predictions("acme", spec.name, events)
    for i, spec in enumerate(specs):
        assert stores[i % 3].scan("acme", spec.name).column("id").to_pylist() == [f"r{i}"]
    for store in stores:
        store.close()


def _roll_up(store: Any) -> None:
    """One rollup pass as the service runs it: read the dirty list, then scan each bucket."""
    for dirty in store.dirty_buckets("acme", "m"):
        table = store.scan("acme", "m", version=dirty.version, start=dirty.bucket,
                           end=dirty.bucket + HOUR)  # fmt: skip
        labeled = table.num_rows - table.column("label").null_count
        rollup = Rollup(dirty.version, dirty.bucket, "", "", table.num_rows, labeled, b"")
        store.replace_rollups("acme", "m", dirty, [rollup])


def test_concurrent_writers_and_a_rollup_worker_lose_nothing(postgres_schema_url: str) -> None:
    stores = [_store(postgres_schema_url) for _ in range(3)]
    stores[0].register_model("acme", SPEC)
    rng = random.Random(7)
    sent = [rng.sample(range(3000), 1200) for _ in range(6)]  # overlapping predictions
    labeled = [rng.sample(range(3600), 900) for _ in range(3)]  # some never predicted
    writing = threading.Event()
    writing.set()
    remaining, lock = [9], threading.Lock()

    def work(i: int) -> tuple[int, int, int]:
        if i == 9:  # the rollup worker runs while the others write
            while writing.is_set():
                _roll_up(stores[2])
            return 0, 0, 0
        store = stores[i % 2]
        keys, batch, append = (
            (sent[i], _predictions, store.append_predictions)
            if i < 6
            else (labeled[i - 6], _labels, store.append_labels)
        )
        totals = [0, 0, 0]
        for start in range(0, len(keys), 150):
            result = append("acme", "m", batch(keys[start : start + 150]))
            totals[0] += result.accepted
            totals[1] += result.duplicates
            totals[2] += result.unmatched or 0
        return totals[0], totals[1], totals[2]

    def run(i: int) -> tuple[int, int, int]:
        try:
            return work(i)
        finally:
            with lock:
                remaining[0] -= i != 9
                if remaining[0] == 0:
                    writing.clear()

    results = _parallel(10, run)
    predicted = set().union(*map(set, sent))
    label_ids = set().union(*map(set, labeled))
    assert sum(r[0] for r in results[:6]) == len(predicted)
    assert sum(r[0] + r[1] for r in results[:6]) == sum(map(len, sent))
    assert sum(r[0] for r in results[6:9]) == len(label_ids)

    _roll_up(stores[1])
    assert stores[1].dirty_buckets("acme", "m") == []
    table = stores[1].scan("acme", "m")
    assert table.num_rows == len(predicted)
    assert table.num_rows - table.column("label").null_count == len(predicted & label_ids)
    truth: dict[tuple[str, datetime], list[int]] = {}
    for r in table.to_pylist():
        counts = truth.setdefault((r["version"], r["timestamp"].replace(minute=0)), [0, 0])
        counts[0] += 1
        counts[1] += r["label"] is not None
    rolled = {
        (r.version, r.bucket): [r.rows, r.labeled] for r in stores[1].load_rollups("acme", "m")
    }
    assert rolled == truth
    for store in stores:
        store.close()


def test_a_closed_store_answers_unavailable(postgres_schema_url: str) -> None:
    store = _store(postgres_schema_url)
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailableError):
        store.ping()


def test_an_unreachable_server_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreUnavailableError):
        _store("postgresql://127.0.0.1:1/assay?connect_timeout=2")


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(MissingDependencyError, match=r"assay\[postgres\]"):
        _store("postgresql:///postgres")


def test_a_label_waits_for_an_in_flight_batch_with_its_prediction(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic form of the race above: replica A has inserted prediction x but not
    committed; replica B's label for x must not commit as unmatched beside it (the bucket
    could then be rolled up clean without the label)."""
    from assay.store import postgres_store

    inserted, release = threading.Event(), threading.Event()
    record = postgres_store._record_idempotency

    def paused(cur: Any, tenant: str, idem: Any, result: Any) -> None:
        record(cur, tenant, idem, result)
        if idem is not None and idem.key == "pause":  # A: inserted, not yet committed
            inserted.set()
            release.wait(10)

    monkeypatch.setattr(postgres_store, "_record_idempotency", paused)
    a, b = _store(postgres_schema_url), _store(postgres_schema_url)
    a.register_model("acme", SPEC)
    answers: dict[str, Any] = {}
    writer = threading.Thread(
        target=lambda: answers.setdefault(
            "p", a.append_predictions("acme", "m", _predictions([5]), Idempotency("pause", "h", {}))
        )
    )
    writer.start()
    assert inserted.wait(10)
    labeler = threading.Thread(
        target=lambda: answers.setdefault("l", b.append_labels("acme", "m", _labels([5])))
    )
    labeler.start()
    labeler.join(0.5)
    still_waiting = labeler.is_alive()
    release.set()
    writer.join(10)
    labeler.join(10)
    assert still_waiting
    assert answers["p"].accepted == 1
    assert answers["l"].unmatched == 0
    [dirty] = b.dirty_buckets("acme", "m")
    _roll_up(b)
    assert [(r.rows, r.labeled) for r in b.load_rollups("acme", "m")] == [(1, 1)]
    assert dirty.bucket == T0
    a.close()
    b.close()
