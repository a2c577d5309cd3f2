"""Bootstrap of metric differences: any metric under a matrix of resampling counts.

``metric_values(metric, y, s, w, counts)`` evaluates a metric once per row of ``counts``
(replicates × rows of multinomial resampling counts) in a few matrix products, so a
bootstrap of 2,000 replicates is a handful of vectorised passes, not 2,000 Python calls.
A row of ones gives the metric itself (equal to scikit-learn's, weights included).

>>> y = np.array([0, 0, 1, 1.0]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> metric_values("roc_auc", y, s, None, np.ones((1, 4)), threshold=0.5).tolist()
[0.75]
>>> ci, p = percentile_test(np.array([0.1, 0.2, 0.3, -0.1]), alpha=0.5)
>>> ci, p
((0.05, 0.225), 0.8)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from assay.stats.compare import MEAN_LOSSES, per_row_loss, predicted
from assay.stats.ranking import ScoreGroups

_CELLS = 2_000_000  # resampling counts held at once (replicates × rows): 16 MB


def count_chunks(n: int, n_boot: int, seed: int | list[int]) -> Iterator[np.ndarray]:
    """Multinomial bootstrap counts, ``(replicates, n)`` blocks totalling ``n_boot`` rows."""
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, _CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def replicates(
    statistic: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int, seed: int | list[int]
) -> np.ndarray:
    """``statistic(counts)`` over ``n_boot`` bootstrap resamples of ``n`` rows."""
    return np.concatenate([statistic(c) for c in count_chunks(n, n_boot, seed)])


def percentile_test(
    deltas: np.ndarray, alpha: float
) -> tuple[tuple[float, float] | None, float | None]:
    """Percentile interval of bootstrap differences and the p-value that inverts it.

    The p-value is the smallest level at which the percentile interval excludes zero,
    ``2·min(#δ*≤0 + 1, #δ*≥0 + 1) / (B + 1)`` capped at 1. Non-finite replicates are
    dropped; fewer than half finite gives ``(None, None)``.
    """
    finite = deltas[np.isfinite(deltas)]
    if finite.size < max(2, deltas.size // 2):
        return None, None
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    below = int(np.count_nonzero(finite <= 0)) + 1
    above = int(np.count_nonzero(finite >= 0)) + 1
    p = min(1.0, 2.0 * min(below, above) / (finite.size + 1))
    return (float(lo), float(hi)), p


def metric_values(
    metric: str,
    y: np.ndarray,
    s: np.ndarray,
    w: np.ndarray | None,
    counts: np.ndarray,
    *,
    threshold: float,
) -> np.ndarray:
    """``metric`` of the rows weighted by each row of ``counts`` (nan where undefined)."""
    weight = counts if w is None else counts * w
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric in MEAN_LOSSES or metric == "rmse":
            loss = per_row_loss("mse" if metric == "rmse" else metric, y, s)
            mean = weight @ loss / weight.sum(axis=1)
            return np.sqrt(mean) if metric == "rmse" else mean
        if metric == "r2":
            total = weight.sum(axis=1)
            centre = float(np.mean(y))
            y_mean = weight @ y / total
            ss_tot = weight @ ((y - centre) ** 2) - total * (y_mean - centre) ** 2
            ss_res = weight @ ((y - s) ** 2)
            return np.where(
                ss_tot > 1e-12 * np.maximum(weight @ (y * y), 1.0), 1 - ss_res / ss_tot, np.nan
            )
        if metric in ("roc_auc", "average_precision"):
            groups = ScoreGroups.build(s, y, w, keep_rows=True)
            if metric == "roc_auc":
                return groups.auc_replicates(counts)
            return groups.average_precision_replicates(counts)
        pred = predicted(s, threshold)
        tp = weight @ (y * pred)
        fp = weight @ ((1 - y) * pred)
        fn = weight @ (y * (1 - pred))
        tn = weight @ ((1 - y) * (1 - pred))
        num, den = {
            "accuracy": (tp + tn, tp + tn + fp + fn),
            "error_rate": (fp + fn, tp + tn + fp + fn),
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
            "fnr": (fn, tp + fn),
            "specificity": (tn, tn + fp),
            "fpr": (fp, tn + fp),
            "f1": (2 * tp, 2 * tp + fp + fn),
        }[metric]
        return np.where(den > 0, num / den, np.nan)


def point_value(
    metric: str, y: np.ndarray, s: np.ndarray, w: np.ndarray | None, threshold: float
) -> float:
    """The metric on all rows (nan where undefined)."""
    return float(metric_values(metric, y, s, w, np.ones((1, y.size)), threshold=threshold)[0])
