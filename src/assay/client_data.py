"""Client-side data: dicts, DataFrames and Arrow tables as bodies of the HTTP API.

:class:`assay.Client` batches what it is given through these functions: dict events
(the JSON event shape) become JSON bodies, or typed Arrow columns when every value is
of the type its field takes in JSON; pandas / polars DataFrames and Arrow tables are
normalised (plain strings, UTC timestamps, no dictionaries) and sliced into batches,
sent as Arrow IPC streams or, nested by the model's spec, as JSON.

>>> t = table_from_events([{"id": "e-1", "score": 0.5, "features": {"amount": 2}}],
...                       "predictions", {"task": "binary", "features": {"amount": "numeric"}})
>>> t.column_names, t.column("feature.amount").to_pylist()
(['id', 'score', 'feature.amount'], [2.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from assay.errors import InputError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
BASE_FIELDS = ("id", "version", "timestamp", "score", "prediction", "latency_ms", "error")
PREDICTION_KEYS = frozenset({*BASE_FIELDS, "features", "segments", "scores"})
LABEL_KEYS = frozenset({"id", "label", "timestamp"})
FEATURE_PREFIX, SEGMENT_PREFIX, SCORES_PREFIX = "feature.", "segment.", "scores."
TIMESTAMP = pa.timestamp("us", tz="UTC")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

Kind = Literal["predictions", "labels"]


@dataclass
class Layout:
    """Which flat column carries which field of a model's events."""

    features: dict[str, str] = field(default_factory=dict)  # column -> feature name
    segments: dict[str, str] = field(default_factory=dict)  # column -> segment name
    scores: dict[str, str] = field(default_factory=dict)  # column -> class (multiclass)


def check_events(events: list[Any], kind: Kind, offset: int = 0) -> None:
    """Refuse what the server would silently ignore: keys outside the event shape.

    >>> check_events([{"id": "e-1", "amount": 3.0}], "predictions")
    Traceback (most recent call last):
    ...
    assay.errors.InputError: event 0 has unknown key 'amount' (predictions events have \
the keys ['error', 'features', 'id', 'latency_ms', 'prediction', 'score', 'scores', 'segments', \
'timestamp', 'version']; features and segments go in their own dicts)
    """
    allowed = PREDICTION_KEYS if kind == "predictions" else LABEL_KEYS
    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise InputError(
                f"event {offset + i} is a {type(event).__name__}, not a dict", field="event"
            )
        extra = event.keys() - allowed
        if extra:
            name = sorted(map(str, extra))[0]
            hint = f"{kind} events have the keys {sorted(allowed)}"
            if kind == "predictions":
                hint += "; features and segments go in their own dicts"
            raise InputError(f"event {offset + i} has unknown key {name!r}", field=name, hint=hint)


def json_default(value: Any) -> Any:
    """orjson fallback: numpy scalars, pandas timestamps, decimals."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def json_body(key: str, events: list[Any]) -> bytes:
    try:
        return orjson.dumps({key: events}, default=json_default, option=_JSON_OPTIONS)
    except TypeError as err:
        raise InputError(f"an event cannot be sent as JSON: {err}", field=key) from err


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def peek(data: Any) -> tuple[Any, Iterable[Any]]:
    """The first item of ``data`` (None when empty) and an iterable of all its items."""
    if data is None:
        raise InputError("no data given", field="data")
    if isinstance(data, pa.Table | pa.RecordBatch):
        return (data if data.num_rows else None), [data]
    module = type(data).__module__.split(".")[0]
    if module in ("pandas", "polars") and hasattr(data, "columns"):
        return (data if len(data) else None), [data]
    if isinstance(data, Mapping | str | bytes):
        raise InputError(
            f"data must be a list of events or a table, not a {type(data).__name__}", field="data"
        )
    if isinstance(data, pa.RecordBatchReader):
        data = iter(data)
    if isinstance(data, Sequence):
        return (data[0] if data else None), data
    iterator = iter(data)
    for first in iterator:
        return first, _prepend(first, iterator)
    return None, ()


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
        return
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def to_table(data: Any) -> pa.Table:
    """A pandas / polars DataFrame, Arrow table or record batch as an Arrow table.

    >>> to_table(pa.record_batch({"id": ["a"]})).num_rows
    1
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        # zone-aware columns as UTC wall time (read back as UTC by _normalize): pyarrow's
        # own conversion of them goes through an API pandas deprecates
        aware = {
            name: data[name].dt.tz_convert("UTC").dt.tz_localize(None)
            for name, dtype in data.dtypes.items()
            if isinstance(dtype, pd.DatetimeTZDtype) and isinstance(name, str)
        }
        return pa.Table.from_pandas(data.assign(**aware) if aware else data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    raise InputError(
        f"cannot read a {type(data).__name__} as a table of events",
        field="data",
        hint="pass dicts, a pandas or polars DataFrame, or a pyarrow Table",
    )


def tables(items: Iterable[Any]) -> Iterator[pa.Table]:
    for item in items:
        table = to_table(item)
        if table.num_rows:
            yield normalize(table)


def normalize(table: pa.Table) -> pa.Table:
    """Plain types the server reads everywhere: string, UTC timestamps, no dictionaries."""
    table = table.replace_schema_metadata(None)
    for i, column in enumerate(table.schema):
        kind = column.type
        target = None
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            target = kind
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            target = pa.string()
        if pa.types.is_timestamp(kind) and (kind.unit != "us" or kind.tz != "UTC"):
            target = TIMESTAMP
        if pa.types.is_date(kind) and column.name == "timestamp":
            target = TIMESTAMP
        if target is not None:
            try:
                cast = table.column(i).cast(target, safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise InputError(
                    f"column {column.name!r} cannot be sent as {target}: {err}", field=column.name
                ) from err
            table = table.set_column(i, pa.field(column.name, target), cast)
    return table


def rebatch(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last may be shorter), zero-copy where possible."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            take = min(size - held, table.num_rows - start)
            pending.append(table.slice(start, take))
            held += take
            start += take
            if held == size:
                yield _concat(pending)
                pending, held = [], 0
    if held:
        yield _concat(pending)


def _concat(parts: list[pa.Table]) -> pa.Table:
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"record batches disagree on their columns: {err}", field="data") from err


def table_from_events(
    events: list[Mapping[str, Any]], kind: Kind, spec: Mapping[str, Any]
) -> pa.Table | None:
    """Flat, typed Arrow columns of dict events, read exactly as the server reads JSON.

    Returns None when some value is not of the type its field takes in JSON (a string
    score, a numeric id, a boolean label, an unparsable timestamp, an unknown feature):
    such a batch goes as JSON, so the server names each bad event and field.
    """
    multiclass = spec.get("task") == "multiclass"
    kinds: dict[str, str]
    columns: dict[str, list[Any]] = {}
    if kind == "labels":
        kinds = {
            "id": "string",
            "label": "string" if multiclass else "number",
            "timestamp": "timestamp",
        }
        names = list(kinds)
        for name in names:
            if any(name in e for e in events):
                columns[name] = [e.get(name) for e in events]
    else:
        kinds = {
            "id": "string",
            "version": "string",
            "timestamp": "timestamp",
            "score": "number",
            "prediction": "string" if multiclass else "prediction",
            "latency_ms": "number",
            "error": "number",  # JSON true/false: such a batch is sent as JSON
        }
        for name in BASE_FIELDS:
            if any(name in e for e in events):
                columns[name] = [e.get(name) for e in events]
        declared = (
            ("features", FEATURE_PREFIX, dict(spec.get("features") or {})),
            ("segments", SEGMENT_PREFIX, dict.fromkeys(spec.get("segments") or [], "categorical")),
            ("scores", SCORES_PREFIX, dict.fromkeys(_classes(spec), "numeric")),
        )
        for key, prefix, fields in declared:
            nested = [e.get(key) or {} for e in events]
            if not all(isinstance(d, Mapping) for d in nested):
                return None
            if any(d.keys() - fields.keys() for d in nested):
                return None
            for name, field_kind in fields.items():
                if any(name in d for d in nested):
                    columns[prefix + name] = [d.get(name) for d in nested]
                    kinds[prefix + name] = "number" if field_kind == "numeric" else "string"
    arrays = {}
    for name, values in columns.items():
        array = _typed_array(values, kinds[name])
        if array is None:
            return None
        arrays[name] = array
    return pa.table(arrays) if arrays else None


def _typed_array(values: list[Any], kind: str) -> pa.Array | None:
    """``values`` as the server's JSON reader takes them, or None if it would not."""
    if kind == "timestamp":
        stamps = []
        for value in values:
            if value is None:
                stamps.append(None)
                continue
            if isinstance(value, str):
                try:
                    value = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return None
            if not isinstance(value, datetime):
                return None
            stamps.append(value.replace(tzinfo=UTC) if value.tzinfo is None else value)
        return pa.array(stamps, TIMESTAMP)
    present = set(map(type, values)) - {type(None)}
    if not present:
        return pa.nulls(len(values))
    if kind == "string":
        target, ok = pa.string(), all(issubclass(t, str) for t in present)
    else:
        target, ok = pa.float64(), all(_is_number(t) for t in present)
        if (
            not ok
            and kind == "prediction"
            and all(_is_number(t) or issubclass(t, bool | np.bool_) for t in present)
        ):  # JSON true/false are predictions 1/0
            values = [float(v) if isinstance(v, bool | np.bool_) else v for v in values]
            ok = True
    if not ok:
        return None
    try:
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None


def _is_number(kind: type) -> bool:
    """A number type as JSON has them: ints and floats, not booleans."""
    return issubclass(kind, int | float | np.integer | np.floating) and not issubclass(
        kind, bool | np.bool_
    )


def check_columns(names: Iterable[str], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise InputError(f"unknown {what} column(s) {unknown[:5]}", field=unknown[0])


def layout_of(spec: Mapping[str, Any], table: pa.Table) -> Layout:
    """Map a flat table's columns to the model's features and segments."""
    layout = Layout()
    names = set(table.column_names)
    used = set(BASE_FIELDS)
    for prefix, declared, target in (
        (FEATURE_PREFIX, spec.get("features") or {}, layout.features),
        (SEGMENT_PREFIX, spec.get("segments") or [], layout.segments),
    ):
        for name in declared:
            for candidate in (prefix + name, name):
                if candidate in names:
                    target[candidate] = name
                    used.add(candidate)
                    break
    for name in _classes(spec):  # class probabilities: canonical names only
        if SCORES_PREFIX + name in names:
            layout.scores[SCORES_PREFIX + name] = name
            used.add(SCORES_PREFIX + name)
    unknown = sorted(names - used)
    if unknown:
        raise InputError(
            f"column(s) {unknown[:5]} are not fields of model {spec.get('name')!r}",
            field=unknown[0],
            hint="send id, version, timestamp, score, prediction, the registered "
            "features and segments (and scores.<class> for a multiclass model)",
        )
    return layout


def _classes(spec: Mapping[str, Any]) -> list[str]:
    return list(spec.get("classes") or []) if spec.get("task") == "multiclass" else []


def events_from_rows(rows: list[dict[str, Any]], layout: Layout) -> list[dict[str, Any]]:
    """JSON events (features and segments nested) of flat rows."""
    base = [name for name in BASE_FIELDS if rows and name in rows[0]]
    features, segments = list(layout.features.items()), list(layout.segments.items())
    events = []
    for row in rows:
        event = {name: row[name] for name in base}
        if features:
            event["features"] = {name: row[col] for col, name in features}
        if segments:
            event["segments"] = {name: row[col] for col, name in segments}
        scores = {name: row[col] for col, name in layout.scores.items() if row[col] is not None}
        if scores:  # an event with no probabilities sends none
            event["scores"] = scores
        events.append(event)
    return events


def reference_table(data: Any) -> pa.Table:
    """A reference data set as a flat table (event dicts have their features flattened)."""
    first, items = peek(data)
    if first is None:
        raise InputError("the reference has no rows", field="reference")
    if isinstance(first, Mapping):
        rows = []
        for event in items:
            row = {k: v for k, v in event.items() if k not in ("features", "segments")}
            row.update(event.get("features") or {})
            row.update(event.get("segments") or {})
            rows.append(row)
        return normalize(pa.Table.from_pylist(rows))
    return pa.concat_tables(list(tables(items)), promote_options="permissive")
