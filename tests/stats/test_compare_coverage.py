"""Coverage of the comparison intervals: the true difference is known by construction.

Each test simulates many comparisons from a population whose metrics are computed here in
closed form, and checks that the 95% interval covers the true difference 95% of the time
within Monte Carlo error (3 standard errors of a binomial proportion).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from assay.stats import paired_difference, split_difference


def _within_mc_error(covered: int, simulations: int, level: float = 0.95) -> None:
    rate = covered / simulations
    se = math.sqrt(level * (1 - level) / simulations)
    assert abs(rate - level) <= 3 * se, (rate, level, 3 * se)


def test_split_two_proportion_interval_coverage() -> None:
    rng = np.random.default_rng(101)
    p_b, p_c, n_b, n_c, sims = 0.82, 0.86, 300, 200, 1000
    covered = 0
    for _ in range(sims):
        base = (np.ones(n_b), (rng.random(n_b) < p_b).astype(float))
        cand = (np.ones(n_c), (rng.random(n_c) < p_c).astype(float))
        lo, hi = split_difference("accuracy", base, cand).ci
        covered += lo <= p_c - p_b <= hi
    _within_mc_error(covered, sims)


def test_welch_interval_coverage() -> None:
    # mae of errors N(0, σ): E|e| = σ·sqrt(2/π); unequal spreads and arm sizes
    rng = np.random.default_rng(102)
    s_b, s_c, n_b, n_c, sims = 1.0, 1.4, 60, 150, 1000
    truth = (s_c - s_b) * math.sqrt(2 / math.pi)
    covered = 0
    for _ in range(sims):
        base = (np.zeros(n_b), rng.normal(0, s_b, n_b))
        cand = (np.zeros(n_c), rng.normal(0, s_c, n_c))
        lo, hi = split_difference("mae", base, cand, task="regression").ci
        covered += lo <= truth <= hi
    _within_mc_error(covered, sims)


def test_paired_mcnemar_interval_coverage() -> None:
    # joint correctness (baseline, candidate): both 0.70, baseline only 0.06,
    # candidate only 0.12, neither 0.12 -> true accuracy difference 0.12 - 0.06
    rng = np.random.default_rng(103)
    cells = np.array([0.70, 0.06, 0.12, 0.12])
    n, sims = 250, 1000
    covered = 0
    for _ in range(sims):
        kind = rng.choice(4, size=n, p=cells)
        right_b = np.isin(kind, (0, 1)).astype(float)
        right_c = np.isin(kind, (0, 2)).astype(float)
        y = np.ones(n)
        lo, hi = paired_difference("accuracy", y, right_b, right_c).ci
        covered += lo <= 0.06 <= hi
    _within_mc_error(covered, sims)


def test_paired_delong_interval_coverage() -> None:
    # binormal scores: negatives N(0, 1), positives N(mu, 1), correlated across models;
    # the true AUC is Φ(mu / sqrt(2))
    rng = np.random.default_rng(104)
    mu_b, mu_c, rho, n_pos, n_neg, sims = 1.0, 1.4, 0.6, 120, 180, 1000
    truth = norm.cdf(mu_c / math.sqrt(2)) - norm.cdf(mu_b / math.sqrt(2))
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    cov = [[1, rho], [rho, 1]]
    covered = 0
    for _ in range(sims):
        z = rng.multivariate_normal([0, 0], cov, size=n_pos + n_neg)
        base = z[:, 0] + mu_b * y
        cand = z[:, 1] + mu_c * y
        lo, hi = paired_difference("roc_auc", y, base, cand).ci
        covered += lo <= truth <= hi
    _within_mc_error(covered, sims)


def test_paired_bootstrap_f1_interval_coverage() -> None:
    # F1 = 2·TP / (2·TP + FP + FN) with TP = π·tpr, FP = (1 − π)·fpr, FN = π·(1 − tpr)
    rng = np.random.default_rng(105)
    prevalence, n, sims = 0.4, 400, 400
    rates = {"base": (0.70, 0.15), "cand": (0.80, 0.12)}

    def f1(tpr: float, fpr: float) -> float:
        tp, fp, fn = prevalence * tpr, (1 - prevalence) * fpr, prevalence * (1 - tpr)
        return 2 * tp / (2 * tp + fp + fn)

    truth = f1(*rates["cand"]) - f1(*rates["base"])
    covered = 0
    for i in range(sims):
        y = (rng.random(n) < prevalence).astype(float)
        u_b = rng.random(n)
        u_c = np.where(rng.random(n) < 0.6, u_b, rng.random(n))  # correlated, still uniform
        scores = {}
        for name, u in (("base", u_b), ("cand", u_c)):
            tpr, fpr = rates[name]
            scores[name] = np.where(y == 1, u < tpr, u < fpr).astype(float)
        d = paired_difference("f1", y, scores["base"], scores["cand"], n_boot=500, seed=i)
        covered += d.ci[0] <= truth <= d.ci[1]
    _within_mc_error(covered, sims)


def _mae_arms(
    rng: np.random.Generator, n: int, s_b: float, s_c: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets 0 and correlated normal errors: the true mae is σ·sqrt(2/π)."""
    e_b = rng.normal(0, 1, n)
    e_c = 0.5 * e_b + math.sqrt(1 - 0.25) * rng.normal(0, 1, n)
    return np.zeros(n), s_b * e_b, s_c * e_c


def test_paired_bootstrap_ordinary_rows_path_coverage() -> None:
    rng = np.random.default_rng(106)
    s_b, s_c, n, sims = 1.0, 0.9, 300, 400
    truth = (s_c - s_b) * math.sqrt(2 / math.pi)
    covered = 0
    for i in range(sims):
        y, base, cand = _mae_arms(rng, n, s_b, s_c)
        d = paired_difference("mae", y, base, cand, task="regression", n_boot=500, seed=i)
        covered += d.ci[0] <= truth <= d.ci[1]
    _within_mc_error(covered, sims)


def test_bag_of_little_bootstraps_path_coverage() -> None:
    # above EXACT_ROWS rows the bootstrap resamples small subsets to the full size
    from assay.stats.resample import EXACT_ROWS

    rng = np.random.default_rng(107)
    s_b, s_c, n, sims = 1.0, 0.96, EXACT_ROWS + 1, 300
    truth = s_c - s_b  # the rmse of N(0, σ) errors is σ
    covered = 0
    for i in range(sims):
        y, base, cand = _mae_arms(rng, n, s_b, s_c)
        d = paired_difference("rmse", y, base, cand, task="regression", n_boot=300, seed=i)
        covered += d.ci[0] <= truth <= d.ci[1]
    _within_mc_error(covered, sims)
