"""Rollups: the states of each (model, version, hour, segment value), kept current.

Appends mark buckets dirty; :func:`refresh` rebuilds only those buckets from their rows
(a late label restates its bucket alone), and windows are answered by merging the
buckets' states — never by rescanning the window. The rows are always read in this
process (the store belongs to it); a :class:`RollupExecutor` decides where each bucket's
states are built: :class:`InProcess` (the default) or Ray
(:class:`assay.service.ray_rollups.RayRollupExecutor`).

States are packed per bucket as ``metric:*`` (labeled rows), ``feature:<name>`` (all
rows) and ``output:score`` (the model's score, all rows).
"""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.columns import LabeledColumns
from assay.engine.local import feature_state, metric_states
from assay.engine.spec import EvaluationSpec
from assay.stats import MulticlassProbaState, State
from assay.store.base import (
    FEATURE_PREFIX,
    SCORES_PREFIX,
    SEGMENT_PREFIX,
    DirtyBucket,
    Rollup,
    Store,
    score_classes,
)
from assay.store.model import ModelSpec

BUCKET = timedelta(hours=1)
NULL_SEGMENT = "(null)"


def pack(states: dict[str, State]) -> bytes:
    """Serialise named states into one blob (length-prefixed names and state bytes)."""
    parts = []
    for name, state in states.items():
        key, blob = name.encode(), state.to_bytes()
        parts.append(struct.pack("<II", len(key), len(blob)) + key + blob)
    return b"".join(parts)


def unpack(blob: bytes) -> dict[str, State]:
    """Inverse of :func:`pack`."""
    out: dict[str, State] = {}
    offset = 0
    while offset < len(blob):
        key_len, blob_len = struct.unpack_from("<II", blob, offset)
        offset += 8
        name = blob[offset : offset + key_len].decode()
        offset += key_len
        out[name] = State.from_bytes(blob[offset : offset + blob_len])
        offset += blob_len
    return out


def merge_all(bundles: list[dict[str, State]]) -> dict[str, State]:
    """Merge bundles name by name (a name missing from a bundle is skipped)."""
    merged: dict[str, State] = {}
    for bundle in bundles:
        for name, state in bundle.items():
            merged[name] = state if name not in merged else merged[name].merge(state)
    return merged


def evaluation_spec(spec: ModelSpec) -> EvaluationSpec:
    """The evaluation options a registered model implies."""
    return EvaluationSpec.build(
        task=spec.task,
        target="label",
        score="score" if spec.task == "binary" else None,
        prediction="prediction",
        threshold=spec.threshold,
    )


def states_of(spec: ModelSpec, rows: pa.Table) -> dict[str, State]:
    """Metric, feature and output states of a set of joined rows."""
    states: dict[str, State] = {}
    for name, kind in spec.features.items():
        states[f"feature:{name}"] = feature_state(name, kind, rows.column(FEATURE_PREFIX + name))
    if spec.task != "multiclass":
        states["output:score" if spec.task == "binary" else "output:prediction"] = feature_state(
            "score", "numeric", rows.column("score" if spec.task == "binary" else "prediction")
        )
    if "latency_ms" in rows.column_names:  # the serving calls' latency and errors
        states["ops:latency"] = feature_state("latency_ms", "numeric", rows.column("latency_ms"))
        states["ops:error"] = feature_state("error", "numeric", rows.column("error"))
    labeled = rows.filter(pc.is_valid(rows.column("label")))
    cols = _labeled_columns(spec, labeled)
    if cols is not None:
        proba = cols.y_score if spec.task == "multiclass" else None
        if proba is not None:  # probabilities of the events that carry them, apart
            cols = replace(cols, y_score=None)
        for i, state in enumerate(metric_states(evaluation_spec(spec), cols, None)):
            states[f"metric:{i}:{state.kind}"] = state
        if proba is not None:
            scored = ~np.isnan(proba[:, 0])
            state = MulticlassProbaState.from_batch(
                cols.y_true[scored], proba[scored], list(spec.classes or [])
            )
            states[f"metric:1:{state.kind}"] = state
    return states


def _labeled_columns(spec: ModelSpec, rows: pa.Table) -> LabeledColumns | None:
    if spec.task == "binary":
        rows = rows.filter(pc.is_valid(rows.column("score")))
        if rows.num_rows == 0:
            return None
        score = _floats(rows.column("score"))
        pred = _floats(rows.column("prediction"))
        pred = np.where(np.isnan(pred), (score >= spec.threshold).astype(float), pred)
        return LabeledColumns(rows.num_rows, _floats(rows.column("label")).astype(np.int8),
                              score, pred.astype(np.int8), None)  # fmt: skip
    if spec.task == "regression":
        rows = rows.filter(pc.is_valid(rows.column("prediction")))
        if rows.num_rows == 0:
            return None
        return LabeledColumns(rows.num_rows, _floats(rows.column("label")), None,
                              _floats(rows.column("prediction")), None)  # fmt: skip
    classes = list(spec.classes or [])
    proba = class_scores(spec, rows)
    scored = ~np.isnan(proba[:, 0]) if proba.size else np.zeros(rows.num_rows, dtype=bool)
    # an event is evaluated on its predicted class, or on its most probable one
    usable = np.asarray(pc.is_valid(rows.column("prediction")), dtype=bool) | scored
    if not usable.all():
        rows, proba, scored = rows.filter(pa.array(usable)), proba[usable], scored[usable]
    if rows.num_rows == 0:
        return None
    index = pa.array(classes)
    y = pc.index_in(rows.column("label"), value_set=index).to_numpy(zero_copy_only=False)
    given = pc.index_in(rows.column("prediction"), value_set=index)
    p = np.asarray(given.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if scored.any():
        p = np.where(p < 0, np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1), p)
    return LabeledColumns(rows.num_rows, y.astype(np.int64), proba if scored.any() else None,
                          p, None, classes)  # fmt: skip


def class_scores(spec: ModelSpec, rows: pa.Table) -> np.ndarray:
    """The rows' class probabilities (NaN where an event carries none), one column a class."""
    names = [SCORES_PREFIX + c for c in score_classes(spec)]
    if not names or names[0] not in rows.column_names:
        return np.zeros((rows.num_rows, 0))
    return np.column_stack([_floats(rows.column(n)) for n in names])


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def bucket_rollups(spec: ModelSpec, version: str, bucket: datetime, rows: pa.Table) -> list[Rollup]:
    """The rollups of one bucket: the whole version, then each value of each segment."""

    def rollup(column: str, value: str, part: pa.Table) -> Rollup:
        labeled = int(pc.sum(pc.is_valid(part.column("label"))).as_py() or 0)
        states = pack(states_of(spec, part))
        return Rollup(version, bucket, column, value, part.num_rows, labeled, states)

    out = [rollup("", "", rows)]
    for segment in spec.segments:
        values = pc.fill_null(rows.column(SEGMENT_PREFIX + segment), NULL_SEGMENT)
        for value in pc.unique(values).to_pylist():
            out.append(rollup(segment, value, rows.filter(pc.equal(values, value))))
    return out


class RollupSession(Protocol):
    """One refresh's rebuild: buckets are added as they are read, results taken per
    transaction."""

    def add(self, item: DirtyBucket, rows: pa.Table) -> None:
        """Hand over one dirty bucket and its rows (from :meth:`Store.scan`)."""

    def results(self) -> list[tuple[DirtyBucket, list[Rollup]]]:
        """The rollups of every bucket added since the last call, in the order added."""


class RollupExecutor(Protocol):
    """Where the buckets' states are built (see :func:`refresh`)."""

    def session(self, spec: ModelSpec) -> RollupSession:
        """A rebuild of some of ``spec``'s buckets (one per refresh)."""


class InProcess:
    """Builds each bucket's rollups as soon as it is read, in this process.

    >>> session = InProcess().session(ModelSpec(name="m", task="binary", features={}))
    >>> session.results()
    []
    """

    def session(self, spec: ModelSpec) -> RollupSession:
        """A session building in this process."""
        return _InProcessSession(spec)


class _InProcessSession:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.built: list[tuple[DirtyBucket, list[Rollup]]] = []

    def add(self, item: DirtyBucket, rows: pa.Table) -> None:
        self.built.append((item, bucket_rollups(self.spec, item.version, item.bucket, rows)))

    def results(self) -> list[tuple[DirtyBucket, list[Rollup]]]:
        built, self.built = self.built, []
        return built


def refresh(
    store: Store,
    tenant: str,
    model: str,
    dirty: list[DirtyBucket] | None = None,
    *,
    executor: RollupExecutor | None = None,
    per_transaction: int = 64,
) -> list[DirtyBucket]:
    """Rebuild the rollups of ``dirty`` (default: every dirty bucket of ``model``).

    Each bucket's rows are read here, one bucket at a time, and handed to ``executor``
    (default :class:`InProcess`); its rollups are written ``per_transaction`` buckets at
    a time (one commit each group). A bucket dirtied again meanwhile stays dirty.
    Returns the buckets rebuilt.

    >>> import tempfile
    >>> from assay.store.duckdb_store import DuckDBStore
    >>> store = DuckDBStore(tempfile.mkdtemp())
    >>> _ = store.register_model("acme", ModelSpec(name="m", task="binary", features={}))
    >>> refresh(store, "acme", "m", executor=InProcess())  # nothing stored, nothing dirty
    []
    >>> store.close()
    """
    spec = store.get_model(tenant, model)
    dirty = store.dirty_buckets(tenant, model) if dirty is None else list(dirty)
    session = (executor or InProcess()).session(spec)
    for first in range(0, len(dirty), per_transaction):
        for item in dirty[first : first + per_transaction]:
            end = item.bucket + BUCKET
            session.add(item, store.scan(tenant, model, version=item.version,
                                         start=item.bucket, end=end))  # fmt: skip
        store.replace_rollups_many(tenant, model, session.results())
    return dirty
