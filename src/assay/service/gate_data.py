"""Reading the gate's two arms: labels, outputs, latencies and segments per labeled row.

Paired arms (shadow mode) are joined by id: each id once per file, one label per id (the
two files must agree where both carry it), the baseline's segment values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.columns import read_labeled
from assay.engine.sources import Source, open_source, to_float64
from assay.engine.spec import EvaluationSpec
from assay.errors import ColumnNotFoundError, InputError


@dataclass
class Arm:
    """One side of the comparison: labels, scores (or predictions), latencies, row count."""

    y_true: np.ndarray
    output: np.ndarray
    rows: int
    latency: dict[str, np.ndarray]
    segments: dict[str, np.ndarray] = field(default_factory=dict)  # value per labeled row

    def subset(self, mask: np.ndarray) -> Arm:
        """The labeled rows where ``mask`` holds (latencies are not per labeled row)."""
        return Arm(self.y_true[mask], self.output[mask], int(mask.sum()), {})


def output_column(spec: EvaluationSpec) -> str:
    """The column the gate compares: the score (binary) or the prediction (regression)."""
    return spec.score[0] if spec.task == "binary" else str(spec.prediction)


def _require(source: Source, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in source.column_names:
            raise ColumnNotFoundError(column, available=source.column_names, where=source.role)


def read_arm(spec: EvaluationSpec, source: Source, latency_cols: list[str]) -> Arm:
    """One independent arm (canary, A/B): its labeled rows, and all rows' latencies."""
    _require(source, [spec.target, output_column(spec), *latency_cols, *spec.segments])
    cols = read_labeled(spec, source)
    output = cols.y_score if spec.task == "binary" else cols.y_pred
    assert output is not None
    latency = {c: _finite(source.column(c)) for c in latency_cols}
    return Arm(cols.y_true, output, source.num_rows, latency, _segment_values(cols.segments))


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
    out = output_column(spec)
    needed = [id_column, out, *latency_cols]
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
            {spec.target: label, out: joined.column(prefix + out),
             **{c: joined.column(c) for c in spec.segments}}
        )  # fmt: skip
        cols = read_labeled(spec, open_source(table, role=role))
        output = cols.y_score if spec.task == "binary" else cols.y_pred
        assert output is not None
        latency = {c: _finite(joined.column(prefix + c)) for c in latency_cols}
        segments = _segment_values(cols.segments)
        arms.append(Arm(cols.y_true, output, joined.num_rows, latency, segments))
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
    differ = pc.sum(pc.and_(both, pc.not_equal(pc.cast(a, pa.float64()), pc.cast(b, pa.float64()))))
    count = differ.as_py() or 0
    if count:
        raise InputError(
            f"the baseline and candidate disagree on {target!r} for {count} paired id(s)",
            field=target,
            hint="both files must carry the same ground truth for an event",
        )
