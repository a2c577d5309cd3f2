"""Champion vs challenger: the :class:`Difference` result, metric names and input checks.

A comparison is always *candidate − baseline* (challenger − champion) for one metric, with
its two-sided (1 − alpha) interval and the p-value of "no difference". Which test is used
depends on the metric and on how the events were collected:

============================  ===========================  ==============================
metric                        paired (shadow)              split (canary, A/B)
============================  ===========================  ==============================
accuracy, error_rate          McNemar                      two-proportion z
recall, fnr                   McNemar on the positives     two-proportion z
specificity, fpr              McNemar on the negatives     two-proportion z
precision                     paired bootstrap             two-proportion z
roc_auc                       paired DeLong                DeLong (independent AUCs)
log_loss, brier, mae, mse,    paired bootstrap             Welch on per-row losses
mean_error
f1, average_precision, rmse,  paired bootstrap             bootstrap per arm
r2
============================  ===========================  ==============================

>>> d = Difference("accuracy", 0.8, 0.85, 0.05, (0.01, 0.09), 0.02, "mcnemar_chi2", 500, 500)
>>> d.to_dict()["ci"], d.significant
([0.01, 0.09], True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from assay.errors import EmptyInputError, InputError

BINARY_METRICS: frozenset[str] = frozenset(
    {
        "accuracy",
        "error_rate",
        "precision",
        "recall",
        "f1",
        "specificity",
        "fpr",
        "fnr",
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier",
    }
)
REGRESSION_METRICS: frozenset[str] = frozenset({"mae", "mse", "rmse", "r2", "mean_error"})
# multiclass comparisons take class codes; accuracy and error_rate are the binary metrics
# of per-row correctness (see :func:`correctness`), the macro averages are bootstrapped
MACRO_METRICS: frozenset[str] = frozenset({"f1_macro", "precision_macro", "recall_macro"})
MULTICLASS_METRICS: frozenset[str] = frozenset({"accuracy", "error_rate"}) | MACRO_METRICS

# Whether a larger value is the better model. ``mean_error`` (the bias) is better the
# closer it is to zero, which no direction expresses: it is deliberately absent.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "error_rate": False,
    "precision": True,
    "recall": True,
    "f1": True,
    "specificity": True,
    "fpr": False,
    "fnr": False,
    "roc_auc": True,
    "average_precision": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "mse": False,
    "rmse": False,
    "r2": True,
    "f1_macro": True,
    "precision_macro": True,
    "recall_macro": True,
    "latency": False,
    "latency_p50": False,
    "latency_p95": False,
    "latency_p99": False,
}

# proportion metrics: which rows count (the denominator) and which of them are "hits"
# (the numerator), from the label y and the predicted class pred (both 0/1 int arrays)
ROW_SETS: dict[str, str] = {
    "accuracy": "all",
    "error_rate": "all",
    "precision": "predicted positive",
    "recall": "positive",
    "fnr": "positive",
    "specificity": "negative",
    "fpr": "negative",
}
MEAN_LOSSES: frozenset[str] = frozenset({"log_loss", "brier", "mae", "mse", "mean_error"})

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Difference:
    """candidate − baseline for one metric, with its (1 − alpha) interval and test."""

    metric: str
    baseline: float | None  # the metric on the baseline (champion) arm
    candidate: float | None  # the metric on the candidate (challenger) arm
    difference: float | None  # candidate − baseline
    ci: tuple[float, float] | None  # two-sided (1 − alpha) interval of the difference
    p_value: float | None  # two-sided p-value of "no difference"
    test: str  # the test that produced ci and p_value (see the module docstring)
    n_baseline: int  # rows used on each arm (paired: the same n)
    n_candidate: int
    alpha: float = 0.05
    reason: str | None = None  # why values are None (undefined), else None

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (False when it is undefined)."""
        return self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary: tuples become lists, non-finite numbers become None."""
        out = asdict(self)
        out["ci"] = None if self.ci is None else [_finite(v) for v in self.ci]
        if out["ci"] is not None and None in out["ci"]:
            out["ci"] = None
        for key in ("baseline", "candidate", "difference", "p_value"):
            out[key] = _finite(out[key])
        return out


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean(value: float) -> float | None:
    """A float, or None when it is not finite."""
    return _finite(value)


def undefined(
    metric: str,
    test: str,
    n_baseline: int,
    n_candidate: int,
    alpha: float,
    reason: str,
    baseline: float | None = None,
    candidate: float | None = None,
    difference: float | None = None,
) -> Difference:
    """A :class:`Difference` without interval or p-value, saying why."""
    return Difference(
        metric,
        clean(baseline) if baseline is not None else None,
        clean(candidate) if candidate is not None else None,
        clean(difference) if difference is not None else None,
        None,
        None,
        test,
        int(n_baseline),
        int(n_candidate),
        alpha,
        reason,
    )


def check_alpha(alpha: float, field: str = "alpha") -> float:
    """``alpha`` (or ``power``) as a float strictly between 0 and 1."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise InputError(
            f"{field} must be strictly between 0 and 1, got {alpha!r}",
            field=field,
            hint="for example 0.05",
        )
    return value


def check_metric(metric: str, task: str, supported: Iterable[str] | None = None) -> str:
    """The metric name, or a typed error listing the supported ones for ``task``."""
    by_task = {"binary": BINARY_METRICS, "regression": REGRESSION_METRICS,
               "multiclass": MULTICLASS_METRICS}  # fmt: skip
    if task not in by_task:
        raise InputError(
            f"unknown task {task!r}",
            field="task",
            hint="comparisons support task='binary', 'multiclass' or 'regression'",
        )
    names = set(by_task[task])
    if supported is not None:
        names &= set(supported)
    if metric not in names:
        raise InputError(
            f"metric {metric!r} is not supported for a {task} comparison here",
            field="metric",
            hint="supported: " + ", ".join(sorted(names)),
        )
    return metric


def as_float(values: Any, field: str) -> np.ndarray:
    """A 1-d float64 array, or a typed error."""
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{field} must hold numbers: {err}", field=field) from None
    if out.ndim != 1:
        raise InputError(f"{field} must be one-dimensional, got shape {out.shape}", field=field)
    return out


def check_rows(
    y_true: Any, score: Any, sample_weight: Any, *, task: str, arm: str, paired: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated ``(y_true, score, sample_weight)`` of one arm (labels 0/1 for binary)."""
    y = as_float(y_true, f"{arm}.y_true")
    s = as_float(score, f"{arm}.score")
    if y.size != s.size:
        what = "paired rows do not line up" if paired else "arrays of different length"
        raise InputError(
            f"{arm}: y_true has {y.size} rows but the scores have {s.size} ({what})",
            field=f"{arm}.score",
            hint="pass one score per labeled row, in the same order",
        )
    if y.size == 0:
        raise EmptyInputError(
            f"{arm} has no labeled rows",
            field=f"{arm}.y_true",
            hint="a comparison needs rows on both arms",
        )
    for name, arr in (("y_true", y), ("score", s)):
        if not np.all(np.isfinite(arr)):
            raise InputError(
                f"{arm}.{name} holds missing or non-finite values",
                field=f"{arm}.{name}",
                hint="drop unlabeled or unscored rows first",
            )
    if task == "binary" and not np.all((y == 0) | (y == 1)):
        raise InputError(
            f"{arm}.y_true must hold 0/1 labels for a binary comparison",
            field=f"{arm}.y_true",
            hint="encode the positive class as 1",
        )
    if task == "multiclass":
        for name, arr in (("y_true", y), ("score", s)):
            if not np.all((arr >= 0) & (arr == np.floor(arr))):
                raise InputError(
                    f"{arm}.{name} must hold class codes (0, 1, 2, ...) for a multiclass "
                    "comparison",
                    field=f"{arm}.{name}",
                    hint="code both arms' classes alike: the index of the class in one list",
                )
    w = None
    if sample_weight is not None:
        w = as_float(sample_weight, f"{arm}.sample_weight")
        if w.size != y.size:
            raise InputError(
                f"{arm}.sample_weight has {w.size} rows, expected {y.size}",
                field=f"{arm}.sample_weight",
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError(
                f"{arm}.sample_weight must be finite and non-negative", field=f"{arm}.sample_weight"
            )
    return y, s, w


def correctness(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A multiclass arm as the binary problem of its per-row correctness: labels all 1,
    and 1.0 where the predicted class is right, so that binary accuracy, error rate,
    McNemar's table and the two-proportion test are those of the classes.

    >>> correctness(np.array([0, 2, 1]), np.array([0, 1, 1]))[1].tolist()
    [1.0, 0.0, 1.0]
    """
    return np.ones(y.size), (pred == y).astype(np.float64)


def predicted(score: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted class (0/1) from a score: ``score >= threshold``."""
    return (score >= threshold).astype(np.int8)


def row_mask(metric: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The rows a proportion metric is computed on (its denominator)."""
    kind = ROW_SETS[metric]
    if kind == "all":
        return np.ones(y.size, dtype=bool)
    if kind == "predicted positive":
        return pred == 1
    return y == (1 if kind == "positive" else 0)


def hits(metric: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """0/1 per row: whether the row counts in the metric's numerator."""
    if metric == "accuracy":
        return (pred == y).astype(np.float64)
    if metric == "error_rate":
        return (pred != y).astype(np.float64)
    if metric == "precision":
        return (y == 1).astype(np.float64)
    return (pred == (1 if metric in ("recall", "fpr") else 0)).astype(np.float64)


def per_row_loss(metric: str, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The per-row value whose mean is ``metric`` (log_loss, brier, mae, mse, mean_error)."""
    if metric == "log_loss":
        p = np.clip(s, _EPS, 1 - _EPS)
        q = np.clip(1 - s, _EPS, 1 - _EPS)
        return -np.where(y == 1, np.log(p), np.log(q))
    if metric == "brier":
        return (y - s) ** 2
    if metric == "mae":
        return np.abs(y - s)
    if metric == "mse":
        return (y - s) ** 2
    return s - y  # mean_error: the bias, positive = over-prediction


def empty_reason(metric: str) -> str:
    """Why a metric has no value: its denominator is empty."""
    reasons = {
        "precision": "no predicted positives",
        "recall": "no positive labels",
        "fnr": "no positive labels",
        "specificity": "no negative labels",
        "fpr": "no negative labels",
        "roc_auc": "only one class present in y_true",
        "average_precision": "no positive labels",
        "r2": "y_true is constant",
        "f1": "no positive labels and no predicted positives",
    }
    if metric in MACRO_METRICS:
        return "no rows"
    return reasons.get(metric, "no rows")
