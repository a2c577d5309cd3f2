"""Guardrails on operational numbers (latency, cost): quantiles and means, and the SRM check.

``quantile_difference`` bootstraps a quantile (latency p95) of each arm — or of both
columns of the same resampled rows when ``paired`` — with the percentile interval;
``mean_difference`` is Welch's test (split) or the paired t test. Missing values
(NaN or None) are dropped (paired: the pair is dropped). ``sample_ratio_mismatch``
checks that a split sent the share of traffic it was configured to.

>>> latency_b = np.arange(1.0, 201.0); latency_c = latency_b + 10
>>> d = quantile_difference(latency_b, latency_c, 0.95)
>>> d.metric, round(d.difference, 6), d.test
('p95', 10.0, 'bootstrap')
>>> sample_ratio_mismatch([5000, 5200], [0.5, 0.5])["mismatch"]
False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assay.errors import EmptyInputError, InputError
from assay.stats.compare import Difference, as_float, check_alpha, undefined
from assay.stats.resample import percentile_test, quantile_deviations
from assay.stats.scipy_stats import scipy_stats
from assay.stats.split import moments, welch


def _values(baseline: Any, candidate: Any, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as float arrays without missing values (pairs dropped together)."""
    arrays = []
    for name, values in (("baseline", baseline), ("candidate", candidate)):
        try:  # None becomes nan
            raw = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"{name} must hold numbers (or None for missing)", field=name
            ) from None
        if raw.size == 0:
            raise EmptyInputError(f"{name} holds no values", field=name,
                                  hint="a comparison needs values on both arms")  # fmt: skip
        arrays.append(as_float(raw, name))
    b, c = arrays
    if paired:
        if b.size != c.size:
            raise InputError(
                f"paired samples must line up: baseline has {b.size} values, candidate {c.size}",
                field="candidate",
                hint="pass one value per event for both models, same order",
            )
        keep = np.isfinite(b) & np.isfinite(c)
        return b[keep], c[keep]
    return b[np.isfinite(b)], c[np.isfinite(c)]


def quantile_difference(
    baseline: np.ndarray,
    candidate: np.ndarray,
    q: float = 0.95,
    *,
    paired: bool = False,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    metric: str | None = None,
) -> Difference:
    """candidate − baseline of the ``q`` quantile (numpy's linear definition), bootstrapped.

    >>> d = quantile_difference([1.0, 2.0, None, 4.0] * 10, [2.0, 3.0, 4.0, 5.0] * 10, 0.5)
    >>> d.baseline, d.candidate, d.n_baseline
    (2.0, 3.5, 30)
    """
    alpha = check_alpha(alpha)
    if not 0.0 <= float(q) <= 1.0:
        raise InputError(f"q must be between 0 and 1, got {q!r}", field="q", hint="0.95 = p95")
    if int(n_boot) < 100:
        raise InputError(f"n_boot must be at least 100, got {n_boot}", field="n_boot")
    name = metric if metric is not None else f"p{float(q) * 100:g}"
    test = "paired_bootstrap" if paired else "bootstrap"
    b, c = _values(baseline, candidate, paired)
    if b.size < 2 or c.size < 2:
        return undefined(
            name,
            test,
            b.size,
            c.size,
            alpha,
            "a quantile interval needs at least two values on each arm",
            float(np.quantile(b, q)) if b.size else None,
            float(np.quantile(c, q)) if c.size else None,
        )
    base, cand = float(np.quantile(b, q)), float(np.quantile(c, q))
    if paired:
        devs = quantile_deviations([b, c], float(q), int(n_boot), seed)
    else:
        devs = quantile_deviations([c], float(q), int(n_boot), [seed, 1])
        devs -= quantile_deviations([b], float(q), int(n_boot), [seed, 0])
    ci, p_value = percentile_test(cand - base, devs, alpha)
    return Difference(name, base, cand, cand - base, ci, p_value, test, b.size, c.size, alpha)


def mean_difference(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    paired: bool = False,
    alpha: float = 0.05,
    metric: str = "mean",
) -> Difference:
    """candidate − baseline of the mean: Welch's t test, or the paired t test.

    >>> d = mean_difference([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 4.5, 5.0], paired=True)
    >>> d.difference, d.test, round(d.p_value, 4)
    (1.0, 'paired_t', 0.0163)
    """
    alpha = check_alpha(alpha)
    b, c = _values(baseline, candidate, paired)
    if not paired:
        return welch(
            metric,
            moments(b, None) if b.size else (np.nan, np.nan, 0.0),
            moments(c, None) if c.size else (np.nan, np.nan, 0.0),
            alpha,
        )
    n = b.size
    if n < 2:
        return undefined(
            metric,
            "paired_t",
            n,
            n,
            alpha,
            "the paired t test needs at least two complete pairs",
            float(b.mean()) if n else None,
            float(c.mean()) if n else None,
        )
    # the paired t test is Welch's with all the variance on the per-pair differences
    # (its degrees of freedom then reduce to n - 1)
    spread = float(np.var(c - b, ddof=1))
    return welch(
        metric,
        (float(b.mean()), 0.0, float(n)),
        (float(c.mean()), spread, float(n)),
        alpha,
        "paired_t",
    )


def sample_ratio_mismatch(
    observed: Sequence[int], expected_shares: Sequence[float], *, threshold: float = 0.001
) -> dict[str, Any]:
    """Chi-square goodness of fit of the arms' event counts to the configured shares.

    ``mismatch`` is true when the p-value is below ``threshold`` (0.001 by default: an
    SRM check runs on every look, so a strict level keeps false alarms rare).

    >>> r = sample_ratio_mismatch([4800, 5200], [0.5, 0.5])
    >>> round(r["statistic"], 2), r["dof"], r["mismatch"]
    (16.0, 1, True)
    """
    counts = as_float(list(observed), "observed")
    shares = as_float(list(expected_shares), "expected_shares")
    threshold = check_alpha(threshold, "threshold")
    if counts.size != shares.size or counts.size < 2:
        raise InputError(
            f"observed has {counts.size} arms and expected_shares {shares.size}",
            field="expected_shares",
            hint="give one count and one share per arm, at least two arms",
        )
    if np.any(counts < 0) or not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
        raise InputError("observed must hold non-negative whole counts", field="observed")
    if np.any(shares <= 0) or not np.all(np.isfinite(shares)):
        raise InputError(
            "expected_shares must be positive",
            field="expected_shares",
            hint="for example 0.9, 0.1 for a 10% canary",
        )
    total = float(counts.sum())
    if total <= 0:
        raise InputError("observed holds no events", field="observed")
    expected = shares / shares.sum() * total
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    dof = int(counts.size - 1)
    chi2 = scipy_stats().chi2

    p_value = float(chi2.sf(statistic, dof))
    return {
        "statistic": statistic,
        "p_value": p_value,
        "dof": dof,
        "observed": [int(v) for v in counts],
        "expected_shares": [float(v) for v in shares],
        "threshold": threshold,
        "mismatch": bool(p_value < threshold),
    }
