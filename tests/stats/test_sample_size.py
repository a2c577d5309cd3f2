"""``sample_size`` against textbook values and hand-worked formulas, and its power by
simulation: at the size it computes, the test actually used detects the effect ≥ 80% of
the time (within Monte Carlo error)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.errors import InputError
from assay.stats import mean_difference, paired_difference, sample_size, split_difference

Z_975, Z_80 = 1.959963984540054, 0.8416212335729143  # normal quantiles (tables)


def test_two_proportions_hand_worked() -> None:
    # Fleiss' formula without continuity correction, p_b = 0.80, p_c = 0.85, equal arms:
    # p̄ = 0.825; null sd = sqrt(2·0.825·0.175) = 0.537355; alternative sd =
    # sqrt(0.8·0.2 + 0.85·0.15) = 0.536190; n = ((1.959964·0.537355 + 0.841621·0.536190)
    # / 0.05)² = (1.504469 / 0.05)² = 905.4 -> 906 per arm
    r = sample_size(metric="accuracy", baseline=0.80, effect=0.05)
    assert (r["per_arm"], r["total"]) == (906, 1812)
    # a decrease of the same size is symmetric in the formula up to the proportions used
    down = sample_size(metric="error_rate", baseline=0.20, effect=-0.05)
    null_sd = math.sqrt(2 * 0.175 * 0.825)
    alt_sd = math.sqrt(0.2 * 0.8 + 0.15 * 0.85)
    assert down["per_arm"] == math.ceil(((Z_975 * null_sd + Z_80 * alt_sd) / 0.05) ** 2)


def test_two_proportions_unequal_arms_and_one_sided() -> None:
    # canary with a quarter of the baseline's traffic: k = 0.25
    k, p1, p2 = 0.25, 0.10, 0.08
    pooled = (p1 + k * p2) / (1 + k)
    null_sd = math.sqrt(pooled * (1 - pooled) * (1 + 1 / k))
    alt_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / k)
    z_95 = 1.6448536269514722
    expected = math.ceil(((z_95 * null_sd + Z_80 * alt_sd) / 0.02) ** 2)
    r = sample_size(metric="fpr", baseline=p1, effect=-0.02, ratio=k, alternative="less")
    assert r["per_arm"] == expected
    assert r["n_candidate"] == math.ceil(expected * k)
    assert r["total"] == expected + math.ceil(expected * k)


@pytest.mark.parametrize(("d", "cohen"), [(0.5, 64), (0.8, 26), (0.2, 394)])
def test_means_match_cohens_table(d: float, cohen: int) -> None:
    # Cohen (1988), Table 2.4.1 / G*Power: two-sample t test, α = 0.05 two-sided, power 0.8
    r = sample_size(metric="mean", baseline=10.0, effect=d * 2.0, sd=2.0)
    assert r["per_arm"] == cohen


def test_paired_mcnemar_hand_worked() -> None:
    # Connor (1987): discordance ψ = 0.15, effect 0.05:
    # n = ((1.959964·sqrt(0.15) + 0.841621·sqrt(0.15 − 0.0025)) / 0.05)² = 468.6 -> 469
    r = sample_size(metric="accuracy", baseline=0.8, effect=0.05, paired=True, discordance=0.15)
    assert r["per_arm"] == r["total"] == 469
    assert "McNemar" in r["method"]


def test_power_of_the_two_proportion_test_at_the_computed_size() -> None:
    n = sample_size(metric="accuracy", baseline=0.80, effect=0.05)["per_arm"]
    rng = np.random.default_rng(11)
    sims, detected = 2000, 0
    for _ in range(sims):
        base = (np.ones(n), (rng.random(n) < 0.80).astype(float))
        cand = (np.ones(n), (rng.random(n) < 0.85).astype(float))
        detected += split_difference("accuracy", base, cand).p_value < 0.05
    assert detected / sims >= 0.8 - 3 * math.sqrt(0.16 / sims), detected / sims


def test_power_of_mcnemar_at_the_computed_size() -> None:
    n = sample_size(metric="accuracy", baseline=0.8, effect=0.05, paired=True, discordance=0.15)[
        "per_arm"
    ]
    # both right 0.75, baseline only 0.05, candidate only 0.10, neither 0.10
    cells = np.array([0.75, 0.05, 0.10, 0.10])
    rng = np.random.default_rng(12)
    sims, detected = 2000, 0
    for _ in range(sims):
        kind = rng.choice(4, size=n, p=cells)
        right_b, right_c = np.isin(kind, (0, 1)), np.isin(kind, (0, 2))
        d = paired_difference("accuracy", np.ones(n), right_b * 1.0, right_c * 1.0)
        detected += d.p_value < 0.05
    assert detected / sims >= 0.8 - 3 * math.sqrt(0.16 / sims), detected / sims


def test_power_of_welch_at_the_computed_size() -> None:
    n = sample_size(metric="mean", baseline=0.0, effect=0.5, sd=2.0)["per_arm"]
    rng = np.random.default_rng(13)
    sims = 2000
    detected = sum(
        mean_difference(rng.normal(0, 2, n), rng.normal(0.5, 2, n)).p_value < 0.05
        for _ in range(sims)
    )
    assert detected / sims >= 0.8 - 3 * math.sqrt(0.16 / sims), detected / sims


def test_sequential_size_is_larger_and_says_how_it_was_found() -> None:
    fixed = sample_size(metric="accuracy", baseline=0.8, effect=0.05)
    seq = sample_size(metric="accuracy", baseline=0.8, effect=0.05, sequential=True)
    assert seq["per_arm"] > fixed["per_arm"]
    assert "confidence sequence" in seq["method"] and seq["tuning_rows"] == seq["per_arm"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"effect": 0.0}, "effect"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"power": 1.0}, "power"),
        ({"metric": "roc_auc"}, "metric"),
        ({"metric": "mae"}, "sd"),
        ({"paired": True}, "discordance"),
        ({"paired": True, "discordance": 0.01}, "discordance"),
        ({"ratio": 0.0}, "ratio"),
        ({"effect": 0.3}, "effect"),  # 0.8 + 0.3 is not a proportion
        ({"alternative": "sideways"}, "alternative"),
        ({"alternative": "less"}, "alternative"),  # contradicts a positive effect
        ({"sequential": True, "paired": True, "discordance": 0.2}, "sequential"),
    ],
)
def test_typed_errors(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"metric": "accuracy", "baseline": 0.8, "effect": 0.05}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        sample_size(**args)  # type: ignore[arg-type]
    assert err.value.field == field
