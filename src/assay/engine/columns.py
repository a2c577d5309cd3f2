"""Reading the columns with a role (target, score, prediction, weight, segments).

Values are checked as they are read: a bad column raises a typed error naming it and
the fix before any heavy work starts. Rows without a target are unlabeled: they count
in the window's size but not in its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.sources import Source, to_float64
from assay.engine.spec import EvaluationSpec
from assay.errors import ColumnTypeError, EmptyInputError

NULL_SEGMENT = "(null)"


@dataclass
class LabeledColumns:
    """The validated metric inputs of one window (labeled rows only)."""

    rows: int
    y_true: np.ndarray
    y_score: np.ndarray | None
    y_pred: np.ndarray | None
    weight: np.ndarray | None
    classes: list[str] | None = None
    segments: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    @property
    def labeled(self) -> int:
        """Rows with a target."""
        return int(self.y_true.shape[0])


def read_labeled(
    spec: EvaluationSpec, source: Source, *, with_segments: bool = True
) -> LabeledColumns:
    """Read and check the role columns of ``source`` for ``spec.task``."""
    if source.num_rows == 0:
        raise EmptyInputError(f"the {source.role} data has no rows", field=source.role)
    seg_cols = list(spec.segments) if with_segments else []
    cols = [
        c
        for c in dict.fromkeys([spec.target, *spec.score, spec.prediction, spec.weight, *seg_cols])
        if c
    ]
    table = source.read(cols)
    target = table.column(spec.target)
    labeled = pc.is_valid(target)
    if labeled.null_count == 0 and pc.all(labeled).as_py():
        mask = None
    else:
        mask = labeled
        table = table.filter(mask)
        target = table.column(spec.target)
    if table.num_rows == 0:
        raise EmptyInputError(
            f"no row of the {source.role} data has a value in target column {spec.target!r}",
            field=spec.target,
        )
    weight = _weights(spec, table) if spec.weight else None
    segments = {c: _segment_codes(table.column(c)) for c in seg_cols}
    if spec.task == "binary":
        y = _binary_labels(spec.target, target, "target")
        score = _numeric(spec.score[0], table.column(spec.score[0]), source.role)
        bad = (score < 0) | (score > 1)
        if bad.any():
            raise ColumnTypeError(
                f"score column {spec.score[0]!r} has {int(bad.sum())} value(s) outside [0, 1] "
                f"(e.g. {score[bad][0]:g})",
                field=spec.score[0],
                hint="pass the positive-class probability, or rescale the scores to [0, 1]",
            )
        pred = None
        if spec.prediction:
            pred = _binary_labels(spec.prediction, table.column(spec.prediction), "prediction")
        return LabeledColumns(source.num_rows, y, score, pred, weight, None, segments)
    if spec.task == "regression":
        y = _numeric(spec.target, target, source.role)
        pred = _numeric(spec.prediction or "", table.column(spec.prediction), source.role)
        return LabeledColumns(source.num_rows, y, None, pred, weight, None, segments)
    return _multiclass(spec, table, source, weight, segments)


def class_probabilities(
    spec: EvaluationSpec, table: pa.Table, classes: list[str], role: str
) -> tuple[list[str], np.ndarray | None]:
    """The classes in score-column order and their checked probabilities (None without)."""
    if not spec.score:
        return classes, None
    classes, ordered = _match_score_columns(spec.score, classes)
    proba = np.column_stack([_numeric(c, table.column(c), role) for c in ordered])
    if ((proba < 0) | (proba > 1)).any():
        raise ColumnTypeError(
            "class probability columns must hold values in [0, 1]", field=ordered[0]
        )
    return classes, proba


def _multiclass(
    spec: EvaluationSpec,
    table: pa.Table,
    source: Source,
    weight: np.ndarray | None,
    segments: dict[str, tuple[np.ndarray, list[str]]],
) -> LabeledColumns:
    true_labels = _as_strings(table.column(spec.target))
    pred_labels = None
    if spec.prediction:
        col = table.column(spec.prediction)
        if col.null_count:
            raise ColumnTypeError(
                f"prediction column {spec.prediction!r} has {col.null_count} null value(s) "
                "in labeled rows",
                field=spec.prediction,
            )
        pred_labels = _as_strings(col)
    classes = sorted(
        set(np.unique(true_labels).tolist())
        | set(np.unique(pred_labels).tolist() if pred_labels is not None else [])
    )
    classes, proba = class_probabilities(spec, table, classes, source.role)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(np.unique(true_labels).tolist()) - set(index))
    if unknown:
        raise ColumnTypeError(
            f"target column {spec.target!r} holds class(es) {unknown[:5]} with no score column",
            field=spec.target,
            hint="give one score column per class",
        )
    y = _codes(true_labels, index)
    if pred_labels is not None:
        unknown = sorted(set(np.unique(pred_labels).tolist()) - set(index))
        if unknown:
            raise ColumnTypeError(
                f"prediction column {spec.prediction!r} holds class(es) {unknown[:5]} "
                "with no score column",
                field=spec.prediction,
            )
        pred = _codes(pred_labels, index)
    else:
        pred = np.argmax(proba, axis=1)
    return LabeledColumns(source.num_rows, y, proba, pred, weight, classes, segments)


def _codes(labels: np.ndarray, index: dict[str, int]) -> np.ndarray:
    uniques, inverse = np.unique(labels, return_inverse=True)
    return np.array([index[u] for u in uniques.tolist()], dtype=np.int64)[inverse]


def _match_score_columns(
    score_cols: tuple[str, ...], classes: list[str]
) -> tuple[list[str], list[str]]:
    """Pair score columns with classes, each column once: a column named after a class
    (``cat``) or ending in ``_<class>`` (``p_cat``; the longest class name that fits). Columns
    left over name classes the data never shows, after the prefix the others share
    (``p_eel``: class ``eel``). Without such names, by order."""
    matched: dict[str, str] = {}
    for col in score_cols:
        fits = [c for c in classes if col == c or col.endswith(f"_{c}")]
        if not fits:
            continue
        best = max(fits, key=lambda c: (col == c, len(c)))
        if best in matched:
            raise ColumnTypeError(
                f"score columns {matched[best]!r} and {col!r} both name class {best!r}",
                field="score",
                hint="give one probability column per class, named <prefix>_<class>",
            )
        matched[best] = col
    if matched and set(classes) <= set(matched):
        extra = [col for col in score_cols if col not in matched.values()]
        prefixes = {col[: len(col) - len(cls)] for cls, col in matched.items()}
        if extra and len(prefixes) == 1:
            prefix = prefixes.pop()
            named = {col[len(prefix) :]: col for col in extra if col.startswith(prefix)}
            if len(named) == len(extra) and "" not in named:
                matched.update(named)
                extra = []
        if not extra:
            names = sorted(matched)
            return names, [matched[c] for c in names]
        raise ColumnTypeError(
            f"score column(s) {extra[:5]} name no class of the data",
            field="score",
            hint="name every probability column <prefix>_<class>, with one prefix",
        )
    if len(score_cols) < len(classes):
        raise ColumnTypeError(
            f"{len(classes)} classes ({', '.join(classes[:10])}) "
            f"but {len(score_cols)} score columns",
            field="score",
            hint="give one probability column per class, named <prefix>_<class>",
        )
    if len(score_cols) > len(classes):
        classes = classes + [f"class_{i}" for i in range(len(classes), len(score_cols))]
    return classes, list(score_cols)


def _as_strings(column: pa.ChunkedArray) -> np.ndarray:
    cast = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
    return np.asarray(cast.to_numpy(zero_copy_only=False), dtype=str)


def _numeric(name: str, column: pa.ChunkedArray, role: str) -> np.ndarray:
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
        or pa.types.is_boolean(column.type)
    ):
        raise ColumnTypeError(
            f"column {name!r} has type {column.type}; a number is needed", field=name
        )
    values = to_float64(column)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ColumnTypeError(
            f"column {name!r} has {int(bad.sum())} null or non-finite value(s) in labeled rows "
            f"of the {role} data",
            field=name,
            hint="drop or fill those rows",
        )
    return values


def _binary_labels(name: str, column: pa.ChunkedArray, what: str) -> np.ndarray:
    if (
        pa.types.is_boolean(column.type)
        or pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
    ):
        values = to_float64(column)
    else:
        raise ColumnTypeError(
            f"{what} column {name!r} has type {column.type}; binary labels must be 0/1",
            field=name,
            hint="map the positive class to 1 and the negative class to 0",
        )
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        found = np.unique(values[bad])[:5]
        raise ColumnTypeError(
            f"{what} column {name!r} holds labels outside {{0, 1}}: "
            + ", ".join("null" if np.isnan(v) else f"{v:g}" for v in found),
            field=name,
            hint="map the positive class to 1 and the negative class to 0",
        )
    return values.astype(np.int8)


def _weights(spec: EvaluationSpec, table: pa.Table) -> np.ndarray:
    name = spec.weight or ""
    w = _numeric(name, table.column(name), "current")
    if (w < 0).any():
        raise ColumnTypeError(f"weight column {name!r} has negative values", field=name)
    return w


def _segment_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    strings = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
    strings = pc.fill_null(strings, NULL_SEGMENT)
    encoded = pc.dictionary_encode(strings).combine_chunks()
    labels = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, labels
