"""The survival function of the two-sided one-sample Kolmogorov statistic, as scipy gives it.

``kolmogorov_sf(d, n)`` equals ``scipy.stats.kstwo.sf(d, n)`` (to about 1e-13 relative). In
its upper tail (``n·d² ≥ 2.2`` for ``n > 140``, and ``d ≥ 0.5``) scipy evaluates twice the
exact one-sided Smirnov probability with a scalar loop of ``n`` terms that costs about a
second per million; here the same sum, Birnbaum and Tingey's

    P(D⁺ₙ ≥ x) = Σ_{j=0}^{⌊n(1−x)⌋} C(n, j) (x + j/n)^(j−1) (1 − x − j/n)^(n−j) · x
               = Σ_j binom.pmf(j; n, x + j/n) · x / (x + j/n),

is taken as one vectorised pass over the binomial probabilities, about ten times faster.
Everywhere else, and above a million (where scipy switches to an asymptotic series), scipy
is called as it is.

>>> from scipy.stats import kstwo
>>> n, d = 500_000, 0.0024
>>> bool(abs(kolmogorov_sf(d, n) - kstwo.sf(d, n)) < 1e-15)
True
"""

from __future__ import annotations

import numpy as np

from assay.stats.scipy_stats import scipy_stats

EXACT_SUM_MIN_N = 10_000  # below this scipy's own loop is already quick
EXACT_SUM_MAX_N = 1_000_000  # above this scipy uses an asymptotic series, not the sum
NXSQUARED_ZERO = 370.0  # scipy's survival function is 0 from here on (n > 140)
NXSQUARED_TAIL = 2.2  # scipy's survival function is 2·smirnov(n, d) from here on (n > 140)


def kolmogorov_sf(d: float, n: int) -> float:
    """P(Dₙ ≥ d) for the two-sided Kolmogorov statistic of ``n`` observations.

    >>> round(kolmogorov_sf(0.01, 20_000), 6)
    0.036386
    """
    if EXACT_SUM_MIN_N < n <= EXACT_SUM_MAX_N and 1.0 / n < d < 1.0 - 1.0 / n:
        nxsquared = n * d * d
        if d >= 0.5 or NXSQUARED_TAIL <= nxsquared < NXSQUARED_ZERO:
            return float(np.clip(2.0 * smirnov_upper_tail(n, d), 0.0, 1.0))
    sps = scipy_stats()

    return float(np.clip(sps.kstwo.sf(d, n), 0.0, 1.0))


def smirnov_upper_tail(n: int, x: float) -> float:
    """P(D⁺ₙ ≥ x), the exact one-sided Smirnov probability (``scipy.special.smirnov``).

    >>> from scipy.special import smirnov
    >>> bool(abs(smirnov_upper_tail(50_000, 0.008) - smirnov(50_000, 0.008)) < 1e-16)
    True
    """
    sps = scipy_stats()

    j = np.arange(int(np.floor(n * (1.0 - x))) + 1, dtype=np.float64)
    p = x + j / n
    return float(np.sum(sps.binom.pmf(j, n, np.minimum(p, 1.0)) * (x / p)))
