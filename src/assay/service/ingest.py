"""Turning request bodies into canonical, validated event tables (all-or-nothing).

A batch is checked whole before anything is stored: every bad event is reported with
its index, field and reason, and one bad event rejects the batch. Checks run on Arrow
columns; per-event Python work is limited to pulling JSON fields into columns.

>>> from assay.store.model import ModelSpec
>>> spec = ModelSpec(name="m", task="binary", features={"amount": "numeric"})
>>> body = b'{"events": [{"id": "e-1", "version": "v1", "score": 0.9, "prediction": 1,'
>>> body += b' "timestamp": "2026-11-01T12:00:00Z", "features": {"amount": 12.5}}]}'
>>> batch = predictions_from_json(spec, body, IngestLimits())
>>> batch.table.num_rows, batch.table.column("feature.amount").to_pylist()
(1, [12.5])
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from assay.errors import BatchValidationError, InputError, PayloadTooLargeError
from assay.service import ingest_json
from assay.store.base import (
    FEATURE_PREFIX,
    SCORES_PREFIX,
    SEGMENT_PREFIX,
    empty_prediction_table,
    label_schema,
    score_classes,
)
from assay.store.model import ModelSpec

TIMESTAMP = pa.timestamp("us", tz="UTC")
_EVENT_FIELDS = ("id", "version", "timestamp", "score", "prediction", "latency_ms", "error")
MAX_PROBLEMS_LISTED = 100


@dataclass(frozen=True)
class IngestLimits:
    """Documented limits of one request (each answers with its own status)."""

    max_body_bytes: int = 32 * 2**20  # 413
    max_events: int = 10_000  # 413
    max_string_length: int = 1024  # 422
    max_future: timedelta = timedelta(hours=1)  # 422: timestamps further ahead


@dataclass(frozen=True)
class PreparedBatch:
    """A validated batch: canonical columns, repeats inside the batch removed."""

    table: pa.Table
    received: int
    repeated_in_batch: int
    coerced_to_null: int


class _Problems:
    def __init__(self, total: int):
        self.total = total
        self.items: list[dict[str, Any]] = []

    def add(self, index: int, field: str, reason: str) -> None:
        # report fields as the JSON body names them: features.amount, segments.channel
        if field.startswith((FEATURE_PREFIX, SEGMENT_PREFIX)):
            field = field.replace(".", "s.", 1)
        self.items.append({"index": int(index), "field": field, "reason": reason})

    def add_mask(self, mask: np.ndarray, field: str, reason: str) -> None:
        for index in np.flatnonzero(mask)[:MAX_PROBLEMS_LISTED]:
            self.add(int(index), field, reason)

    def raise_if_any(self) -> None:
        if self.items:
            # one problem per (event, field): the first found is the most specific (a value
            # that does not convert is not reported again as missing)
            first = {(p["index"], p["field"]): p for p in reversed(self.items)}
            items = sorted(first.values(), key=lambda p: (p["index"], p["field"]))
            raise BatchValidationError(items[:MAX_PROBLEMS_LISTED], total=self.total)


# -- JSON bodies ------------------------------------------------------------------------


def _load_json(body: bytes, key: str, limits: IngestLimits) -> list[Any]:
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes}",
            field="body",
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InputError(f"the body is not valid JSON: {err}", field="body") from err
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise InputError(f'the body must be an object with a list "{key}"', field=key)
    events = document[key]
    if len(events) > limits.max_events:
        raise PayloadTooLargeError(
            f"{len(events)} events in one batch exceed the limit of {limits.max_events}",
            field=key,
            hint="split the batch",
        )
    if not events:
        raise InputError(f'"{key}" is empty', field=key)
    return events


def predictions_from_json(spec: ModelSpec, body: bytes, limits: IngestLimits) -> PreparedBatch:
    """Parse and validate ``{"events": [...]}``."""
    events = _load_json(body, "events", limits)
    problems = _Problems(len(events))
    columns = ingest_json.prediction_columns(spec, events, body)  # a clean batch, fast
    if columns is not None:
        return _finish_predictions(spec, columns, len(events), limits, problems)
    known_features, known_segments = set(spec.features), set(spec.segments)
    classes = score_classes(spec)
    features: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            problems.add(i, "event", "each event is a JSON object")
            event = {}
        f = event.get("features") or {}
        s = event.get("segments") or {}
        if not isinstance(f, dict) or not isinstance(s, dict):
            problems.add(i, "features", "features and segments are JSON objects")
            f, s = {}, {}
        c = event.get("scores") or {}
        if not isinstance(c, dict) or (c and not classes):
            problems.add(i, "scores", "scores are a JSON object of class -> probability "
                         "(multiclass models only)")  # fmt: skip
            c = {}
        if c.keys() - set(classes):
            extra = sorted(c.keys() - set(classes))[:3]
            problems.add(i, f"scores.{extra[0]}", f"not a registered class: {extra}")
        scores.append(c)
        if f.keys() - known_features:
            extra = sorted(f.keys() - known_features)[:3]
            problems.add(i, f"features.{extra[0]}", f"not a registered feature: {extra}")
        if s.keys() - known_segments:
            extra = sorted(s.keys() - known_segments)[:3]
            problems.add(i, f"segments.{extra[0]}", f"not a registered segment: {extra}")
        features.append(f)
        segments.append(s)
    rows = [e if isinstance(e, dict) else {} for e in events]
    raw: dict[str, list[Any]] = {
        "id": [e.get("id") for e in rows],
        "version": [e.get("version") for e in rows],
        "timestamp": [e.get("timestamp") for e in rows],
        "score": [e.get("score") for e in rows],
        "prediction": [e.get("prediction") for e in rows],
        "latency_ms": [e.get("latency_ms") for e in rows],
        "error": [e.get("error") for e in rows],
    }
    for name in spec.features:
        raw[FEATURE_PREFIX + name] = [f.get(name) for f in features]
    for name in spec.segments:
        raw[SEGMENT_PREFIX + name] = [s.get(name) for s in segments]
    for name in classes:
        raw[SCORES_PREFIX + name] = [c.get(name) for c in scores]
    return _finish_predictions(spec, raw, len(events), limits, problems)


def labels_from_json(spec: ModelSpec, body: bytes, limits: IngestLimits) -> PreparedBatch:
    """Parse and validate ``{"labels": [...]}``."""
    events = _load_json(body, "labels", limits)
    problems = _Problems(len(events))
    columns = ingest_json.label_columns(spec, events, body)  # a clean batch, fast
    if columns is not None:
        return _finish_labels(spec, columns, len(events), limits, problems)
    rows = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            problems.add(i, "label", "each label is a JSON object")
            event = {}
        rows.append(event)
    raw = {
        "id": [e.get("id") for e in rows],
        "label": [e.get("label") for e in rows],
        "timestamp": [e.get("timestamp") for e in rows],
    }
    return _finish_labels(spec, raw, len(events), limits, problems)


# -- Arrow and Parquet bodies -----------------------------------------------------------


def read_arrow_body(body: bytes, content_type: str, limits: IngestLimits) -> pa.Table:
    """Read an Arrow IPC (stream or file) or Parquet body.

    The row count is checked before the data is decompressed (Parquet metadata, IPC
    batch by batch), so a small compressed body cannot inflate into a huge table.
    """
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes}",
            field="body",
        )
    try:
        if "parquet" in content_type:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(io.BytesIO(body))
            _check_rows(parquet.metadata.num_rows, limits)
            table = parquet.read()
        else:
            try:
                stream = pa.ipc.open_stream(body)
                table = _bounded_table(stream, stream.schema, limits)
            except pa.ArrowInvalid:
                file = pa.ipc.open_file(pa.BufferReader(body))
                batches = (file.get_batch(i) for i in range(file.num_record_batches))
                table = _bounded_table(batches, file.schema, limits)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"cannot read the {content_type} body: {err}", field="body") from err
    _check_rows(table.num_rows, limits)
    if table.num_rows == 0:
        raise InputError("the body holds no rows", field="events")
    return table


def _bounded_table(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, limits: IngestLimits
) -> pa.Table:
    """The batches as one table, stopping as soon as they hold too many rows."""
    kept, rows = [], 0
    for batch in batches:
        rows += batch.num_rows
        _check_rows(rows, limits)
        kept.append(batch)
    return pa.Table.from_batches(kept, schema=schema)


def _check_rows(rows: int, limits: IngestLimits) -> None:
    if rows > limits.max_events:
        raise PayloadTooLargeError(
            f"{rows} or more events in one batch exceed the limit of {limits.max_events}",
            field="events",
            hint="split the batch",
        )


def predictions_from_arrow(spec: ModelSpec, table: pa.Table, limits: IngestLimits) -> PreparedBatch:
    """Validate an Arrow table whose columns are named as the JSON fields.

    Features and segments are columns named by the feature or segment (``amount``) or
    with the canonical prefix (``feature.amount``).
    """
    problems = _Problems(table.num_rows)
    names = set(table.column_names)
    allowed = set(_EVENT_FIELDS)
    raw: dict[str, Any] = {}
    for col in _EVENT_FIELDS:
        raw[col] = table.column(col) if col in names else pa.nulls(table.num_rows)
    for prefix, declared in ((FEATURE_PREFIX, spec.features), (SEGMENT_PREFIX, spec.segments)):
        for name in declared:
            for candidate in (prefix + name, name):
                if candidate in names:
                    raw[prefix + name] = table.column(candidate)
                    allowed.add(candidate)
                    break
            else:
                raw[prefix + name] = pa.nulls(table.num_rows)
    for name in score_classes(spec):  # class probabilities: canonical names only
        column = SCORES_PREFIX + name
        raw[column] = table.column(column) if column in names else pa.nulls(table.num_rows)
        allowed.add(column)
    unknown = sorted(names - allowed)
    if unknown:
        raise InputError(
            f"column(s) {unknown[:5]} are not fields of model {spec.name!r}",
            field=unknown[0],
            hint="send id, version, timestamp, score, prediction, the registered "
            "features and segments (and scores.<class> for a multiclass model)",
        )
    return _finish_predictions(spec, raw, table.num_rows, limits, problems)


def labels_from_arrow(spec: ModelSpec, table: pa.Table, limits: IngestLimits) -> PreparedBatch:
    """Validate an Arrow table of labels (columns id, label, timestamp)."""
    problems = _Problems(table.num_rows)
    names = set(table.column_names)
    unknown = sorted(names - {"id", "label", "timestamp"})
    if unknown:
        raise InputError(f"unknown label column(s) {unknown[:5]}", field=unknown[0])
    raw = {c: table.column(c) if c in names else pa.nulls(table.num_rows) for c in
           ("id", "label", "timestamp")}  # fmt: skip
    return _finish_labels(spec, raw, table.num_rows, limits, problems)


# -- shared checks ----------------------------------------------------------------------


def _finish_predictions(
    spec: ModelSpec, raw: dict[str, Any], n: int, limits: IngestLimits, problems: _Problems
) -> PreparedBatch:
    now = datetime.now(UTC)
    schema = empty_prediction_table(spec)
    columns: dict[str, pa.Array] = {}
    columns["id"] = _strings(raw["id"], "id", problems, limits, required=True)
    columns["version"] = _strings(raw["version"], "version", problems, limits, required=True)
    columns["timestamp"] = _timestamps(raw["timestamp"], "timestamp", problems, limits, now)
    score = _floats(raw["score"], "score", problems)
    columns["score"] = score
    if spec.task == "binary":
        s = score.to_numpy(zero_copy_only=False)
        problems.add_mask(~np.isnan(s) & ((s < 0) | (s > 1)), "score", "must be in [0, 1]")
        problems.add_mask(_non_finite(score), "score", "must be a finite number")
    columns["prediction"] = _prediction(spec, raw["prediction"], problems)
    latency = _floats(raw["latency_ms"], "latency_ms", problems)
    lat = latency.to_numpy(zero_copy_only=False)
    problems.add_mask(~np.isnan(lat) & ((lat < 0) | ~np.isfinite(lat)), "latency_ms",
                      "must be a finite number of milliseconds >= 0")  # fmt: skip
    columns["latency_ms"] = latency
    columns["error"] = _error_flags(raw["error"], problems)
    coerced = 0
    for name, kind in spec.features.items():
        key = FEATURE_PREFIX + name
        if kind == "numeric":
            values = _floats(raw[key], key, problems)
            bad = _non_finite(values)
            if bad.any():
                coerced += int(bad.sum())
                values = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), values)
            columns[key] = values
        else:
            columns[key] = _strings(raw[key], key, problems, limits)
    for name in spec.segments:
        key = SEGMENT_PREFIX + name
        columns[key] = _strings(raw[key], key, problems, limits)
    columns.update(_class_scores(spec, raw, problems))
    problems.raise_if_any()
    table = pa.table(columns, schema=schema)
    table, repeats = _first_of_each(table, ["id", "version"])  # a shadow version may reuse an id
    return PreparedBatch(table, n, repeats, coerced)


def _finish_labels(
    spec: ModelSpec, raw: dict[str, Any], n: int, limits: IngestLimits, problems: _Problems
) -> PreparedBatch:
    now = datetime.now(UTC)
    ids = _strings(raw["id"], "id", problems, limits, required=True)
    stamps = _timestamps(raw["timestamp"], "timestamp", problems, limits, now)
    if spec.task == "multiclass":
        label = _strings(raw["label"], "label", problems, limits, required=True)
        known = pc.is_in(label, value_set=pa.array(spec.classes or []))
        problems.add_mask(
            ~np.asarray(known.fill_null(True), dtype=bool), "label", "not a registered class"
        )
    else:
        label = _floats(raw["label"], "label", problems)
        values = label.to_numpy(zero_copy_only=False)
        problems.add_mask(np.isnan(values), "label", "is required and must be a number")
        problems.add_mask(_non_finite(label), "label", "must be a finite number")
        if spec.task == "binary":
            problems.add_mask(~np.isnan(values) & (values != 0) & (values != 1), "label",
                              "must be 0 or 1")  # fmt: skip
    problems.raise_if_any()
    table = pa.table({"id": ids, "label": label, "timestamp": stamps}, schema=label_schema(spec))
    table, repeats = _first_of_each(table, ["id"])
    return PreparedBatch(table, n, repeats, 0)


def _first_of_each(table: pa.Table, keys: list[str]) -> tuple[pa.Table, int]:
    """The first row of each distinct ``keys`` value, and how many repeats were dropped."""
    if len(pc.unique(table.column(keys[0]))) == table.num_rows:  # the usual case, quickly
        return table, 0
    rows = table.select(keys).append_column("row", pa.array(np.arange(table.num_rows)))
    first = rows.group_by(keys, use_threads=False).aggregate([("row", "min")]).column("row_min")
    if len(first) == table.num_rows:
        return table, 0
    return table.take(np.sort(first.to_numpy())), table.num_rows - len(first)


def _as_array(values: Any, kind: pa.DataType, convert: Callable[[Any], Any], field: str,
              problems: _Problems) -> pa.Array:  # fmt: skip
    """Arrow array of ``kind``; values that do not convert become null and a problem."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        try:
            return values.cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            values = values.to_pylist()
    # Arrow reads JSON true/false as 1/0: leave booleans to ``convert``, which rejects them
    if bool not in set(map(type, values)):
        try:
            return pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass
    cleaned: list[Any] = []
    for i, value in enumerate(values):
        try:
            cleaned.append(None if value is None else convert(value))
        except (TypeError, ValueError, OverflowError) as err:
            problems.add(i, field, str(err) or f"cannot be read as {kind}")
            cleaned.append(None)
    return pa.array(cleaned, type=kind)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"must be a number, got {type(value).__name__}")
    return float(value)


def _floats(values: Any, field: str, problems: _Problems) -> pa.Array:
    return _as_array(values, pa.float64(), _to_float, field, problems)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"must be a string, got {type(value).__name__}")
    return str(value)


def _strings(values: Any, field: str, problems: _Problems, limits: IngestLimits,
             required: bool = False) -> pa.Array:  # fmt: skip
    array = _as_array(values, pa.string(), _to_string, field, problems)
    lengths = np.asarray(pc.utf8_length(array).fill_null(0), dtype=np.int64)
    problems.add_mask(lengths > limits.max_string_length, field,
                      f"longer than {limits.max_string_length} characters")  # fmt: skip
    if required:
        missing = np.asarray(array.is_null(), dtype=bool) | (lengths == 0)
        problems.add_mask(missing, field, "is required")
    return array


def _to_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("must be an ISO-8601 string such as 2026-11-01T12:00:00Z")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _timestamps(values: Any, field: str, problems: _Problems, limits: IngestLimits,
                now: datetime) -> pa.Array:  # fmt: skip
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and (
        pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    ):  # epoch numbers are ambiguous (s, ms, us?): ask for a timestamp instead
        problems.add_mask(np.asarray(values.is_valid(), dtype=bool), field,
                          "must be a timestamp or an ISO-8601 string, not a number")  # fmt: skip
        values = pa.nulls(len(values), TIMESTAMP)
    array = _as_array(values, TIMESTAMP, _to_timestamp, field, problems)
    array = array.fill_null(pa.scalar(now, TIMESTAMP))  # no timestamp: received now
    late = pc.greater(array, pa.scalar(now + limits.max_future, TIMESTAMP))
    problems.add_mask(np.asarray(late, dtype=bool), field,
                      f"more than {limits.max_future} in the future")  # fmt: skip
    return array


def _prediction(spec: ModelSpec, values: Any, problems: _Problems) -> pa.Array:
    if spec.task == "multiclass":
        array = _as_array(values, pa.string(), _to_string, "prediction", problems)
        known = pc.is_in(array, value_set=pa.array(spec.classes or []))
        given = np.asarray(array.is_valid(), dtype=bool)  # absent: the most probable class
        problems.add_mask(given & ~np.asarray(known, dtype=bool), "prediction",
                          "not a registered class")  # fmt: skip
        return array
    if isinstance(values, Sequence) and not isinstance(values, str):
        values = [float(v) if isinstance(v, bool) else v for v in values]
    array = _floats(values, "prediction", problems)
    if spec.task == "binary":
        p = array.to_numpy(zero_copy_only=False)
        problems.add_mask(~np.isnan(p) & (p != 0) & (p != 1), "prediction", "must be 0 or 1")
    else:
        problems.add_mask(_non_finite(array), "prediction", "must be a finite number")
    return array


def _class_scores(spec: ModelSpec, raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    """A multiclass event's class probabilities: each in [0, 1], every class or none."""
    columns: dict[str, Any] = {}
    given: list[np.ndarray] = []
    for name in score_classes(spec):
        key = SCORES_PREFIX + name
        array = _floats(raw[key], key, problems)  # true/false are not numbers here
        p = array.to_numpy(zero_copy_only=False)
        problems.add_mask(~np.isnan(p) & ((p < 0) | (p > 1)), key, "must be in [0, 1]")
        problems.add_mask(_non_finite(array), key, "must be a finite number")
        columns[key] = array
        given.append(~np.isnan(p))
    if given:
        present = np.column_stack(given)
        partial = present.any(axis=1) & ~present.all(axis=1)
        problems.add_mask(partial, "scores", "give the probability of every registered class, "
                          "or none")  # fmt: skip
    return columns


def _error_flags(values: Any, problems: _Problems) -> pa.Array:
    """The serving call's error flag: true/false (or 1/0) as 1.0/0.0, null when absent."""
    if isinstance(values, list):
        values = [float(v) if isinstance(v, bool) else v for v in values]
    array = _floats(values, "error", problems)
    flags = array.to_numpy(zero_copy_only=False)
    problems.add_mask(~np.isnan(flags) & (flags != 0) & (flags != 1), "error",
                      "must be true or false")  # fmt: skip
    return array


def _non_finite(array: pa.Array) -> np.ndarray:
    """True where a float value is NaN or ±inf (nulls are fine)."""
    values = array.to_numpy(zero_copy_only=False)
    valid = np.asarray(array.is_valid(), dtype=bool)
    return valid & ~np.isfinite(np.where(valid, values, 0.0))


def body_hash(body: bytes) -> str:
    """Stable hash of a request body, for ``Idempotency-Key`` checks."""
    return hashlib.sha256(body).hexdigest()


__all__ = [
    "IngestLimits",
    "PreparedBatch",
    "body_hash",
    "labels_from_arrow",
    "labels_from_json",
    "predictions_from_arrow",
    "predictions_from_json",
    "read_arrow_body",
]
