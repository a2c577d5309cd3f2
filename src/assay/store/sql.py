"""SQL shared by the DuckDB and PostgreSQL stores: physical names and migrations.

A model's predictions live in their own table ``p_<model_id>`` with typed columns
(``f_<i>`` per feature, ``s_<i>`` per segment, in registration order), its labels in
``l_<model_id>``; so a scan is a plain columnar join. A prediction is keyed by
(id, version), so a shadow version may score the same event as the champion; a label is
keyed by id and applies to every version's prediction of that event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from assay.store.base import FEATURE_PREFIX, SCORES_PREFIX, SEGMENT_PREFIX, score_classes
from assay.store.model import ModelSpec

SCHEMA_VERSION = 5
BUCKET = "hour"  # rollup granularity

# (version, statements); each backend runs them in order inside a transaction.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE IF NOT EXISTS models (
                model_id INTEGER PRIMARY KEY,
                tenant VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                spec VARCHAR NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                UNIQUE (tenant, name))""",
            """CREATE TABLE IF NOT EXISTS rollups (
                model_id INTEGER NOT NULL,
                version VARCHAR NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                segment_column VARCHAR NOT NULL,
                segment_value VARCHAR NOT NULL,
                n_rows BIGINT NOT NULL,
                labeled BIGINT NOT NULL,
                states {blob} NOT NULL)""",
            """CREATE INDEX IF NOT EXISTS rollups_lookup
                ON rollups (model_id, segment_column, bucket)""",
            """CREATE TABLE IF NOT EXISTS dirty_buckets (
                model_id INTEGER NOT NULL,
                version VARCHAR NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                mark BIGINT NOT NULL,
                PRIMARY KEY (model_id, version, bucket))""",
            "CREATE SEQUENCE IF NOT EXISTS dirty_marks",
            """CREATE TABLE IF NOT EXISTS idempotency (
                tenant VARCHAR NOT NULL,
                idem_key VARCHAR NOT NULL,
                body_hash VARCHAR NOT NULL,
                response VARCHAR NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (tenant, idem_key))""",
            """CREATE TABLE IF NOT EXISTS model_references (
                model_id INTEGER PRIMARY KEY,
                states {blob} NOT NULL,
                meta VARCHAR NOT NULL,
                created_at TIMESTAMPTZ NOT NULL)""",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE IF NOT EXISTS rollouts (
                model_id INTEGER NOT NULL,
                name VARCHAR NOT NULL,
                spec VARCHAR NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (model_id, name))""",
        ],
    ),
    (
        5,
        [  # hours an evaluation request rebuilt, until a monitor pass takes them
            """CREATE TABLE IF NOT EXISTS restated_hours (
                model_id INTEGER NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (model_id, bucket))""",
        ],
    ),
]


def prediction_table(model_id: int) -> str:
    """Physical table of a model's predictions."""
    return f"p_{int(model_id)}"


def label_table(model_id: int) -> str:
    """Physical table of a model's labels."""
    return f"l_{int(model_id)}"


def create_model_tables(spec: ModelSpec, model_id: int, *, text: str = "VARCHAR") -> list[str]:
    """DDL of one model's prediction and label tables."""
    label_type = text if spec.task == "multiclass" else "DOUBLE PRECISION"
    columns = [
        f"id {text} NOT NULL",
        f"version {text} NOT NULL",
        "ts TIMESTAMPTZ NOT NULL",
        "score DOUBLE PRECISION",
        f"prediction {label_type}",
    ]
    for i, kind in enumerate(spec.features.values()):
        columns.append(f"f_{i} {'DOUBLE PRECISION' if kind == 'numeric' else text}")
    columns.extend(f"s_{i} {text}" for i in range(len(spec.segments)))
    columns += ["latency_ms DOUBLE PRECISION", "error DOUBLE PRECISION"]
    columns.extend(f"c_{i} DOUBLE PRECISION" for i in range(len(score_classes(spec))))
    columns.append("received_at TIMESTAMPTZ NOT NULL")
    columns.append("PRIMARY KEY (id, version)")
    return [
        f"CREATE TABLE IF NOT EXISTS {prediction_table(model_id)} ({', '.join(columns)})",
        f"CREATE INDEX IF NOT EXISTS {prediction_table(model_id)}_ts "
        f"ON {prediction_table(model_id)} (ts)",
        f"""CREATE TABLE IF NOT EXISTS {label_table(model_id)} (
            id {text} PRIMARY KEY,
            label {label_type} NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL)""",
    ]


def rekey_statements(spec: ModelSpec, model_id: int, *, dialect: str) -> list[str]:
    """Migration 2: key a model's predictions by (id, version) instead of id alone.

    Shadow deployments score one event with two versions; both predictions are kept, and a
    label (joined by id) applies to each.
    """
    table = prediction_table(model_id)
    if dialect == "postgres":
        return [
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey",
            f"ALTER TABLE {table} ADD PRIMARY KEY (id, version)",
        ]
    create_table, create_index = create_model_tables(spec, model_id)[:2]
    return [
        f"DROP INDEX IF EXISTS {table}_ts",
        f"ALTER TABLE {table} RENAME TO {table}_v1",
        create_table,
        f"INSERT INTO {table} BY NAME SELECT * FROM {table}_v1",
        f"DROP TABLE {table}_v1",
        create_index,
    ]


def score_column_statements(spec: ModelSpec, model_id: int, *, dialect: str) -> list[str]:
    """Migration 4: a multiclass model's predictions gain one probability column per class.

    (Columns are added last on an existing table; DuckDB inserts by name, so the order of
    a table's columns does not matter.)
    """
    del dialect  # the same statement on both
    table = prediction_table(model_id)
    return [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS c_{i} DOUBLE PRECISION"
            for i in range(len(score_classes(spec)))]  # fmt: skip


# Migrations whose statements depend on each registered model: version -> statements.
PER_MODEL_MIGRATIONS: dict[int, Callable[..., list[str]]] = {
    2: rekey_statements,
    4: score_column_statements,
}

# Migrations of one backend only: version -> dialect -> statements (run after MIGRATIONS').
# 3: DuckDB looks a filter up in an index only when the index has one column, so the
# (tenant, idem_key) primary key alone left Idempotency-Key lookups scanning every record.
DIALECT_MIGRATIONS: dict[int, dict[str, list[str]]] = {
    3: {"duckdb": ["CREATE INDEX IF NOT EXISTS idempotency_by_key ON idempotency (idem_key)"]},
}


def migration_statements(
    version: int, dialect: str, models: Callable[[], list[tuple[Any, str]]]
) -> list[str]:
    """Every statement that brings a store to schema ``version`` from the one before.

    ``models()`` answers the registered (model_id, spec JSON) rows, read only when the
    migration rewrites each model's tables.

    >>> migration_statements(3, "duckdb", lambda: [])
    ['CREATE INDEX IF NOT EXISTS idempotency_by_key ON idempotency (idem_key)']
    """
    blob = "BYTEA" if dialect == "postgres" else "BLOB"
    statements = [s.format(blob=blob) for s in dict(MIGRATIONS).get(version, [])]
    statements += DIALECT_MIGRATIONS.get(version, {}).get(dialect, [])
    if version in PER_MODEL_MIGRATIONS:
        rewrite = PER_MODEL_MIGRATIONS[version]
        for model_id, spec in models():
            model = ModelSpec.model_validate_json(spec)
            statements += rewrite(model, int(model_id), dialect=dialect)
    return statements


def physical_columns(spec: ModelSpec) -> list[tuple[str, str]]:
    """(physical column, canonical Arrow name) of a prediction table, in order."""
    pairs = [("id", "id"), ("version", "version"), ("ts", "timestamp"), ("score", "score"),
             ("prediction", "prediction")]  # fmt: skip
    pairs += [(f"f_{i}", FEATURE_PREFIX + n) for i, n in enumerate(spec.features)]
    pairs += [(f"s_{i}", SEGMENT_PREFIX + n) for i, n in enumerate(spec.segments)]
    pairs += [("latency_ms", "latency_ms"), ("error", "error")]
    pairs += [(f"c_{i}", SCORES_PREFIX + c) for i, c in enumerate(score_classes(spec))]
    return pairs


def quote(identifier: str) -> str:
    """A double-quoted SQL identifier (inner quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def scan_sql(spec: ModelSpec, model_id: int, where: list[str]) -> str:
    """SELECT of predictions joined with labels, in canonical column names."""
    select = [f"p.{phys} AS {quote(name)}" for phys, name in physical_columns(spec)]
    select += ['l.label AS "label"', 'l.ts AS "label_timestamp"']
    sql = (
        f"SELECT {', '.join(select)} FROM {prediction_table(model_id)} p "
        f"LEFT JOIN {label_table(model_id)} l ON p.id = l.id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY p.ts, p.id"


def range_filter(
    prefix: str,
    version: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    time_column: str = "ts",
    placeholder: str = "?",
    moment: Callable[[datetime], Any] = lambda t: t,
) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters for one version and the time range [start, end)."""
    where: list[str] = []
    params: list[Any] = []
    if version is not None:
        where.append(f"{prefix}version = {placeholder}")
        params.append(version)
    if start is not None:
        where.append(f"{prefix}{time_column} >= {placeholder}")
        params.append(moment(start))
    if end is not None:
        where.append(f"{prefix}{time_column} < {placeholder}")
        params.append(moment(end))
    return where, params
