"""Appending event batches to DuckDB: several batches per transaction, one durable commit.

The usual case, where no event of the batches is stored yet, is one plain ``INSERT`` of
all the batches together: DuckDB's ``INSERT ... ON CONFLICT DO NOTHING`` costs about
twice a plain insert, so the conflict check is left to the primary key itself. When a
key repeats (a re-sent event), the insert fails, the caller rolls the transaction back,
and the batches are applied again one at a time with ``ON CONFLICT DO NOTHING``, which
counts each batch's duplicates in order. Either way each batch's answer is what it would
have been had the batches been committed one after the other.

>>> import duckdb, pyarrow as pa
>>> cur = duckdb.connect()
>>> _ = cur.execute("CREATE TABLE l_1 (id VARCHAR PRIMARY KEY, label DOUBLE, ts TIMESTAMPTZ,"
...                 " received_at TIMESTAMPTZ)")
>>> _ = cur.execute("CREATE TABLE p_1 (id VARCHAR, version VARCHAR, ts TIMESTAMPTZ)")
>>> _ = cur.execute("CREATE TABLE dirty_buckets (model_id INTEGER, version VARCHAR,"
...                 " bucket TIMESTAMPTZ, mark BIGINT, PRIMARY KEY (model_id, version, bucket))")
>>> _ = cur.execute("CREATE SEQUENCE dirty_marks")
>>> day = pa.array([0], pa.timestamp("us", tz="UTC"))
>>> batch = pa.table({"id": ["a"], "label": [1.0], "ts": day, "received_at": day})
>>> apply_batches(cur, "acme", 1, "labels", [batch], [None], optimistic=True)
[AppendResult(accepted=1, duplicates=0, unmatched=1)]
>>> apply_batches(cur, "acme", 1, "labels", [batch], [None], optimistic=True)
Traceback (most recent call last):
...
assay.store.duckdb_append.RepeatedKey: an event of the batches is stored already
>>> apply_batches(cur, "acme", 1, "labels", [batch], [None], optimistic=False)
[AppendResult(accepted=0, duplicates=1, unmatched=0)]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.store import sql
from assay.store.base import (
    AppendResult,
    EventKind,
    Idempotency,
    Recorded,
    empty_prediction_table,
    label_schema,
)
from assay.store.keyed import KeyedPlan, answer
from assay.store.model import ModelSpec

TIMESTAMP = pa.timestamp("us", tz="UTC")


Hour = tuple[str, int]  # (version, start of the hour in microseconds since the epoch)


class RepeatedKey(Exception):
    """A plain insert met a stored key: roll back and apply the batches one at a time."""


@dataclass
class Marks:
    """Dirty marks of one append of predictions.

    A bucket needs a new mark only if a reader may have taken its current one (a rollup
    built from what it read clears the bucket only while the mark is unchanged).
    ``unseen``: hours dirty already under a mark no reader has taken, left as they are;
    ``marked``: the hours this append gave new marks.
    """

    unseen: AbstractSet[Hour] = frozenset()
    marked: set[Hour] = field(default_factory=set)


def stage(spec: ModelSpec, kind: EventKind, events: pa.Table) -> pa.Table:
    """A canonical batch as the physical table's columns, with ``received_at`` (now).

    Every staged batch of a model has one schema (all fields nullable), so batches can be
    concatenated without copying.

    >>> from assay.store.base import label_schema
    >>> spec = ModelSpec(name="m", task="binary")
    >>> labels = label_schema(spec).empty_table()
    >>> stage(spec, "labels", labels).column_names
    ['id', 'label', 'ts', 'received_at']
    """
    if kind == "predictions":
        pairs = sql.physical_columns(spec)
        canonical = empty_prediction_table(spec)
    else:
        pairs = [("id", "id"), ("label", "label"), ("ts", "timestamp")]
        canonical = label_schema(spec)
    columns = [events.column(name).cast(canonical.field(name).type) for _, name in pairs]
    now = pa.scalar(datetime.now(UTC), TIMESTAMP)
    columns.append(pa.chunked_array([pa.repeat(now, events.num_rows)], TIMESTAMP))
    return pa.Table.from_arrays(columns, names=[p for p, _ in pairs] + ["received_at"])


def apply_batches(
    cur: duckdb.DuckDBPyConnection,
    tenant: str,
    model_id: int,
    kind: EventKind,
    staged: Sequence[pa.Table],
    idems: Sequence[Idempotency | None],
    *,
    optimistic: bool,
    marks: Marks | None = None,
) -> list[AppendResult | Recorded]:
    """Apply staged batches in order inside the caller's transaction.

    ``optimistic``: one plain insert of every batch, raising :class:`RepeatedKey` (the
    transaction is then unusable) if any event key is stored already or repeats across
    batches, or an ``Idempotency-Key`` is recorded already (so it is not looked up first:
    its primary key refuses a recorded one). ``marks``: the hours of predictions to leave
    as they are, and those marked (see :class:`Marks`).
    """
    keys = [i.key for i in idems if i is not None]
    plan = KeyedPlan(idems, {} if optimistic else _recorded(cur, tenant, keys))
    tables = [staged[j] for j in plan.applied]
    if kind == "predictions":
        results = _insert_predictions(cur, model_id, tables, optimistic, marks or Marks())
    else:
        results = _insert_labels(cur, model_id, tables, optimistic, marks or Marks())
    records: list[Any] = []
    for j, result in zip(plan.applied, results, strict=True):
        idem = idems[j]
        if idem is not None:
            records += [tenant, idem.key, idem.body_hash, json.dumps(answer(result, idem)),
                        datetime.now(UTC)]  # fmt: skip
    if records:
        rows = ", ".join(["(?, ?, ?, ?, ?)"] * (len(records) // 5))
        try:
            cur.execute(f"INSERT INTO idempotency VALUES {rows}", records)
        except duckdb.ConstraintException as err:
            if optimistic:
                raise RepeatedKey("an Idempotency-Key of the batches is recorded already") from err
            raise
    return plan.finish(results)


def _recorded(cur: duckdb.DuckDBPyConnection, tenant: str, keys: list[str]) -> dict[str, Recorded]:
    if not keys:
        return {}
    marks = ", ".join("?" * len(keys))  # a literal IN list is looked up in the key's index
    rows = cur.execute(
        "SELECT idem_key, body_hash, response FROM idempotency "
        f"WHERE idem_key IN ({marks}) AND tenant = ?",
        [*keys, tenant],
    ).fetchall()
    return {key: Recorded(digest, json.loads(answer)) for key, digest, answer in rows}


def _insert(cur: duckdb.DuckDBPyConnection, table: str, batch: pa.Table, optimistic: bool,
            returning: str = "") -> Any:  # fmt: skip
    cur.register("incoming", batch)
    try:
        if optimistic:
            try:
                return cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming{returning}")
            except duckdb.ConstraintException as err:
                raise RepeatedKey("an event of the batches is stored already") from err
        return cur.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM incoming ON CONFLICT DO NOTHING{returning}"
        )
    finally:
        with contextlib.suppress(duckdb.TransactionException):  # aborted: the caller rolls back
            cur.unregister("incoming")


def _insert_predictions(cur: duckdb.DuckDBPyConnection, model_id: int, tables: list[pa.Table],
                        optimistic: bool, marks: Marks) -> list[AppendResult]:  # fmt: skip
    table = sql.prediction_table(model_id)
    rows = [t.num_rows for t in tables]
    if optimistic:
        both = pa.concat_tables(tables) if tables else None
        if both is not None and both.num_rows:
            _insert(cur, table, both, optimistic=True)
            _mark_hours(cur, model_id, both, marks)
        return [AppendResult(accepted=n, duplicates=0) for n in rows]
    accepted, touched = [], []
    for batch in tables:
        row = _insert(cur, table, batch, optimistic=False).fetchone() if batch.num_rows else None
        accepted.append(int(row[0]) if row else 0)
        if accepted[-1]:  # the batch's hours (a re-sent event's hour costs one refresh)
            touched.append(batch)
    if touched:
        _mark_hours(cur, model_id, pa.concat_tables(touched), marks)
    return [AppendResult(accepted=a, duplicates=n - a) for a, n in zip(accepted, rows, strict=True)]


def _mark_hours(cur: duckdb.DuckDBPyConnection, model_id: int, events: pa.Table,
                marks: Marks) -> None:  # fmt: skip
    """Mark the (version, hour) buckets of ``events`` (``version``, ``ts``) dirty with fresh
    marks, except those dirty already under a mark no reader has taken (``marks.unseen``)."""
    hours = pc.floor_temporal(events.column("ts"), unit=sql.BUCKET)
    pairs = (
        pa.table({"version": events.column("version"), "bucket": hours})
        .group_by(["version", "bucket"], use_threads=False)
        .aggregate([])
    )
    keys = list(zip(pairs.column("version").to_pylist(),
                    pairs.column("bucket").cast(pa.int64()).to_pylist(), strict=True))  # fmt: skip
    todo = [i for i, key in enumerate(keys) if key not in marks.unseen]
    if not todo:
        return
    cur.register("touched", pairs.take(todo))
    try:
        cur.execute(
            "INSERT INTO dirty_buckets SELECT ?, version, bucket, nextval('dirty_marks') "
            "FROM touched ON CONFLICT DO UPDATE SET mark = excluded.mark",
            [model_id],
        )
    finally:
        cur.unregister("touched")
    marks.marked.update(keys[i] for i in todo)


def _insert_labels(cur: duckdb.DuckDBPyConnection, model_id: int, tables: list[pa.Table],
                   optimistic: bool, marks: Marks) -> list[AppendResult]:  # fmt: skip
    """Insert new labels; mark the buckets of the predictions they label dirty."""
    ltable, ptable = sql.label_table(model_id), sql.prediction_table(model_id)
    if optimistic:
        if any(t.num_rows for t in tables):
            _insert(cur, ltable, pa.concat_tables(tables), optimistic=True)
        fresh = [t.column("id") for t in tables]
    else:
        fresh = []
        for batch in tables:
            ids = (
                _insert(cur, ltable, batch, False, " RETURNING id").fetchall()
                if batch.num_rows
                else []
            )
            fresh.append(pa.chunked_array([pa.array([r[0] for r in ids], pa.string())]))
    counts = np.array([len(f) for f in fresh], dtype=np.int64)
    matched = np.zeros(len(tables), dtype=np.int64)
    if counts.sum():
        labelled = pa.table({
            "id": pa.chunked_array([c for f in fresh for c in f.chunks], pa.string()),
            "b": np.repeat(np.arange(len(tables), dtype=np.int32), counts),
        })  # fmt: skip
        cur.register("fresh", labelled)
        try:  # one pass over the predictions: each label's (version, ts) per version
            found = _arrow(cur, f"SELECT f.b, f.id, p.version, p.ts FROM fresh f "
                                f"JOIN {ptable} p ON p.id = f.id")  # fmt: skip
        finally:
            cur.unregister("fresh")
        if found.num_rows:
            _mark_hours(cur, model_id, found, marks)
            # a label matches one prediction per version that scored the event
            per_batch = found.group_by("b", use_threads=False).aggregate([("id", "count_distinct")])
            matched[per_batch.column("b").to_numpy()] = per_batch.column(
                "id_count_distinct"
            ).to_numpy()
    return [
        AppendResult(accepted=int(c), duplicates=t.num_rows - int(c), unmatched=int(c - m))
        for t, c, m in zip(tables, counts, matched, strict=True)
    ]


def _arrow(cur: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """The rows of ``query`` as an Arrow table (no copy through the DB-API)."""
    relation = cur.sql(query)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()
