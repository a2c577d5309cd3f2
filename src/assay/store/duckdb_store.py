"""The embedded default store: one DuckDB file under the data directory.

Only one process may write a DuckDB file, so the server owns it; admin data that other
processes write (keys, audit) lives in the control store instead.

>>> import tempfile, pyarrow as pa
>>> from assay.store.model import ModelSpec
>>> store = DuckDBStore(tempfile.mkdtemp())
>>> _ = store.register_model("acme", ModelSpec(name="m", task="binary"))
>>> [m.name for m in store.list_models("acme")], store.list_models("other")
(['m'], [])
>>> store.close()
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from assay.errors import (
    ConflictError,
    NotFoundError,
    SchemaVersionError,
    StoreUnavailableError,
)
from assay.store import duckdb_append, sql
from assay.store.base import (
    AppendResult,
    DirtyBucket,
    EventKind,
    Idempotency,
    Recorded,
    Rollup,
    VersionInfo,
)
from assay.store.keyed import SingleBatchAppends
from assay.store.model import ModelSpec

DB_FILE = "assay.duckdb"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _arrow(con: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> pa.Table:
    """Run ``query`` on a fresh cursor and fetch Arrow without an extra copy."""
    cur = con.cursor()
    try:
        cur.execute("SET TimeZone = 'UTC'")
        relation = cur.sql(query, params=params)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        return fetch()
    finally:
        cur.close()


class DuckDBStore(SingleBatchAppends):
    """:class:`~assay.store.base.Store` on a DuckDB file (``<data_dir>/assay.duckdb``)."""

    def __init__(self, data_dir: str | Path, *, read_only: bool = False):
        self.path = Path(data_dir) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as err:
            raise StoreUnavailableError(
                f"cannot open {self.path.name}: {err}",
                hint="another process (a running 'assay serve'?) holds the store",
            ) from err
        self._local = threading.local()
        self._write = threading.RLock()
        self._models: dict[tuple[str, str], tuple[int, ModelSpec]] = {}
        # per model: dirty hours whose mark no dirty_buckets() reader has taken yet (new
        # events in them need no new mark); kept under self._write, empty on opening
        self._unseen: dict[int, set[duckdb_append.Hour]] = {}
        if read_only:
            self._check_version()
        else:
            self._migrate()

    # -- connections ---------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cur
        return cur

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._write:
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS assay_schema (version INTEGER NOT NULL)")
            row = cur.execute("SELECT max(version) FROM assay_schema").fetchone()
            current = (row[0] if row else None) or 0
            if current > sql.SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the store's schema is version {current}, this Assay knows up to "
                    f"{sql.SCHEMA_VERSION}",
                    hint="upgrade Assay; it will not start on a newer schema",
                )

            def models() -> list[tuple[Any, str]]:
                return list(cur.execute("SELECT model_id, spec FROM models").fetchall())

            for version in range(current + 1, sql.SCHEMA_VERSION + 1):
                for statement in sql.migration_statements(version, "duckdb", models):
                    cur.execute(statement)
                cur.execute("INSERT INTO assay_schema VALUES (?)", [version])

    def _check_version(self) -> None:
        stored = self.schema_version()
        if stored != sql.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the store's schema is version {stored}, this Assay uses {sql.SCHEMA_VERSION}",
                hint="open it read-write once with this version to upgrade it"
                if stored < sql.SCHEMA_VERSION
                else "upgrade Assay",
            )

    def schema_version(self) -> int:
        """The schema version stored in the file."""
        row = self._cursor().execute("SELECT max(version) FROM assay_schema").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def ping(self) -> None:
        """Raise if the database cannot answer."""
        self._cursor().execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Close the file."""
        self._con.close()

    # -- models --------------------------------------------------------------------------
    def _model(self, tenant: str, name: str) -> tuple[int, ModelSpec]:
        key = (tenant, name)
        if key not in self._models:
            row = (
                self._cursor()
                .execute(
                    "SELECT model_id, spec FROM models WHERE tenant = ? AND name = ?",
                    [tenant, name],
                )
                .fetchone()
            )
            if row is None:
                raise NotFoundError(f"model {name!r} not found", field="model")
            self._models[key] = (int(row[0]), ModelSpec.model_validate_json(row[1]))
        return self._models[key]

    def register_model(self, tenant: str, spec: ModelSpec) -> tuple[ModelSpec, bool]:
        """Register ``spec``; the same spec again is a no-op, a different one a conflict."""
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT spec FROM models WHERE tenant = ? AND name = ?", [tenant, spec.name]
            ).fetchone()
            if row is not None:
                existing = ModelSpec.model_validate_json(row[0])
                if existing != spec:
                    raise ConflictError(
                        f"model {spec.name!r} is already registered with other columns",
                        field="name",
                        hint="register the new columns under a new model name",
                    )
                return existing, False
            model_id = cur.execute("SELECT coalesce(max(model_id), 0) + 1 FROM models").fetchone()[
                0
            ]
            cur.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?)",
                [model_id, tenant, spec.name, spec.model_dump_json(), datetime.now(UTC)],
            )
            for statement in sql.create_model_tables(spec, model_id):
                cur.execute(statement)
        return spec, True

    def get_model(self, tenant: str, name: str) -> ModelSpec:
        """The tenant's model ``name``."""
        return self._model(tenant, name)[1]

    def list_models(self, tenant: str) -> list[ModelSpec]:
        """The tenant's models, by name."""
        rows = (
            self._cursor()
            .execute("SELECT spec FROM models WHERE tenant = ? ORDER BY name", [tenant])
            .fetchall()
        )
        return [ModelSpec.model_validate_json(r[0]) for r in rows]

    def list_versions(self, tenant: str, model: str) -> list[VersionInfo]:
        """Versions seen in the model's predictions."""
        model_id, _ = self._model(tenant, model)
        rows = (
            self._cursor()
            .execute(
                f"SELECT version, count(*), min(ts), max(ts) FROM {sql.prediction_table(model_id)} "
                "GROUP BY version ORDER BY min(ts), version"  # ties: by name, every time
            )
            .fetchall()
        )
        return [VersionInfo(r[0], int(r[1]), r[2], r[3]) for r in rows]

    # -- events --------------------------------------------------------------------------
    def append_many(
        self,
        tenant: str,
        model: str,
        kind: EventKind,
        batches: Sequence[tuple[pa.Table, Idempotency | None]],
    ) -> list[AppendResult | Recorded]:
        """Apply batches of one kind in order in one transaction (one durable commit).

        See :mod:`assay.store.duckdb_append`: one plain insert of every batch, or, when an
        event is stored already, the batches again one by one with duplicates counted.

        >>> import tempfile
        >>> from assay.store.base import empty_prediction_table
        >>> store = DuckDBStore(tempfile.mkdtemp())
        >>> spec, _ = store.register_model("acme", ModelSpec(name="m", task="binary"))
        >>> def batch(*ids: str) -> pa.Table:
        ...     rows = [{"id": i, "version": "v1", "timestamp": datetime(2026, 11, 1, tzinfo=UTC)}
        ...             for i in ids]
        ...     return pa.Table.from_pylist(rows, schema=empty_prediction_table(spec))
        >>> [r.to_dict() for r in store.append_many("acme", "m", "predictions",
        ...                                         [(batch("a", "b"), None), (batch("b"), None)])]
        [{'accepted': 2, 'duplicates': 0}, {'accepted': 0, 'duplicates': 1}]
        >>> store.close()
        """
        model_id, spec = self._model(tenant, model)
        staged = [duckdb_append.stage(spec, kind, table) for table, _ in batches]
        idems = [idem for _, idem in batches]
        with self._write:
            unseen = self._unseen.setdefault(model_id, set())
            for optimistic in (True, False):
                marks = duckdb_append.Marks(unseen)
                try:
                    with self._transaction() as cur:
                        outcomes = duckdb_append.apply_batches(
                            cur, tenant, model_id, kind, staged, idems,
                            optimistic=optimistic, marks=marks,
                        )  # fmt: skip
                except duckdb_append.RepeatedKey:
                    continue  # rolled back: apply them one by one
                unseen |= marks.marked  # committed: new marks no reader has taken yet
                return outcomes
        raise AssertionError("unreachable: the second pass does not raise RepeatedKey")

    def idempotent_answer(self, tenant: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(body hash, answer) stored for ``key``, if any."""
        row = (
            self._cursor()
            .execute(
                "SELECT body_hash, response FROM idempotency WHERE tenant = ? AND idem_key = ?",
                [tenant, key],
            )
            .fetchone()
        )
        return None if row is None else (row[0], json.loads(row[1]))

    def prune_idempotency(self, before: datetime) -> int:
        """Forget the ``Idempotency-Key`` answers recorded before ``before``; how many."""
        with self._transaction() as cur:
            row = cur.execute(
                "DELETE FROM idempotency WHERE created_at < ? RETURNING 1", [before]
            ).fetchall()
        return len(row)

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
        where, params = sql.range_filter("p.", version, start, end)
        return _arrow(self._con, sql.scan_sql(spec, model_id, where), params)

    # -- rollups -------------------------------------------------------------------------
    def dirty_buckets(self, tenant: str, model: str) -> list[DirtyBucket]:
        """Buckets whose rollups are out of date."""
        model_id, _ = self._model(tenant, model)
        with self._write:  # not while an append decides which hours need a new mark
            rows = (
                self._cursor()
                .execute(
                    "SELECT version, bucket, mark FROM dirty_buckets WHERE model_id = ? "
                    "ORDER BY bucket, version",
                    [model_id],
                )
                .fetchall()
            )
            self._unseen.pop(model_id, None)  # every mark of the model is taken now
        return [DirtyBucket(r[0], r[1], int(r[2])) for r in rows]

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
        fresh = [r for _, rollups in updates for r in rollups]
        with self._transaction() as cur:
            for dirty, _ in updates:
                cur.execute(
                    "DELETE FROM rollups WHERE model_id = ? AND version = ? AND bucket = ?",
                    [model_id, dirty.version, dirty.bucket],
                )
            if fresh:
                cur.register("fresh_rollups", _rollup_table(model_id, fresh))
                try:
                    cur.execute("INSERT INTO rollups SELECT * FROM fresh_rollups")
                finally:
                    cur.unregister("fresh_rollups")
            for dirty, _ in updates:
                cur.execute(
                    "DELETE FROM dirty_buckets WHERE model_id = ? AND version = ? AND bucket = ? "
                    "AND mark = ?",
                    [model_id, dirty.version, dirty.bucket, dirty.mark],
                )
            unseen = self._unseen.get(model_id, set())
            unseen -= {(d.version, _hour(d.bucket)) for d, _ in updates}

    def note_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Record ``hours`` as rebuilt outside a monitor pass, for the next pass to judge."""
        self._hours_statement(
            tenant, model, hours,
            "INSERT INTO restated_hours SELECT ?, unnest(?::TIMESTAMPTZ[]) ON CONFLICT DO NOTHING",
        )  # fmt: skip

    def restated(self, tenant: str, model: str) -> set[datetime]:
        """The hours noted and not forgotten yet."""
        model_id, _ = self._model(tenant, model)
        rows = (
            self._cursor()
            .execute("SELECT bucket FROM restated_hours WHERE model_id = ?", [model_id])
            .fetchall()
        )
        return {row[0] for row in rows}

    def forget_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Forget ``hours`` once a monitor pass has saved them (hours noted since stay)."""
        self._hours_statement(
            tenant, model, hours,
            "DELETE FROM restated_hours WHERE model_id = ? "
            "AND bucket IN (SELECT unnest(?::TIMESTAMPTZ[]))",
        )  # fmt: skip

    def _hours_statement(
        self, tenant: str, model: str, hours: Iterable[datetime], statement: str
    ) -> None:
        """Run ``statement`` with (model id, the distinct hours) unless there are none."""
        model_id, _ = self._model(tenant, model)
        stamps = sorted(set(hours))
        if stamps:
            with self._transaction() as cur:
                cur.execute(statement, [model_id, stamps])

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
        where, params = sql.range_filter("", version, start, end, time_column="bucket")
        where = ["model_id = ?", "segment_column = ?", *where]
        rows = (
            self._cursor()
            .execute(
                "SELECT version, bucket, segment_column, segment_value, n_rows, labeled, states "
                f"FROM rollups WHERE {' AND '.join(where)} ORDER BY bucket, version, segment_value",
                [model_id, segment_column, *params],
            )
            .fetchall()
        )
        return [Rollup(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), bytes(r[6])) for r in rows]

    # -- references ----------------------------------------------------------------------
    def save_reference(self, tenant: str, model: str, states: bytes, meta: dict[str, Any]) -> None:
        """Store (replace) the model's drift reference."""
        model_id, _ = self._model(tenant, model)
        with self._transaction() as cur:
            cur.execute("DELETE FROM model_references WHERE model_id = ?", [model_id])
            cur.execute(
                "INSERT INTO model_references VALUES (?, ?, ?, ?)",
                [model_id, states, json.dumps(meta), datetime.now(UTC)],
            )

    def load_reference(self, tenant: str, model: str) -> tuple[bytes, dict[str, Any]] | None:
        """The model's drift reference, if one was stored."""
        model_id, _ = self._model(tenant, model)
        row = (
            self._cursor()
            .execute("SELECT states, meta FROM model_references WHERE model_id = ?", [model_id])
            .fetchone()
        )
        return None if row is None else (bytes(row[0]), json.loads(row[1]))

    # -- rollouts ------------------------------------------------------------------------
    def put_rollout(self, tenant: str, model: str, name: str, spec: dict[str, Any]) -> bool:
        """Register or replace the model's rollout ``name``; True when it is new."""
        model_id, _ = self._model(tenant, model)
        with self._transaction() as cur:
            existed = cur.execute(
                "SELECT count(*) FROM rollouts WHERE model_id = ? AND name = ?", [model_id, name]
            ).fetchall()[0][0]
            cur.execute(
                "INSERT INTO rollouts VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                "SET spec = excluded.spec, updated_at = excluded.updated_at",
                [model_id, name, json.dumps(spec), datetime.now(UTC)],
            )
        return not existed

    def get_rollouts(self, tenant: str, model: str) -> dict[str, dict[str, Any]]:
        """The model's rollouts by name."""
        model_id, _ = self._model(tenant, model)
        rows = (
            self._cursor()
            .execute("SELECT name, spec FROM rollouts WHERE model_id = ? ORDER BY name", [model_id])
            .fetchall()
        )
        return {name: json.loads(spec) for name, spec in rows}

    def delete_rollout(self, tenant: str, model: str, name: str) -> bool:
        """Remove a rollout; True when it existed."""
        model_id, _ = self._model(tenant, model)
        with self._transaction() as cur:
            gone = cur.execute(
                "DELETE FROM rollouts WHERE model_id = ? AND name = ? RETURNING name",
                [model_id, name],
            ).fetchall()
        return bool(gone)


def _rollup_table(model_id: int, rollups: list[Rollup]) -> pa.Table:
    return pa.table(
        {
            "model_id": pa.array([model_id] * len(rollups), pa.int32()),
            "version": pa.array([r.version for r in rollups], pa.string()),
            "bucket": pa.array([r.bucket for r in rollups], pa.timestamp("us", tz="UTC")),
            "segment_column": pa.array([r.segment_column for r in rollups], pa.string()),
            "segment_value": pa.array([r.segment_value for r in rollups], pa.string()),
            "n_rows": pa.array([r.rows for r in rollups], pa.int64()),
            "labeled": pa.array([r.labeled for r in rollups], pa.int64()),
            "states": pa.array([r.states for r in rollups], pa.binary()),
        }
    )


def _hour(bucket: datetime) -> int:
    """A bucket's start in microseconds since the epoch (as :data:`duckdb_append.Hour`)."""
    moment = bucket.replace(tzinfo=UTC) if bucket.tzinfo is None else bucket
    return (moment - _EPOCH) // timedelta(microseconds=1)
