"""Merge laws of every state (property-based), serialisation, and incompatible merges.

Merging is the only place these tests compare the code with itself: a merged state
must give the same finished numbers as one state built from the concatenated batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.errors import IncompatibleStateError
from assay.stats import (
    BinaryConfusionState,
    BinaryScoreState,
    CategoricalCountState,
    MulticlassConfusionState,
    MulticlassProbaState,
    NumericSampleState,
    RegressionState,
    State,
)

RTOL = 1e-9
ATOL = 1e-12
CLASSES = ["a", "b", "c"]

PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Kind:
    """How to draw, concatenate, build and summarise batches of one state class."""

    name: str
    draw_row: Callable[[st.DrawFn], dict[str, Any]]
    build: Callable[[Batch], State]
    empty: Callable[[], State]
    summary: Callable[[State], dict[str, Any]]


def metric_values(state: State) -> dict[str, Any]:
    """The finished numbers of a MetricSet result without intervals (values, counts,
    extras and reasons)."""
    return {k: v for k, v in state.result().to_dict().items() if not k.endswith("_ci")}


def numeric_summary(state: State) -> dict[str, Any]:
    """NumericSampleState result plus the sorted values it keeps."""
    assert isinstance(state, NumericSampleState)
    return {**state.result(), "sorted": np.sort(state.data["values"]).tolist()}


def categorical_summary(state: State) -> dict[str, Any]:
    """CategoricalCountState result plus its counts."""
    assert isinstance(state, CategoricalCountState)
    return {**state.result(), "counts": state.counts_dict(), "nulls": state.null_count}


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Recursive equality with numbers compared to 1e-9 (relative) / 1e-12 (absolute)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, path
    elif isinstance(a, int | float | np.number):
        assert isinstance(b, int | float | np.number), path
        if math.isnan(a):
            assert math.isnan(b), path
        else:
            assert b == pytest.approx(a, rel=RTOL, abs=ATOL), path
    else:
        assert a == b, path


# -- row strategies -----------------------------------------------------------------------

SCORES = st.one_of(
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]),
    st.floats(0.0, 1.0, allow_nan=False),
)
WEIGHTS = st.floats(0.1, 5.0, allow_nan=False)
FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def binary_row(draw: st.DrawFn) -> dict[str, Any]:
    """One labelled, weighted score."""
    return {"y": draw(st.integers(0, 1)), "s": draw(SCORES), "w": draw(WEIGHTS)}


def multiclass_label_row(draw: st.DrawFn) -> dict[str, Any]:
    """True and predicted class codes and a weight."""
    k = len(CLASSES)
    return {"y": draw(st.integers(0, k - 1)), "p": draw(st.integers(0, k - 1)), "w": draw(WEIGHTS)}


def multiclass_proba_row(draw: st.DrawFn) -> dict[str, Any]:
    """A true class code, a probability row (from a small pool, so scores tie) and a weight."""
    pool = [(0.2, 0.3, 0.5), (0.6, 0.2, 0.2), (1 / 3, 1 / 3, 1 / 3), (0.1, 0.8, 0.1)]
    return {"y": draw(st.integers(0, 2)), "proba": draw(st.sampled_from(pool)), "w": draw(WEIGHTS)}


def regression_row(draw: st.DrawFn) -> dict[str, Any]:
    """Target, prediction and weight (small integers make ties in errors)."""
    value = st.one_of(FLOATS, st.integers(-5, 5).map(float))
    return {"y": draw(value), "p": draw(value), "w": draw(WEIGHTS)}


def numeric_row(draw: st.DrawFn) -> dict[str, Any]:
    """A numeric value or a null (NaN)."""
    return {"v": draw(st.one_of(FLOATS, st.integers(0, 3).map(float), st.just(np.nan)))}


def categorical_row(draw: st.DrawFn) -> dict[str, Any]:
    """A category or a null."""
    return {"v": draw(st.sampled_from(["DE", "FR", "IT", "x", None, float("nan")]))}


def column(rows: list[dict[str, Any]], key: str, dtype: Any = np.float64) -> np.ndarray:
    """One field of all rows as an array."""
    return np.array([r[key] for r in rows], dtype=dtype)


def batch_of(arrays_kind: str, rows: list[dict[str, Any]]) -> Batch:
    """Turn drawn rows into the arrays a state's from_batch takes."""
    if not rows:
        return empty_arrays(arrays_kind)
    out: Batch = {}
    for key in rows[0]:
        if key == "proba":
            out[key] = np.array([r[key] for r in rows], dtype=np.float64).reshape(len(rows), 3)
        elif arrays_kind == "categorical":
            out[key] = column(rows, key, dtype=object)
        else:
            out[key] = column(rows, key)
    return out


def empty_arrays(kind: str) -> Batch:
    """Empty inputs for a kind (so from_batch works on zero rows too)."""
    z = np.zeros(0)
    return {
        "binary": {"y": z, "s": z, "w": z},
        "multiclass_labels": {"y": z, "p": z, "w": z},
        "multiclass_proba": {"y": z, "proba": np.zeros((0, 3)), "w": z},
        "regression": {"y": z, "p": z, "w": z},
        "numeric": {"v": z},
        "categorical": {"v": np.zeros(0, dtype=object)},
    }[kind]


KINDS: dict[str, tuple[str, Kind]] = {
    "binary_confusion": (
        "binary",
        Kind(
            "binary_confusion",
            binary_row,
            lambda b: BinaryConfusionState.from_batch(
                b["y"], y_score=b["s"], sample_weight=b["w"], threshold=0.4
            ),
            lambda: BinaryConfusionState.empty(threshold=0.4),
            metric_values,
        ),
    ),
    "binary_scores": (
        "binary",
        Kind(
            "binary_scores",
            binary_row,
            lambda b: BinaryScoreState.from_batch(b["y"], b["s"], sample_weight=b["w"]),
            BinaryScoreState.empty,
            metric_values,
        ),
    ),
    "multiclass_confusion": (
        "multiclass_labels",
        Kind(
            "multiclass_confusion",
            multiclass_label_row,
            lambda b: MulticlassConfusionState.from_batch(
                b["y"], b["p"], CLASSES, sample_weight=b["w"]
            ),
            lambda: MulticlassConfusionState.empty(CLASSES),
            metric_values,
        ),
    ),
    "multiclass_proba": (
        "multiclass_proba",
        Kind(
            "multiclass_proba",
            multiclass_proba_row,
            lambda b: MulticlassProbaState.from_batch(
                b["y"], b["proba"], CLASSES, sample_weight=b["w"]
            ),
            lambda: MulticlassProbaState.empty(CLASSES),
            metric_values,
        ),
    ),
    "regression": (
        "regression",
        Kind(
            "regression",
            regression_row,
            lambda b: RegressionState.from_batch(b["y"], b["p"], sample_weight=b["w"]),
            RegressionState.empty,
            metric_values,
        ),
    ),
    "numeric_sample": (
        "numeric",
        Kind(
            "numeric_sample",
            numeric_row,
            lambda b: NumericSampleState.from_batch(b["v"]),
            NumericSampleState.empty,
            numeric_summary,
        ),
    ),
    "categorical_counts": (
        "categorical",
        Kind(
            "categorical_counts",
            categorical_row,
            lambda b: CategoricalCountState.from_batch(b["v"]),
            CategoricalCountState.empty,
            categorical_summary,
        ),
    ),
}
KIND_NAMES = sorted(KINDS)


def rows_strategy(kind: Kind, max_size: int = 25) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of rows (possibly empty) of one kind."""
    return st.lists(st.composite(lambda draw: kind.draw_row(draw))(), max_size=max_size)


def build(name: str, rows: list[dict[str, Any]]) -> State:
    """State of one batch of rows (empty rows give from_batch on empty arrays)."""
    arrays_kind, kind = KINDS[name]
    return kind.build(batch_of(arrays_kind, rows))


def summary(name: str, state: State) -> dict[str, Any]:
    """The compared numbers of a state."""
    return KINDS[name][1].summary(state)


# -- merge laws (one test per state class, so each class gets its own examples) ----------


@pytest.mark.parametrize("name", KIND_NAMES)
def test_merge_equals_concatenation(name: str) -> None:
    kind = KINDS[name][1]

    @PROPERTY_SETTINGS
    @given(a=rows_strategy(kind), b=rows_strategy(kind))
    def check(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        merged = build(name, a).merge(build(name, b))
        assert_same(summary(name, build(name, a + b)), summary(name, merged))

    check()


@pytest.mark.parametrize("name", KIND_NAMES)
def test_merge_is_associative(name: str) -> None:
    kind = KINDS[name][1]

    @PROPERTY_SETTINGS
    @given(a=rows_strategy(kind), b=rows_strategy(kind), c=rows_strategy(kind))
    def check(a: list[dict[str, Any]], b: list[dict[str, Any]], c: list[dict[str, Any]]) -> None:
        sa, sb, sc = build(name, a), build(name, b), build(name, c)
        assert_same(summary(name, sa.merge(sb).merge(sc)), summary(name, sa.merge(sb.merge(sc))))

    check()


@pytest.mark.parametrize("name", KIND_NAMES)
def test_merge_is_commutative_in_results(name: str) -> None:
    kind = KINDS[name][1]

    @PROPERTY_SETTINGS
    @given(a=rows_strategy(kind), b=rows_strategy(kind))
    def check(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        sa, sb = build(name, a), build(name, b)
        assert_same(summary(name, sa.merge(sb)), summary(name, sb.merge(sa)))

    check()


@pytest.mark.parametrize("name", KIND_NAMES)
def test_empty_is_identity(name: str) -> None:
    kind = KINDS[name][1]

    @PROPERTY_SETTINGS
    @given(a=rows_strategy(kind))
    def check(a: list[dict[str, Any]]) -> None:
        s = build(name, a)
        expected = summary(name, s)
        assert_same(expected, summary(name, kind.empty().merge(s)))
        assert_same(expected, summary(name, s.merge(kind.empty())))
        assert_same(summary(name, kind.empty()), summary(name, build(name, [])))

    check()


@pytest.mark.parametrize("name", KIND_NAMES)
def test_serialisation_round_trip(name: str) -> None:
    kind = KINDS[name][1]

    @PROPERTY_SETTINGS
    @given(a=rows_strategy(kind), b=rows_strategy(kind))
    def check(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        merged = build(name, a).merge(build(name, b))
        for s in (build(name, a), merged, kind.empty()):
            back = State.from_bytes(s.to_bytes())
            assert type(back) is type(s)
            assert back == s
        assert_same(summary(name, merged), summary(name, State.from_bytes(merged.to_bytes())))

    check()


def test_inputs_are_not_changed_by_merge() -> None:
    a = BinaryScoreState.from_batch(np.array([0, 1]), np.array([0.2, 0.7]))
    b = BinaryScoreState.from_batch(np.array([1]), np.array([0.9]))
    before_a, before_b = a.to_bytes(), b.to_bytes()
    a.merge(b)
    assert a.to_bytes() == before_a and b.to_bytes() == before_b


# -- incompatible merges -------------------------------------------------------------------

INCOMPATIBLE: list[tuple[str, State, State]] = [
    (
        "threshold",
        BinaryConfusionState.from_batch(np.array([0, 1]), y_score=np.array([0.2, 0.8])),
        BinaryConfusionState.from_batch(
            np.array([0, 1]), y_score=np.array([0.2, 0.8]), threshold=0.7
        ),
    ),
    ("threshold_empty", BinaryConfusionState.empty(0.5), BinaryConfusionState.empty(0.3)),
    (
        "ece_bins",
        BinaryScoreState.from_batch(np.array([0, 1]), np.array([0.2, 0.8])),
        BinaryScoreState.from_batch(np.array([0, 1]), np.array([0.2, 0.8]), ece_bins=15),
    ),
    (
        "classes",
        MulticlassConfusionState.from_batch(np.array([0, 1]), np.array([0, 1]), ["a", "b"]),
        MulticlassConfusionState.from_batch(np.array([0, 1]), np.array([0, 1]), ["a", "c"]),
    ),
    (
        "class_order",
        MulticlassConfusionState.empty(["a", "b"]),
        MulticlassConfusionState.empty(["b", "a"]),
    ),
    (
        "class_count",
        MulticlassProbaState.empty(["a", "b"]),
        MulticlassProbaState.empty(["a", "b", "c"]),
    ),
    ("kind", BinaryConfusionState.empty(), BinaryScoreState.empty()),
    ("kind_drift", NumericSampleState.empty(), CategoricalCountState.empty()),
]


@pytest.mark.parametrize(("label", "left", "right"), INCOMPATIBLE, ids=[c[0] for c in INCOMPATIBLE])
def test_incompatible_merge_raises(label: str, left: State, right: State) -> None:
    with pytest.raises(IncompatibleStateError):
        left.merge(right)
    with pytest.raises(ValueError):
        right.merge(left)
    assert issubclass(IncompatibleStateError, ValueError)
