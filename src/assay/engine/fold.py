"""Folding record batches into states keyed by group: the per-partition work of scale-out.

A :class:`FoldPlan` says what to fold (metric states of the labeled rows, drift states of
features, the model output's drift state), by which groups (overall, each segment column,
or combinations such as version × time window), and whether fixed-size approximate states
replace the ones that grow with the rows. :func:`fold_batches` streams batches into a
:class:`Folded`, which merges associatively and serialises to bytes. Nothing here knows
about Ray: the distributed engine ships plans and bytes.

>>> import pyarrow as pa
>>> from assay.engine.spec import EvaluationSpec
>>> spec = EvaluationSpec.build(task="binary", target="y", score="p", segments=["c"])
>>> plan = FoldPlan.build(spec, role="current", metrics=True)
>>> t = pa.table({"y": [0, 1, 1, 0], "p": [0.2, 0.9, 0.6, 0.4], "c": ["a", "a", "b", "b"]})
>>> whole = fold_batches(plan, t.to_batches(max_chunksize=3))
>>> sorted(whole.metrics), whole.rows
([(), (('c', 'a'),), (('c', 'b'),)], 4)
>>> Folded.from_bytes(whole.to_bytes()).labeled
4
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine import local
from assay.engine.columns import (
    NULL_SEGMENT,
    LabeledColumns,
    _as_strings,
    _codes,
    _weights,
    class_probabilities,
    read_labeled,
)
from assay.engine.sources import open_source, to_float64
from assay.engine.spec import EvaluationSpec, kind_of
from assay.errors import ColumnTypeError
from assay.stats import (
    BinaryScoreState,
    MulticlassProbaState,
    NumericSampleState,
    RegressionState,
    State,
)
from assay.stats.numeric_sketch import DEFAULT_NUMERIC_BINS, NumericHistogramState
from assay.stats.score_sketch import DEFAULT_SCORE_BINS, BinaryScoreSketchState

GroupKey = tuple[tuple[str, str], ...]
WINDOW = "window"  # name of the derived time-bucket column


@dataclass(frozen=True)
class FoldPlan:
    """What one window's partitions fold into states, and by which groups."""

    spec: EvaluationSpec
    role: str
    metrics: bool  # fold the metric states (the window has labels)
    groupings: tuple[tuple[str, ...], ...] = ()  # besides overall: one tuple of columns each
    features: tuple[tuple[str, str], ...] = ()  # (name, "numeric" | "categorical")
    prediction: tuple[str, str] | None = None  # the model output's drift column and kind
    approximate: bool = False
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None  # multiclass: every class of both windows
    window: tuple[str, int] | None = None  # (timestamp column, seconds): derived "window"
    score_bins: int = DEFAULT_SCORE_BINS
    numeric_bins: int = DEFAULT_NUMERIC_BINS

    @classmethod
    def build(
        cls,
        spec: EvaluationSpec,
        *,
        role: str,
        metrics: bool,
        segments: bool = True,
        features: Mapping[str, str] | None = None,
        **options: Any,
    ) -> FoldPlan:
        """A plan grouping by each segment column of ``spec`` (when ``segments``)."""
        groupings = tuple((c,) for c in spec.segments) if segments and metrics else ()
        return cls(spec=spec, role=role, metrics=metrics, groupings=groupings,
                   features=tuple((features or {}).items()), **options)  # fmt: skip

    @property
    def columns(self) -> list[str]:
        """The columns a partition must read."""
        spec = self.spec
        cols: list[str | None] = [name for name, _ in self.features]
        if self.prediction:
            cols.append(self.prediction[0])
        if self.metrics:
            cols += [spec.target, *spec.score, spec.prediction, spec.weight]
            cols += [c for g in self.groupings for c in g if c != WINDOW]
            if self.window:
                cols.append(self.window[0])
        return [c for c in dict.fromkeys(cols) if c]

    def numeric_columns(self) -> list[str]:
        """Numeric columns whose approximate state needs a value range."""
        names = [n for n, kind in self.features if kind == "numeric"]
        if self.prediction and self.prediction[1] == "numeric":
            names.append(self.prediction[0])
        return list(dict.fromkeys(names))


@dataclass
class Folded:
    """The states of a set of rows: metrics per group, drift per feature, counts."""

    rows: int = 0
    labeled: int = 0
    metrics: dict[GroupKey, list[State]] = field(default_factory=dict)
    drift: dict[str, State] = field(default_factory=dict)
    prediction: dict[str, State] = field(default_factory=dict)

    def merge(self, other: Folded) -> Folded:
        """The states of both sets of rows (``self``'s rows first)."""
        metrics = dict(self.metrics)
        for key, states in other.metrics.items():
            mine = metrics.get(key)
            metrics[key] = states if mine is None else [
                a.merge(b) for a, b in zip(mine, states, strict=True)
            ]  # fmt: skip
        return Folded(self.rows + other.rows, self.labeled + other.labeled, metrics,
                      _merge_map(self.drift, other.drift),
                      _merge_map(self.prediction, other.prediction))  # fmt: skip

    def to_bytes(self) -> bytes:
        """Serialise: a JSON header, then each state's own bytes (no pickle)."""
        blobs = [state.to_bytes() for state in self._states()]
        head = self._header([len(b) for b in blobs])
        return b"".join([len(head).to_bytes(8, "little"), head, *blobs])

    def serialized_size(self) -> int:
        """``len(self.to_bytes())``, without building the bytes."""
        sizes = [state.serialized_size() for state in self._states()]
        return 8 + len(self._header(sizes)) + sum(sizes)

    def _states(self) -> list[State]:
        states = [s for group in self.metrics.values() for s in group]
        return [*states, *self.drift.values(), *self.prediction.values()]

    def _header(self, sizes: list[int]) -> bytes:
        entries: list[list[Any]] = [["metrics", [list(p) for p in key], len(states)]
                                    for key, states in self.metrics.items()]  # fmt: skip
        entries += [[section, name, 1] for section in ("drift", "prediction")
                    for name in getattr(self, section)]  # fmt: skip
        return json.dumps({"rows": self.rows, "labeled": self.labeled, "entries": entries,
                           "sizes": sizes}).encode()  # fmt: skip

    @staticmethod
    def from_bytes(blob: bytes) -> Folded:
        """Rebuild what :meth:`to_bytes` wrote."""
        size = int.from_bytes(blob[:8], "little")
        head = json.loads(blob[8 : 8 + size])
        offset = 8 + size
        states: list[State] = []
        for length in head["sizes"]:
            states.append(State.from_bytes(blob[offset : offset + length]))
            offset += length
        out = Folded(head["rows"], head["labeled"])
        position = 0
        for section, name, count in head["entries"]:
            taken, position = states[position : position + count], position + count
            if section == "metrics":
                out.metrics[tuple(tuple(p) for p in name)] = taken  # type: ignore[misc]
            else:
                getattr(out, section)[name] = taken[0]
        return out


def merge_folded(parts: list[Folded]) -> Folded:
    """Merge many neighbours' states at once, in order: states that keep rows are
    concatenated in one copy (pairwise merging would copy them once per level)."""
    if len(parts) == 1:
        return parts[0]
    metrics: dict[GroupKey, list[list[State]]] = {}
    drift: dict[str, list[State]] = {}
    prediction: dict[str, list[State]] = {}
    for part in parts:
        for key, states in part.metrics.items():
            for slot, state in zip(metrics.setdefault(key, [[] for _ in states]), states,
                                   strict=True):  # fmt: skip
                slot.append(state)
        for name, state in part.drift.items():
            drift.setdefault(name, []).append(state)
        for name, state in part.prediction.items():
            prediction.setdefault(name, []).append(state)
    return Folded(
        sum(p.rows for p in parts),
        sum(p.labeled for p in parts),
        {key: [merge_states(s) for s in slots] for key, slots in metrics.items()},
        {name: merge_states(s) for name, s in drift.items()},
        {name: merge_states(s) for name, s in prediction.items()},
    )


_CONCATENATED = {  # states that keep their rows: arrays concatenated, counters added
    NumericSampleState: ("values",),
    BinaryScoreState: ("y_true", "y_score"),
    RegressionState: ("y_true", "y_pred", "w"),
    MulticlassProbaState: ("y_true", "proba", "w"),
}


def merge_states(states: list[State]) -> State:
    """The merge of ``states`` (in order), the same as merging them pairwise.

    >>> parts = [NumericSampleState.from_batch(np.array([v, np.nan])) for v in (3.0, 1.0, 2.0)]
    >>> merged = merge_states(parts)
    >>> merged.data["values"].tolist(), merged.null_count
    ([3.0, 1.0, 2.0], 3)
    """
    first = states[0]
    kind = type(first)
    same = all(type(s) is kind and s.params == first.params for s in states)
    if len(states) == 1 or kind not in _CONCATENATED or not same:
        while len(states) > 1:  # balanced: each value is copied log(len) times at most
            pairs = [a.merge(b) for a, b in zip(states[::2], states[1::2], strict=False)]
            states = pairs + ([states[-1]] if len(states) % 2 else [])
        return states[0]
    data = {k: np.concatenate([s.data[k] for s in states]) for k in _CONCATENATED[kind]}
    if kind is NumericSampleState:
        data["nulls"] = np.asarray(sum(int(s.data["nulls"]) for s in states), dtype=np.int64)
    if kind is BinaryScoreState:  # unit weights are implied by an empty weight array
        weights = [s.data["w"] for s in states]
        if all(w.size == 0 for w in weights):
            data["w"] = weights[0]
        else:
            data["w"] = np.concatenate([w if w.size else np.ones(s.data["y_true"].size)
                                        for w, s in zip(weights, states, strict=True)])  # fmt: skip
    return kind(dict(first.params), {k: data[k] for k in first.data})


def _merge_map(a: dict[str, State], b: dict[str, State]) -> dict[str, State]:
    out = dict(a)
    for name, state in b.items():
        out[name] = state if name not in out else out[name].merge(state)
    return out


def fold_batches(plan: FoldPlan, batches: Iterable[pa.RecordBatch | pa.Table]) -> Folded:
    """Fold a stream of batches, merging partial results 16 at a time.

    Fixed-size states keep memory at a few batches; states that keep rows are copied
    about ``log16(batches)`` times instead of once per batch.
    """
    parts: list[Folded] = []
    for batch in batches:
        parts.append(fold_batch(plan, batch))
        if len(parts) == _FAN_IN:
            parts = [merge_folded(parts)]
    return merge_folded(parts) if parts else Folded()


_FAN_IN = 16


def fold_batch(plan: FoldPlan, batch: pa.RecordBatch | pa.Table) -> Folded:
    """Fold one batch into states."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    out = Folded(rows=table.num_rows)
    if plan.metrics and table.num_rows:
        target = table.column(plan.spec.target)
        if target.null_count < table.num_rows:
            table_l = table.filter(pc.is_valid(target)) if target.null_count else table
            cols = _labeled(plan, table_l)
            out.labeled = cols.labeled
            out.metrics[()] = _metric_states(plan, cols, None)
            for grouping in plan.groupings:
                for key, rows in _groups(plan, table_l, grouping):
                    out.metrics[key] = _metric_states(plan, cols, rows)
    for name, kind in plan.features:
        out.drift[name] = _feature_state(plan, name, kind, table.column(name))
    if plan.prediction:
        name, kind = plan.prediction
        out.prediction[name] = _feature_state(plan, name, kind, table.column(name))
    return out


def _labeled(plan: FoldPlan, table: pa.Table) -> LabeledColumns:
    source = open_source(table, role=plan.role)
    if plan.spec.task != "multiclass":
        return read_labeled(plan.spec, source, with_segments=False)
    return _multiclass_labeled(plan, table, source.num_rows)


def _multiclass_labeled(plan: FoldPlan, table: pa.Table, rows: int) -> LabeledColumns:
    """Multiclass columns coded against the classes of the whole data, not of the batch."""
    spec, classes = plan.spec, list(plan.classes or ())
    weight = _weights(spec, table) if spec.weight else None
    true_labels = _as_strings(table.column(spec.target))
    classes, proba = class_probabilities(spec, table, classes, plan.role)
    index = {c: i for i, c in enumerate(classes)}
    y = _codes(true_labels, index)
    if spec.prediction:
        column = table.column(spec.prediction)
        if column.null_count:
            raise ColumnTypeError(
                f"prediction column {spec.prediction!r} has {column.null_count} null value(s) "
                "in labeled rows",
                field=spec.prediction,
            )
        pred = _codes(_as_strings(column), index)
    else:
        assert proba is not None
        pred = np.argmax(proba, axis=1)
    return LabeledColumns(rows, y, proba, pred, weight, classes, {})


def _metric_states(plan: FoldPlan, cols: LabeledColumns, rows: np.ndarray | None) -> list[State]:
    spec = plan.spec
    states = local.metric_states(spec, cols, rows)  # multiclass: cols carry every class
    if not (plan.approximate and spec.task == "binary"):
        return states
    assert cols.y_score is not None
    pick = slice(None) if rows is None else rows
    weight = None if cols.weight is None else cols.weight[pick]
    return [
        s if not isinstance(s, BinaryScoreState) else BinaryScoreSketchState.from_batch(
            cols.y_true[pick], cols.y_score[pick], weight, plan.score_bins, spec.ece_bins)
        for s in states
    ]  # fmt: skip


def _groups(
    plan: FoldPlan, table: pa.Table, grouping: tuple[str, ...]
) -> list[tuple[GroupKey, np.ndarray]]:
    """Rows (in their order) of each value combination of the grouping's columns."""
    codes = np.zeros(table.num_rows, dtype=np.int64)
    labels: list[list[str]] = []
    for column in grouping:
        values = _window_labels(plan, table) if column == WINDOW else table.column(column)
        col_codes, col_labels = _encode(values)
        codes = codes * max(len(col_labels), 1) + col_codes
        labels.append(col_labels)
    order = np.argsort(codes, kind="stable")
    uniques, starts = np.unique(codes[order], return_index=True)
    ends = np.r_[starts[1:], order.size]
    out = []
    for code, lo, hi in zip(uniques.tolist(), starts.tolist(), ends.tolist(), strict=True):
        parts = []
        for column, col_labels in zip(reversed(grouping), reversed(labels), strict=True):
            code, digit = divmod(code, max(len(col_labels), 1))
            parts.append((column, col_labels[digit]))
        out.append((tuple(reversed(parts)), order[lo:hi]))
    return out


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    strings = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
    encoded = pc.dictionary_encode(pc.fill_null(strings, NULL_SEGMENT)).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _window_labels(plan: FoldPlan, table: pa.Table) -> pa.ChunkedArray:
    assert plan.window is not None
    column, seconds = plan.window
    values = table.column(column)
    if not pa.types.is_timestamp(values.type):
        raise ColumnTypeError(
            f"window column {column!r} has type {values.type}; a timestamp is needed",
            field=column,
        )
    start = pc.floor_temporal(values, multiple=seconds, unit="second")
    start = pc.cast(start, pa.timestamp("s", tz=values.type.tz))  # whole seconds
    return pc.strftime(start, format="%Y-%m-%dT%H:%M:%SZ")


def _feature_state(plan: FoldPlan, name: str, kind: str, column: pa.ChunkedArray) -> State:
    try:
        if kind == "numeric" and plan.approximate:
            if kind_of(column.type) != "numeric":
                local.feature_state(name, "numeric", column)  # raises the typed error
            lo, hi = plan.ranges.get(name, (0.0, 0.0))  # no range: no finite value at all
            return NumericHistogramState.from_batch(
                to_float64(column), lo, hi, bins=plan.numeric_bins
            )
        return local.feature_state(name, kind, column)  # type: ignore[arg-type]
    except pa.ArrowInvalid as err:
        raise ColumnTypeError(
            f"feature {name!r} cannot be read as {kind}: {err}", field=name
        ) from err
