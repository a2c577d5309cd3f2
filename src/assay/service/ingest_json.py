"""The fast path of JSON bodies: parsed events to Arrow columns in one C++ pass.

``pyarrow.array(events, type=struct)`` converts a list of event dicts to typed columns
with the same per-value rules the per-column conversion of :mod:`assay.service.ingest`
uses, without a Python loop per field. It answers ``None`` whenever the batch needs a
closer look (a value of another type, a JSON boolean where a number must be, a
``features`` that is not an object, an unknown feature or segment): the caller then takes
the per-field path, which names each problem. So a batch is read the same way either way,
only faster when it is clean.

>>> from assay.store.model import ModelSpec
>>> spec = ModelSpec(name="m", task="binary", features={"amount": "numeric"})
>>> events = [{"id": "e-1", "version": "v1", "score": 0.5, "features": {"amount": 2}}]
>>> prediction_columns(spec, events, b"")["feature.amount"].to_pylist()
[2.0]
>>> print(prediction_columns(spec, [{"id": "e-1", "features": {"colour": "red"}}], b""))
None
>>> print(prediction_columns(spec, [{"id": "e-1", "score": True}], b"true"))
None
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from assay.store.base import FEATURE_PREFIX, SCORES_PREFIX, SEGMENT_PREFIX, score_classes
from assay.store.model import ModelSpec

_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                      TypeError, ValueError, OverflowError)  # fmt: skip
_NO_BOOLS = ("score", "latency_ms")  # prediction and error take true/false as 1/0


def prediction_columns(spec: ModelSpec, events: list[Any], body: bytes) -> dict[str, Any] | None:
    """Canonical raw columns of prediction events (``None``: take the per-field path)."""
    classes = score_classes(spec)
    features = _objects(events, "features", set(spec.features))
    if features is None or _objects(events, "segments", set(spec.segments)) is None:
        return None
    scores = _objects(events, "scores", set(classes))
    if scores is None:
        return None
    label_type = pa.string() if spec.task == "multiclass" else pa.float64()
    event_type = pa.struct([
        ("id", pa.string()), ("version", pa.string()), ("timestamp", pa.string()),
        ("score", pa.float64()), ("prediction", label_type), ("latency_ms", pa.float64()),
        ("error", pa.float64()),
        ("features", pa.struct([(n, pa.float64() if k == "numeric" else pa.string())
                                for n, k in spec.features.items()])),
        ("segments", pa.struct([(n, pa.string()) for n in spec.segments])),
        ("scores", pa.struct([(n, pa.float64()) for n in classes])),
    ])  # fmt: skip
    columns = _convert(events, event_type)
    if columns is None:
        return None
    if b"true" in body or b"false" in body:  # a JSON boolean somewhere: not as a number
        numeric = [n for n, k in spec.features.items() if k == "numeric"]
        if (
            _has_bool([e.get(n) for e in events] for n in _NO_BOOLS)
            or _has_bool([f.get(n) for f in features] for n in numeric)
            or _has_bool([c.get(n) for c in scores] for n in classes)
        ):
            return None
    out: dict[str, Any] = {n: columns[n] for n in
                           ("id", "version", "timestamp", "score", "prediction", "latency_ms",
                            "error")}  # fmt: skip
    groups = ((FEATURE_PREFIX, "features"), (SEGMENT_PREFIX, "segments"), (SCORES_PREFIX, "scores"))
    for prefix, group in groups:
        for child in columns[group].type:
            out[prefix + child.name] = columns[f"{group}.{child.name}"]
    return out


def label_columns(spec: ModelSpec, events: list[Any], body: bytes) -> dict[str, Any] | None:
    """Raw columns of label events (``None``: take the per-field path).

    >>> from assay.store.model import ModelSpec
    >>> spec = ModelSpec(name="m", task="binary")
    >>> label_columns(spec, [{"id": "e-1", "label": 1}], b"")["label"].to_pylist()
    [1.0]
    >>> print(label_columns(spec, [{"id": "e-1", "label": True}], b"true"))
    None
    """
    label_type = pa.string() if spec.task == "multiclass" else pa.float64()
    event_type = pa.struct([("id", pa.string()), ("label", label_type),
                            ("timestamp", pa.string())])  # fmt: skip
    columns = _convert(events, event_type)
    if columns is None:
        return None
    boolean = label_type == pa.float64() and (b"true" in body or b"false" in body)
    if boolean and _has_bool([[e.get("label") for e in events]]):
        return None
    return columns


def _objects(events: list[Any], key: str, known: set[str]) -> list[dict[str, Any]] | None:
    """Each event's ``key`` object (``{}`` when absent); ``None`` if one is not an object of
    known names (or an event is not an object)."""
    if not all(type(e) is dict for e in events):
        return None
    found = [e.get(key) or {} for e in events]
    if not all(type(f) is dict for f in found) or set().union(*found) - known:
        return None
    return found


def _convert(events: list[Any], event_type: pa.StructType) -> dict[str, pa.Array] | None:
    """Flattened columns (``features.amount``) of ``events`` as ``event_type``."""
    try:
        array = pa.array(events, type=event_type)
    except _CONVERSION_ERRORS:
        return None
    columns: dict[str, pa.Array] = {}
    for field, column in zip(event_type, array.flatten(), strict=True):
        columns[field.name] = column
        if pa.types.is_struct(field.type):  # nested: parent nulls become child nulls
            for child, values in zip(field.type, column.flatten(), strict=True):
                columns[f"{field.name}.{child.name}"] = values
    return columns


def _has_bool(columns: Any) -> bool:
    return any(bool in set(map(type, values)) for values in columns)
