"""Shadow mode: both models scored the same events (rows aligned), candidate − baseline.

* accuracy, error_rate, and recall/fnr (on the positives) and specificity/fpr (on the
  negatives): McNemar's test on the discordant pairs — exact binomial when there are
  fewer than 25 of them (``test="mcnemar_exact"``), the chi-square statistic
  ``(b − c)² / (b + c)`` without continuity correction otherwise (``"mcnemar_chi2"``).
  The interval is Newcombe's (1998) method 10 for paired proportions: Wilson intervals of
  both proportions combined with the phi correlation of the paired 2×2 table.
* roc_auc: DeLong's test with the covariance of the two AUCs on the same rows
  (``"delong_paired"``).
* every other metric, and every metric when ``sample_weight`` is given (McNemar and
  DeLong count rows): paired bootstrap — rows are resampled once and both models are
  scored on the same resample; percentile interval (``"paired_bootstrap"``).

>>> y = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 25)
>>> champion = np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.6, 0.1, 0.3] * 25)
>>> challenger = np.array([0.9, 0.8, 0.7, 0.4, 0.2, 0.3, 0.1, 0.3] * 25)
>>> d = paired_difference("accuracy", y, champion, challenger)
>>> d.baseline, d.candidate, d.difference, d.test, round(d.p_value, 6)
(0.625, 0.875, 0.25, 'mcnemar_chi2', 0.0)
"""

from __future__ import annotations

import numpy as np

from assay.errors import InputError
from assay.stats.compare import (
    MACRO_METRICS,
    ROW_SETS,
    Difference,
    check_alpha,
    check_metric,
    check_rows,
    correctness,
    empty_reason,
    hits,
    predicted,
    row_mask,
    undefined,
)
from assay.stats.intervals import wilson_interval
from assay.stats.resample import metric_deviations, percentile_test, point_value
from assay.stats.scipy_stats import scipy_stats

EXACT_BELOW = 25  # discordant pairs below which McNemar's exact binomial test is used
_MCNEMAR = frozenset(ROW_SETS) - {"precision"}


def paired_difference(
    metric: str,
    y_true: np.ndarray,
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    task: str = "binary",
    threshold: float = 0.5,
    sample_weight: np.ndarray | None = None,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> Difference:
    """candidate − baseline on the same labeled rows, with the paired test for ``metric``.

    ``baseline`` / ``candidate`` are scores (binary: the predicted class is
    ``score >= threshold``) or predictions (regression). Proportions compared by McNemar
    get Newcombe's (1998) paired interval (method 10: Wilson intervals of both proportions
    combined with their correlation); DeLong's interval is the normal (Wald) one; the
    bootstrap's is the percentile interval.

    >>> y = np.array([0, 1] * 50); a = np.linspace(0, 1, 100); b = a * (0.5 + y)
    >>> d = paired_difference("roc_auc", y, a, b)
    >>> round(d.baseline, 4), round(d.candidate, 4), d.test, d.ci[0] > 0
    (0.51, 0.8368, 'delong_paired', True)
    """
    alpha = check_alpha(alpha)
    check_metric(metric, task)
    y, s_base, w = check_rows(
        y_true, baseline, sample_weight, task=task, arm="baseline", paired=True
    )
    _, s_cand, _ = check_rows(y_true, candidate, None, task=task, arm="candidate", paired=True)
    if task == "multiclass" and metric not in MACRO_METRICS:  # accuracy, error_rate
        (y, s_base), s_cand, threshold = correctness(y, s_base), correctness(y, s_cand)[1], 0.5
    if w is not None and not np.all(w == 1.0):
        return _bootstrap(metric, y, s_base, s_cand, w, threshold, alpha, n_boot, seed)
    if metric in _MCNEMAR:
        return _mcnemar(metric, y, s_base, s_cand, threshold, alpha)
    if metric == "roc_auc":
        return _delong_paired(y, s_base, s_cand, alpha)
    return _bootstrap(metric, y, s_base, s_cand, None, threshold, alpha, n_boot, seed)


def mcnemar_table(hit_base: np.ndarray, hit_cand: np.ndarray) -> tuple[int, int, int, int]:
    """Counts (both, baseline only, candidate only, neither) of paired 0/1 hits."""
    base, cand = hit_base.astype(bool), hit_cand.astype(bool)
    both = int(np.count_nonzero(base & cand))
    only_base = int(np.count_nonzero(base & ~cand))
    only_cand = int(np.count_nonzero(~base & cand))
    return both, only_base, only_cand, base.size - both - only_base - only_cand


def mcnemar_p_value(only_base: int, only_cand: int) -> tuple[float, str]:
    """Two-sided McNemar p-value and the test's name (exact binomial or chi-square).

    >>> mcnemar_p_value(3, 9)[1], round(mcnemar_p_value(3, 9)[0], 6)
    ('mcnemar_exact', 0.145996)
    """
    discordant = only_base + only_cand
    if discordant == 0:
        return 1.0, "mcnemar_exact"
    if discordant < EXACT_BELOW:
        binom = scipy_stats().binom

        tail = float(binom.cdf(min(only_base, only_cand), discordant, 0.5))
        return min(1.0, 2.0 * tail), "mcnemar_exact"
    statistic = (only_base - only_cand) ** 2 / discordant
    chi2 = scipy_stats().chi2

    return float(chi2.sf(statistic, 1)), "mcnemar_chi2"


def newcombe_paired_interval(
    both: int, only_base: int, only_cand: int, neither: int, alpha: float
) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval of p_candidate − p_baseline for paired data.

    Wilson intervals of both proportions, combined ("square and add") with the
    correlation of the paired table, continuity-corrected as Newcombe does.

    >>> tuple(round(v, 4) for v in newcombe_paired_interval(40, 5, 15, 40, 0.05))
    (0.0123, 0.1844)
    """
    n = both + only_base + only_cand + neither
    p_base, p_cand = (both + only_base) / n, (both + only_cand) / n
    lo_b, hi_b = wilson_interval(both + only_base, n, 1 - alpha) or (0.0, 1.0)
    lo_c, hi_c = wilson_interval(both + only_cand, n, 1 - alpha) or (0.0, 1.0)
    margins = (
        float(both + only_base) * (only_cand + neither) * (both + only_cand) * (only_base + neither)
    )
    # the correlation of the two proportions, with Newcombe's continuity correction
    cross = float(both) * neither - float(only_base) * only_cand
    if margins <= 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / np.sqrt(margins)
    diff = p_cand - p_base
    down = (p_cand - lo_c) ** 2 - 2 * phi * (p_cand - lo_c) * (hi_b - p_base) + (hi_b - p_base) ** 2
    up = (hi_c - p_cand) ** 2 - 2 * phi * (hi_c - p_cand) * (p_base - lo_b) + (p_base - lo_b) ** 2
    return (float(diff - np.sqrt(max(down, 0.0))), float(diff + np.sqrt(max(up, 0.0))))


def _mcnemar(
    metric: str,
    y: np.ndarray,
    s_base: np.ndarray,
    s_cand: np.ndarray,
    threshold: float,
    alpha: float,
) -> Difference:
    pred_base, pred_cand = predicted(s_base, threshold), predicted(s_cand, threshold)
    rows = row_mask(metric, y, pred_base)
    n = int(np.count_nonzero(rows))
    if n == 0:
        return undefined(
            metric, "mcnemar_exact", 0, 0, alpha, f"{metric} is undefined: {empty_reason(metric)}"
        )
    table = mcnemar_table(
        hits(metric, y[rows], pred_base[rows]), hits(metric, y[rows], pred_cand[rows])
    )
    both, only_base, only_cand, _ = table
    p_value, test = mcnemar_p_value(only_base, only_cand)
    return Difference(
        metric,
        (both + only_base) / n,
        (both + only_cand) / n,
        (only_cand - only_base) / n,
        newcombe_paired_interval(*table, alpha),
        p_value,
        test,
        n,
        n,
        alpha,
    )


def delong_components(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: V10 per positive, V01 per negative (ties count ½).

    The AUC is the mean of either. Midranks give them in O(n log n).

    >>> v10, v01 = delong_components(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> v10.tolist(), v01.tolist(), float(v10.mean())
    ([0.5, 1.0], [1.0, 0.5], 0.75)
    """
    positive = y == 1
    n_pos, n_neg = int(np.count_nonzero(positive)), int(np.count_nonzero(~positive))
    rankdata = scipy_stats().rankdata

    ranks = rankdata(score)
    v10 = (ranks[positive] - rankdata(score[positive])) / n_neg
    v01 = 1.0 - (ranks[~positive] - rankdata(score[~positive])) / n_pos
    return v10, v01


def _delong_paired(
    y: np.ndarray, s_base: np.ndarray, s_cand: np.ndarray, alpha: float
) -> Difference:
    n = y.size
    n_pos = int(np.count_nonzero(y == 1))
    if n_pos == 0 or n_pos == n:
        return undefined(
            "roc_auc",
            "delong_paired",
            n,
            n,
            alpha,
            "roc_auc is undefined: only one class present in y_true",
        )
    v10_b, v01_b = delong_components(y, s_base)
    v10_c, v01_c = delong_components(y, s_cand)
    auc_b, auc_c = float(v10_b.mean()), float(v10_c.mean())
    diff = auc_c - auc_b
    if n_pos < 2 or n - n_pos < 2:
        return undefined(
            "roc_auc",
            "delong_paired",
            n,
            n,
            alpha,
            "DeLong's variance needs at least two positives and two negatives",
            auc_b,
            auc_c,
            diff,
        )
    var = np.var(v10_c - v10_b, ddof=1) / n_pos + np.var(v01_c - v01_b, ddof=1) / (n - n_pos)
    ci, p_value = normal_test(diff, float(var), alpha)
    return Difference("roc_auc", auc_b, auc_c, diff, ci, p_value, "delong_paired", n, n, alpha)


def normal_test(diff: float, var: float, alpha: float) -> tuple[tuple[float, float], float]:
    """Wald interval and two-sided p-value of a normal estimate (a zero variance is exact)."""
    if var <= 0:
        return (diff, diff), (1.0 if diff == 0 else 0.0)
    se = float(np.sqrt(var))
    norm = scipy_stats().norm

    half = float(norm.ppf(1 - alpha / 2)) * se
    return (diff - half, diff + half), float(2 * norm.sf(abs(diff) / se))


def _bootstrap(
    metric: str,
    y: np.ndarray,
    s_base: np.ndarray,
    s_cand: np.ndarray,
    w: np.ndarray | None,
    threshold: float,
    alpha: float,
    n_boot: int,
    seed: int,
) -> Difference:
    if int(n_boot) < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}", field="n_boot")
    n = y.size
    base = point_value(metric, y, s_base, w, threshold)
    cand = point_value(metric, y, s_cand, w, threshold)
    test = "paired_bootstrap"
    if not (np.isfinite(base) and np.isfinite(cand)):
        arm = "baseline" if not np.isfinite(base) else "candidate"
        return undefined(
            metric,
            test,
            n,
            n,
            alpha,
            f"{metric} is undefined on the {arm} arm: {empty_reason(metric)}",
            base,
            cand,
        )

    # rows are resampled once and both models scored on the same resample
    devs = metric_deviations(metric, y, [s_base, s_cand], w, threshold, int(n_boot), seed)
    ci, p_value = percentile_test(cand - base, devs, alpha)
    if ci is None:
        return undefined(
            metric,
            test,
            n,
            n,
            alpha,
            f"{metric} is undefined in most bootstrap resamples",
            base,
            cand,
            cand - base,
        )
    return Difference(metric, base, cand, cand - base, ci, p_value, test, n, n, alpha, None)
