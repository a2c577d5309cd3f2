"""``Store.append_many``: several batches in one transaction, each answered as if alone.

Every expected count comes from a brute-force replay of the batches in plain Python
(a set of stored keys), on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from assay.store.base import (
    AppendResult,
    Idempotency,
    Recorded,
    empty_prediction_table,
    label_schema,
)
from assay.store.model import ModelSpec

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
SPEC = ModelSpec(name="m", task="binary", features={"amount": "numeric"}, segments=["channel"])


def predictions(rows: list[tuple[str, str, int, float]]) -> pa.Table:
    """Canonical predictions from (id, version, minute after T0, score)."""
    full = [
        {**dict.fromkeys(empty_prediction_table(SPEC).names), "id": i, "version": v,
         "timestamp": T0 + timedelta(minutes=m), "score": s, "feature.amount": float(m)}
        for i, v, m, s in rows
    ]  # fmt: skip
    return pa.Table.from_pylist(full, schema=empty_prediction_table(SPEC))


def labels(rows: list[tuple[str, float]]) -> pa.Table:
    full = [{"id": i, "label": y, "timestamp": T0} for i, y in rows]
    return pa.Table.from_pylist(full, schema=label_schema(SPEC))


def hour(minute: int) -> datetime:
    return T0 + timedelta(hours=minute // 60)


def random_batches(seed: int, count: int, pool: int) -> list[list[tuple[str, str, int, float]]]:
    """Batches drawn from a small pool of (id, version): repeats across batches, none within."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        picks = rng.choice(pool, size=int(rng.integers(1, 12)), replace=False)
        batches.append([(f"e{k // 2}", f"v{k % 2}", int(rng.integers(0, 240)),
                         float(rng.random())) for k in picks])  # fmt: skip
    return batches


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_predictions_in_one_call_answer_as_one_after_the_other(store: Any, seed: int) -> None:
    store.register_model("acme", SPEC)
    first, second = random_batches(seed, 3, 30), random_batches(seed + 100, 8, 30)
    fresh_only = [[(f"n{seed}-{k}", "v1", 7 * k, 0.5)] for k in range(3)]  # no repeat at all
    stored: dict[tuple[str, str], tuple[int, float]] = {}  # the reference: first write wins
    touched_hours: set[tuple[str, datetime]] = set()  # hours of accepted events
    sent_hours: set[tuple[str, datetime]] = set()  # hours of batches with any accepted event
    for call in (first, second, fresh_only):
        expected = []
        for batch in call:
            fresh = [(i, v, m, s) for i, v, m, s in batch if (i, v) not in stored]
            for i, v, m, s in fresh:
                stored[(i, v)] = (m, s)
                touched_hours.add((v, hour(m)))
            if fresh:
                sent_hours |= {(v, hour(m)) for _, v, m, _ in batch}
            expected.append(AppendResult(len(fresh), len(batch) - len(fresh)))
        got = store.append_many("acme", "m", "predictions",
                                [(predictions(b), None) for b in call])  # fmt: skip
        assert got == expected
    table = store.scan("acme", "m")
    assert {(r["id"], r["version"]): (int(r["feature.amount"]), r["score"])
            for r in table.to_pylist()} == stored  # fmt: skip
    assert table.num_rows == len(stored)
    dirty = {(d.version, d.bucket) for d in store.dirty_buckets("acme", "m")}
    assert touched_hours <= dirty <= sent_hours


def test_labels_in_one_call_count_duplicates_and_unmatched(store: Any) -> None:
    store.register_model("acme", SPEC)
    store.append_predictions("acme", "m", predictions(
        [("a", "v1", 5, 0.1), ("a", "v2", 65, 0.2), ("b", "v1", 125, 0.3), ("c", "v1", 185, 0.4)]
    ))  # fmt: skip
    for dirty in store.dirty_buckets("acme", "m"):
        store.replace_rollups("acme", "m", dirty, [])
    store.append_labels("acme", "m", labels([("c", 1.0)]))
    for dirty in store.dirty_buckets("acme", "m"):
        store.replace_rollups("acme", "m", dirty, [])
    got = store.append_many("acme", "m", "labels", [
        (labels([("a", 1.0), ("x", 0.0)]), None),  # a matches two versions; x is not predicted
        (labels([("a", 0.0), ("c", 0.0), ("y", 1.0)]), None),  # a: this call; c: stored before
        (labels([("x", 1.0)]), None),  # x: earlier in this call
    ])  # fmt: skip
    assert got == [AppendResult(2, 0, 1), AppendResult(1, 2, 1), AppendResult(0, 1, 0)]
    scanned = {(r["id"], r["version"]): r["label"] for r in store.scan("acme", "m").to_pylist()}
    assert scanned == {("a", "v1"): 1.0, ("a", "v2"): 1.0, ("b", "v1"): None, ("c", "v1"): 1.0}
    assert {(d.version, d.bucket) for d in store.dirty_buckets("acme", "m")} == {
        ("v1", T0), ("v2", T0 + timedelta(hours=1))
    }  # fmt: skip


def test_idempotency_keys_recorded_before_or_earlier_in_the_call(store: Any) -> None:
    store.register_model("acme", SPEC)
    store.append_predictions("acme", "m", predictions([("a", "v1", 1, 0.5)]),
                             Idempotency("k0", "h0", {"extra": 1}))  # fmt: skip
    got = store.append_many("acme", "m", "predictions", [
        (predictions([("b", "v1", 2, 0.5), ("c", "v1", 3, 0.5)]), Idempotency("k1", "h1", {})),
        (predictions([("d", "v1", 4, 0.5)]), Idempotency("k0", "other", {})),  # recorded before
        (predictions([("e", "v1", 5, 0.5)]), Idempotency("k1", "h9", {})),  # earlier in call
        (predictions([("c", "v1", 6, 0.5), ("f", "v1", 7, 0.5)]), None),
    ])  # fmt: skip
    assert got == [
        AppendResult(2, 0),
        Recorded("h0", {"accepted": 1, "duplicates": 0, "extra": 1}),
        Recorded("h1", {"accepted": 2, "duplicates": 0}),
        AppendResult(1, 1),
    ]
    assert sorted(store.scan("acme", "m").column("id").to_pylist()) == ["a", "b", "c", "f"]
    assert store.idempotent_answer("acme", "k1") == ("h1", {"accepted": 2, "duplicates": 0})


def test_a_failing_call_stores_nothing_of_any_batch(store: Any) -> None:
    store.register_model("acme", SPEC)
    good = predictions([("a", "v1", 1, 0.5)])
    broken = good.set_column(0, "id", pa.array([None], pa.string()))  # ids are required
    with pytest.raises(Exception, match=r"(?i)null"):
        store.append_many("acme", "m", "predictions",
                          [(good, Idempotency("k1", "h1", {})), (broken, None)])  # fmt: skip
    assert store.scan("acme", "m").num_rows == 0
    assert store.dirty_buckets("acme", "m") == []
    assert store.idempotent_answer("acme", "k1") is None
    # the store is usable afterwards, and the good batch alone goes in
    assert store.append_many("acme", "m", "predictions", [(good, None)]) == [AppendResult(1, 0)]


def test_a_reader_never_misses_events_appended_while_it_rebuilds(store: Any) -> None:
    """Appends into one hour race a rollup worker (read marks, count rows, replace): when
    both stop and the last dirty marks are served, the rollup counts every event."""
    import threading

    from assay.store.base import Rollup

    store.register_model("acme", SPEC)
    done = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            for k in range(60):
                batch = [(f"r{k}-{i}", "v1", i % 50, 0.5) for i in range(20)]
                store.append_many("acme", "m", "predictions", [(predictions(batch), None)])
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            done.set()

    def rebuild() -> int:
        rebuilt = 0
        for dirty in store.dirty_buckets("acme", "m"):
            rows = store.scan("acme", "m", version=dirty.version, start=dirty.bucket,
                              end=dirty.bucket + timedelta(hours=1)).num_rows  # fmt: skip
            rollup = Rollup(dirty.version, dirty.bucket, "", "", rows, 0, b"")
            store.replace_rollups("acme", "m", dirty, [rollup])
            rebuilt += 1
        return rebuilt

    writer = threading.Thread(target=append)
    writer.start()
    while not done.is_set():
        rebuild()
    writer.join()
    rebuild()
    assert not errors
    assert store.dirty_buckets("acme", "m") == []
    assert [(r.bucket, r.rows) for r in store.load_rollups("acme", "m")] == [(T0, 60 * 20)]


def test_new_events_in_an_hour_whose_mark_was_taken_get_a_new_mark(store: Any) -> None:
    store.register_model("acme", SPEC)
    store.append_predictions("acme", "m", predictions([("a", "v1", 1, 0.5)]))
    store.append_predictions("acme", "m", predictions([("b", "v1", 2, 0.5)]))
    [taken] = store.dirty_buckets("acme", "m")
    store.append_predictions("acme", "m", predictions([("c", "v1", 3, 0.5)]))
    store.replace_rollups("acme", "m", taken, [])  # built before c: the hour stays dirty
    [again] = store.dirty_buckets("acme", "m")
    assert (again.version, again.bucket) == ("v1", T0) and again.mark > taken.mark
    store.replace_rollups("acme", "m", again, [])
    assert store.dirty_buckets("acme", "m") == []
    store.append_predictions("acme", "m", predictions([("d", "v1", 4, 0.5)]))
    assert [(d.version, d.bucket) for d in store.dirty_buckets("acme", "m")] == [("v1", T0)]
