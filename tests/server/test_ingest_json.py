"""The fast path of JSON bodies reads every batch exactly as the per-field path does.

Differential tests: seeded random batches mixing clean and awkward values (booleans,
numbers where strings go, strings where numbers go, naive and offset timestamps, lists
for objects, unknown features) are read twice, with the fast path and with it switched
off; the tables (or the reported problems) must be equal. A few hand-written cases also
check which path a batch takes and the values it yields.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from assay.errors import AssayError
from assay.service import ingest, ingest_json
from assay.service.ingest import IngestLimits
from assay.store.model import ModelSpec

BINARY = ModelSpec(
    name="m",
    task="binary",
    features={"amount": "numeric", "country": "categorical"},
    segments=["channel"],
)
MULTICLASS = ModelSpec(
    name="z", task="multiclass", classes=["cat", "dog"], features={"size": "numeric"}
)
LIMITS = IngestLimits()

STRINGS = ["e-1", "true", "", "ünï", 7, 2.5, True, None, ["x"]]
NUMBERS = [0.25, 1, 0, 3, -2.5, 1e300, 2**60, True, False, None, "1.5", [1]]
STAMPS = [
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00.5+02:00",
    "2026-03-01T10:00:00",
    "2026-03-01 10:00:00Z",
    "2026-03-01",
    "2026-02-30T10:00:00Z",
    "noon",
    1700000000,
    None,
]
NOW = datetime(2026, 3, 2, tzinfo=UTC)


class _FrozenClock(datetime):
    """``datetime`` whose ``now`` is NOW: events without a timestamp get the same one."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return NOW


def _pick(rng: random.Random, clean: list[Any], awkward: list[Any], odd: bool) -> Any:
    return rng.choice(clean + awkward) if odd else rng.choice(clean)


def _event(rng: random.Random, spec: ModelSpec, kind: str, odd: bool) -> Any:
    if odd and rng.random() < 0.03:
        return rng.choice([None, 3, "event", []])
    stamp = _pick(rng, STAMPS[:2], STAMPS, odd)
    if kind == "labels":
        label = (
            _pick(rng, ["cat", "dog"], ["cow", 1, None, True], odd)
            if spec.task == "multiclass"
            else _pick(rng, [0, 1, 1.0], NUMBERS, odd)
        )
        return {"id": _pick(rng, STRINGS[:4], STRINGS, odd), "label": label, "timestamp": stamp}
    event: dict[str, Any] = {
        "id": _pick(rng, STRINGS[:4], STRINGS, odd),
        "version": _pick(rng, ["v1", "v2"], [2, None], odd),
        "timestamp": stamp,
        "score": _pick(rng, [0.1, 0.9, 1, 0, None], NUMBERS, odd),
        "prediction": _pick(rng, [0, 1, 1.0, True, False, None], [0.5, "1"], odd)
        if spec.task == "binary"
        else _pick(rng, ["cat", "dog", None], ["cow", 1], odd),
        "features": {},
        "segments": {},
    }
    for name, kind_ in spec.features.items():
        if rng.random() < 0.9:
            event["features"][name] = (
                _pick(rng, [1.5, 2, None], NUMBERS, odd)
                if kind_ == "numeric"
                else _pick(rng, ["DE", None], STRINGS, odd)
            )
    for name in spec.segments:
        event["segments"][name] = _pick(rng, ["web", "app", None], STRINGS, odd)
    scored = spec.task == "multiclass" or (odd and rng.random() < 0.05)
    if scored and rng.random() < 0.6:  # class probabilities: every class, or some, or others
        cat = _pick(rng, [0.25, 0.5, 1, 0], [1.5, -0.1, True, "0.5", None], odd)
        scores = {"cat": cat, "dog": 0.5}
        if odd and rng.random() < 0.2:
            scores = rng.choice([{"cat": 0.5}, {"cow": 0.5, "cat": 0.5, "dog": 0.0}, [0.5], 1])
        event["scores"] = scores
    for optional in ("latency_ms", "error"):
        if rng.random() < 0.3:
            event[optional] = _pick(rng, [12.5, 0, 1, True, False, None], [-1, "x", True], odd)
    oddity = rng.random() if odd else 1.0
    if oddity < 0.05:
        event["features"] = rng.choice([[], None, "x", [1.0], 0])
    elif oddity < 0.1:
        event["segments"] = rng.choice([[], None, "x"])
    elif oddity < 0.15:
        event["features"]["unknown"] = 1.0
    return event


def _read(spec: ModelSpec, kind: str, body: bytes) -> Any:
    read = ingest.predictions_from_json if kind == "predictions" else ingest.labels_from_json
    try:
        batch = read(spec, body, LIMITS)
    except AssayError as err:
        return type(err), str(err), getattr(err, "problems", None)
    return (
        batch.table.to_pylist(),
        batch.table.schema,
        batch.received,
        batch.repeated_in_batch,
        batch.coerced_to_null,
    )


@pytest.mark.parametrize("spec", [BINARY, MULTICLASS], ids=["binary", "multiclass"])
@pytest.mark.parametrize("kind", ["predictions", "labels"])
def test_fast_and_per_field_paths_read_every_batch_alike(
    spec: ModelSpec, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "datetime", _FrozenClock)
    rng = random.Random(f"{spec.name}-{kind}")
    fast_taken = 0
    for n in range(200):
        events = [_event(rng, spec, kind, odd=n % 3 == 0) for _ in range(rng.randint(1, 6))]
        body = orjson.dumps({("events" if kind == "predictions" else "labels"): events})
        with monkeypatch.context() as off:
            off.setattr(ingest_json, "prediction_columns", lambda *a: None)
            off.setattr(ingest_json, "label_columns", lambda *a: None)
            slow = _read(spec, kind, body)
        columns = (
            ingest_json.prediction_columns if kind == "predictions" else ingest_json.label_columns
        )(spec, events, body)
        fast_taken += columns is not None
        assert _read(spec, kind, body) == slow, events
    assert fast_taken >= 60  # the fast path is exercised, not only the fallback


def test_clean_events_take_the_fast_path_with_their_values() -> None:
    events = [
        {
            "id": "a",
            "version": "v1",
            "timestamp": "2026-03-01T10:00:00.5+02:00",
            "score": 1,
            "prediction": True,
            "error": False,
            "features": {"amount": 3, "country": "DE"},
            "segments": {"channel": "web"},
        },
        {
            "id": "b",
            "version": "v1",
            "timestamp": "2026-03-01T10:00:00Z",
            "score": 0.25,
            "features": None,
        },
    ]
    body = orjson.dumps({"events": events})
    assert ingest_json.prediction_columns(BINARY, events, body) is not None
    batch = ingest.predictions_from_json(BINARY, body, LIMITS)
    rows = batch.table.to_pylist()
    assert [r["timestamp"].isoformat() for r in rows] == [
        "2026-03-01T08:00:00.500000+00:00",
        "2026-03-01T10:00:00+00:00",
    ]
    assert [
        (
            r["score"],
            r["prediction"],
            r["error"],
            r["feature.amount"],
            r["feature.country"],
            r["segment.channel"],
        )
        for r in rows
    ] == [(1.0, 1.0, 0.0, 3.0, "DE", "web"), (0.25, None, None, None, None, None)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"score": True}, "score"),
        ({"latency_ms": False}, "latency_ms"),
        ({"features": {"amount": True}}, "features.amount"),
        ({"features": {"colour": "red"}}, "features.colour"),
        ({"features": ["DE"]}, "features"),
    ],
)
def test_awkward_values_fall_back_and_are_reported(change: dict[str, Any], field: str) -> None:
    event = {
        "id": "a",
        "version": "v1",
        "timestamp": "2026-03-01T10:00:00Z",
        "score": 0.5,
        **change,
    }
    body = orjson.dumps({"events": [event]})
    assert ingest_json.prediction_columns(BINARY, [event], body) is None
    with pytest.raises(AssayError) as caught:
        ingest.predictions_from_json(BINARY, body, LIMITS)
    assert caught.value.problems[0]["field"] == field  # type: ignore[attr-defined]
