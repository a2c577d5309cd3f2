"""Reading the gate's two arms: labels, outputs, latencies and segments per labeled row.

Paired arms (shadow mode) are joined by id: each id once per file, one label per id (the
two files must agree where both carry it), the baseline's segment values.

A multiclass arm keeps its class codes (both arms coded against the same class list, see
:func:`common_classes`), its predicted codes and, with class-probability columns, the
probability it gave each row's true class. Multiclass log loss is the mean of the per-row
``-log p(true class)``: :meth:`Arm.comparable` hands it to the comparison tests as the
binary log loss of a problem whose every label is 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.columns import LabeledColumns, read_labeled
from assay.engine.sources import Source, open_source, to_float64
from assay.engine.spec import EvaluationSpec
from assay.errors import ColumnNotFoundError, ConfigError, InputError


@dataclass
class Arm:
    """One side of the comparison: labels, scores (or predictions), latencies, row count."""

    y_true: np.ndarray
    output: np.ndarray
    rows: int
    latency: dict[str, np.ndarray]
    segments: dict[str, np.ndarray] = field(default_factory=dict)  # value per labeled row
    true_proba: np.ndarray | None = None  # multiclass: probability given to the true class
    classes: list[str] | None = None  # multiclass: the names of the codes

    def subset(self, mask: np.ndarray) -> Arm:
        """The labeled rows where ``mask`` holds (latencies are not per labeled row)."""
        proba = None if self.true_proba is None else self.true_proba[mask]
        return Arm(self.y_true[mask], self.output[mask], int(mask.sum()), {}, {}, proba,
                   self.classes)  # fmt: skip

    def comparable(self, metric: str, task: str) -> tuple[np.ndarray, np.ndarray]:
        """``(y_true, output)`` as the comparison tests take them for ``metric``: for a
        multiclass log_loss, labels all 1 and each row's true-class probability."""
        if task != "multiclass" or metric != "log_loss":
            return self.y_true, self.output
        if self.true_proba is None:
            raise ConfigError(
                "a multiclass log_loss comparison needs the class probabilities",
                field="score",
                hint="pass one probability column per class (--score p_a,p_b,...)",
            )
        return np.ones(self.y_true.size), self.true_proba


def common_classes(base: Arm, cand: Arm) -> tuple[Arm, Arm]:
    """Both multiclass arms coded against one sorted class list (each file codes its own)."""
    assert base.classes is not None and cand.classes is not None
    names = sorted(set(base.classes) | set(cand.classes))
    out = []
    for arm in (base, cand):
        assert arm.classes is not None
        code = np.array([names.index(c) for c in arm.classes], dtype=np.float64)
        recoded = Arm(code[arm.y_true.astype(np.int64)], code[arm.output.astype(np.int64)],
                      arm.rows, arm.latency, arm.segments, arm.true_proba, names)  # fmt: skip
        out.append(recoded)
    return out[0], out[1]


def output_columns(spec: EvaluationSpec) -> list[str]:
    """The columns the gate compares: the score (binary), the prediction (regression), or
    the predicted class and the class probabilities (multiclass)."""
    if spec.task == "binary":
        return [spec.score[0]]
    if spec.task == "regression":
        return [str(spec.prediction)]
    return [c for c in (spec.prediction, *spec.score) if c]


def _arm(cols: LabeledColumns, spec: EvaluationSpec, rows: int, latency: dict) -> Arm:
    segments = _segment_values(cols.segments)
    if spec.task == "binary":
        assert cols.y_score is not None
        return Arm(cols.y_true, cols.y_score, rows, latency, segments)
    assert cols.y_pred is not None
    if spec.task == "regression":
        return Arm(cols.y_true, cols.y_pred, rows, latency, segments)
    proba = cols.y_score  # multiclass: rows × classes, or None
    true_proba = None if proba is None else proba[np.arange(cols.y_true.size), cols.y_true]
    return Arm(cols.y_true, cols.y_pred, rows, latency, segments, true_proba, cols.classes)


def _require(source: Source, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in source.column_names:
            raise ColumnNotFoundError(column, available=source.column_names, where=source.role)


def read_arm(spec: EvaluationSpec, source: Source, latency_cols: list[str]) -> Arm:
    """One independent arm (canary, A/B): its labeled rows, and all rows' latencies."""
    _require(source, [spec.target, *output_columns(spec), *latency_cols, *spec.segments])
    cols = read_labeled(spec, source)
    latency = {c: _finite(source.column(c)) for c in latency_cols}
    return _arm(cols, spec, source.num_rows, latency)


def _segment_values(segments: dict[str, tuple[np.ndarray, list[str]]]) -> dict[str, np.ndarray]:
    return {c: np.asarray(labels, dtype=object)[codes] for c, (codes, labels) in segments.items()}


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    values = np.asarray(to_float64(column), dtype=float)
    return values[np.isfinite(values)]


_ROW = "\0row"  # the baseline's row number, while joining


def read_paired_arms(
    spec: EvaluationSpec, base: Source, cand: Source, id_column: str, latency_cols: list[str]
) -> tuple[Arm, Arm, dict[str, int]]:
    """Both arms on the ids both scored, in one row order, with one label per id."""
    outputs = output_columns(spec)
    needed = [id_column, *outputs, *latency_cols]
    _require(base, [*needed, spec.target, *spec.segments])  # segments: the baseline's
    _require(cand, needed)
    left = base.read(list(dict.fromkeys([*needed, spec.target, *spec.segments])))
    right = cand.read(
        list(dict.fromkeys([*needed, *([spec.target] if spec.target in cand.column_names else [])]))
    )
    for side, table in (("baseline", left), ("candidate", right)):
        _unique_ids(table, id_column, side)
    right = right.rename_columns([c if c == id_column else f"c::{c}" for c in right.column_names])
    # the join's output order varies from run to run: put the rows back in the baseline's
    # order, so sums round alike and the bootstrap resamples the same rows every time
    left = left.append_column(_ROW, pa.array(np.arange(left.num_rows, dtype=np.int64)))
    joined = left.join(right, keys=id_column, join_type="inner", use_threads=True)
    joined = joined.take(pc.sort_indices(joined.column(_ROW))).drop_columns([_ROW])
    label = joined.column(spec.target)
    if f"c::{spec.target}" in joined.column_names:
        other = joined.column(f"c::{spec.target}")
        _same_labels(label, other, spec.target)
        label = pc.coalesce(label, other)
    rows = {
        "baseline": left.num_rows,
        "candidate": right.num_rows,
        "paired": joined.num_rows,
        "unmatched_baseline": left.num_rows - joined.num_rows,
        "unmatched_candidate": right.num_rows - joined.num_rows,
    }
    if joined.num_rows == 0:
        raise InputError(
            f"no {id_column!r} value appears in both the baseline and the candidate",
            field=id_column,
            hint="paired comparison needs both models' predictions of the same events",
        )
    arms = []
    for prefix, role in (("", "baseline"), ("c::", "candidate")):
        table = pa.table(
            {spec.target: label, **{c: joined.column(prefix + c) for c in outputs},
             **{c: joined.column(c) for c in spec.segments}}
        )  # fmt: skip
        cols = read_labeled(spec, open_source(table, role=role))
        latency = {c: _finite(joined.column(prefix + c)) for c in latency_cols}
        arms.append(_arm(cols, spec, joined.num_rows, latency))
    return arms[0], arms[1], rows


def _unique_ids(table: pa.Table, id_column: str, side: str) -> None:
    ids = table.column(id_column)
    if ids.null_count:
        raise InputError(
            f"{side} id column {id_column!r} has {ids.null_count} null value(s)", field=id_column
        )
    distinct = pc.count_distinct(ids).as_py()
    if distinct != table.num_rows:
        raise InputError(
            f"{side} id column {id_column!r} repeats {table.num_rows - distinct} id(s)",
            field=id_column,
            hint="each event must appear once per model",
        )


def _same_labels(a: pa.ChunkedArray, b: pa.ChunkedArray, target: str) -> None:
    both = pc.and_(pc.is_valid(a), pc.is_valid(b))
    numeric = all(pa.types.is_integer(c.type) or pa.types.is_floating(c.type) for c in (a, b))
    kind = pa.float64() if numeric else pa.string()  # 1 and 1.0 agree; class names as text
    differ = pc.sum(pc.and_(both, pc.not_equal(pc.cast(a, kind), pc.cast(b, kind))))
    count = differ.as_py() or 0
    if count:
        raise InputError(
            f"the baseline and candidate disagree on {target!r} for {count} paired id(s)",
            field=target,
            hint="both files must carry the same ground truth for an event",
        )
