"""Confidence intervals: Wilson for proportions, normal for means, bag of little bootstraps.

>>> lo, hi = wilson_interval(8.0, 10.0)
>>> round(lo, 4), round(hi, 4)
(0.4902, 0.9433)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assay.stats.reduce import dot
from assay.stats.scipy_stats import scipy_stats

Interval = tuple[float, float]
CONFIDENCE = 0.95


def z_value(confidence: float = CONFIDENCE) -> float:
    """Two-sided standard-normal quantile for ``confidence``."""
    norm = scipy_stats().norm

    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, n: float, confidence: float = CONFIDENCE) -> Interval | None:
    """Wilson score interval for a proportion ``successes / n`` (``n`` may be effective).

    >>> wilson_interval(0.0, 0.0) is None
    True
    """
    if n <= 0:
        return None
    z = z_value(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def effective_n(weight_sum: float, weight_sq_sum: float) -> float:
    """Kish effective sample size ``(Σw)² / Σw²`` (equals the count when weights are 1)."""
    return 0.0 if weight_sq_sum <= 0 else weight_sum * weight_sum / weight_sq_sum


@dataclass(frozen=True)
class WeightedMoments:
    """Σw, Σw·x, Σw·x² and Σw² of a per-row quantity: its mean and normal interval.

    >>> m = WeightedMoments.of(lambda lo, hi: np.arange(1.0, 5.0)[lo:hi], np.ones(4))
    >>> m.mean, tuple(round(v, 3) for v in m.interval())
    (2.5, (1.235, 3.765))
    """

    w: float
    wx: float
    wx2: float
    w2: float

    @classmethod
    def of(
        cls, values: Callable[[int, int], np.ndarray], weights: np.ndarray, chunk: int = 1 << 20
    ) -> WeightedMoments:
        """Accumulate ``values(lo, hi)`` (rows lo..hi) in chunks: bounded temporaries."""
        w = wx = wx2 = 0.0
        for lo in range(0, weights.size, chunk):
            hi = min(lo + chunk, weights.size)
            x = values(lo, hi)
            weighted = weights[lo:hi] * x
            w += float(weights[lo:hi].sum())
            wx += float(weighted.sum())
            wx2 += dot(weighted, x)
        return cls(w, wx, wx2, dot(weights, weights))

    @property
    def mean(self) -> float:
        """The weighted mean (nan without weight)."""
        return self.wx / self.w if self.w > 0 else float("nan")

    def interval(self, confidence: float = CONFIDENCE) -> Interval | None:
        """Normal interval of the mean with the Kish effective sample size."""
        n_eff = effective_n(self.w, self.w2)
        if self.w <= 0 or n_eff <= 1:
            return None
        var = max(self.wx2 / self.w - self.mean**2, 0.0)
        se = np.sqrt(var / (n_eff - 1))
        z = z_value(confidence)
        return (float(self.mean - z * se), float(self.mean + z * se))


def mean_interval(
    values: np.ndarray, weights: np.ndarray, confidence: float = CONFIDENCE
) -> Interval | None:
    """Normal interval of a (weighted) mean, with the Kish effective sample size.

    >>> lo, hi = mean_interval(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    >>> round(lo, 3), round(hi, 3)
    (1.235, 3.765)
    """
    if values.size < 2:
        return None
    return WeightedMoments.of(lambda lo, hi: values[lo:hi], weights).interval(confidence)


def little_bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n: int,
    *,
    estimate: float | None = None,
    confidence: float = CONFIDENCE,
    subsets: int = 3,
    resamples: int = 50,
    seed: int = 0,
) -> Interval | None:
    """Bootstrap interval by the bag of little bootstraps (Kleiner et al., 2014).

    ``statistic(rows, weights)`` receives the indices of one subset (length ``b``) and a
    ``(m, b)`` matrix of resampling weights whose rows total about ``n``; it returns one
    value per row (``nan`` where undefined). Up to 20,000 rows this is the ordinary
    bootstrap in its Bayesian form (exponential weights: the Poisson bootstrap's mean and
    variance); above, each of ``subsets`` random subsets of ``b = n**0.6`` rows (2,000 to
    50,000, at most n/10) is resampled with Poisson(n/b) weights in their normal form, so
    the cost does not grow with ``n``. Each subset contributes the quantiles of
    ``θ* - θ_subset``; their mean is added to ``estimate`` (the full-data value), which keeps
    the interval centred on the estimate rather than on a noisier subset.

    >>> rng = np.random.default_rng(1); x = rng.normal(size=400)
    >>> mean = lambda rows, w: w @ x[rows] / w.sum(axis=1)
    >>> lo, hi = little_bootstrap_interval(mean, x.size, estimate=float(x.mean()))
    >>> bool(lo < x.mean() < hi), round(hi - lo, 1)
    (True, 0.2)
    """
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    if n <= 20_000:
        b, subsets, resamples = n, 1, max(resamples, 100)
    else:
        b = int(min(max(n**0.6, 2000), 50_000, n // 10))
    alpha = (1.0 - confidence) / 2.0
    lows, highs, centres = [], [], []
    for _ in range(subsets):
        # distinct random rows: drawing with replacement and dropping repeats is O(b)
        rows = np.unique(rng.integers(0, n, size=b)) if b < n else np.arange(n)
        size = rows.size
        lam = n / size
        if b == n:
            weights = rng.standard_exponential(size=(resamples, size))
        else:
            weights = rng.standard_normal(size=(resamples, size))
            weights *= np.sqrt(lam)
            weights += lam
            np.maximum(weights, 0.0, out=weights)
        uniform = np.full((1, size), lam)
        values = np.asarray(statistic(rows, np.vstack([uniform, weights])), dtype=np.float64)
        centre, replicates = values[0], values[1:]
        replicates = replicates[np.isfinite(replicates)]
        if not np.isfinite(centre) or replicates.size < resamples // 2:
            continue
        lows.append(np.quantile(replicates - centre, alpha))
        highs.append(np.quantile(replicates - centre, 1.0 - alpha))
        centres.append(centre)
    if not lows:
        return None
    point = float(np.mean(centres)) if estimate is None else float(estimate)
    return (point + float(np.mean(lows)), point + float(np.mean(highs)))
