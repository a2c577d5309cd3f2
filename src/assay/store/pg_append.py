"""Appending event batches to PostgreSQL, inside the caller's transaction.

Events travel as CSV (``COPY ... FROM STDIN`` into a transaction-local table
``incoming``), then ``INSERT ... ON CONFLICT DO NOTHING`` into the model's table. Per
model, prediction batches take an advisory lock *shared* and label batches *exclusive*: a
label never commits as unmatched beside an in-flight batch holding its prediction.

>>> _utc_wall_clock("id, label, ts")
"id, label, ts AT TIME ZONE 'UTC' AS ts"
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from assay.store import sql
from assay.store.base import AppendResult, Idempotency, Recorded
from assay.store.keyed import answer
from assay.store.model import ModelSpec

if TYPE_CHECKING:
    import psycopg

LOCK_APPEND = 0x41535300 | 3  # key model_id: shared for predictions, exclusive for labels
_BUCKET = "date_trunc('{unit}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


def _utc_wall_clock(columns: str) -> str:
    """``columns`` with ``ts`` as UTC wall-clock time (or, from wall-clock, back to zoned)."""
    return ", ".join(
        f"{c} AT TIME ZONE 'UTC' AS {c}" if c == "ts" else c for c in columns.split(", ")
    )


def _load_incoming(cur: psycopg.Cursor, table: str, columns: str, data: bytes,
                   first: bool = True) -> None:  # fmt: skip
    """COPY ``data`` into a transaction-local table ``incoming`` shaped like ``table``.

    Its ``ts`` holds UTC wall-clock times, as :func:`~assay.store.pg_csv.to_csv` writes.
    Later batches of one transaction (``first`` false) replace the rows of the first.
    """
    if first:
        cur.execute(
            f"CREATE TEMP TABLE incoming ON COMMIT DROP AS "
            f"SELECT {_utc_wall_clock(columns)} FROM {table} WITH NO DATA"
        )
    else:
        cur.execute("DELETE FROM incoming")
    if data:
        with cur.copy(f"COPY incoming ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)


def append_predictions(cur: psycopg.Cursor, spec: ModelSpec, model_id: int, data: bytes,
                        rows: int, first: bool) -> AppendResult:  # fmt: skip
    """Insert one batch's new predictions (CSV ``data``) and mark their hours dirty."""
    table = sql.prediction_table(model_id)
    columns = ", ".join(p for p, _ in sql.physical_columns(spec))
    bucket = _BUCKET.format(unit=sql.BUCKET, column="ts")
    _load_incoming(cur, table, columns, data, first)
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [LOCK_APPEND, model_id])
    row = cur.execute(
        f"WITH ins AS (INSERT INTO {table} ({columns}, received_at) "
        f"SELECT {_utc_wall_clock(columns)}, now() FROM incoming ORDER BY id "
        "ON CONFLICT (id, version) DO NOTHING RETURNING version, ts), "
        f"marked AS ({_mark_dirty_sql(f'SELECT DISTINCT version, {bucket} FROM ins')}) "
        "SELECT count(*) FROM ins",
        [model_id],
    ).fetchone()
    fresh = int(row[0]) if row else 0
    return AppendResult(accepted=fresh, duplicates=rows - fresh)


def append_labels(cur: psycopg.Cursor, spec: ModelSpec, model_id: int, data: bytes,
                   rows: int, first: bool) -> AppendResult:  # fmt: skip
    """Insert one batch's new labels; mark the buckets of their predictions dirty."""
    ptable, ltable = sql.prediction_table(model_id), sql.label_table(model_id)
    bucket = _BUCKET.format(unit=sql.BUCKET, column="p.ts")
    _load_incoming(cur, ltable, "id, label, ts", data, first)
    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_APPEND, model_id])
    # each label looks its predictions up in the (id, version) index: the LATERAL subquery
    # (OFFSET 0 keeps it one) does not depend on row estimates, which for a table not
    # analyzed yet chose to sort the whole prediction table per batch; nor is the statement
    # worth compiling (the same estimates pass the JIT's cost threshold)
    if first:
        cur.execute("SET LOCAL jit = off")
    predicted = (
        f"LATERAL (SELECT p.id, p.version, p.ts FROM {ptable} p WHERE p.id = ins.id OFFSET 0)"
    )
    matched_buckets = f"SELECT DISTINCT p.version, {bucket} FROM ins, {predicted} p"
    row = cur.execute(
        f"WITH ins AS (INSERT INTO {ltable} (id, label, ts, received_at) "
        f"SELECT {_utc_wall_clock('id, label, ts')}, now() FROM incoming ORDER BY id "
        "ON CONFLICT (id) DO NOTHING RETURNING id), "
        f"marked AS ({_mark_dirty_sql(matched_buckets)}) "
        f"SELECT count(DISTINCT ins.id), count(DISTINCT p.id) "
        f"FROM ins LEFT JOIN {predicted} p ON true",
        [model_id],
    ).fetchone()
    fresh, matched = (int(row[0]), int(row[1])) if row else (0, 0)
    return AppendResult(accepted=fresh, duplicates=rows - fresh, unmatched=fresh - matched)


def recorded(cur: psycopg.Cursor, tenant: str, keys: list[str]) -> dict[str, Recorded]:
    """The answers recorded under ``keys`` (of ``tenant``)."""
    if not keys:
        return {}
    rows = cur.execute(
        "SELECT idem_key, body_hash, response FROM idempotency "
        "WHERE tenant = %s AND idem_key = ANY(%s)",
        [tenant, keys],
    ).fetchall()
    return {key: Recorded(digest, json.loads(answer)) for key, digest, answer in rows}


def _mark_dirty_sql(buckets_sql: str) -> str:
    """Upsert the (version, bucket) rows of ``buckets_sql`` with fresh marks (param: model_id).

    Rows are upserted in key order, so concurrent batches lock bucket rows in one order.
    """
    return (
        "INSERT INTO dirty_buckets (model_id, version, bucket, mark) "
        f"SELECT %s, b.version, b.bucket, nextval('dirty_marks') FROM ({buckets_sql}) "
        "AS b (version, bucket) ORDER BY b.version, b.bucket "
        "ON CONFLICT (model_id, version, bucket) DO UPDATE SET mark = excluded.mark"
    )


def record_idempotency(
    cur: psycopg.Cursor, tenant: str, idem: Idempotency | None, result: AppendResult
) -> None:
    if idem is None:
        return
    cur.execute(
        "INSERT INTO idempotency VALUES (%s, %s, %s, %s, now())",
        [tenant, idem.key, idem.body_hash, json.dumps(answer(result, idem))],
    )
