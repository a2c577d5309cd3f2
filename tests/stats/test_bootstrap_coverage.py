"""Coverage of the bootstrap intervals (ordinary and bag-of-little-bootstraps paths).

The true value is known by construction (the mean of an exponential(1) is 1), so the
check is independent of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.stats.intervals import little_bootstrap_interval


def _mean(x: np.ndarray):  # type: ignore[no-untyped-def]
    def statistic(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weights @ x[rows] / weights.sum(axis=1)

    return statistic


@pytest.mark.parametrize(("n", "simulations"), [(2_000, 300), (60_000, 150)])
def test_interval_covers_the_true_mean_about_95_percent(n: int, simulations: int) -> None:
    rng = np.random.default_rng(2026)
    covered = 0
    for i in range(simulations):
        x = rng.exponential(1.0, n)
        lo, hi = little_bootstrap_interval(_mean(x), n, estimate=float(x.mean()), seed=i)
        covered += lo <= 1.0 <= hi
    rate = covered / simulations
    # 95% nominal; Monte Carlo standard error is about 0.013-0.018 at these counts
    assert 0.90 <= rate <= 0.985, rate


def test_interval_width_matches_the_standard_error() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    x = rng.normal(0.0, 2.0, n)
    lo, hi = little_bootstrap_interval(_mean(x), n, estimate=float(x.mean()))
    expected = 2 * 1.959964 * 2.0 / np.sqrt(n)  # the normal-theory width
    assert (hi - lo) == pytest.approx(expected, rel=0.2)


def test_too_few_rows_gives_no_interval() -> None:
    assert little_bootstrap_interval(_mean(np.array([1.0])), 1) is None
