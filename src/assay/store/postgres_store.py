"""The PostgreSQL store: several server replicas share one database.

Same contract as :class:`~assay.store.duckdb_store.DuckDBStore`, plus what sharing a
database between processes needs:

- a small pool of autocommit connections; every write is one explicit transaction,
  retried on deadlock or serialization failure;
- transaction-level advisory locks around migrations, model-id allocation and the swap of
  one bucket's rollups, so replicas starting or registering at once cannot collide;
- per model, prediction batches take an advisory lock *shared* and label batches
  *exclusive*: a label never commits as unmatched beside an in-flight batch holding its
  prediction (its bucket could then be rolled up clean without the label);
- events travel as CSV that pyarrow writes and parses in C++ (``COPY ... FROM STDIN``
  into a temporary table, then ``INSERT ... ON CONFLICT (id) DO NOTHING``; scans are
  ``COPY (SELECT ...) TO STDOUT``): no Python work per value.

Per-model text columns use the ``"C"`` collation: byte order as in DuckDB (ties in a scan
order by id alike on both backends), and cheaper id comparisons.
"""

from __future__ import annotations

import json
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from assay.errors import (
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    SchemaVersionError,
    StoreUnavailableError,
)
from assay.store import sql
from assay.store.base import (
    AppendResult,
    DirtyBucket,
    EventKind,
    Idempotency,
    Recorded,
    Rollup,
    VersionInfo,
    empty_prediction_table,
    label_schema,
)
from assay.store.keyed import KeyedPlan, SingleBatchAppends
from assay.store.model import ModelSpec
from assay.store.pg_append import append_labels as _append_labels
from assay.store.pg_append import append_predictions as _append_predictions
from assay.store.pg_append import record_idempotency as _record_idempotency
from assay.store.pg_append import recorded as _recorded
from assay.store.pg_csv import from_csv, to_csv

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

TEXT = 'TEXT COLLATE "C"'  # per-model text columns: byte order, as DuckDB sorts
_LOCKS = 0x41535300  # advisory-lock class ids: 'ASS\0' + purpose
_LOCK_SCHEMA = _LOCKS | 1  # key 0: migrations
_LOCK_REGISTRY = _LOCKS | 2  # key 0: model-id allocation
# _LOCKS | 3, key model_id: event appends (pg_append.LOCK_APPEND)
_LOCK_ROLLUP = _LOCKS | 4  # key crc32(model_id, version, bucket): one bucket's swap
_RETRIES = 5


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise MissingDependencyError("psycopg", "postgres") from err
    return psycopg


class PostgresStore(SingleBatchAppends):
    """:class:`~assay.store.base.Store` on a PostgreSQL database given by a libpq URL.

    ``url`` is any libpq connection string (``postgresql://user@host/db`` or
    ``"host=... dbname=..."``); ``pool_size`` bounds the idle connections kept.
    """

    def __init__(self, url: str, *, pool_size: int = 8):
        self._pg = _import_psycopg()
        self.url = url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=pool_size)
        self._closed = False
        self._models: dict[tuple[str, str], tuple[int, ModelSpec]] = {}
        self._models_lock = threading.Lock()
        self._migrate()

    # -- connections ---------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        try:
            conn = self._pg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._pg.OperationalError as err:
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL: {str(err).strip()}",
                hint="check the URL, that the server runs, and the credentials",
            ) from err
        try:  # buckets are UTC hours; ISO dates and shortest exact floats keep CSV exact
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("SET DateStyle = 'ISO, YMD'")
            conn.execute("SET extra_float_digits = 3")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """Borrow a pooled connection; broken ones are dropped, not returned."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        except self._pg.OperationalError as err:
            if conn.broken or conn.closed:  # the server restarted? drop the idle ones too
                self._drain()
                raise StoreUnavailableError(f"lost the PostgreSQL connection: {err}") from err
            raise
        finally:
            reusable = not (self._closed or conn.closed or conn.broken) and (
                conn.info.transaction_status == self._pg.pq.TransactionStatus.IDLE
            )
            if not reusable:
                conn.close()
            else:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()

    def _write(self, work: Callable[[psycopg.Cursor], T]) -> T:
        """Run ``work`` in one transaction; retry it on deadlock or serialization failure."""
        errors = self._pg.errors
        for attempt in range(_RETRIES):
            try:
                with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return work(cur)
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._connection() as conn, conn.cursor() as cur:
            return cur.execute(query, params).fetchall()

    def _migrate(self) -> None:
        def work(cur: psycopg.Cursor) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_LOCK_SCHEMA])
            cur.execute("CREATE TABLE IF NOT EXISTS assay_schema (version INTEGER NOT NULL)")
            current = cur.execute("SELECT max(version) FROM assay_schema").fetchone()[0] or 0
            if current > sql.SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the store's schema is version {current}, this Assay knows up to "
                    f"{sql.SCHEMA_VERSION}",
                    hint="upgrade Assay; it will not start on a newer schema",
                )

            def models() -> list[tuple[Any, str]]:
                return list(cur.execute("SELECT model_id, spec FROM models").fetchall())

            for version in range(current + 1, sql.SCHEMA_VERSION + 1):
                for statement in sql.migration_statements(version, "postgres", models):
                    cur.execute(statement)
                cur.execute("INSERT INTO assay_schema VALUES (%s)", [version])

        self._write(work)

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        rows = self._fetch("SELECT max(version) FROM assay_schema")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def ping(self) -> None:
        """Raise :class:`~assay.errors.StoreUnavailableError` if the database cannot answer."""
        try:
            self._fetch("SELECT 1")
        except self._pg.Error as err:
            raise StoreUnavailableError(f"PostgreSQL does not answer: {err}") from err

    def close(self) -> None:
        """Close the pooled connections; connections in use close when returned."""
        self._closed = True
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break

    # -- models --------------------------------------------------------------------------
    def _model(self, tenant: str, name: str) -> tuple[int, ModelSpec]:
        key = (tenant, name)
        found = self._models.get(key)
        if found is None:
            rows = self._fetch(
                "SELECT model_id, spec FROM models WHERE tenant = %s AND name = %s", [tenant, name]
            )
            if not rows:
                raise NotFoundError(f"model {name!r} not found", field="model")
            found = (int(rows[0][0]), ModelSpec.model_validate_json(rows[0][1]))
            with self._models_lock:
                self._models[key] = found
        return found

    def register_model(self, tenant: str, spec: ModelSpec) -> tuple[ModelSpec, bool]:
        """Register ``spec``; the same spec again is a no-op, a different one a conflict."""

        def work(cur: psycopg.Cursor) -> tuple[int, ModelSpec, bool]:
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_LOCK_REGISTRY])
            row = cur.execute(
                "SELECT model_id, spec FROM models WHERE tenant = %s AND name = %s",
                [tenant, spec.name],
            ).fetchone()
            if row is not None:
                existing = ModelSpec.model_validate_json(row[1])
                if existing != spec:
                    raise ConflictError(
                        f"model {spec.name!r} is already registered with other columns",
                        field="name",
                        hint="register the new columns under a new model name",
                    )
                return int(row[0]), existing, False
            next_id = cur.execute("SELECT coalesce(max(model_id), 0) + 1 FROM models").fetchone()
            model_id = int(next_id[0])
            cur.execute(
                "INSERT INTO models VALUES (%s, %s, %s, %s, now())",
                [model_id, tenant, spec.name, spec.model_dump_json()],
            )
            for statement in sql.create_model_tables(spec, model_id, text=TEXT):
                cur.execute(statement)
            return model_id, spec, True

        model_id, stored, created = self._write(work)
        with self._models_lock:
            self._models[(tenant, spec.name)] = (model_id, stored)
        return stored, created

    def get_model(self, tenant: str, name: str) -> ModelSpec:
        """The tenant's model ``name``."""
        return self._model(tenant, name)[1]

    def list_models(self, tenant: str) -> list[ModelSpec]:
        """The tenant's models, by name."""
        rows = self._fetch(
            'SELECT spec FROM models WHERE tenant = %s ORDER BY name COLLATE "C"', [tenant]
        )
        return [ModelSpec.model_validate_json(r[0]) for r in rows]

    def list_versions(self, tenant: str, model: str) -> list[VersionInfo]:
        """Versions seen in the model's predictions."""
        model_id, _ = self._model(tenant, model)
        rows = self._fetch(
            f"SELECT version, count(*), min(ts), max(ts) FROM {sql.prediction_table(model_id)} "
            'GROUP BY version ORDER BY min(ts), version COLLATE "C"'
        )
        return [VersionInfo(r[0], int(r[1]), _utc(r[2]), _utc(r[3])) for r in rows]

    # -- events --------------------------------------------------------------------------
    def append_many(
        self,
        tenant: str,
        model: str,
        kind: EventKind,
        batches: Sequence[tuple[pa.Table, Idempotency | None]],
    ) -> list[AppendResult | Recorded]:
        """Apply batches of one kind in order in one transaction (one durable commit)."""
        model_id, spec = self._model(tenant, model)
        schema = empty_prediction_table(spec) if kind == "predictions" else label_schema(spec)
        step = _append_predictions if kind == "predictions" else _append_labels
        data = [to_csv(table, schema) for table, _ in batches]
        idems = [idem for _, idem in batches]

        def work(cur: psycopg.Cursor) -> list[AppendResult | Recorded]:
            plan = KeyedPlan(idems, _recorded(cur, tenant, [i.key for i in idems if i]))
            results = []
            for n, j in enumerate(plan.applied):
                result = step(cur, spec, model_id, data[j], batches[j][0].num_rows, n == 0)
                _record_idempotency(cur, tenant, idems[j], result)
                results.append(result)
            return plan.finish(results)

        return self._append(work)

    def _append(self, work: Callable[[psycopg.Cursor], T]) -> T:
        try:
            return self._write(work)
        except self._pg.errors.UniqueViolation as err:  # only the idempotency row can clash
            raise ConflictError(
                "this Idempotency-Key was recorded by a concurrent request",
                field="Idempotency-Key",
                hint="retry to receive the recorded answer",
            ) from err

    def idempotent_answer(self, tenant: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(body hash, answer) stored for ``key``, if any."""
        rows = self._fetch(
            "SELECT body_hash, response FROM idempotency WHERE tenant = %s AND idem_key = %s",
            [tenant, key],
        )
        return None if not rows else (rows[0][0], json.loads(rows[0][1]))

    def prune_idempotency(self, before: datetime) -> int:
        """Forget the ``Idempotency-Key`` answers recorded before ``before``; how many."""

        def prune(cur: psycopg.Cursor) -> int:
            cur.execute("DELETE FROM idempotency WHERE created_at < %s", [before])
            return cur.rowcount

        return self._write(prune)

    def scan(
        self,
        tenant: str,
        model: str,
        *,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Predictions joined with their labels in [start, end), ordered by time."""
        model_id, spec = self._model(tenant, model)
        where, params = sql.range_filter("p.", version, start, end, placeholder="%s", moment=_utc)
        schema = _scan_schema(spec)
        select = [f"p.{phys}" for phys, _ in sql.physical_columns(spec)] + ["l.label", "l.ts"]
        select = [f"{c} AT TIME ZONE 'UTC'" if c.endswith(".ts") else c for c in select]
        # Own SELECT rather than sql.scan_sql: its aliases are the user's column names,
        # which may hold '"' or '%'; the canonical names are set in Arrow instead.
        query = (
            f"SELECT {', '.join(select)} FROM {sql.prediction_table(model_id)} p "
            f"LEFT JOIN {sql.label_table(model_id)} l ON p.id = l.id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY p.ts, p.id"
        )
        statement = f"COPY ({query}) TO STDOUT (FORMAT csv)"
        with (
            self._connection() as conn,
            conn.cursor() as cur,
            cur.copy(statement, params or None) as copy,
        ):
            data = b"".join(copy)
        return from_csv(data, schema)

    # -- rollups -------------------------------------------------------------------------
    def dirty_buckets(self, tenant: str, model: str) -> list[DirtyBucket]:
        """Buckets whose rollups are out of date."""
        model_id, _ = self._model(tenant, model)
        rows = self._fetch(
            "SELECT version, bucket, mark FROM dirty_buckets WHERE model_id = %s "
            'ORDER BY bucket, version COLLATE "C"',
            [model_id],
        )
        return [DirtyBucket(r[0], _utc(r[1]), int(r[2])) for r in rows]

    def replace_rollups(
        self, tenant: str, model: str, dirty: DirtyBucket, rollups: list[Rollup]
    ) -> None:
        """Swap one bucket's rollups; clear its dirty mark unless re-marked meanwhile."""
        self.replace_rollups_many(tenant, model, [(dirty, rollups)])

    def replace_rollups_many(
        self, tenant: str, model: str, updates: list[tuple[DirtyBucket, list[Rollup]]]
    ) -> None:
        """:meth:`replace_rollups` for several buckets in one transaction."""
        model_id, _ = self._model(tenant, model)

        def lock_of(dirty: DirtyBucket) -> int:
            token = f"{model_id}\0{dirty.version}\0{_utc(dirty.bucket).isoformat()}".encode()
            return zlib.crc32(token) - (1 << 31)  # into int4

        ordered = sorted(updates, key=lambda u: lock_of(u[0]))  # one lock order: no deadlock

        def work(cur: psycopg.Cursor) -> None:
            for dirty, rollups in ordered:
                key = [model_id, dirty.version, dirty.bucket]
                cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_ROLLUP, lock_of(dirty)])
                cur.execute(
                    "DELETE FROM rollups WHERE model_id = %s AND version = %s AND bucket = %s", key
                )
                if rollups:
                    cur.executemany(
                        "INSERT INTO rollups VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            [model_id, r.version, r.bucket, r.segment_column, r.segment_value,
                             r.rows, r.labeled, r.states]
                            for r in rollups
                        ],
                    )  # fmt: skip
                cur.execute(
                    "DELETE FROM dirty_buckets WHERE model_id = %s AND version = %s "
                    "AND bucket = %s AND mark = %s",
                    [*key, dirty.mark],
                )

        if ordered:
            self._write(work)

    def note_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Record ``hours`` as rebuilt outside a monitor pass, for the next pass to judge."""
        self._hours_statement(
            tenant, model, hours,
            "INSERT INTO restated_hours SELECT %s, unnest(%s::timestamptz[]) "
            "ON CONFLICT DO NOTHING",
        )  # fmt: skip

    def restated(self, tenant: str, model: str) -> set[datetime]:
        """The hours noted (by any replica) and not forgotten yet."""
        model_id, _ = self._model(tenant, model)
        rows = self._fetch("SELECT bucket FROM restated_hours WHERE model_id = %s", [model_id])
        return {_utc(row[0]) for row in rows}

    def forget_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Forget ``hours`` once a monitor pass has saved them (hours noted since stay)."""
        self._hours_statement(
            tenant, model, hours,
            "DELETE FROM restated_hours WHERE model_id = %s AND bucket = ANY(%s::timestamptz[])",
        )  # fmt: skip

    def _hours_statement(
        self, tenant: str, model: str, hours: Iterable[datetime], statement: str
    ) -> None:
        """Run ``statement`` with (model id, the distinct hours) unless there are none."""
        model_id, _ = self._model(tenant, model)
        stamps = sorted({_utc(hour) for hour in hours})
        if stamps:
            self._write(lambda cur: cur.execute(statement, [model_id, stamps]))

    def load_rollups(
        self,
        tenant: str,
        model: str,
        *,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        segment_column: str = "",
    ) -> list[Rollup]:
        """Rollups of one segment column ("" = overall) for buckets in [start, end)."""
        model_id, _ = self._model(tenant, model)
        where, params = sql.range_filter(
            "", version, start, end, time_column="bucket", placeholder="%s", moment=_utc
        )
        where = ["model_id = %s", "segment_column = %s", *where]
        rows = self._fetch(
            "SELECT version, bucket, segment_column, segment_value, n_rows, labeled, states "
            f"FROM rollups WHERE {' AND '.join(where)} "
            'ORDER BY bucket, version COLLATE "C", segment_value COLLATE "C"',
            [model_id, segment_column, *params],
        )
        return [
            Rollup(r[0], _utc(r[1]), r[2], r[3], int(r[4]), int(r[5]), bytes(r[6])) for r in rows
        ]

    # -- references ----------------------------------------------------------------------
    def save_reference(self, tenant: str, model: str, states: bytes, meta: dict[str, Any]) -> None:
        """Store (replace) the model's drift reference."""
        model_id, _ = self._model(tenant, model)
        self._write(
            lambda cur: cur.execute(
                "INSERT INTO model_references VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (model_id) DO UPDATE SET states = excluded.states, "
                "meta = excluded.meta, created_at = excluded.created_at",
                [model_id, states, json.dumps(meta)],
            )
        )

    def load_reference(self, tenant: str, model: str) -> tuple[bytes, dict[str, Any]] | None:
        """The model's drift reference, if one was stored."""
        model_id, _ = self._model(tenant, model)
        rows = self._fetch(
            "SELECT states, meta FROM model_references WHERE model_id = %s", [model_id]
        )
        return None if not rows else (bytes(rows[0][0]), json.loads(rows[0][1]))

    # -- rollouts ------------------------------------------------------------------------
    def put_rollout(self, tenant: str, model: str, name: str, spec: dict[str, Any]) -> bool:
        """Register or replace the model's rollout ``name``; True when it is new."""
        model_id, _ = self._model(tenant, model)

        def work(cur: psycopg.Cursor) -> bool:
            row = cur.execute(
                "INSERT INTO rollouts VALUES (%s, %s, %s, now()) ON CONFLICT (model_id, name) "
                "DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at "
                "RETURNING (xmax = 0)",
                [model_id, name, json.dumps(spec)],
            ).fetchone()
            return bool(row and row[0])

        return bool(self._write(work))

    def get_rollouts(self, tenant: str, model: str) -> dict[str, dict[str, Any]]:
        """The model's rollouts by name."""
        model_id, _ = self._model(tenant, model)
        rows = self._fetch(
            "SELECT name, spec FROM rollouts WHERE model_id = %s ORDER BY name", [model_id]
        )
        return {name: json.loads(spec) for name, spec in rows}

    def delete_rollout(self, tenant: str, model: str, name: str) -> bool:
        """Remove a rollout; True when it existed."""
        model_id, _ = self._model(tenant, model)
        return bool(
            self._write(
                lambda cur: cur.execute(
                    "DELETE FROM rollouts WHERE model_id = %s AND name = %s RETURNING name",
                    [model_id, name],
                ).fetchall()
            )
        )


# -- helpers -------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    """An aware datetime in UTC (naive ones are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _scan_schema(spec: ModelSpec) -> pa.Schema:
    """The scan's Arrow schema: canonical predictions, then ``label``, ``label_timestamp``."""
    labels = label_schema(spec)
    fields = [f.with_nullable(True) for f in empty_prediction_table(spec)]
    fields.append(pa.field("label", labels.field("label").type))
    fields.append(pa.field("label_timestamp", labels.field("timestamp").type))
    return pa.schema(fields)
