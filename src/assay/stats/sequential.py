"""Always-valid comparison for a canary that is looked at after every batch.

A fixed-horizon test checked again and again will, sooner or later, cross its threshold
by chance: with 20 looks at α = 0.05 about a quarter of identical models get "a
significant difference". A *confidence sequence* holds at every sample size at once —
the chance that it ever excludes the true difference, over all looks, is at most α — so
a canary can be checked as often as one likes and stopped the moment it is clear.

The sequence here is the normal-mixture boundary applied to the difference of the two
arms' per-row means (the mixture SPRT of Johari et al., "Always valid inference", 2017/
2022; in its asymptotic form, with plug-in variances, by Waudby-Smith et al.,
"Time-uniform central limit theory and asymptotic confidence sequences", 2024). With
``V = s²_b/n_b + s²_c/n_c`` the variance of the estimated difference and the mixture
variance ``τ²`` tuned to be tightest when each arm has ``tuning_rows`` rows, ``r = τ²/V``:

    difference ± sqrt(V · (1 + r)/r · (log(1 + r) + 2·log(1/α)))

and the always-valid p-value is ``min(1, sqrt(1 + r)·exp(−r·z² / (2(1 + r))))`` with
``z² = difference²/V`` — it is below α exactly when the interval excludes zero. Both are
computed from the data so far, so no state is carried between looks (intersecting the
intervals of successive looks, or taking the running minimum of the p-values, remains
valid and only tightens them). Proportions are per-row 0/1 values; their variance is
floored at ``p̃(1 − p̃)`` with ``p̃ = (k + ½)/(n + 1)`` so that an arm with no errors yet
does not look certain.

>>> rng = np.random.default_rng(3)
>>> champion = (np.ones(2000), (rng.random(2000) < 0.80).astype(float))
>>> challenger = (np.ones(2000), (rng.random(2000) < 0.70).astype(float))
>>> d = sequential_difference("recall", champion, challenger)
>>> round(d.difference, 3), d.test, d.ci[1] < 0, d.p_value < 0.05
(-0.113, 'confidence_sequence', True, True)
"""

from __future__ import annotations

import math

import numpy as np

from assay.errors import InputError
from assay.stats.compare import (
    MEAN_LOSSES,
    ROW_SETS,
    Difference,
    check_alpha,
    check_metric,
    correctness,
    empty_reason,
    hits,
    per_row_loss,
    predicted,
    row_mask,
    undefined,
)
from assay.stats.split import Arm, arms

SEQUENTIAL_METRICS: frozenset[str] = frozenset(ROW_SETS) | MEAN_LOSSES
TEST = "confidence_sequence"
NOT_ENOUGH_ROWS = "not enough rows yet"


def mixture_constant(alpha: float) -> float:
    """``ρ²·t*`` of the normal mixture that is tightest at ``t*`` (Waudby-Smith et al.)."""
    return -2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))


def boundary(var: float, tuning_var: float, alpha: float) -> float:
    """Half-width of the (1 − alpha) confidence sequence at variance ``var``.

    ``tuning_var`` is the variance of the estimate at the sample size the mixture is
    tuned for. At that size the half-width is about 3 standard errors for α = 0.05
    (a fixed-horizon interval: 1.96).

    >>> round(boundary(1.0, 1.0, 0.05), 3)
    3.035
    """
    r = mixture_constant(alpha) * tuning_var / var
    return math.sqrt(var * (1.0 + r) / r * (math.log1p(r) + 2.0 * math.log(1.0 / alpha)))


def always_valid_p_value(difference: float, var: float, tuning_var: float, alpha: float) -> float:
    """The mixture SPRT's p-value of "no difference" (``1/Λ`` capped at 1).

    >>> always_valid_p_value(3.04, 1, 1, 0.05) < 0.05 < always_valid_p_value(3.03, 1, 1, 0.05)
    True
    """
    if var <= 0:
        return 1.0 if difference == 0 else 0.0
    r = mixture_constant(alpha) * tuning_var / var
    log_p = 0.5 * math.log1p(r) - r * difference * difference / var / (2.0 * (1.0 + r))
    return math.exp(min(0.0, log_p))


def sequential_difference(
    metric: str,
    baseline: Arm,
    candidate: Arm,
    *,
    task: str = "binary",
    threshold: float = 0.5,
    alpha: float = 0.05,
    min_rows: int = 100,
    tuning_rows: int = 1000,
) -> Difference:
    """candidate − baseline with a confidence sequence: valid however often it is checked.

    Each arm is ``(y_true, score_or_prediction)`` holding every labeled row so far.
    Below ``min_rows`` rows on an arm (rows that enter the metric: positives for recall)
    the values are reported without interval, with reason ``"not enough rows yet"``.
    Set ``tuning_rows`` near the rows per arm at which a decision is expected (for
    example ``sample_size(..., sequential=True)["tuning_rows"]``).

    >>> y = np.zeros(50)
    >>> sequential_difference("fpr", (y, y), (y, y)).reason
    'not enough rows yet'
    """
    alpha = check_alpha(alpha)
    if metric not in SEQUENTIAL_METRICS:
        raise InputError(
            f"metric {metric!r} is not supported by the sequential test",
            field="metric",
            hint="supported: " + ", ".join(sorted(SEQUENTIAL_METRICS)),
        )
    check_metric(metric, task, SEQUENTIAL_METRICS)
    if int(min_rows) < 2 or int(tuning_rows) < 1:
        raise InputError(
            f"min_rows must be at least 2 and tuning_rows at least 1, got "
            f"{min_rows} and {tuning_rows}",
            field="min_rows",
        )
    (y_b, s_b, _), (y_c, s_c, _) = arms(baseline, candidate, None, task)
    if task == "multiclass":  # accuracy, error_rate: the binary ones of correctness
        (y_b, s_b), (y_c, s_c), threshold = correctness(y_b, s_b), correctness(y_c, s_c), 0.5
    x_b, x_c = _per_row(metric, y_b, s_b, threshold), _per_row(metric, y_c, s_c, threshold)
    n_b, n_c = x_b.size, x_c.size
    mean_b = float(x_b.mean()) if n_b else None
    mean_c = float(x_c.mean()) if n_c else None
    diff = None if mean_b is None or mean_c is None else mean_c - mean_b
    if n_b < min_rows or n_c < min_rows:
        reason = NOT_ENOUGH_ROWS
        if n_b == 0 or n_c == 0:
            reason += f" ({metric}: {empty_reason(metric)} on the "
            reason += ("baseline" if n_b == 0 else "candidate") + " arm)"
        return undefined(metric, TEST, n_b, n_c, alpha, reason, mean_b, mean_c, diff)
    assert mean_b is not None and mean_c is not None and diff is not None
    binary = metric in ROW_SETS
    var_b, var_c = _variance(x_b, binary), _variance(x_c, binary)
    var = var_b / n_b + var_c / n_c
    tuning_var = (var_b + var_c) / int(tuning_rows)
    if var <= 0:
        ci = (diff, diff)
    else:
        half = boundary(var, tuning_var, alpha)
        ci = (diff - half, diff + half)
    p_value = always_valid_p_value(diff, var, tuning_var, alpha)
    return Difference(metric, mean_b, mean_c, diff, ci, p_value, TEST, n_b, n_c, alpha)


def _per_row(metric: str, y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    if metric in MEAN_LOSSES:
        return per_row_loss(metric, y, s)
    pred = predicted(s, threshold)
    rows = row_mask(metric, y, pred)
    return hits(metric, y[rows], pred[rows])


def _variance(x: np.ndarray, binary: bool) -> float:
    var = float(x.var(ddof=1))
    if binary:
        shrunk = (float(x.sum()) + 0.5) / (x.size + 1.0)
        var = max(var, shrunk * (1.0 - shrunk))
    return var
