"""Bootstrap of metric differences: any metric under a matrix of resampling counts.

``metric_values(metric, y, s, w, counts)`` evaluates a metric once per row of ``counts``
(replicates × rows of resampling counts) in a few matrix products, so a bootstrap of 2,000
replicates is a handful of vectorised passes, not 2,000 Python calls. A row of ones gives
the metric itself (equal to scikit-learn's, weights included).

:func:`deviations` draws the bootstrap distribution of ``statistic − estimate`` in one of
three ways, all with the same answer in distribution:

* rows that are copies of a few distinct records (threshold metrics without weights: a
  row is its label and predicted classes) are resampled exactly, as a multinomial draw
  over the distinct records — cost independent of the row count;
* up to ``EXACT_ROWS`` rows: the ordinary multinomial bootstrap;
* above: the bag of little bootstraps (Kleiner et al., 2014): ``SUBSETS`` random subsets
  of ``b = n^0.6`` rows (at least 2,000, at most n/10), each resampled to about ``n`` rows
  with Poisson(n/b) counts (the Poisson bootstrap; n/b ≥ 10, drawn in its normal form and
  rounded); the deviations from each subset's own value are pooled. The cost grows with
  ``b``, not ``n``.

>>> y = np.array([0, 0, 1, 1.0]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> metric_values("roc_auc", y, s, None, np.ones((1, 4)), threshold=0.5).tolist()
[0.75]
>>> ci, p = percentile_test(0.1, np.array([0.0, 0.1, 0.2, -0.2]), alpha=0.5)
>>> [round(v, 6) for v in ci], p
([0.05, 0.225], 0.8)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from assay.stats.compare import MACRO_METRICS, MEAN_LOSSES, per_row_loss, predicted
from assay.stats.ranking import ScoreGroups
from assay.stats.reduce import rows_dot

EXACT_ROWS = 10_000  # above this many rows the bag of little bootstraps is used
SUBSETS = 10
_CELLS = 2_000_000  # resampling counts held at once (replicates × rows): 16 MB

# statistic(rows, counts): one value per row of counts (replicates, len(rows));
# rows is an index array, or None for all rows
Statistic = Callable[[np.ndarray | None, np.ndarray], np.ndarray]


def deviations(
    statistic: Statistic,
    n: int,
    n_boot: int,
    seed: int | list[int],
    multiplicity: np.ndarray | None = None,
) -> np.ndarray:
    """``n_boot`` bootstrap draws of ``statistic − estimate`` over ``n`` rows.

    ``multiplicity`` (optional) says that the rows passed to ``statistic`` are distinct
    records standing for ``multiplicity[i]`` rows each (summing to ``n``).
    """
    rng = np.random.default_rng(seed)
    if multiplicity is not None:
        full = statistic(None, multiplicity[None, :].astype(np.float64))[0]
        counts = rng.multinomial(n, multiplicity / multiplicity.sum(), size=n_boot)
        return statistic(None, counts.astype(np.float64)) - full
    if n <= EXACT_ROWS:
        full = statistic(None, np.ones((1, n)))[0]
        block = max(1, min(n_boot, _CELLS // max(n, 1)))
        out = []
        for start in range(0, n_boot, block):
            b = min(block, n_boot - start)
            draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
            counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
            out.append(statistic(None, counts.astype(np.float64)) - full)
        return np.concatenate(out)
    b = int(min(max(n**0.6, 2000), n // 10))
    per_subset = -(-n_boot // SUBSETS)
    out = []
    for _ in range(SUBSETS):
        rows = np.unique(rng.integers(0, n, size=b))
        centre = statistic(rows, np.full((1, rows.size), n / rows.size))[0]
        lam = n / rows.size  # at least 10: Poisson(lam) in its normal form, rounded
        counts = rng.standard_normal(size=(per_subset, rows.size))
        counts *= np.sqrt(lam)
        counts += lam
        np.maximum(np.rint(counts, out=counts), 0.0, out=counts)
        out.append(statistic(rows, counts) - centre)
    return np.concatenate(out)[:n_boot]


def percentile_test(
    estimate: float, devs: np.ndarray, alpha: float
) -> tuple[tuple[float, float] | None, float | None]:
    """Percentile interval ``estimate + quantiles(devs)`` and the p-value that inverts it.

    The p-value is the smallest level at which the interval excludes zero,
    ``2·min(#δ*≤0 + 1, #δ*≥0 + 1) / (B + 1)`` capped at 1, with ``δ* = estimate + dev``.
    Non-finite draws are dropped; fewer than half finite gives ``(None, None)``.
    """
    finite = devs[np.isfinite(devs)]
    if finite.size < max(2, devs.size // 2):
        return None, None
    draws = estimate + finite
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    below = int(np.count_nonzero(draws <= 0)) + 1
    above = int(np.count_nonzero(draws >= 0)) + 1
    p = min(1.0, 2.0 * min(below, above) / (finite.size + 1))
    return (float(lo), float(hi)), p


THRESHOLD_METRICS = frozenset(
    {"accuracy", "error_rate", "precision", "recall", "f1", "specificity", "fpr", "fnr"}
)


def distinct_records(
    y: np.ndarray, *scores: np.ndarray, threshold: float
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Rows of threshold metrics reduced to distinct (label, predicted classes) records.

    Returns the records' labels, their 0/1 predictions per score (as scores for a
    threshold of 0.5) and how many rows each stands for.
    """
    code = y.astype(np.int64)
    for s in scores:
        code = 2 * code + predicted(s, threshold)
    unique, multiplicity = np.unique(code, return_counts=True)
    preds = []
    for k in range(len(scores) - 1, -1, -1):
        preds.append(((unique >> k) & 1).astype(np.float64))
    return (unique >> len(scores)).astype(np.float64), preds, multiplicity


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
            mean = rows_dot(weight, loss) / weight.sum(axis=1)
            return np.sqrt(mean) if metric == "rmse" else mean
        if metric == "r2":
            total = weight.sum(axis=1)
            centre = float(np.mean(y))
            y_mean = rows_dot(weight, y) / total
            ss_tot = rows_dot(weight, (y - centre) ** 2) - total * (y_mean - centre) ** 2
            ss_res = rows_dot(weight, (y - s) ** 2)
            floor = 1e-12 * np.maximum(rows_dot(weight, y * y), 1.0)
            return np.where(ss_tot > floor, 1 - ss_res / ss_tot, np.nan)
        if metric in ("roc_auc", "average_precision"):
            groups = ScoreGroups.build(s, y, w, keep_rows=True)
            if metric == "roc_auc":
                return groups.auc_replicates(counts)
            return groups.average_precision_replicates(counts)
        if metric in MACRO_METRICS:
            return _macro(metric, y, s, weight)
        pred = predicted(s, threshold)
        tp = rows_dot(weight, y * pred)
        fp = rows_dot(weight, (1 - y) * pred)
        fn = rows_dot(weight, y * (1 - pred))
        tn = rows_dot(weight, (1 - y) * (1 - pred))
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


def _macro(metric: str, y: np.ndarray, pred: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Macro-averaged precision, recall or F1 over the classes of ``y`` and ``pred`` (class
    codes), a class's undefined ratio counting 0 (scikit-learn's ``zero_division=0``)."""
    per_class = []
    for code in np.union1d(y, pred):
        actual, guessed = (y == code).astype(np.float64), (pred == code).astype(np.float64)
        tp = rows_dot(weight, actual * guessed)
        num, den = {
            "precision_macro": (tp, rows_dot(weight, guessed)),
            "recall_macro": (tp, rows_dot(weight, actual)),
            "f1_macro": (2 * tp, rows_dot(weight, actual) + rows_dot(weight, guessed)),
        }[metric]
        per_class.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0))
    return np.mean(per_class, axis=0) if per_class else np.full(weight.shape[0], np.nan)


def point_value(
    metric: str, y: np.ndarray, s: np.ndarray, w: np.ndarray | None, threshold: float
) -> float:
    """The metric on all rows (nan where undefined)."""
    return float(metric_values(metric, y, s, w, np.ones((1, y.size)), threshold=threshold)[0])


def metric_statistic(
    metric: str,
    y: np.ndarray,
    scores: list[np.ndarray],
    w: np.ndarray | None,
    threshold: float,
) -> Statistic:
    """``statistic(rows, counts)``: the metric of ``scores[-1]`` minus that of ``scores[0]``
    (one score: the metric itself) on the rows under each row of counts."""

    def statistic(rows: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
        yy = y if rows is None else y[rows]
        ww = w if w is None or rows is None else w[rows]
        values = [
            metric_values(metric, yy, s if rows is None else s[rows], ww, counts,
                          threshold=threshold)
            for s in scores
        ]  # fmt: skip
        return values[-1] - values[0] if len(values) == 2 else values[0]

    return statistic


def quantile_deviations(
    columns: list[np.ndarray], q: float, n_boot: int, seed: int | list[int]
) -> np.ndarray:
    """Bootstrap deviations of numpy's (linear) ``quantile(q)`` of one column, or of the
    second column's minus the first's when both are resampled by the same rows (paired).

    Exact multinomial bootstrap at any size: the resampled quantile only ever falls among
    the original values ranked within ``8·sqrt(n·q·(1 − q)) + 40`` of position ``q·n``
    (a miss has probability below 1e-14), so only the rows in those windows are drawn one
    by one; all other rows are drawn in bulk by whether they lie below or above each
    window. The cost grows with the window, about ``sqrt(n)``, not with ``n``.

    >>> x = np.arange(10.0)
    >>> devs = quantile_deviations([x], 0.5, 2000, 0)
    >>> float(np.quantile(x, 0.5)), round(float(devs.mean()), 1), bool(devs.std() > 0.5)
    (4.5, 0.0, True)
    """
    rng = np.random.default_rng(seed)
    n = columns[0].size
    position = (n - 1) * q
    k = int(np.floor(position))
    frac = position - k
    half = int(np.ceil(8 * np.sqrt(n * q * (1 - q)))) + 40
    lo, hi = max(0, k - half), min(n, k + half + 2)
    ranks, in_window = [], np.zeros(n, dtype=bool)
    for x in columns:
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(x, kind="stable")] = np.arange(n)
        ranks.append(rank)
        in_window |= (rank >= lo) & (rank < hi)
    special = np.flatnonzero(in_window)
    # every other row only matters through which columns it lies below the window in
    code = np.zeros(n, dtype=np.int64)
    for j, rank in enumerate(ranks):
        code |= (rank < lo).astype(np.int64) << j
    bulk = np.bincount(code[~in_window], minlength=1 << len(columns))
    weights = np.concatenate([np.ones(special.size), bulk]).astype(np.float64)
    full = np.concatenate([np.ones(special.size), bulk])[None, :].astype(np.float64)
    draws = np.vstack([full, rng.multinomial(n, weights / n, size=n_boot)]).astype(np.float64)
    values = []
    for j, (x, rank) in enumerate(zip(columns, ranks, strict=True)):
        below_bulk = np.array([(c >> j) & 1 for c in range(bulk.size)], dtype=bool)
        special_rank = rank[special]
        below = draws[:, special.size :][:, below_bulk].sum(axis=1)
        below += draws[:, : special.size][:, special_rank < lo].sum(axis=1)
        window = np.flatnonzero((special_rank >= lo) & (special_rank < hi))
        window = window[np.argsort(special_rank[window])]
        cum = np.cumsum(draws[:, window], axis=1)
        sorted_values = x[special[window]]
        # the resample's k-th value is the first window value whose cumulative count
        # (added to the rows below the window) exceeds k
        at_k = (cum <= (k - below)[:, None]).sum(axis=1)
        at_next = (cum <= (min(k + 1, n - 1) - below)[:, None]).sum(axis=1)
        last = sorted_values.size - 1
        v_k = sorted_values[np.clip(at_k, 0, last)]
        v_next = sorted_values[np.clip(at_next, 0, last)]
        values.append(v_k + frac * (v_next - v_k))
    stat = values[-1] - values[0] if len(values) == 2 else values[0]
    return stat[1:] - stat[0]


def metric_deviations(
    metric: str,
    y: np.ndarray,
    scores: list[np.ndarray],
    w: np.ndarray | None,
    threshold: float,
    n_boot: int,
    seed: int | list[int],
) -> np.ndarray:
    """Bootstrap deviations of the metric (two scores: of its paired difference)."""
    if w is None and metric in THRESHOLD_METRICS:
        records, preds, multiplicity = distinct_records(y, *scores, threshold=threshold)
        statistic = metric_statistic(metric, records, preds, None, 0.5)
        return deviations(statistic, y.size, n_boot, seed, multiplicity)
    return deviations(metric_statistic(metric, y, scores, w, threshold), y.size, n_boot, seed)
