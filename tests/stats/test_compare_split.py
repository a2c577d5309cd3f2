"""Canary/A-B comparisons, guardrails and the SRM check against independent references.

Two-proportion z by hand; Welch and the paired t test against scipy's ``ttest_ind`` /
``ttest_rel`` (p-values and intervals); DeLong of independent AUCs against a brute-force
implementation; bootstrap point values against scikit-learn and numpy; SRM against
``scipy.stats.chisquare``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st
from sklearn import metrics as skm

from assay.errors import EmptyInputError, InputError
from assay.stats import (
    HIGHER_IS_BETTER,
    mean_difference,
    quantile_difference,
    sample_ratio_mismatch,
    split_difference,
)

TOL = 1e-9


def _arm(n: int, seed: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(float)
    return y, np.clip((0.2 + lift) * y + rng.random(n) * 0.8, 0.001, 0.999)


def _hand_two_proportion(k1: int, n1: int, k2: int, n2: int) -> float:
    p1, p2, pooled = k1 / n1, k2 / n2, (k1 + k2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


@pytest.mark.parametrize(
    "metric", ["accuracy", "error_rate", "precision", "recall", "specificity", "fpr", "fnr"]
)
def test_two_proportion_z_by_hand(metric: str) -> None:
    (y1, s1), (y2, s2) = _arm(1500, 1, 0.0), _arm(900, 2, 0.15)
    d = split_difference(metric, (y1, s1), (y2, s2))

    def counts(y: np.ndarray, s: np.ndarray) -> tuple[int, int]:
        p = s >= 0.5
        tp, fp = int(np.sum(p & (y == 1))), int(np.sum(p & (y == 0)))
        fn, tn = int(np.sum(~p & (y == 1))), int(np.sum(~p & (y == 0)))
        return {
            "accuracy": (tp + tn, y.size),
            "error_rate": (fp + fn, y.size),
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
            "fnr": (fn, tp + fn),
            "specificity": (tn, tn + fp),
            "fpr": (fp, tn + fp),
        }[metric]

    (k1, n1), (k2, n2) = counts(y1, s1), counts(y2, s2)
    assert d.test == "two_proportion"
    assert (d.n_baseline, d.n_candidate) == (n1, n2)
    assert d.baseline == pytest.approx(k1 / n1, abs=TOL)
    assert d.candidate == pytest.approx(k2 / n2, abs=TOL)
    assert d.p_value == pytest.approx(_hand_two_proportion(k1, n1, k2, n2), abs=TOL)
    assert d.ci[0] < d.difference < d.ci[1]


def test_two_proportion_a_hand_worked_example() -> None:
    # 420/500 right vs 450/500 right: pooled p = 0.87, se = sqrt(.87·.13·.004) = 0.0212697,
    # z = 0.06 / 0.0212697 = 2.82092, two-sided p = 0.004789
    base = (np.ones(500), (np.arange(500) < 420).astype(float))
    cand = (np.ones(500), (np.arange(500) < 450).astype(float))
    d = split_difference("accuracy", base, cand)
    assert d.difference == pytest.approx(0.06, abs=TOL)
    assert d.p_value == pytest.approx(0.004789, abs=5e-7)


@pytest.mark.parametrize("metric", ["log_loss", "brier"])
def test_welch_equals_scipy(metric: str) -> None:
    (y1, s1), (y2, s2) = _arm(700, 3, 0.0), _arm(300, 4, 0.1)
    d = split_difference(metric, (y1, s1), (y2, s2))
    if metric == "brier":
        l1, l2 = (y1 - s1) ** 2, (y2 - s2) ** 2
        assert d.baseline == pytest.approx(skm.brier_score_loss(y1, s1), abs=TOL)
    else:
        l1 = -(y1 * np.log(s1) + (1 - y1) * np.log(1 - s1))
        l2 = -(y2 * np.log(s2) + (1 - y2) * np.log(1 - s2))
        assert d.baseline == pytest.approx(skm.log_loss(y1, s1), abs=TOL)
    ref = st.ttest_ind(l2, l1, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.test == "welch"
    assert d.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert d.ci[0] == pytest.approx(ci.low, abs=TOL)
    assert d.ci[1] == pytest.approx(ci.high, abs=TOL)


@pytest.mark.parametrize("metric", ["mae", "mse", "mean_error"])
def test_welch_regression_equals_scipy(metric: str) -> None:
    rng = np.random.default_rng(6)
    y1, y2 = rng.normal(size=250), rng.normal(size=400)
    p1, p2 = y1 + rng.normal(0, 1.0, 250), y2 + rng.normal(0.2, 0.7, 400)
    loss = {
        "mae": lambda y, p: np.abs(y - p),
        "mse": lambda y, p: (y - p) ** 2,
        "mean_error": lambda y, p: p - y,
    }[metric]
    d = split_difference(metric, (y1, p1), (y2, p2), task="regression", alpha=0.1)
    ref = st.ttest_ind(loss(y2, p2), loss(y1, p1), equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert d.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert d.ci == pytest.approx((ci.low, ci.high), abs=TOL)
    assert d.alpha == 0.1


def _brute_auc_var(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    x, z = s[y == 1][:, None], s[y == 0][None, :]
    psi = (x > z) + 0.5 * (x == z)
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(v10.mean()), float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)


def test_independent_delong_against_brute_force() -> None:
    (y1, s1), (y2, s2) = _arm(400, 7, 0.0), _arm(250, 8, 0.1)
    s2 = np.round(s2, 2)  # ties
    d = split_difference("roc_auc", (y1, s1), (y2, s2))
    (a1, v1), (a2, v2) = _brute_auc_var(y1, s1), _brute_auc_var(y2, s2)
    assert d.test == "delong"
    assert d.baseline == pytest.approx(skm.roc_auc_score(y1, s1), abs=TOL)
    assert d.candidate == pytest.approx(skm.roc_auc_score(y2, s2), abs=TOL)
    assert d.p_value == pytest.approx(2 * st.norm.sf(abs(a2 - a1) / math.sqrt(v1 + v2)), abs=TOL)
    half = st.norm.ppf(0.975) * math.sqrt(v1 + v2)
    assert d.ci == pytest.approx((a2 - a1 - half, a2 - a1 + half), abs=TOL)


@pytest.mark.parametrize("metric", ["f1", "average_precision"])
def test_split_bootstrap_values_equal_scikit_learn(metric: str) -> None:
    (y1, s1), (y2, s2) = _arm(300, 9, 0.0), _arm(300, 10, 0.3)
    w1 = np.random.default_rng(1).uniform(0.5, 2, 300)
    d = split_difference(metric, (y1, s1), (y2, s2), sample_weight=(w1, None), n_boot=400)
    ref = {
        "f1": lambda y, s, w: skm.f1_score(y, s >= 0.5, sample_weight=w),
        "average_precision": skm.average_precision_score,
    }[metric]
    assert d.test == "bootstrap"
    assert d.baseline == pytest.approx(
        ref(y1, s1, sample_weight=w1) if metric != "f1" else ref(y1, s1, w1), abs=TOL
    )
    assert d.ci[0] < d.difference < d.ci[1] and d.ci[0] > 0  # a clear improvement


def test_weighted_two_proportion_uses_the_weighted_rate() -> None:
    (y1, s1), (y2, s2) = _arm(500, 12, 0.0), _arm(500, 13, 0.0)
    w = np.random.default_rng(2).uniform(0.1, 3, 500)
    d = split_difference("recall", (y1, s1), (y2, s2), sample_weight=(w, w))
    assert d.baseline == pytest.approx(skm.recall_score(y1, s1 >= 0.5, sample_weight=w), abs=TOL)


def test_split_undefined_and_errors() -> None:
    y, s = np.zeros(30), np.linspace(0, 1, 30)
    d = split_difference("roc_auc", (y, s), _arm(100, 1, 0.0))
    assert d.ci is None and "only one class" in d.reason
    d = split_difference("recall", (y, s), _arm(100, 1, 0.0))
    assert d.baseline is None and d.candidate is not None and "no positive labels" in d.reason
    assert "NaN" not in json.dumps(d.to_dict())
    with pytest.raises(EmptyInputError):
        split_difference("accuracy", (np.zeros(0), np.zeros(0)), (y, s))
    with pytest.raises(InputError, match="different length"):
        split_difference("accuracy", (y, s[:-1]), (y, s))
    with pytest.raises(InputError, match="supported"):
        split_difference("lift", (y, s), (y, s))
    with pytest.raises(InputError):
        split_difference("accuracy", (y, s), (y, s), alpha=1.0)


def test_quantile_difference_against_numpy() -> None:
    rng = np.random.default_rng(4)
    b = rng.lognormal(3.0, 0.5, 800)
    c = rng.lognormal(3.1, 0.5, 600)
    c_with_gaps = np.concatenate([c, [np.nan, np.nan]])
    d = quantile_difference(b, c_with_gaps, 0.95, n_boot=500)
    assert d.metric == "p95" and d.n_candidate == 600
    assert d.baseline == pytest.approx(np.quantile(b, 0.95), abs=TOL)
    assert d.candidate == pytest.approx(np.quantile(c, 0.95), abs=TOL)
    assert d.ci[0] < d.difference < d.ci[1]
    same = quantile_difference(b, b.copy(), 0.99, paired=True, n_boot=200, metric="latency_p99")
    assert same.ci == (0.0, 0.0) and same.p_value == 1.0 and same.test == "paired_bootstrap"
    assert HIGHER_IS_BETTER["latency_p95"] is False


def test_mean_difference_against_scipy() -> None:
    rng = np.random.default_rng(5)
    b, c = rng.normal(10, 2, 80), rng.normal(10.8, 3, 120)
    d = mean_difference(b, c)
    ref = st.ttest_ind(c, b, equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert d.ci == pytest.approx(tuple(ref.confidence_interval(0.95)), abs=TOL)
    c = b + rng.normal(0.3, 1, 80)
    d = mean_difference(b, c, paired=True, alpha=0.01)
    ref = st.ttest_rel(c, b)
    assert d.test == "paired_t"
    assert d.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert d.ci == pytest.approx(tuple(ref.confidence_interval(0.99)), abs=TOL)
    with pytest.raises(InputError, match="line up"):
        mean_difference(b, c[:-1], paired=True)


@pytest.mark.parametrize(
    ("observed", "shares"),
    [([5000, 5210], [0.5, 0.5]), ([9000, 1100], [0.9, 0.1]), ([300, 330, 280], [1, 1, 1])],
)
def test_srm_equals_scipy_chisquare(observed: list[int], shares: list[float]) -> None:
    r = sample_ratio_mismatch(observed, shares)
    expected = np.array(shares) / np.sum(shares) * np.sum(observed)
    ref = st.chisquare(observed, expected)
    assert r["statistic"] == pytest.approx(ref.statistic, abs=TOL)
    assert r["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
    assert r["dof"] == len(observed) - 1
    assert r["mismatch"] == (ref.pvalue < 0.001)
    json.dumps(r)


def test_srm_flags_a_broken_split_and_rejects_bad_input() -> None:
    assert sample_ratio_mismatch([9000, 1300], [0.9, 0.1])["mismatch"] is True
    with pytest.raises(InputError):
        sample_ratio_mismatch([10, 20], [0.5])
    with pytest.raises(InputError):
        sample_ratio_mismatch([10, -1], [0.5, 0.5])
    with pytest.raises(InputError):
        sample_ratio_mismatch([0, 0], [0.5, 0.5])


def test_small_sample_quantile_bootstrap_matches_numpy_resampling() -> None:
    rng = np.random.default_rng(22)
    b, c = rng.exponential(1.0, 60), rng.exponential(1.3, 80)
    d = quantile_difference(b, c, 0.9, n_boot=4000)
    ref = np.array([
        np.quantile(c[rng.integers(0, 80, 80)], 0.9) - np.quantile(b[rng.integers(0, 60, 60)], 0.9)
        for _ in range(4000)
    ])  # fmt: skip
    lo, hi = np.quantile(ref, [0.025, 0.975])
    assert d.ci == pytest.approx((lo, hi), abs=0.12 * (hi - lo))


def test_large_sample_quantile_interval_agrees_with_an_ordinary_numpy_bootstrap() -> None:
    # 40,000 rows an arm: the bootstrap draws only the rows near the quantile one by one;
    # the reference resamples whole arms with numpy
    rng = np.random.default_rng(21)
    b, c = rng.lognormal(3.0, 0.6, 40_000), rng.lognormal(3.02, 0.6, 40_000)
    d = quantile_difference(b, c, 0.95, n_boot=1000)
    ref = np.array([
        np.quantile(c[rng.integers(0, c.size, c.size)], 0.95)
        - np.quantile(b[rng.integers(0, b.size, b.size)], 0.95)
        for _ in range(300)
    ])  # fmt: skip
    lo, hi = np.quantile(ref, [0.025, 0.975])
    assert d.difference == pytest.approx(np.quantile(c, 0.95) - np.quantile(b, 0.95), abs=TOL)
    assert (d.ci[1] - d.ci[0]) == pytest.approx(hi - lo, rel=0.15)
    assert d.ci[0] == pytest.approx(lo, abs=0.15 * (hi - lo))


def test_guardrail_inputs_empty_missing_and_bad() -> None:
    with pytest.raises(EmptyInputError):
        quantile_difference([], [1.0, 2.0])
    with pytest.raises(EmptyInputError):
        mean_difference([1.0, 2.0], [])
    with pytest.raises(InputError):
        quantile_difference(["fast"], [1.0, 2.0])
    d = quantile_difference([None, None, 3.0], [1.0, 2.0, 5.0])
    assert d.ci is None and d.n_baseline == 1 and "two values" in d.reason
    assert "NaN" not in json.dumps(d.to_dict())
