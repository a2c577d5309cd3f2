"""Intervals: Wilson and DeLong against hand-worked formulas and Monte-Carlo coverage."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from assay.stats import (
    BinaryConfusionState,
    BinaryScoreState,
    ScoreGroups,
    auc_delong,
    mean_interval,
    wilson_interval,
)

RTOL = 1e-9
ATOL = 1e-12
Z95 = 1.959963984540054  # standard-normal 0.975 quantile, typed out
Z90 = 1.6448536269514722  # 0.95 quantile


def approx(value: Any) -> Any:
    """pytest.approx at the suite's tolerance."""
    return pytest.approx(value, rel=RTOL, abs=ATOL)


def wilson_by_hand(x: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval as statsmodels' proportion_confint(method="wilson") writes it."""
    p = x / n
    denom = 1.0 + z**2 / n
    centre = (p + z**2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z**2 / (4.0 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_wilson_hand_worked_8_of_10() -> None:
    interval = wilson_interval(8.0, 10.0)
    assert interval is not None
    lo, hi = interval
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)


@pytest.mark.parametrize(
    ("x", "n"), [(8.0, 10.0), (0.0, 10.0), (10.0, 10.0), (1.0, 1.0), (37.0, 200.0), (3.7, 12.3)]
)
def test_wilson_matches_formula(x: float, n: float) -> None:
    assert wilson_interval(x, n) == approx(wilson_by_hand(x, n))


def test_wilson_other_confidence_and_empty() -> None:
    assert wilson_interval(13.0, 40.0, confidence=0.90) == approx(wilson_by_hand(13.0, 40.0, Z90))
    assert wilson_interval(0.0, 0.0) is None


def test_wilson_intervals_in_confusion_result() -> None:
    # unweighted: every proportion's interval is Wilson on its raw counts
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.75, y, 1 - y)
    out = BinaryConfusionState.from_batch(y, y_pred=pred).result().to_dict()
    tp = float(np.sum((y == 1) & (pred == 1)))
    fp = float(np.sum((y == 0) & (pred == 1)))
    fn = float(np.sum((y == 1) & (pred == 0)))
    assert out["accuracy_ci"] == approx(list(wilson_by_hand(float(np.sum(y == pred)), 300.0)))
    assert out["precision_ci"] == approx(list(wilson_by_hand(tp, tp + fp)))
    assert out["recall_ci"] == approx(list(wilson_by_hand(tp, tp + fn)))


def test_mean_interval_hand_worked() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    se = np.std(values, ddof=1) / math.sqrt(values.size)
    expected = (values.mean() - Z95 * se, values.mean() + Z95 * se)
    assert mean_interval(values, np.ones(5)) == approx(expected)
    assert mean_interval(np.array([1.0]), np.ones(1)) is None


def test_wilson_coverage_monte_carlo() -> None:
    rng = np.random.default_rng(7)
    n, p_true, reps = 60, 0.3, 400
    hits = 0
    for x in rng.binomial(n, p_true, size=reps):
        interval = wilson_interval(float(x), float(n))
        assert interval is not None
        hits += interval[0] <= p_true <= interval[1]
    assert 0.91 <= hits / reps <= 0.98


def test_delong_coverage_monte_carlo() -> None:
    # binormal model: positives ~ N(1, 1), negatives ~ N(0, 1): AUC = Φ(1/√2).
    # Scores go through a logistic map into (0, 1); AUC is invariant to it.
    true_auc = 0.5 * (1.0 + math.erf(0.5))  # Φ(1/√2) = (1 + erf(1/2)) / 2
    rng = np.random.default_rng(11)
    m = n = 60
    reps = 400
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    hits = 0
    for _ in range(reps):
        x = np.r_[rng.normal(1.0, 1.0, m), rng.normal(0.0, 1.0, n)]
        s = 1.0 / (1.0 + np.exp(-x))
        ci = BinaryScoreState.from_batch(y, s).result().to_dict()["roc_auc_ci"]
        hits += ci[0] <= true_auc <= ci[1]
    assert 0.91 <= hits / reps <= 0.98


def delong_brute_force(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong variance from the O(m·n) matrix of pair kernels ψ(x_i, y_j)."""
    pos = s[y == 1]
    neg = s[y == 0]
    m, n = pos.size, neg.size
    psi = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            psi[i, j] = 1.0 if pos[i] > neg[j] else (0.5 if pos[i] == neg[j] else 0.0)
    auc = psi.mean()
    v10 = psi.mean(axis=1)  # structural component of each positive
    v01 = psi.mean(axis=0)  # ... and of each negative
    s10 = np.sum((v10 - auc) ** 2) / (m - 1)
    s01 = np.sum((v01 - auc) ** 2) / (n - 1)
    return float(auc), float(s10 / m + s01 / n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_variance_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 70)
    s = np.round(np.clip(0.3 * y + 0.7 * rng.random(70), 0, 1), 1)  # heavy ties
    assert np.unique(s).size < 15
    auc_ref, var_ref = delong_brute_force(y, s)
    assert auc_ref == approx(roc_auc_score(y, s))

    auc, var = auc_delong(ScoreGroups.build(s, y.astype(float), np.ones(70)), np.ones(70))
    assert auc == approx(auc_ref)
    assert var == approx(var_ref)

    out = BinaryScoreState.from_batch(y, s).result().to_dict()
    half = Z95 * math.sqrt(var_ref)
    assert out["roc_auc"] == approx(auc_ref)
    assert out["roc_auc_ci"] == approx([max(0.0, auc_ref - half), min(1.0, auc_ref + half)])


def test_delong_hand_worked() -> None:
    # positives 0.4, 0.8; negatives 0.1, 0.4, 0.6.
    # ψ rows: 0.4 -> (1, .5, 0), 0.8 -> (1, 1, 1); AUC = 4.5 / 6 = 0.75
    # V10 = (0.5, 1.0): S10 = (0.25² + 0.25²) / 1 = 0.125
    # V01 = (1, 0.75, 0.5): S01 = (0.25² + 0 + 0.25²) / 2 = 0.0625
    # var = 0.125 / 2 + 0.0625 / 3
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.4, 0.8, 0.1, 0.4, 0.6])
    auc, var = auc_delong(ScoreGroups.build(s, y.astype(float), np.ones(5)), np.ones(5))
    assert auc == approx(0.75)
    assert var == approx(0.125 / 2 + 0.0625 / 3)
