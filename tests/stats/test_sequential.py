"""The confidence sequence: valid under continuous peeking, and powerful enough.

The A/A test simulates 1,000 canaries looked at after every batch and checks that the
share of canaries ever declared different stays at or below α (within Monte Carlo error),
while a fixed-horizon z test looked at just as often does not — so the test can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from assay.errors import InputError
from assay.stats import SEQUENTIAL_METRICS, sample_size, sequential_difference

ALPHA = 0.05


def _mc_bound(rate: float, sims: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / sims)


def _naive_z_rejects(hits_b: np.ndarray, hits_c: np.ndarray) -> bool:
    """Pooled two-proportion z test, two-sided at ALPHA (written out here)."""
    n_b, n_c = hits_b.size, hits_c.size
    pooled = (hits_b.sum() + hits_c.sum()) / (n_b + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_c))
    return se > 0 and abs(hits_c.mean() - hits_b.mean()) / se > norm.ppf(1 - ALPHA / 2)


def test_a_a_canaries_with_continuous_peeking_keep_the_false_positive_rate() -> None:
    rng = np.random.default_rng(2024)
    sims, looks, batch, accuracy = 1000, 20, 100, 0.8
    sequential_hits = naive_hits = 0
    for _ in range(sims):
        # both arms run the same model: 0/1 correctness per labeled event
        right_b = (rng.random(looks * batch) < accuracy).astype(float)
        right_c = (rng.random(looks * batch) < accuracy).astype(float)
        seq = naive = False
        for look in range(1, looks + 1):
            rows = look * batch
            base, cand = (np.ones(rows), right_b[:rows]), (np.ones(rows), right_c[:rows])
            d = sequential_difference("accuracy", base, cand, alpha=ALPHA)
            if d.ci is not None and (d.ci[0] > 0 or d.ci[1] < 0):
                assert d.p_value <= ALPHA  # the p-value and the interval agree
                seq = True
            naive = naive or _naive_z_rejects(right_b[:rows], right_c[:rows])
        sequential_hits += seq
        naive_hits += naive
    bound = ALPHA + _mc_bound(ALPHA, sims)
    assert sequential_hits / sims <= bound, sequential_hits / sims
    # the same data, checked with a fixed-horizon test at every look, fails the bound
    assert naive_hits / sims > bound, naive_hits / sims


def test_sequential_size_gives_the_power_and_the_sequence_covers_at_every_look() -> None:
    p_b, effect = 0.80, 0.05
    plan = sample_size(metric="accuracy", baseline=p_b, effect=effect, sequential=True)
    n, tuning = plan["per_arm"], plan["tuning_rows"]
    assert plan["n_candidate"] == n and tuning == n
    rng = np.random.default_rng(7)
    sims, looks = 600, 20
    found = missed = 0
    for _ in range(sims):
        right_b = (rng.random(n) < p_b).astype(float)
        right_c = (rng.random(n) < p_b + effect).astype(float)
        hit = miss = False
        for look in range(1, looks + 1):
            rows = max(2, round(n * look / looks))
            d = sequential_difference(
                "accuracy",
                (np.ones(rows), right_b[:rows]),
                (np.ones(rows), right_c[:rows]),
                tuning_rows=tuning,
            )
            if d.ci is None:
                continue
            hit = hit or d.ci[0] > 0
            miss = miss or not d.ci[0] <= effect <= d.ci[1]
        found += hit
        missed += miss
    assert found / sims >= 0.8 - _mc_bound(0.8, sims), found / sims
    # time-uniform coverage: the chance of ever excluding the truth is at most alpha
    assert missed / sims <= ALPHA + _mc_bound(ALPHA, sims), missed / sims


def test_boundary_and_p_value_match_the_mixture_sprt_written_out() -> None:
    # Johari et al.'s mixture SPRT for a difference of means, with mixing variance tau²
    # chosen by Waudby-Smith et al.'s rule rho² = (−2 log α + log(1 − 2 log α)) / t*
    rng = np.random.default_rng(3)
    right_b = (rng.random(1500) < 0.70).astype(float)
    right_c = (rng.random(1200) < 0.74).astype(float)
    tuning = 800
    d = sequential_difference(
        "accuracy", (np.ones(1500), right_b), (np.ones(1200), right_c), tuning_rows=tuning
    )
    var_b, var_c = right_b.var(ddof=1), right_c.var(ddof=1)
    v = var_b / 1500 + var_c / 1200
    rho2 = (-2 * math.log(ALPHA) + math.log(1 - 2 * math.log(ALPHA))) / tuning
    tau2 = rho2 * (var_b + var_c)
    diff = right_c.mean() - right_b.mean()
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * diff**2 / (2 * v * (v + tau2)))
    assert d.difference == pytest.approx(diff, abs=1e-12)
    assert d.p_value == pytest.approx(min(1.0, 1 / lam), rel=1e-9)
    # the interval is the set of differences the SPRT does not reject: Λ(θ) = 1/α at the ends
    for end in d.ci:
        lam_end = math.sqrt(v / (v + tau2)) * math.exp(
            tau2 * (diff - end) ** 2 / (2 * v * (v + tau2))
        )
        assert lam_end == pytest.approx(1 / ALPHA, rel=1e-9)


def test_mean_losses_are_supported() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=800)
    d = sequential_difference(
        "mae", (y, y + rng.normal(0, 1, 800)), (y, y + rng.normal(0, 0.5, 800)), task="regression"
    )
    assert d.test == "confidence_sequence" and d.ci[1] < 0 and d.p_value < 0.05


def test_below_min_rows_reports_values_and_says_continue() -> None:
    y = np.r_[np.ones(30), np.zeros(300)]
    s = np.r_[np.full(30, 0.9), np.full(300, 0.1)]
    d = sequential_difference("recall", (y, s), (y, s), min_rows=100)
    assert d.baseline == 1.0 and d.difference == 0.0
    assert d.ci is None and d.p_value is None and d.reason == "not enough rows yet"
    assert d.n_baseline == 30  # the positives: the rows recall is computed on


def test_unsupported_metric_is_a_typed_error_listing_the_supported_ones() -> None:
    y = np.zeros(200)
    with pytest.raises(InputError) as err:
        sequential_difference("roc_auc", (y, y), (y, y))
    assert err.value.field == "metric" and "roc_auc" in str(err.value)
    for name in SEQUENTIAL_METRICS:
        assert name in str(err.value)
    with pytest.raises(InputError):
        sequential_difference("accuracy", (y, y), (y, y), alpha=0)
