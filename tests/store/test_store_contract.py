"""The Store contract: one suite, run on every backend (``backend`` fixture in conftest).

Expected values are written out by hand here (tables, buckets, counts), never taken from
another backend's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from assay.errors import ConflictError, NotFoundError, SchemaVersionError
from assay.store import sql
from assay.store.base import (
    AppendResult,
    DirtyBucket,
    Idempotency,
    Rollup,
    VersionInfo,
    empty_prediction_table,
    label_schema,
)
from assay.store.model import ModelSpec

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)  # a bucket edge
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)
TS = pa.timestamp("us", tz="UTC")

BINARY = ModelSpec(
    name="fraud",
    task="binary",
    features={"amount": "numeric", "country": "categorical"},
    segments=["channel"],
)
MULTICLASS = ModelSpec(
    name="zoo", task="multiclass", classes=["cat", "dog"], features={"size": "numeric"}
)
REGRESSION = ModelSpec(name="price", task="regression")

# the scan's columns and types, written out per model
SCAN_TYPES = {
    "fraud": [
        ("id", pa.string()), ("version", pa.string()), ("timestamp", TS),
        ("score", pa.float64()), ("prediction", pa.float64()),
        ("feature.amount", pa.float64()), ("feature.country", pa.string()),
        ("segment.channel", pa.string()), ("latency_ms", pa.float64()), ("error", pa.float64()),
        ("label", pa.float64()), ("label_timestamp", TS),
    ],
    "zoo": [
        ("id", pa.string()), ("version", pa.string()), ("timestamp", TS),
        ("score", pa.float64()), ("prediction", pa.string()), ("feature.size", pa.float64()),
        ("latency_ms", pa.float64()), ("error", pa.float64()),
        ("scores.cat", pa.float64()), ("scores.dog", pa.float64()),
        ("label", pa.string()), ("label_timestamp", TS),
    ],
    "price": [
        ("id", pa.string()), ("version", pa.string()), ("timestamp", TS),
        ("score", pa.float64()), ("prediction", pa.float64()),
        ("latency_ms", pa.float64()), ("error", pa.float64()),
        ("label", pa.float64()), ("label_timestamp", TS),
    ],
}  # fmt: skip


def at(minutes: float) -> datetime:
    """``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def predictions(spec: ModelSpec, *rows: dict[str, Any]) -> pa.Table:
    """Canonical predictions from short rows (version defaults to v1, the rest to null)."""
    schema = empty_prediction_table(spec)
    full = [{**dict.fromkeys(schema.names), "version": "v1", **row} for row in rows]
    return pa.Table.from_pylist(full, schema=schema)


def labels(spec: ModelSpec, *rows: tuple[str, Any, datetime]) -> pa.Table:
    """Canonical labels from (id, label, timestamp) tuples."""
    full = [{"id": i, "label": y, "timestamp": t} for i, y, t in rows]
    return pa.Table.from_pylist(full, schema=label_schema(spec))


def row(id_: str, ts: datetime, **values: Any) -> dict[str, Any]:
    """One prediction row; keyword names use '__' for '.' (feature__amount)."""
    return {"id": id_, "timestamp": ts, **{k.replace("__", "."): v for k, v in values.items()}}


def scanned(spec: ModelSpec, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Expected scan rows: every column of the model, nulls where a row gives none."""
    names = [name for name, _ in SCAN_TYPES[spec.name]]
    return [{**dict.fromkeys(names), "version": "v1", **r} for r in rows]


def ids(table: pa.Table) -> list[str]:
    return table.column("id").to_pylist()


def types(table: pa.Table) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in table.schema]


def clear_dirty(store: Any, tenant: str, model: str) -> None:
    for dirty in store.dirty_buckets(tenant, model):
        store.replace_rollups(tenant, model, dirty, [])


# -- models --------------------------------------------------------------------------------


def test_register_is_idempotent_and_lists_by_name(store: Any) -> None:
    assert store.register_model("acme", REGRESSION) == (REGRESSION, True)
    assert store.register_model("acme", BINARY) == (BINARY, True)
    assert store.register_model("acme", BINARY) == (BINARY, False)
    assert store.get_model("acme", "fraud") == BINARY
    assert store.get_model("acme", "price") == REGRESSION
    assert [m.name for m in store.list_models("acme")] == ["fraud", "price"]
    assert store.list_models("globex") == []


def test_register_with_other_columns_conflicts(store: Any) -> None:
    store.register_model("acme", BINARY)
    other = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"})
    with pytest.raises(ConflictError):
        store.register_model("acme", other)
    assert store.get_model("acme", "fraud") == BINARY


def test_same_name_in_two_tenants_are_two_models(store: Any) -> None:
    theirs = ModelSpec(name="fraud", task="regression")
    store.register_model("acme", BINARY)
    assert store.register_model("globex", theirs) == (theirs, True)
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(1))))
    assert store.get_model("globex", "fraud") == theirs
    assert store.scan("globex", "fraud").num_rows == 0
    assert store.list_versions("globex", "fraud") == []
    assert store.dirty_buckets("globex", "fraud") == []
    assert ids(store.scan("acme", "fraud")) == ["a"]


FOREIGN_CALLS: dict[str, Callable[[Any, str, str], Any]] = {
    "get_model": lambda s, t, m: s.get_model(t, m),
    "list_versions": lambda s, t, m: s.list_versions(t, m),
    "append_predictions": lambda s, t, m: s.append_predictions(
        t, m, predictions(BINARY, row("b", at(2)))
    ),
    "append_labels": lambda s, t, m: s.append_labels(t, m, labels(BINARY, ("a", 1.0, at(3)))),
    "scan": lambda s, t, m: s.scan(t, m),
    "dirty_buckets": lambda s, t, m: s.dirty_buckets(t, m),
    "replace_rollups": lambda s, t, m: s.replace_rollups(t, m, DirtyBucket("v1", T0, 1), []),
    "load_rollups": lambda s, t, m: s.load_rollups(t, m),
    "save_reference": lambda s, t, m: s.save_reference(t, m, b"ref", {}),
    "load_reference": lambda s, t, m: s.load_reference(t, m),
    "note_restated": lambda s, t, m: s.note_restated(t, m, [T0]),
    "restated": lambda s, t, m: s.restated(t, m),
    "forget_restated": lambda s, t, m: s.forget_restated(t, m, [T0]),
}


@pytest.mark.parametrize("method", list(FOREIGN_CALLS))
def test_other_tenants_and_unknown_models_are_not_found(store: Any, method: str) -> None:
    store.register_model("acme", BINARY)
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(1))))
    before = store.dirty_buckets("acme", "fraud")
    for tenant, model in (("globex", "fraud"), ("acme", "ghost")):
        with pytest.raises(NotFoundError):
            FOREIGN_CALLS[method](store, tenant, model)
    table = store.scan("acme", "fraud")
    assert ids(table) == ["a"] and table.column("label").to_pylist() == [None]
    assert store.dirty_buckets("acme", "fraud") == before
    assert store.load_reference("acme", "fraud") is None


# -- predictions and scans -----------------------------------------------------------------


def test_scan_returns_every_column_exactly(store: Any) -> None:
    store.register_model("acme", BINARY)
    odd = 'a,"b"\nc\\d\té 😀'
    batch = predictions(
        BINARY,
        row("p1", at(30), score=0.25, prediction=0.0, feature__amount=12.5,
            feature__country="DE", segment__channel="web", latency_ms=17.25, error=1.0),
        row("p2", at(5) + US, feature__country="", segment__channel="NULL"),
        row("p0", at(5) + US, score=0.1 + 0.2, prediction=1.0, feature__amount=-1e300,
            feature__country=odd, segment__channel=""),
        row("p3", at(59), score=5e-324, feature__amount=123456789.123456789, version="v2"),
    )  # fmt: skip
    assert store.append_predictions("acme", "fraud", batch) == AppendResult(4, 0)
    assert store.append_labels("acme", "fraud", labels(BINARY, ("p1", 1.0, at(200)))) == (
        AppendResult(1, 0, 0)
    )
    table = store.scan("acme", "fraud")
    assert types(table) == SCAN_TYPES["fraud"]
    assert table.to_pylist() == scanned(
        BINARY,
        row("p0", at(5) + US, score=0.30000000000000004, prediction=1.0,
            feature__amount=-1e300, feature__country=odd, segment__channel=""),
        row("p2", at(5) + US, feature__country="", segment__channel="NULL"),
        row("p1", at(30), score=0.25, prediction=0.0, feature__amount=12.5,
            feature__country="DE", segment__channel="web", latency_ms=17.25, error=1.0,
            label=1.0, label_timestamp=at(200)),
        row("p3", at(59), score=5e-324, feature__amount=123456789.12345679, version="v2"),
    )  # fmt: skip


def test_multiclass_scan_has_string_predictions_and_labels(store: Any) -> None:
    store.register_model("acme", MULTICLASS)
    batch = predictions(
        MULTICLASS, row("x", at(1), prediction="dog", feature__size=3.0), row("y", at(2))
    )
    store.append_predictions("acme", "zoo", batch)
    store.append_labels("acme", "zoo", labels(MULTICLASS, ("x", "cat", at(9))))
    table = store.scan("acme", "zoo")
    assert types(table) == SCAN_TYPES["zoo"]
    assert table.to_pylist() == scanned(
        MULTICLASS,
        row("x", at(1), prediction="dog", feature__size=3.0, label="cat", label_timestamp=at(9)),
        row("y", at(2)),
    )


@pytest.mark.parametrize("spec", [BINARY, MULTICLASS, REGRESSION], ids=lambda s: s.task)
def test_empty_scan_has_the_canonical_columns(store: Any, spec: ModelSpec) -> None:
    store.register_model("acme", spec)
    table = store.scan("acme", spec.name)
    assert table.num_rows == 0
    assert types(table) == SCAN_TYPES[spec.name]


def test_column_names_with_quotes_and_percent_signs(store: Any) -> None:
    spec = ModelSpec(
        name="odd", task="binary", features={'say "hi"': "numeric", "50%": "categorical"},
        segments=["it's"],
    )  # fmt: skip
    store.register_model("acme", spec)
    events = predictions(spec, {"id": "a", "timestamp": at(1), 'feature.say "hi"': 2.0,
                                "feature.50%": "x", "segment.it's": "s"})  # fmt: skip
    store.append_predictions("acme", "odd", events)
    table = store.scan("acme", "odd")
    assert table.column_names == [
        "id", "version", "timestamp", "score", "prediction", 'feature.say "hi"', "feature.50%",
        "segment.it's", "latency_ms", "error", "label", "label_timestamp",
    ]  # fmt: skip
    assert table.to_pylist()[0]['feature.say "hi"'] == 2.0
    assert table.to_pylist()[0]["segment.it's"] == "s"


def test_resent_ids_are_duplicates_and_the_first_write_wins(store: Any) -> None:
    store.register_model("acme", BINARY)
    first = predictions(BINARY, *(row(i, at(n), score=0.1) for n, i in enumerate("abc")))
    assert store.append_predictions("acme", "fraud", first) == AppendResult(3, 0)
    again = predictions(BINARY, row("b", at(1), score=0.9), row("c", at(50)), row("d", at(3)))
    assert store.append_predictions("acme", "fraud", again) == AppendResult(1, 2)
    assert store.append_predictions("acme", "fraud", again) == AppendResult(0, 3)
    table = store.scan("acme", "fraud")
    assert ids(table) == ["a", "b", "c", "d"]
    assert table.column("score").to_pylist() == [0.1, 0.1, 0.1, None]
    assert store.list_versions("acme", "fraud") == [VersionInfo("v1", 4, at(0), at(3))]


def test_empty_batches_store_nothing(store: Any) -> None:
    store.register_model("acme", BINARY)
    assert store.append_predictions("acme", "fraud", predictions(BINARY)) == AppendResult(0, 0)
    assert store.append_labels("acme", "fraud", labels(BINARY)) == AppendResult(0, 0, 0)
    assert store.dirty_buckets("acme", "fraud") == []
    assert store.list_versions("acme", "fraud") == []


def test_scan_filters_by_version_and_half_open_range(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(
        BINARY, row("a", T0 - US), row("b", T0), row("c", at(30), version="v2"),
        row("d", T0 + HOUR), row("e", T0 + HOUR + US, version="v2"),
    )  # fmt: skip
    store.append_predictions("acme", "fraud", batch)
    scan = store.scan
    assert ids(scan("acme", "fraud")) == ["a", "b", "c", "d", "e"]
    assert ids(scan("acme", "fraud", start=T0, end=T0 + HOUR)) == ["b", "c"]
    assert ids(scan("acme", "fraud", start=T0 + HOUR)) == ["d", "e"]
    assert ids(scan("acme", "fraud", end=T0)) == ["a"]
    assert ids(scan("acme", "fraud", version="v1")) == ["a", "b", "d"]
    assert ids(scan("acme", "fraud", version="v2", start=T0, end=T0 + 2 * HOUR)) == ["c", "e"]
    assert ids(scan("acme", "fraud", version="v3")) == []
    paris = timezone(timedelta(hours=1))  # the same instant as T0, written in another offset
    assert ids(scan("acme", "fraud", start=datetime(2026, 11, 1, 11, tzinfo=paris))) == [
        "b", "c", "d", "e"
    ]  # fmt: skip


def test_list_versions_counts_and_orders_by_first_seen(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(
        BINARY, row("a", at(30)), row("b", at(90)), row("c", at(200)),
        row("d", at(5), version="v2"), row("e", at(50), version="v2"),
    )  # fmt: skip
    store.append_predictions("acme", "fraud", batch)
    assert store.list_versions("acme", "fraud") == [
        VersionInfo("v2", 2, at(5), at(50)),
        VersionInfo("v1", 3, at(30), at(200)),
    ]


def test_versions_first_seen_at_the_same_moment_are_listed_by_name(store: Any) -> None:
    """Shadow versions often score the champion's events: the same first timestamp. Ties
    follow the names (byte order), the same on every call and backend."""
    store.register_model("acme", BINARY)
    names = [f"v{i:02d}" for i in range(40)] + ["V-upper", "v_low", "\u00e9t\u00e9"]
    shuffled = [names[(7 * i) % len(names)] for i in range(len(names))]
    batch = predictions(BINARY, *(row("a", at(1), version=v) for v in shuffled))
    store.append_predictions("acme", "fraud", batch)
    for _ in range(3):
        assert [v.version for v in store.list_versions("acme", "fraud")] == sorted(names)


# -- labels --------------------------------------------------------------------------------


def test_label_before_its_prediction(store: Any) -> None:
    store.register_model("acme", BINARY)
    early = labels(BINARY, ("x", 1.0, at(90)))
    assert store.append_labels("acme", "fraud", early) == AppendResult(1, 0, 1)
    assert store.dirty_buckets("acme", "fraud") == []
    assert store.scan("acme", "fraud").num_rows == 0
    assert store.append_labels("acme", "fraud", early) == AppendResult(0, 1, 0)
    batch = predictions(BINARY, row("x", at(10), version="v2"))
    assert store.append_predictions("acme", "fraud", batch) == AppendResult(1, 0)
    assert store.scan("acme", "fraud").to_pylist() == scanned(
        BINARY, row("x", at(10), version="v2", label=1.0, label_timestamp=at(90))
    )
    assert [(d.version, d.bucket) for d in store.dirty_buckets("acme", "fraud")] == [("v2", T0)]


def test_labels_out_of_order_mark_their_predictions_buckets(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(BINARY, row("a", at(10)), row("b", at(70)), row("c", at(130)))
    store.append_predictions("acme", "fraud", batch)
    clear_dirty(store, "acme", "fraud")
    first = labels(BINARY, ("c", 1.0, at(140)), ("zz", 0.0, at(1)), ("a", 0.0, at(300)))
    assert store.append_labels("acme", "fraud", first) == AppendResult(3, 0, 1)
    dirty = store.dirty_buckets("acme", "fraud")
    assert [(d.version, d.bucket) for d in dirty] == [("v1", T0), ("v1", T0 + 2 * HOUR)]
    second = labels(BINARY, ("a", 1.0, at(400)), ("b", 1.0, at(2)))
    assert store.append_labels("acme", "fraud", second) == AppendResult(1, 1, 0)
    assert [d.bucket for d in store.dirty_buckets("acme", "fraud")] == [
        T0, T0 + HOUR, T0 + 2 * HOUR
    ]  # fmt: skip
    table = store.scan("acme", "fraud")
    assert table.select(["id", "label", "label_timestamp"]).to_pylist() == [
        {"id": "a", "label": 0.0, "label_timestamp": at(300)},
        {"id": "b", "label": 1.0, "label_timestamp": at(2)},
        {"id": "c", "label": 1.0, "label_timestamp": at(140)},
    ]


# -- dirty buckets and rollups -------------------------------------------------------------


def test_dirty_buckets_are_utc_hours_per_version(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(
        BINARY, row("a", T0), row("b", T0 + HOUR - US), row("c", T0 + HOUR),
        row("d", at(30), version="v2"), row("e", T0 - US),
    )  # fmt: skip
    store.append_predictions("acme", "fraud", batch)
    dirty = store.dirty_buckets("acme", "fraud")
    assert [(d.version, d.bucket) for d in dirty] == [
        ("v1", T0 - HOUR), ("v1", T0), ("v2", T0), ("v1", T0 + HOUR)
    ]  # fmt: skip
    assert all(d.bucket.utcoffset() == timedelta(0) for d in dirty)
    assert len({d.mark for d in dirty}) == 4 and all(isinstance(d.mark, int) for d in dirty)


def test_remarked_bucket_stays_dirty_after_replace_with_the_old_mark(store: Any) -> None:
    store.register_model("acme", BINARY)
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(10))))
    [read] = store.dirty_buckets("acme", "fraud")
    store.append_predictions("acme", "fraud", predictions(BINARY, row("b", at(20))))
    [remarked] = store.dirty_buckets("acme", "fraud")
    assert (remarked.version, remarked.bucket) == ("v1", T0) and remarked.mark > read.mark
    stale = Rollup("v1", T0, "", "", 1, 0, b"stale")
    store.replace_rollups("acme", "fraud", read, [stale])
    assert store.dirty_buckets("acme", "fraud") == [remarked]
    assert store.load_rollups("acme", "fraud") == [stale]
    fresh = Rollup("v1", T0, "", "", 2, 0, b"fresh")
    store.replace_rollups("acme", "fraud", remarked, [fresh])
    assert store.dirty_buckets("acme", "fraud") == []
    assert store.load_rollups("acme", "fraud") == [fresh]
    store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(500))))
    [again] = store.dirty_buckets("acme", "fraud")
    assert (again.version, again.bucket) == ("v1", T0) and again.mark > remarked.mark


def _rollups(version: str, bucket: datetime) -> list[Rollup]:
    tag = f"{version}@{bucket:%H}".encode()
    return [
        Rollup(version, bucket, "", "", 10, 4, b"\x00\xff" + tag),
        Rollup(version, bucket, "channel", "web", 6, 1, b"web" + tag),
        Rollup(version, bucket, "channel", "app", 4, 3, b"app" + tag * 20_000),
    ]


def test_rollups_replace_and_load_with_filters(store: Any) -> None:
    store.register_model("acme", BINARY)
    buckets = [T0, T0 + HOUR, T0 + 2 * HOUR]
    for version in ("v2", "v1"):
        for bucket in buckets:
            store.replace_rollups("acme", "fraud", DirtyBucket(version, bucket, 0),
                                  _rollups(version, bucket))  # fmt: skip

    def overall(version: str, bucket: datetime) -> Rollup:
        return _rollups(version, bucket)[0]

    load = store.load_rollups
    assert load("acme", "fraud") == [overall(v, b) for b in buckets for v in ("v1", "v2")]
    assert load("acme", "fraud", version="v2") == [overall("v2", b) for b in buckets]
    assert load("acme", "fraud", start=T0 + HOUR, end=T0 + 2 * HOUR) == [
        overall("v1", T0 + HOUR), overall("v2", T0 + HOUR)
    ]  # fmt: skip
    assert load("acme", "fraud", version="v1", end=T0 + HOUR, segment_column="channel") == [
        _rollups("v1", T0)[2], _rollups("v1", T0)[1]
    ]  # fmt: skip
    assert load("acme", "fraud", segment_column="region") == []

    replacement = Rollup("v1", T0, "", "", 11, 5, b"new")
    store.replace_rollups("acme", "fraud", DirtyBucket("v1", T0, 0), [replacement])
    store.replace_rollups("acme", "fraud", DirtyBucket("v1", T0 + HOUR, 0), [])
    assert load("acme", "fraud", version="v1") == [replacement, overall("v1", T0 + 2 * HOUR)]
    assert (
        load("acme", "fraud", version="v1", segment_column="channel")
        == (_rollups("v1", T0 + 2 * HOUR)[:0:-1])
    )
    assert load("acme", "fraud", version="v2", segment_column="channel") == [
        r for b in buckets for r in _rollups("v2", b)[:0:-1]
    ]


# -- references and idempotency ------------------------------------------------------------


def test_reference_is_saved_replaced_and_per_model(store: Any) -> None:
    store.register_model("acme", BINARY)
    store.register_model("acme", REGRESSION)
    assert store.load_reference("acme", "fraud") is None
    meta = {"rows": 3, "features": ["amount"], "source": "train é"}
    store.save_reference("acme", "fraud", b"\x00states\xff", meta)
    assert store.load_reference("acme", "fraud") == (b"\x00states\xff", meta)
    store.save_reference("acme", "fraud", b"second", {"rows": 4})
    assert store.load_reference("acme", "fraud") == (b"second", {"rows": 4})
    assert store.load_reference("acme", "price") is None


def test_idempotency_answer_is_recorded_with_the_batch(store: Any) -> None:
    store.register_model("acme", BINARY)
    assert store.idempotent_answer("acme", "k1") is None
    batch = predictions(BINARY, row("a", at(1)), row("b", at(2)))
    store.append_predictions("acme", "fraud", batch, Idempotency("k1", "h1", {"batch": 7}))
    store.append_labels(
        "acme", "fraud", labels(BINARY, ("a", 1.0, at(3)), ("q", 0.0, at(4))),
        Idempotency("k2", "h2", {}),
    )  # fmt: skip
    assert store.idempotent_answer("acme", "k1") == (
        "h1", {"accepted": 2, "duplicates": 0, "batch": 7}
    )  # fmt: skip
    assert store.idempotent_answer("acme", "k2") == (
        "h2", {"accepted": 2, "duplicates": 0, "unmatched": 1}
    )  # fmt: skip
    assert store.idempotent_answer("globex", "k1") is None


def test_old_idempotency_answers_are_pruned_and_the_events_stay(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(BINARY, row("a", at(1)), row("b", at(2)))
    store.append_predictions("acme", "fraud", batch, Idempotency("k1", "h1", {}))
    store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(3))),
                        Idempotency("k2", "h2", {}))  # fmt: skip
    now = datetime.now(UTC)
    assert store.prune_idempotency(now - timedelta(hours=1)) == 0  # both are newer
    assert store.idempotent_answer("acme", "k1") is not None
    assert store.prune_idempotency(now + timedelta(minutes=1)) == 2
    assert store.idempotent_answer("acme", "k1") is None
    assert store.idempotent_answer("acme", "k2") is None
    assert len(store.scan("acme", "fraud")) == 2  # the events themselves are kept
    # the key is free again; its events are duplicates now, never stored twice
    again = store.append_predictions("acme", "fraud", batch, Idempotency("k1", "h9", {}))
    assert again.to_dict() == {"accepted": 0, "duplicates": 2}
    assert store.idempotent_answer("acme", "k1") == ("h9", {"accepted": 0, "duplicates": 2})


def test_a_reused_idempotency_key_rolls_the_whole_batch_back(store: Any) -> None:
    store.register_model("acme", BINARY)
    key = Idempotency("k1", "h1", {})
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(1))), key)
    clear_dirty(store, "acme", "fraud")
    with pytest.raises(Exception, match=r"(?i)key"):
        store.append_predictions("acme", "fraud", predictions(BINARY, row("b", T0 + HOUR)), key)
    with pytest.raises(Exception, match=r"(?i)key"):
        store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(2))), key)
    assert store.scan("acme", "fraud").to_pylist() == scanned(BINARY, row("a", at(1)))
    assert store.dirty_buckets("acme", "fraud") == []
    assert store.idempotent_answer("acme", "k1") == ("h1", {"accepted": 1, "duplicates": 0})


# -- schema and durability -----------------------------------------------------------------


def test_schema_version_and_ping(store: Any) -> None:
    assert store.schema_version() == sql.SCHEMA_VERSION
    assert store.ping() is None


def test_a_newer_schema_is_refused(backend: Any) -> None:
    backend.open().close()
    backend.execute(f"INSERT INTO assay_schema VALUES ({sql.SCHEMA_VERSION + 1})")
    with pytest.raises(SchemaVersionError):
        backend.open()


def test_everything_survives_close_and_reopen(backend: Any) -> None:
    store = backend.open()
    store.register_model("acme", BINARY)
    batch = predictions(BINARY, row("a", at(1), score=0.5), row("b", T0 + HOUR))
    store.append_predictions("acme", "fraud", batch, Idempotency("k1", "h1", {}))
    store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(2))))
    [first, second] = store.dirty_buckets("acme", "fraud")
    rollup = Rollup("v1", T0, "", "", 1, 1, b"s")
    store.replace_rollups("acme", "fraud", first, [rollup])
    store.save_reference("acme", "fraud", b"ref", {"n": 1})
    store.close()

    store = backend.open()
    assert store.schema_version() == sql.SCHEMA_VERSION
    assert store.list_models("acme") == [BINARY]
    assert store.scan("acme", "fraud").to_pylist() == scanned(
        BINARY, row("a", at(1), score=0.5, label=1.0, label_timestamp=at(2)),
        row("b", T0 + HOUR),
    )  # fmt: skip
    assert store.dirty_buckets("acme", "fraud") == [second]
    assert store.load_rollups("acme", "fraud") == [rollup]
    assert store.load_reference("acme", "fraud") == (b"ref", {"n": 1})
    assert store.idempotent_answer("acme", "k1") == ("h1", {"accepted": 2, "duplicates": 0})
    # a model registered after reopening gets tables of its own
    assert store.register_model("acme", REGRESSION) == (REGRESSION, True)
    store.append_predictions("acme", "price", predictions(REGRESSION, row("z", at(3))))
    assert ids(store.scan("acme", "price")) == ["z"]
    assert ids(store.scan("acme", "fraud")) == ["a", "b"]
    assert store.append_predictions("acme", "fraud", batch) == AppendResult(0, 2)


def test_replace_many_swaps_several_buckets_at_once(store: Any) -> None:
    store.register_model("acme", BINARY)
    batch = predictions(BINARY, row("a", T0), row("b", T0 + HOUR), row("c", T0 + 2 * HOUR))
    store.append_predictions("acme", "fraud", batch)
    first, second, third = store.dirty_buckets("acme", "fraud")
    store.append_predictions("acme", "fraud", predictions(BINARY, row("d", T0 + HOUR)))
    built = [Rollup("v1", d.bucket, "", "", 1, 0, d.bucket.isoformat().encode())
             for d in (first, second)]  # fmt: skip
    store.replace_rollups_many("acme", "fraud", [(first, [built[0]]), (second, [built[1]])])
    # the first bucket is clean; the second was re-marked after it was read, so it stays dirty
    assert [(d.version, d.bucket) for d in store.dirty_buckets("acme", "fraud")] == [
        ("v1", T0 + HOUR), ("v1", T0 + 2 * HOUR)
    ]  # fmt: skip
    assert store.load_rollups("acme", "fraud") == built
    store.replace_rollups_many("acme", "fraud", [])
    assert third in store.dirty_buckets("acme", "fraud")


def test_a_shadow_version_may_score_the_same_event(store: Any) -> None:
    store.register_model("acme", BINARY)
    champion = predictions(BINARY, row("a", at(1), score=0.2), row("b", at(2), score=0.3))
    shadow = predictions(
        BINARY, row("a", at(1), version="v2", score=0.8), row("b", at(2), version="v2")
    )
    assert store.append_predictions("acme", "fraud", champion) == AppendResult(2, 0)
    assert store.append_predictions("acme", "fraud", shadow) == AppendResult(2, 0)
    assert store.append_predictions("acme", "fraud", shadow) == AppendResult(0, 2)
    # one label per event: it applies to both versions' predictions, and is matched once
    assert store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(5)))) == (
        AppendResult(1, 0, 0)
    )
    table = store.scan("acme", "fraud")
    assert [(r["id"], r["version"], r["score"], r["label"]) for r in table.to_pylist()] == [
        ("a", "v1", 0.2, 1.0), ("a", "v2", 0.8, 1.0),
        ("b", "v1", 0.3, None), ("b", "v2", None, None),
    ]  # fmt: skip
    assert [i.version for i in store.list_versions("acme", "fraud")] == ["v1", "v2"]


def test_a_version_1_store_is_migrated_keeping_its_predictions(backend: Any) -> None:
    """A store written before predictions were keyed by (id, version) upgrades in place."""
    store = backend.open()
    store.register_model("acme", BINARY)
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(1), score=0.4)))
    store.close()
    # turn it back into the version 1 layout: the prediction table keyed by id alone
    table = "p_1"
    if backend.name == "postgres":
        backend.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        backend.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    else:
        backend.execute(
            f"CREATE TABLE {table}_old AS SELECT * FROM {table}; DROP TABLE {table}; "
            f"CREATE TABLE {table} (id VARCHAR PRIMARY KEY, version VARCHAR NOT NULL, "
            "ts TIMESTAMPTZ NOT NULL, score DOUBLE, prediction DOUBLE, f_0 DOUBLE, f_1 VARCHAR, "
            "s_0 VARCHAR, latency_ms DOUBLE, error DOUBLE, received_at TIMESTAMPTZ NOT NULL); "
            f"INSERT INTO {table} SELECT * FROM {table}_old; DROP TABLE {table}_old; "
            f"CREATE INDEX {table}_ts ON {table} (ts)"
        )
    backend.execute("DELETE FROM assay_schema WHERE version > 1")
    store = backend.open()
    assert store.schema_version() == sql.SCHEMA_VERSION
    shadow = predictions(BINARY, row("a", at(1), version="v2", score=0.9))
    assert store.append_predictions("acme", "fraud", shadow) == AppendResult(1, 0)
    assert [(r["version"], r["score"]) for r in store.scan("acme", "fraud").to_pylist()] == [
        ("v1", 0.4), ("v2", 0.9)
    ]  # fmt: skip


def test_a_version_2_store_is_migrated_keeping_its_data(backend: Any) -> None:
    """A store written before Idempotency-Keys had an index of their own upgrades in place
    (DuckDB gains the index; PostgreSQL, whose primary key serves, only the version)."""
    store = backend.open()
    store.register_model("acme", BINARY)
    batch = predictions(BINARY, row("a", at(1), score=0.4), row("b", T0 + HOUR))
    store.append_predictions("acme", "fraud", batch, Idempotency("k1", "h1", {"n": 2}))
    store.append_labels("acme", "fraud", labels(BINARY, ("a", 1.0, at(2))))
    dirty = store.dirty_buckets("acme", "fraud")
    path = getattr(store, "path", None)
    store.close()
    if backend.name == "duckdb":  # the version 2 layout: no index of the keys alone
        backend.execute("DROP INDEX idempotency_by_key")
    backend.execute("DELETE FROM assay_schema WHERE version > 2")
    store = backend.open()
    assert store.schema_version() == sql.SCHEMA_VERSION
    assert store.scan("acme", "fraud").to_pylist() == scanned(
        BINARY, row("a", at(1), score=0.4, label=1.0, label_timestamp=at(2)), row("b", T0 + HOUR)
    )  # fmt: skip
    assert store.idempotent_answer("acme", "k1") == ("h1", {"accepted": 2, "duplicates": 0, "n": 2})
    assert store.dirty_buckets("acme", "fraud") == dirty
    assert store.append_predictions("acme", "fraud", batch) == AppendResult(0, 2)
    store.close()
    if backend.name == "duckdb":
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            found = con.execute(
                "SELECT expressions FROM duckdb_indexes() WHERE index_name = 'idempotency_by_key'"
            ).fetchall()
        finally:
            con.close()
        assert found == [("[idem_key]",)]


def test_a_version_3_store_is_migrated_with_class_score_columns(backend: Any) -> None:
    """Multiclass models registered before events carried class probabilities gain one
    column per class; their stored predictions keep their values, with no scores."""
    store = backend.open()
    store.register_model("acme", MULTICLASS)
    store.register_model("acme", BINARY)
    store.append_predictions("acme", "zoo", predictions(MULTICLASS,
                             row("a", at(1), prediction="cat", feature__size=2.0)))  # fmt: skip
    store.close()
    if backend.name == "postgres":  # the version 3 layout: no class score columns
        backend.execute("ALTER TABLE p_1 DROP COLUMN c_0, DROP COLUMN c_1")
    else:  # DuckDB drops no column of an indexed table: the table is rebuilt without them
        backend.execute(
            "DROP INDEX p_1_ts; CREATE TABLE p_1_old AS SELECT * EXCLUDE (c_0, c_1) FROM p_1; "
            "DROP TABLE p_1; CREATE TABLE p_1 (id VARCHAR NOT NULL, version VARCHAR NOT NULL, "
            "ts TIMESTAMPTZ NOT NULL, score DOUBLE, prediction VARCHAR, f_0 DOUBLE, "
            "latency_ms DOUBLE, error DOUBLE, received_at TIMESTAMPTZ NOT NULL, "
            "PRIMARY KEY (id, version)); INSERT INTO p_1 SELECT * FROM p_1_old; "
            "DROP TABLE p_1_old; CREATE INDEX p_1_ts ON p_1 (ts)"
        )
    backend.execute("DELETE FROM assay_schema WHERE version > 3")
    store = backend.open()
    assert store.schema_version() == sql.SCHEMA_VERSION
    scored = predictions(MULTICLASS, row("b", at(2), scores__cat=0.8, scores__dog=0.2))
    assert store.append_predictions("acme", "zoo", scored) == AppendResult(1, 0)
    assert store.scan("acme", "zoo").to_pylist() == scanned(
        MULTICLASS,
        row("a", at(1), prediction="cat", feature__size=2.0),
        row("b", at(2), scores__cat=0.8, scores__dog=0.2),
    )
    binary = predictions(BINARY, row("c", at(3), score=0.5))  # other models are untouched
    assert store.append_predictions("acme", "fraud", binary) == AppendResult(1, 0)


def test_rollouts_are_put_listed_replaced_and_deleted_per_model(store: Any) -> None:
    store.register_model("acme", BINARY)
    store.register_model("acme", REGRESSION)
    spec = {"champion": "v1", "challenger": "v2", "mode": "canary"}
    assert store.put_rollout("acme", "fraud", "v2-canary", spec) is True
    assert store.put_rollout("acme", "fraud", "v2-canary", {**spec, "mode": "ab"}) is False
    assert store.put_rollout("acme", "fraud", "a-shadow", {**spec, "mode": "shadow"}) is True
    assert store.get_rollouts("acme", "fraud") == {
        "a-shadow": {**spec, "mode": "shadow"},
        "v2-canary": {**spec, "mode": "ab"},
    }
    assert store.get_rollouts("acme", "price") == {}
    assert store.delete_rollout("acme", "fraud", "a-shadow") is True
    assert store.delete_rollout("acme", "fraud", "a-shadow") is False
    assert list(store.get_rollouts("acme", "fraud")) == ["v2-canary"]
    with pytest.raises(NotFoundError):
        store.get_rollouts("other", "fraud")


def test_restated_hours_are_kept_for_any_store_on_the_same_data(backend: Any) -> None:
    """Hours one server (store) noted are seen through any store object on the same data
    (another replica on the same database, or the same server after a restart) until
    forgotten; forgetting some leaves the others, such as hours noted meanwhile."""
    first = backend.open()
    first.register_model("acme", BINARY)
    first.register_model("acme", REGRESSION)
    assert first.restated("acme", "fraud") == set()
    first.note_restated("acme", "fraud", [T0 + HOUR, T0])
    first.note_restated("acme", "fraud", [T0 + 2 * HOUR, T0 + HOUR])  # a repeat is kept once
    first.note_restated("acme", "fraud", [])
    eastern = timezone(timedelta(hours=-5))
    first.note_restated("acme", "price", [datetime(2026, 11, 1, 5, tzinfo=eastern)])
    if backend.name == "postgres":  # a replica on the same database while the first is open
        second = backend.open()
    else:  # one process owns a DuckDB file: the same server, restarted
        first.close()
        second = backend.open()
    seen = second.restated("acme", "fraud")
    assert seen == {T0, T0 + HOUR, T0 + 2 * HOUR}
    assert all(hour.utcoffset() == timedelta(0) for hour in seen)
    assert second.restated("acme", "fraud") == seen  # reading forgets nothing
    assert second.restated("acme", "price") == {T0}  # 05:00 at UTC-5 is 10:00 UTC
    second.note_restated("acme", "fraud", [T0 + 3 * HOUR])  # noted after the read
    second.forget_restated("acme", "fraud", seen)
    second.forget_restated("acme", "fraud", [])
    assert second.restated("acme", "fraud") == {T0 + 3 * HOUR}
    assert second.restated("acme", "price") == {T0}  # other models keep theirs


def test_a_version_4_store_is_migrated_with_a_table_of_restated_hours(backend: Any) -> None:
    store = backend.open()
    store.register_model("acme", BINARY)
    store.append_predictions("acme", "fraud", predictions(BINARY, row("a", at(1), score=0.4)))
    dirty = store.dirty_buckets("acme", "fraud")
    store.close()
    backend.execute("DROP TABLE restated_hours")  # the version 4 layout
    backend.execute("DELETE FROM assay_schema WHERE version > 4")
    store = backend.open()
    assert store.schema_version() == sql.SCHEMA_VERSION
    assert store.scan("acme", "fraud").to_pylist() == scanned(BINARY, row("a", at(1), score=0.4))
    assert store.dirty_buckets("acme", "fraud") == dirty
    store.note_restated("acme", "fraud", [T0])
    assert store.restated("acme", "fraud") == {T0}
