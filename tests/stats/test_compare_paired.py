"""Shadow-mode comparisons against independent references.

McNemar against scipy's binomial test and a chi-square p-value computed by hand from the
2×2 table; paired DeLong against a brute-force O(n·m) implementation of DeLong's
structural components written here, with the AUCs checked against scikit-learn; the
paired bootstrap's point values against scikit-learn's metrics.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn import metrics as skm

from assay.errors import EmptyInputError, InputError
from assay.stats import BINARY_METRICS, REGRESSION_METRICS, paired_difference
from assay.stats.paired import mcnemar_p_value, newcombe_paired_interval

TOL = 1e-9


def _scores(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    base = np.clip(0.25 * y + rng.random(n) * 0.75, 0, 1)
    cand = np.clip(0.8 * base + 0.2 * rng.random(n) + 0.1 * y, 0, 1)
    if ties:
        base, cand = np.round(base, 1), np.round(cand, 1)
    return y, base, cand


def _discordant(y: np.ndarray, base: np.ndarray, cand: np.ndarray) -> tuple[int, int, int]:
    right_b = (base >= 0.5) == (y == 1)
    right_c = (cand >= 0.5) == (y == 1)
    only_b = int(np.sum(right_b & ~right_c))
    only_c = int(np.sum(~right_b & right_c))
    return only_b, only_c, y.size


@pytest.mark.parametrize("n", [30, 400, 3000])
def test_mcnemar_matches_binomial_test_or_hand_chi_square(n: int) -> None:
    y, base, cand = _scores(n, seed=n)
    only_b, only_c, _ = _discordant(y, base, cand)
    d = paired_difference("accuracy", y, base, cand)
    if only_b + only_c < 25:
        assert d.test == "mcnemar_exact"
        expected = binomtest(only_c, only_b + only_c, 0.5).pvalue
    else:
        assert d.test == "mcnemar_chi2"
        statistic = (only_b - only_c) ** 2 / (only_b + only_c)
        expected = math.erfc(math.sqrt(statistic / 2))  # chi-square(1) survival, by hand
    assert d.p_value == pytest.approx(expected, abs=TOL)
    assert d.baseline == pytest.approx(skm.accuracy_score(y, base >= 0.5), abs=TOL)
    assert d.candidate == pytest.approx(skm.accuracy_score(y, cand >= 0.5), abs=TOL)
    assert d.difference == pytest.approx((only_c - only_b) / n, abs=TOL)
    assert d.n_baseline == d.n_candidate == n


def test_mcnemar_both_regimes_are_exercised() -> None:
    assert paired_difference("accuracy", *_scores(30, seed=30)).test == "mcnemar_exact"
    assert paired_difference("accuracy", *_scores(3000, seed=3000)).test == "mcnemar_chi2"


@pytest.mark.parametrize(("only_b", "only_c"), [(0, 0), (0, 7), (3, 9), (12, 12), (40, 61)])
def test_mcnemar_p_value_against_scipy(only_b: int, only_c: int) -> None:
    p, test = mcnemar_p_value(only_b, only_c)
    if only_b + only_c < 25:
        expected = 1.0 if only_b + only_c == 0 else binomtest(only_b, only_b + only_c).pvalue
    else:
        z = (only_b - only_c) / math.sqrt(only_b + only_c)
        expected = 2 * norm.sf(abs(z))
    assert p == pytest.approx(expected, abs=TOL)
    assert test.startswith("mcnemar")


@pytest.mark.parametrize(
    ("metric", "rows", "hit"),
    [
        ("recall", 1, 1),
        ("fnr", 1, 0),
        ("specificity", 0, 0),
        ("fpr", 0, 1),
        ("error_rate", None, None),
    ],
)
def test_mcnemar_on_the_metric_rows(metric: str, rows: int | None, hit: int | None) -> None:
    y, base, cand = _scores(2000, seed=5)
    d = paired_difference(metric, y, base, cand)
    pb, pc = (base >= 0.5).astype(int), (cand >= 0.5).astype(int)
    if rows is None:
        keep = np.ones(y.size, bool)
        hb, hc = pb != y, pc != y
    else:
        keep = y == rows
        hb, hc = pb == hit, pc == hit
    hb, hc = hb[keep], hc[keep]
    only_b, only_c = int(np.sum(hb & ~hc)), int(np.sum(~hb & hc))
    expected_p = math.erfc(math.sqrt((only_b - only_c) ** 2 / (only_b + only_c) / 2))
    assert d.p_value == pytest.approx(expected_p, abs=TOL)
    reference = {
        "recall": lambda p: skm.recall_score(y, p),
        "fnr": lambda p: 1 - skm.recall_score(y, p),
        "specificity": lambda p: skm.recall_score(y, p, pos_label=0),
        "fpr": lambda p: 1 - skm.recall_score(y, p, pos_label=0),
        "error_rate": lambda p: 1 - skm.accuracy_score(y, p),
    }[metric]
    assert d.baseline == pytest.approx(reference(pb), abs=TOL)
    assert d.candidate == pytest.approx(reference(pc), abs=TOL)
    assert d.n_baseline == int(keep.sum())


def _newcombe_reference(table: np.ndarray, alpha: float) -> tuple[float, float]:
    """Newcombe (1998) method 10 written from the paper's notation: rows = candidate
    success/failure, columns = baseline success/failure; estimate p1+ − p+1."""
    z = norm.ppf(1 - alpha / 2)
    big_n = table.sum()

    def wilson(k: float) -> tuple[float, float]:
        p = k / big_n
        centre = 2 * big_n * p + z * z
        spread = z * math.sqrt(z * z + 4 * big_n * p * (1 - p))
        denominator = 2 * (big_n + z * z)
        return ((centre - spread) / denominator, (centre + spread) / denominator)

    p1, p2 = table[0].sum() / big_n, table[:, 0].sum() / big_n
    l1, u1 = wilson(table[0].sum())
    l2, u2 = wilson(table[:, 0].sum())
    margins = table[0].sum() * table[1].sum() * table[:, 0].sum() * table[:, 1].sum()
    a = table[0, 0] * table[1, 1] - table[0, 1] * table[1, 0]
    if margins == 0 or 0 <= a <= big_n / 2:
        phi = 0.0
    else:
        phi = (a - big_n / 2 if a > 0 else a) / math.sqrt(margins)
    lower = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    upper = p1 - p2 + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1))
    return lower, upper


@pytest.mark.parametrize(
    "cells", [(40, 5, 15, 40), (1, 7, 1, 12), (59, 16, 6, 80), (10, 0, 0, 10), (3, 2, 9, 0)]
)
def test_newcombe_interval_against_a_reference_written_from_the_paper(
    cells: tuple[int, int, int, int],
) -> None:
    both, only_base, only_cand, neither = cells
    table = np.array([[both, only_cand], [only_base, neither]], dtype=float)
    lo, hi = newcombe_paired_interval(both, only_base, only_cand, neither, 0.05)
    ref_lo, ref_hi = _newcombe_reference(table, 0.05)
    assert lo == pytest.approx(ref_lo, abs=TOL)
    assert hi == pytest.approx(ref_hi, abs=TOL)


def _brute_force_delong(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance from DeLong's structural components, O(n·m) pairs."""
    pos, neg = y == 1, y == 0
    v10, v01 = [], []
    for s in scores:
        x, z = s[pos][:, None], s[neg][None, :]
        psi = (x > z) + 0.5 * (x == z)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    aucs = np.array([v.mean() for v in v10])
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))
    return aucs, s10 / pos.sum() + s01 / neg.sum()


@pytest.mark.parametrize(("n", "ties"), [(300, False), (500, True), (41, False)])
def test_paired_delong_against_brute_force(n: int, ties: bool) -> None:
    y, base, cand = _scores(n, seed=n + 1, ties=ties)
    d = paired_difference("roc_auc", y, base, cand)
    aucs, cov = _brute_force_delong(y, [base, cand])
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[1] - aucs[0]
    z = norm.ppf(0.975)
    assert d.test == "delong_paired"
    assert d.baseline == pytest.approx(skm.roc_auc_score(y, base), abs=TOL)
    assert d.candidate == pytest.approx(skm.roc_auc_score(y, cand), abs=TOL)
    assert d.difference == pytest.approx(diff, abs=TOL)
    assert d.p_value == pytest.approx(2 * norm.sf(abs(diff) / math.sqrt(var)), abs=TOL)
    assert d.ci[0] == pytest.approx(diff - z * math.sqrt(var), abs=TOL)
    assert d.ci[1] == pytest.approx(diff + z * math.sqrt(var), abs=TOL)


_SKLEARN = {
    "precision": lambda y, s, w: skm.precision_score(y, s >= 0.5, sample_weight=w),
    "f1": lambda y, s, w: skm.f1_score(y, s >= 0.5, sample_weight=w),
    "average_precision": lambda y, s, w: skm.average_precision_score(y, s, sample_weight=w),
    "log_loss": lambda y, s, w: skm.log_loss(y, s, sample_weight=w),
    "brier": lambda y, s, w: skm.brier_score_loss(y, s, sample_weight=w),
    "accuracy": lambda y, s, w: skm.accuracy_score(y, s >= 0.5, sample_weight=w),
    "roc_auc": lambda y, s, w: skm.roc_auc_score(y, s, sample_weight=w),
}


@pytest.mark.parametrize("metric", sorted(_SKLEARN))
def test_paired_bootstrap_values_equal_scikit_learn(metric: str) -> None:
    y, base, cand = _scores(400, seed=11)
    weighted = metric in ("accuracy", "roc_auc")  # weights turn McNemar/DeLong into bootstrap
    w = np.random.default_rng(3).uniform(0.5, 2.0, y.size) if weighted else None
    d = paired_difference(metric, y, base, cand, sample_weight=w, n_boot=300)
    assert d.test == "paired_bootstrap"
    ref_b, ref_c = _SKLEARN[metric](y, base, w), _SKLEARN[metric](y, cand, w)
    assert d.baseline == pytest.approx(ref_b, abs=TOL)
    assert d.candidate == pytest.approx(ref_c, abs=TOL)
    assert d.ci[0] <= d.difference <= d.ci[1]
    assert 0 < d.p_value <= 1


@pytest.mark.parametrize("metric", sorted(REGRESSION_METRICS))
def test_paired_regression_values_equal_scikit_learn(metric: str) -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=300)
    base, cand = y + rng.normal(0, 1.0, 300), y + rng.normal(0.1, 0.8, 300)
    ref = {
        "mae": skm.mean_absolute_error,
        "mse": skm.mean_squared_error,
        "rmse": lambda a, b: math.sqrt(skm.mean_squared_error(a, b)),
        "r2": skm.r2_score,
        "mean_error": lambda a, b: float(np.mean(b - a)),
    }[metric]
    d = paired_difference(metric, y, base, cand, task="regression", n_boot=300)
    assert d.baseline == pytest.approx(ref(y, base), abs=TOL)
    assert d.candidate == pytest.approx(ref(y, cand), abs=TOL)


def test_paired_bootstrap_shares_resamples_between_models() -> None:
    # identical models: every paired replicate difference is exactly 0
    y, base, _ = _scores(200, seed=2)
    d = paired_difference("f1", y, base, base.copy(), n_boot=200)
    assert d.difference == 0 and d.ci == (0.0, 0.0) and d.p_value == 1.0


def test_undefined_results_carry_a_reason_and_serialise_without_nan() -> None:
    y = np.zeros(50)
    s = np.linspace(0, 0.45, 50)  # no positive label, no predicted positive
    for metric in ("recall", "fnr", "roc_auc", "precision", "f1", "average_precision"):
        d = paired_difference(metric, y, s, s[::-1].copy(), n_boot=200)
        assert d.ci is None and d.p_value is None and d.difference is None
        assert d.reason
        assert "NaN" not in json.dumps(d.to_dict())


def test_delong_needs_two_of_each_class() -> None:
    y = np.array([1, 0, 0, 0, 0.0])
    d = paired_difference("roc_auc", y, np.arange(5.0) / 5, np.arange(5.0)[::-1] / 5)
    assert d.baseline is not None and d.ci is None and "two positives" in d.reason


def test_typed_errors() -> None:
    y, base, cand = _scores(20, seed=1)
    with pytest.raises(InputError) as err:
        paired_difference("auc", y, base, cand)
    assert err.value.field == "metric" and "roc_auc" in str(err.value)
    listed = str(err.value).split("supported: ")[1].rstrip(")").split(", ")
    assert set(BINARY_METRICS) <= set(listed)
    with pytest.raises(InputError, match="rows"):
        paired_difference("accuracy", y, base, cand[:-1])
    with pytest.raises(EmptyInputError):
        paired_difference("accuracy", np.zeros(0), np.zeros(0), np.zeros(0))
    for alpha in (0, 1, -0.1, 1.5):
        with pytest.raises(InputError) as err:
            paired_difference("accuracy", y, base, cand, alpha=alpha)
        assert err.value.field == "alpha"
    with pytest.raises(InputError, match="0/1"):
        paired_difference("accuracy", y * 2, base, cand)
    with pytest.raises(InputError):
        paired_difference("mae", y, base, cand)  # a regression metric on a binary task
