"""A fixed-size, mergeable histogram of a numeric column and drift statistics with bounds.

:class:`NumericHistogramState` counts the values of a column in ``bins`` equal-width bins
over a range ``[lo, hi]`` fixed beforehand (both windows' minimum and maximum, learned in a
cheap first pass), plus exact moments. Two windows sketched over the same range give:

- ``ks``: the exact statistic lies in ``[D_edges, D_upper]``, where ``D_edges`` is the
  largest CDF gap at bin edges (reported) and ``D_upper`` the largest gap any placement of
  the values within their bins could make;
- ``wasserstein``: values are spread evenly within bins; the error is at most
  ``h · Σ_k (U_k − L_k)`` (``h`` the bin width, ``U_k``/``L_k`` the largest and smallest
  CDF gap possible in bin k), never more than ``2h``;
- ``psi`` and ``jensen_shannon``: the reference deciles are placed on bin edges; every
  share then lies in a known interval and, as both are jointly convex and zero when the
  shares agree, their exact values lie between bounds evaluated at the intervals' corners.

Each bound is computed from the sketches and reported under ``error_bounds``.

>>> ref = NumericHistogramState.from_batch(np.arange(100.0), 0.0, 149.0, bins=1490)
>>> cur = NumericHistogramState.from_batch(np.arange(100.0) + 50, 0.0, 149.0, bins=1490)
>>> r = sketch_numeric_drift(ref, cur)
>>> r["ks"]["statistic"], round(r["wasserstein"], 1), round(r["error_bounds"]["ks"], 3)
(0.5, 50.0, 0.01)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assay.stats.drift import PSI_FLOOR, PSI_QUANTILES, jensen_shannon, ks_p_value, psi
from assay.stats.reduce import dot
from assay.stats.state import State

DEFAULT_NUMERIC_BINS = 4096


class NumericHistogramState(State):
    """Counts in equal-width bins of a fixed range, null count and exact moments."""

    kind = "numeric_histogram"
    exact = False
    error_bound = (
        "ks within [D_edges, D_upper] and wasserstein within h·Σ(U_k − L_k) ≤ 2h for bin "
        "width h; psi and jensen_shannon within bounds from the share intervals; all "
        "computed from the sketches and reported under error_bounds"
    )

    @classmethod
    def empty(cls, lo: float, hi: float, bins: int = DEFAULT_NUMERIC_BINS) -> NumericHistogramState:
        """The identity of :meth:`merge`."""
        return cls(
            {"lo": float(lo), "hi": float(hi), "bins": int(bins)},
            {"counts": np.zeros(bins, dtype=np.int64), "nulls": np.zeros((), dtype=np.int64),
             "outside": np.zeros((), dtype=np.int64), "moments": np.zeros(2)},
        )  # fmt: skip

    @classmethod
    def from_batch(
        cls, values: np.ndarray, lo: float, hi: float, bins: int = DEFAULT_NUMERIC_BINS
    ) -> NumericHistogramState:
        """Count the finite values of one batch; NaN and ±inf count as null.

        Values outside ``[lo, hi]`` go to the end bins and are counted under ``outside``
        (the bounds then no longer hold, and the result says so).
        """
        v = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(v)
        kept = v if finite.all() else v[finite]
        cells = bin_index(kept, lo, hi, bins)
        outside = int(np.count_nonzero((kept < lo) | (kept > hi)))
        return cls(
            {"lo": float(lo), "hi": float(hi), "bins": int(bins)},
            {
                "counts": np.bincount(cells, minlength=bins).astype(np.int64),
                "nulls": np.asarray(v.size - kept.size, dtype=np.int64),
                "outside": np.asarray(outside, dtype=np.int64),
                "moments": np.array([kept.sum(), dot(kept, kept)]),
            },
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: self.data[k] + other[k] for k in self.data}

    @property
    def count(self) -> int:
        """Non-null values."""
        return int(self.data["counts"].sum())

    @property
    def null_count(self) -> int:
        """Null (or non-finite) values."""
        return int(self.data["nulls"])

    @property
    def width(self) -> float:
        """Width of one bin."""
        return (self.params["hi"] - self.params["lo"]) / self.params["bins"]

    def std(self) -> float:
        """Standard deviation (ddof=0) from the exact moments."""
        n = self.count
        if n == 0:
            return float("nan")
        mean = self.data["moments"][0] / n
        return float(np.sqrt(max(self.data["moments"][1] / n - mean * mean, 0.0)))

    def result(self) -> dict[str, Any]:
        """Count, null share, mean and std of the column."""
        total = self.count + self.null_count
        out: dict[str, Any] = {
            "count": self.count,
            "null_share": None if total == 0 else self.null_count / total,
        }
        if self.count:
            out.update(mean=float(self.data["moments"][0] / self.count), std=self.std())
        return out


def bin_index(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Bin of each value: ``floor((v − lo) / (hi − lo) · bins)`` clipped to the range.

    >>> bin_index(np.array([0.0, 0.24, 0.25, 1.0]), 0.0, 1.0, 4).tolist()
    [0, 0, 1, 3]
    """
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.int64)
    scaled = (values - lo) * (bins / (hi - lo))
    return np.clip(scaled, 0, bins - 1).astype(np.int64)


def sketch_numeric_drift(
    reference: NumericHistogramState, current: NumericHistogramState
) -> dict[str, Any]:
    """ks, psi, jensen_shannon, wasserstein(_normed) of two sketches, with error bounds."""
    if reference.params != current.params:
        reference.merge(current)  # raises the typed error naming the differing parameter
    out: dict[str, Any] = {
        "type": "numeric",
        "null_share": {"reference": reference.result()["null_share"],
                       "current": current.result()["null_share"]},
        "rows": {"reference": reference.count, "current": current.count},
    }  # fmt: skip
    if reference.count == 0 or current.count == 0:
        which = "reference" if reference.count == 0 else "current"
        out.update(ks={"statistic": None, "p_value": None}, psi=None, wasserstein=None,
                   wasserstein_normed=None, jensen_shannon=None,
                   undefined={"all": f"every value is null in the {which} window"})  # fmt: skip
        return out
    a = np.cumsum(reference.data["counts"]) / reference.count  # CDF at each bin's top
    b = np.cumsum(current.data["counts"]) / current.count
    a_lo, b_lo = np.r_[0.0, a[:-1]], np.r_[0.0, b[:-1]]  # CDF just below each bin
    upper = np.maximum(a - b_lo, b - a_lo)  # largest |F_a − F_b| possible within a bin
    lower = np.maximum.reduce([np.zeros_like(a), a_lo - b, b_lo - a])
    d = float(np.max(np.abs(a - b)))
    d, p = ks_p_value(d, reference.count, current.count)
    h = reference.width
    w = h * float(np.sum(_mean_abs_linear(a_lo - b_lo, a - b)))
    std = reference.std()
    edges, share_ref, share_cur, psi_bound, js_bound = _decile_bins(reference, current)
    bounds = {
        "ks": float(np.max(upper)) - d,
        "wasserstein": h * float(np.sum(upper - lower)),
        "psi": psi_bound,
        "jensen_shannon": js_bound,
    }
    if std > 0:
        bounds["wasserstein_normed"] = bounds["wasserstein"] / std
    if int(reference.data["outside"]) or int(current.data["outside"]):
        bounds = dict.fromkeys(bounds)  # values fell outside the range: no bound holds
    out.update(
        ks={"statistic": d, "p_value": p},
        psi=psi(share_ref, share_cur),
        wasserstein=w,
        wasserstein_normed=w / std if std > 0 else None,
        jensen_shannon=jensen_shannon(share_ref, share_cur),
        bins={"edges": edges, "reference": share_ref.tolist(), "current": share_cur.tolist()},
        error_bounds=bounds,
    )
    if std == 0:
        out["undefined"] = {"wasserstein_normed": "the reference is constant (std = 0)"}
    return out


def _mean_abs_linear(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """∫₀¹ |d0 + t (d1 − d0)| dt for each pair (the gap of two CDFs linear in a bin)."""
    same = d0 * d1 >= 0
    total = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(total > 0, (d0 * d0 + d1 * d1) / (2 * total), 0.0)
    return np.where(same, total / 2, crossing)


def _decile_bins(
    ref: NumericHistogramState, cur: NumericHistogramState
) -> tuple[list[float], np.ndarray, np.ndarray, float | None, float | None]:
    """PSI bins on the reference deciles placed on bin edges, and bounds on psi and JS."""
    counts = ref.data["counts"]
    n = ref.count
    cum = np.cumsum(counts)
    positions = PSI_QUANTILES * (n - 1)  # numpy's linear quantile: order statistics
    first = np.searchsorted(cum, np.floor(positions), side="right")  # bin of x_(floor p)
    last = np.searchsorted(cum, np.ceil(positions), side="right")  # bin of x_(ceil p)
    # the estimate: interpolate evenly within the bin, then snap to the nearest bin edge
    before = np.r_[0, cum[:-1]]
    frac = (positions - before[first] + 0.5) / np.maximum(counts[first], 1)
    snapped = np.unique(np.clip(first + np.rint(frac).astype(np.int64), first, last + 1))
    lo, width = ref.params["lo"], ref.width
    edges = [lo + k * width for k in snapped.tolist()]
    below_ref = np.r_[0, cum][snapped]  # values under each snapped edge, exactly
    cur_cum = np.r_[0, np.cumsum(cur.data["counts"])]
    below_cur = cur_cum[snapped]
    share_ref = np.diff(np.r_[0, below_ref, n]) / n
    share_cur = np.diff(np.r_[0, below_cur, cur.count]) / cur.count
    # bounds hold when every exact decile is distinct and its bins do not overlap the next
    distinct = np.all(first[1:] > last[:-1] + 1) and snapped.size == PSI_QUANTILES.size
    if not distinct:
        return edges, share_ref, share_cur, None, None
    ranges = []
    for cumulative, total in ((np.r_[0, cum], n), (cur_cum, cur.count)):
        low = np.r_[0, cumulative[first], total]  # fewest values under each exact edge
        high = np.r_[0, cumulative[last + 1], total]
        ranges.append((np.maximum(np.diff(low) * 0, low[1:] - high[:-1]) / total,
                       (high[1:] - low[:-1]) / total))  # fmt: skip
    (r_lo, r_hi), (c_lo, c_hi) = ranges
    psi_lo, psi_hi = _convex_range(_psi_terms, r_lo, r_hi, c_lo, c_hi, floor=PSI_FLOOR)
    js_lo, js_hi = _convex_range(_js_terms, r_lo, r_hi, c_lo, c_hi, floor=0.0)
    psi_value = psi(share_ref, share_cur)
    js_value = jensen_shannon(share_ref, share_cur)
    js_range = (np.sqrt(max(js_lo, 0.0) / np.log(2.0)), np.sqrt(max(js_hi, 0.0) / np.log(2.0)))
    return (
        edges,
        share_ref,
        share_cur,
        float(max(psi_value - psi_lo, psi_hi - psi_value, 0.0)),
        float(max(js_value - js_range[0], js_range[1] - js_value, 0.0)),
    )


def _psi_terms(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (c - r) * np.log(c / r)


def _js_terms(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    m = (r + c) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(r > 0, r * np.log(r / m), 0.0)
        right = np.where(c > 0, c * np.log(c / m), 0.0)
    return (left + right) / 2.0


def _convex_range(
    terms: Any, r_lo: np.ndarray, r_hi: np.ndarray, c_lo: np.ndarray, c_hi: np.ndarray, floor: float
) -> tuple[float, float]:
    """Range of Σ f(r_j, c_j) over the boxes, for f convex, zero on r = c, growing with |r−c|.

    The maximum of each term is at a corner of its box; the minimum is 0 when the box
    meets the diagonal, else at the corner nearest it.
    """
    r_lo, r_hi = np.maximum(r_lo, floor), np.maximum(r_hi, floor)
    c_lo, c_hi = np.maximum(c_lo, floor), np.maximum(c_hi, floor)
    corners = np.stack([terms(r, c) for r in (r_lo, r_hi) for c in (c_lo, c_hi)])
    high = corners.max(axis=0)
    above = c_lo > r_hi  # current share surely larger
    below = c_hi < r_lo
    low = np.where(above, terms(r_hi, c_lo), np.where(below, terms(r_lo, c_hi), 0.0))
    return float(low.sum()), float(high.sum())
