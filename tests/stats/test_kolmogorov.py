"""kolmogorov_sf against scipy's kstwo.sf in every branch scipy takes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import smirnov
from scipy.stats import kstwo

from assay.stats.kolmogorov import kolmogorov_sf, smirnov_upper_tail

# (n, n·d²) pairs: below the tail (scipy's series), in the tail (the exact sum), past 370
# (zero), d ≥ 0.5, d at the edges 1/n and 1 - 1/n, and n around both cut-offs
CASES = [
    (20_000, 0.5),
    (20_000, 2.2),
    (20_000, 7.0),
    (20_000, 369.0),
    (20_000, 371.0),
    (60_000, 2.19),
    (60_000, 3.3),
    (250_000, 2.6),
    (250_000, 40.0),
    (474_978, 2.94),
    (1_000_000, 2.5),
    (1_000_001, 2.5),
    (10_000, 3.0),
    (10_001, 3.0),
]


@pytest.mark.parametrize(("n", "nxsquared"), CASES)
def test_matches_scipy(n: int, nxsquared: float) -> None:
    d = float(np.sqrt(nxsquared / n))
    assert kolmogorov_sf(d, n) == pytest.approx(float(kstwo.sf(d, n)), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("d", [0.5, 0.7, 1.0 / 30_000, 1.5 / 30_000, 1.0 - 1.0 / 30_000, 0.0, 1.0])
def test_edges_match_scipy(d: float) -> None:
    assert kolmogorov_sf(d, 30_000) == pytest.approx(float(kstwo.sf(d, 30_000)), rel=1e-9)


def test_one_sided_sum_matches_scipy_smirnov() -> None:
    rng = np.random.default_rng(7)
    for n in (12_000, 77_777, 300_001):
        for nxsquared in rng.uniform(0.5, 60.0, size=3):
            x = float(np.sqrt(nxsquared / n))
            assert smirnov_upper_tail(n, x) == pytest.approx(float(smirnov(n, x)), rel=1e-9)


def test_tail_value_by_hand_for_a_tiny_sample() -> None:
    # n = 2, x = 0.6: the sum has j = 0 only: C(2,0)·0.6^-1·0.4^2·0.6 = 0.16 = P(D+ ≥ 0.6)
    assert smirnov_upper_tail(2, 0.6) == pytest.approx(0.16, rel=1e-12)
