"""Canary and A/B: disjoint events per arm, candidate − baseline.

* proportions (accuracy, error_rate, precision, recall, specificity, fpr, fnr): the
  two-proportion z test with the pooled variance, each metric on its own rows (recall on
  the positives, precision on the predicted positives, ...). The interval is Newcombe's
  (1998) hybrid score interval (method 10: Wilson intervals of both arms combined),
  which keeps its coverage near 0 and 1 where the Wald interval does not.
* mean losses (log_loss, brier, mae, mse, mean_error): Welch's t test on the per-row
  losses, with its Welch–Satterthwaite degrees of freedom.
* roc_auc: DeLong variances of the two independent AUCs, a z test.
* f1, average_precision, rmse, r2: bootstrap of each arm on its own; percentile interval.

Under ``sample_weight`` means and proportions are weighted and the Kish effective sample
size ``(Σw)²/Σw²`` stands in for the row count.

>>> y = np.array([0, 1] * 100)
>>> champion = (y, np.where(np.arange(200) % 5 == 0, 1 - y, y))      # 80% right
>>> challenger = (y, np.where(np.arange(200) % 10 == 0, 1 - y, y))   # 90% right
>>> d = split_difference("accuracy", champion, challenger)
>>> round(d.difference, 6), d.test, round(d.p_value, 4), d.significant
(0.1, 'two_proportion', 0.0051, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assay.errors import InputError
from assay.stats.compare import (
    MACRO_METRICS,
    MEAN_LOSSES,
    ROW_SETS,
    Difference,
    check_alpha,
    check_metric,
    check_rows,
    correctness,
    empty_reason,
    hits,
    per_row_loss,
    predicted,
    row_mask,
    undefined,
)
from assay.stats.intervals import wilson_interval
from assay.stats.paired import normal_test
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.reduce import dot
from assay.stats.resample import metric_deviations, percentile_test, point_value
from assay.stats.scipy_stats import scipy_stats

Arm = tuple[np.ndarray, np.ndarray]


def split_difference(
    metric: str,
    baseline: Arm,
    candidate: Arm,
    *,
    task: str = "binary",
    threshold: float = 0.5,
    sample_weight: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> Difference:
    """candidate − baseline from two independent samples, each ``(y_true, score)``.

    >>> rng = np.random.default_rng(0)
    >>> arm = lambda bias: (np.zeros(400), np.clip(rng.normal(bias, 0.1, 400), 0, 1))
    >>> d = split_difference("brier", arm(0.3), arm(0.2))
    >>> d.test, d.ci[1] < 0
    ('welch', True)
    """
    alpha = check_alpha(alpha)
    check_metric(metric, task)
    (y_b, s_b, w_b), (y_c, s_c, w_c) = arms(baseline, candidate, sample_weight, task)
    if task == "multiclass" and metric not in MACRO_METRICS:  # accuracy, error_rate
        (y_b, s_b), (y_c, s_c), threshold = correctness(y_b, s_b), correctness(y_c, s_c), 0.5
    if metric in ROW_SETS:
        return _two_proportion(metric, (y_b, s_b, w_b), (y_c, s_c, w_c), threshold, alpha)
    if metric in MEAN_LOSSES:
        x_b, x_c = per_row_loss(metric, y_b, s_b), per_row_loss(metric, y_c, s_c)
        return welch(metric, moments(x_b, w_b), moments(x_c, w_c), alpha)
    if metric == "roc_auc":
        return _delong(y_b, s_b, w_b, y_c, s_c, w_c, alpha)
    return _bootstrap(metric, (y_b, s_b, w_b), (y_c, s_c, w_c), threshold, alpha, n_boot, seed)


def arms(
    baseline: Any, candidate: Any, sample_weight: Any, task: str
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], ...]:
    """Validated ``(y_true, score, weight)`` of both arms."""
    weights = (None, None) if sample_weight is None else sample_weight
    if not isinstance(weights, tuple | list) or len(weights) != 2:
        raise InputError(
            "sample_weight must be a pair (baseline, candidate)",
            field="sample_weight",
            hint="use (None, None) for unit weights",
        )
    out = []
    for name, arm, w in (("baseline", baseline, weights[0]), ("candidate", candidate, weights[1])):
        if not isinstance(arm, tuple | list) or len(arm) != 2:
            raise InputError(
                f"{name} must be a pair (y_true, score)",
                field=name,
                hint="each arm is (labels, scores or predictions)",
            )
        out.append(check_rows(arm[0], arm[1], w, task=task, arm=name))
    return tuple(out)


def moments(x: np.ndarray, w: np.ndarray | None) -> tuple[float, float, float]:
    """(mean, unbiased variance, effective n) of a weighted sample (Kish n under weights)."""
    if w is None:
        n = float(x.size)
        return float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else float("nan"), n
    total = float(w.sum())
    if total <= 0:
        return float("nan"), float("nan"), 0.0
    mean = dot(w, x) / total
    n_eff = total * total / dot(w, w)
    var = dot(w, (x - mean) ** 2) / total * n_eff / (n_eff - 1) if n_eff > 1 else float("nan")
    return mean, var, n_eff


def welch(
    metric: str,
    base: tuple[float, float, float],
    cand: tuple[float, float, float],
    alpha: float,
    test: str = "welch",
) -> Difference:
    """Welch's t test and interval from each arm's (mean, variance, n)."""
    (m_b, v_b, n_b), (m_c, v_c, n_c) = base, cand
    diff = m_c - m_b
    if n_b < 2 or n_c < 2 or not (np.isfinite(v_b) and np.isfinite(v_c)):
        return undefined(
            metric,
            test,
            round(n_b),
            round(n_c),
            alpha,
            "Welch's test needs at least two rows on each arm",
            m_b,
            m_c,
            diff,
        )
    se_b, se_c = v_b / n_b, v_c / n_c
    se2 = se_b + se_c
    if se2 <= 0:
        ci, p_value = (diff, diff), (1.0 if diff == 0 else 0.0)
    else:
        df = se2 * se2 / (se_b * se_b / (n_b - 1) + se_c * se_c / (n_c - 1))
        se = float(np.sqrt(se2))
        student_t = scipy_stats().t

        half = float(student_t.ppf(1 - alpha / 2, df)) * se
        ci, p_value = (diff - half, diff + half), float(2 * student_t.sf(abs(diff) / se, df))
    return Difference(metric, m_b, m_c, diff, ci, p_value, test, round(n_b), round(n_c), alpha)


def two_proportion_test(
    p_b: float, n_b: float, p_c: float, n_c: float, alpha: float
) -> tuple[tuple[float, float], float]:
    """Newcombe's hybrid score interval of p_c − p_b and the pooled z test's p-value.

    >>> ci, p = two_proportion_test(0.5, 100, 0.6, 100, 0.05)
    >>> tuple(round(v, 4) for v in ci), round(p, 4)
    ((-0.0373, 0.2321), 0.1552)
    """
    lo_b, hi_b = wilson_interval(p_b * n_b, n_b, 1 - alpha) or (0.0, 1.0)
    lo_c, hi_c = wilson_interval(p_c * n_c, n_c, 1 - alpha) or (0.0, 1.0)
    diff = p_c - p_b
    ci = (
        diff - float(np.hypot(p_c - lo_c, hi_b - p_b)),
        diff + float(np.hypot(hi_c - p_c, p_b - lo_b)),
    )
    pooled = (p_b * n_b + p_c * n_c) / (n_b + n_c)
    var0 = pooled * (1 - pooled) * (1 / n_b + 1 / n_c)
    if var0 <= 0:
        return ci, 1.0 if diff == 0 else 0.0
    norm = scipy_stats().norm

    return ci, float(2 * norm.sf(abs(diff) / np.sqrt(var0)))


def _two_proportion(
    metric: str,
    base: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    cand: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    threshold: float,
    alpha: float,
) -> Difference:
    stats = []
    for y, s, w in (base, cand):
        pred = predicted(s, threshold)
        rows = row_mask(metric, y, pred)
        x = hits(metric, y[rows], pred[rows])
        ww = None if w is None else w[rows]
        count = int(np.count_nonzero(rows))
        mean, _, n_eff = (
            moments(x, ww)
            if count and (ww is None or ww.sum() > 0)
            else (float("nan"), float("nan"), 0.0)
        )
        stats.append((mean, n_eff, count))
    (p_b, n_b, k_b), (p_c, n_c, k_c) = stats
    if n_b <= 0 or n_c <= 0:
        arm = "baseline" if n_b <= 0 else "candidate"
        return undefined(
            metric,
            "two_proportion",
            k_b,
            k_c,
            alpha,
            f"{metric} is undefined on the {arm} arm: {empty_reason(metric)}",
            p_b if n_b > 0 else None,
            p_c if n_c > 0 else None,
        )
    ci, p_value = two_proportion_test(p_b, n_b, p_c, n_c, alpha)
    return Difference(metric, p_b, p_c, p_c - p_b, ci, p_value, "two_proportion", k_b, k_c, alpha)


def _delong(
    y_b: np.ndarray,
    s_b: np.ndarray,
    w_b: np.ndarray | None,
    y_c: np.ndarray,
    s_c: np.ndarray,
    w_c: np.ndarray | None,
    alpha: float,
) -> Difference:
    values = []
    for name, y, s, w in (("baseline", y_b, s_b, w_b), ("candidate", y_c, s_c, w_c)):
        groups = ScoreGroups.build(s, y, w)
        if groups.pos_total <= 0 or groups.neg_total <= 0:
            return undefined(
                "roc_auc",
                "delong",
                y_b.size,
                y_c.size,
                alpha,
                f"roc_auc is undefined on the {name} arm: only one class present in y_true",
            )
        values.append(auc_delong(groups, np.ones(0)))
    (auc_b, var_b), (auc_c, var_c) = values
    diff = auc_c - auc_b
    if not np.isfinite(var_b + var_c):
        return undefined(
            "roc_auc",
            "delong",
            y_b.size,
            y_c.size,
            alpha,
            "DeLong's variance needs at least two positives and two negatives on each arm",
            auc_b,
            auc_c,
            diff,
        )
    ci, p_value = normal_test(diff, var_b + var_c, alpha)
    return Difference(
        "roc_auc", auc_b, auc_c, diff, ci, p_value, "delong", y_b.size, y_c.size, alpha
    )


def _bootstrap(
    metric: str,
    base: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    cand: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    threshold: float,
    alpha: float,
    n_boot: int,
    seed: int,
) -> Difference:
    if int(n_boot) < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}", field="n_boot")
    n_b, n_c = base[0].size, cand[0].size
    values, draws = [], []
    for arm, (name, (y, s, w)) in enumerate((("baseline", base), ("candidate", cand))):
        value = point_value(metric, y, s, w, threshold)
        values.append(value)
        if not np.isfinite(value):
            return undefined(
                metric,
                "bootstrap",
                n_b,
                n_c,
                alpha,
                f"{metric} is undefined on the {name} arm: {empty_reason(metric)}",
                *values,
            )
        draws.append(metric_deviations(metric, y, [s], w, threshold, int(n_boot), [seed, arm]))
    base_v, cand_v = values
    ci, p_value = percentile_test(cand_v - base_v, draws[1] - draws[0], alpha)
    if ci is None:
        return undefined(
            metric,
            "bootstrap",
            n_b,
            n_c,
            alpha,
            f"{metric} is undefined in most bootstrap resamples",
            base_v,
            cand_v,
            cand_v - base_v,
        )
    return Difference(
        metric, base_v, cand_v, cand_v - base_v, ci, p_value, "bootstrap", n_b, n_c, alpha
    )
