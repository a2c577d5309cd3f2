"""The local engine: folds a window's columns into states, in process.

Metric inputs are read once; features are read one column at a time (both windows),
folded into drift states and released, so memory stays at a few columns however wide
the data is. Features are processed on a small thread pool: Arrow decoding and numpy
sorting release the GIL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.columns import LabeledColumns
from assay.engine.sources import Source, to_float64
from assay.engine.spec import EvaluationSpec, FeatureType, kind_of
from assay.errors import ColumnTypeError
from assay.stats import (
    BinaryConfusionState,
    BinaryScoreState,
    CategoricalCountState,
    MetricSet,
    MulticlassConfusionState,
    MulticlassProbaState,
    NumericSampleState,
    RegressionState,
    State,
    categorical_drift,
    numeric_drift,
)
from assay.stats.score_sketch import BinaryScoreSketchState

Progress = Callable[[str], None]  # called with a step's name as it ends
ProgressFactory = Callable[[int], Progress]  # given the number of steps


def metric_states(
    spec: EvaluationSpec, cols: LabeledColumns, rows: np.ndarray | None
) -> list[State]:
    """The metric states of the labeled rows ``rows`` (all rows when ``None``)."""

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return a if a is None or rows is None else a[rows]

    y, score, pred, w = take(cols.y_true), take(cols.y_score), take(cols.y_pred), take(cols.weight)
    assert y is not None
    if spec.task == "binary":
        assert score is not None
        return [
            BinaryConfusionState.from_batch(
                y, y_score=score, y_pred=pred, sample_weight=w, threshold=spec.threshold
            ),
            BinaryScoreState.from_batch(y, score, sample_weight=w, ece_bins=spec.ece_bins),
        ]
    if spec.task == "regression":
        assert pred is not None
        return [RegressionState.from_batch(y, pred, sample_weight=w)]
    classes = cols.classes or []
    assert pred is not None
    states: list[State] = [MulticlassConfusionState.from_batch(y, pred, classes, sample_weight=w)]
    if score is not None:
        states.append(MulticlassProbaState.from_batch(y, score, classes, sample_weight=w))
    return states


def finish(states: list[State], *, seed: int, curves: bool = False) -> dict[str, Any]:
    """Merge the results of a group's states into one flat metric dictionary (score
    states, exact or sketched, add their curves on request)."""
    out = MetricSet()
    for state in states:
        if isinstance(state, BinaryScoreState | BinaryScoreSketchState):
            out.update(state.result(seed=seed, curves=curves))
        else:
            out.update(state.result(seed=seed))
    return out.to_dict()


def evaluate_metrics(
    spec: EvaluationSpec, cols: LabeledColumns, *, curves: bool = False
) -> dict[str, Any]:
    """Metrics overall and per value of each segment column."""
    result: dict[str, Any] = {
        "overall": finish(metric_states(spec, cols, None), seed=spec.seed, curves=curves)
    }
    by_segment: dict[str, dict[str, Any]] = {}
    for column, (codes, labels) in cols.segments.items():
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
        groups: dict[str, Any] = {}
        for code, label in sorted(enumerate(labels), key=lambda item: item[1]):
            rows = order[bounds[code] : bounds[code + 1]]
            if rows.size:
                groups[label] = finish(metric_states(spec, cols, rows), seed=spec.seed)
        by_segment[column] = groups
    result["by_segment"] = by_segment
    return result


def feature_state(name: str, kind: FeatureType, column: pa.ChunkedArray) -> State:
    """Fold one feature column into its drift state."""
    if kind == "numeric":
        if kind_of(column.type) != "numeric":
            raise ColumnTypeError(
                f"feature {name!r} is declared numeric but has type {column.type}",
                field=name,
                hint="declare it categorical",
            )
        return NumericSampleState.from_batch(to_float64(column))
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    counted = pc.value_counts(column)
    values = counted.field("values")
    counts = counted.field("counts").to_numpy(zero_copy_only=False)
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    categories = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)[valid]
    return CategoricalCountState.from_counts(
        categories.astype(str), counts[valid], int(counts[~valid].sum())
    )


def drift_of(kind: FeatureType, reference: State, current: State) -> dict[str, Any]:
    """Drift statistics of one feature between two windows."""
    if kind == "numeric":
        assert isinstance(reference, NumericSampleState) and isinstance(current, NumericSampleState)
        return numeric_drift(reference, current)
    assert isinstance(reference, CategoricalCountState)
    assert isinstance(current, CategoricalCountState)
    return categorical_drift(reference, current)


def default_threads() -> int:
    """Worker threads for the local engine: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def submit_drift(
    pool: Executor,
    features: dict[str, FeatureType],
    reference: Source,
    current: Source,
    *,
    progress: Progress | None = None,
) -> dict[str, Future[tuple[str, dict[str, Any]]]]:
    """Start the drift statistics of every feature on ``pool`` (one column at a time)."""

    def one(item: tuple[str, FeatureType]) -> tuple[str, dict[str, Any]]:
        name, kind = item
        try:
            ref_state = feature_state(name, kind, reference.column(name))
            cur_state = feature_state(name, kind, current.column(name))
        except pa.ArrowInvalid as err:
            raise ColumnTypeError(
                f"feature {name!r} cannot be read as {kind}: {err}", field=name
            ) from err
        result = drift_of(kind, ref_state, cur_state)
        if progress is not None:
            progress(name)
        return name, result

    return {name: pool.submit(one, (name, kind)) for name, kind in features.items()}


def evaluate_drift(
    features: dict[str, FeatureType],
    reference: Source,
    current: Source,
    *,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Drift statistics of every feature, computed on a thread pool."""
    with ThreadPoolExecutor(max_workers=default_threads()) as pool:
        futures = submit_drift(pool, features, reference, current, progress=progress)
        return {name: future.result()[1] for name, future in futures.items()}
