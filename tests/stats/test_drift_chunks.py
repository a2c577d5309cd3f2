"""KS and Wasserstein walk long samples in chunks; the chunk edges must not change a thing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from assay.stats.drift import ks_statistic_sorted, wasserstein_sorted


@pytest.mark.parametrize(("n1", "n2"), [(1000, 1500), (1501, 999), (300, 7), (7, 300), (800, 800)])
@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_chunked_statistics_equal_scipy(n1: int, n2: int, chunk: int) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    a = np.sort(rng.integers(0, 30, n1).astype(float))  # ties within and across samples
    b = np.sort(rng.normal(12.0, 6.0, n2).round(0))
    assert wasserstein_sorted(a, b, chunk) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    expected = ks_2samp(a, b, method="asymp").statistic
    assert ks_statistic_sorted(a, b, chunk) == pytest.approx(expected, abs=1e-15)
