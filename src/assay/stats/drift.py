"""Drift states and statistics: numeric samples and categorical counts, both exact.

Definitions follow ARCHITECTURE.md (ks, chi2, psi, jensen_shannon, wasserstein,
wasserstein_normed); the decision rule lives in :mod:`assay.stats.drift_rule`.

>>> ref = NumericSampleState.from_batch(np.arange(100.0))
>>> cur = NumericSampleState.from_batch(np.arange(100.0) + 50)
>>> r = numeric_drift(ref, cur)
>>> r["ks"]["statistic"], r["wasserstein"]
(0.5, 50.0)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from assay.stats.kolmogorov import kolmogorov_sf
from assay.stats.reduce import dot
from assay.stats.scipy_stats import scipy_stats
from assay.stats.state import State

PSI_QUANTILES = np.arange(1, 10) / 10.0
PSI_FLOOR = 1e-4
KS_EXACT_MAX_N = 10_000  # scipy's 'auto' switches to the asymptotic p-value above this


class NumericSampleState(State):
    """Non-null values of a numeric column and its null count; merges exactly.

    NaN and ±inf count as null.
    """

    kind = "numeric_sample"

    @classmethod
    def empty(cls) -> NumericSampleState:
        """The identity of :meth:`merge`."""
        return cls({}, {"values": np.zeros(0), "nulls": np.zeros((), dtype=np.int64)})

    @classmethod
    def from_batch(cls, values: np.ndarray) -> NumericSampleState:
        """Keep the finite values of one batch; count the rest as null."""
        v = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(v)
        kept = v if finite.all() else v[finite]
        return cls({}, {"values": kept, "nulls": np.asarray(v.size - kept.size, dtype=np.int64)})

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "values": np.concatenate([self.data["values"], other["values"]]),
            "nulls": np.asarray(self.data["nulls"] + other["nulls"], dtype=np.int64),
        }

    def sorted_values(self) -> np.ndarray:
        """The values in ascending order (sorted in place: a sample has no order)."""
        values = self.data["values"]
        if values.size > 1 and not np.all(values[:-1] <= values[1:]):
            if not values.flags.writeable:  # a read-only view of Arrow memory
                values = self.data["values"] = values.copy()
            values.sort()
        return values

    @property
    def count(self) -> int:
        """Non-null values."""
        return int(self.data["values"].size)

    @property
    def null_count(self) -> int:
        """Null (or non-finite) values."""
        return int(self.data["nulls"])

    def result(self) -> dict[str, Any]:
        """Count, null share, mean, std and quantiles of the column."""
        v = self.data["values"]
        total = v.size + self.null_count
        out: dict[str, Any] = {"count": int(v.size), "null_share": _share(self.null_count, total)}
        if v.size:
            q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
            out.update(mean=float(v.mean()), std=float(v.std()), quantiles=q.tolist())
        return out


class CategoricalCountState(State):
    """Count per category and of nulls; merges exactly."""

    kind = "categorical_counts"

    @classmethod
    def empty(cls) -> CategoricalCountState:
        """The identity of :meth:`merge`."""
        return cls.from_counts(np.zeros(0, dtype=str), np.zeros(0, dtype=np.int64), 0)

    @classmethod
    def from_counts(
        cls, categories: np.ndarray, counts: np.ndarray, nulls: int
    ) -> CategoricalCountState:
        """Build from already counted categories (unique strings) and a null count."""
        cats = np.asarray(categories).astype(str)
        order = np.argsort(cats, kind="stable")
        return cls(
            {},
            {
                "categories": cats[order],
                "counts": np.asarray(counts, dtype=np.int64)[order],
                "nulls": np.asarray(nulls, dtype=np.int64),
            },
        )

    @classmethod
    def from_batch(cls, values: np.ndarray) -> CategoricalCountState:
        """Count one batch; ``None`` and NaN are nulls, other values compare as strings."""
        v = np.asarray(values, dtype=object)
        null = np.array([x is None or (isinstance(x, float) and math.isnan(x)) for x in v], bool)
        cats, counts = np.unique(v[~null].astype(str), return_counts=True)
        return cls.from_counts(cats, counts, int(null.sum()))

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cats = np.concatenate([self.data["categories"], other["categories"]])
        union, inverse = np.unique(cats, return_inverse=True)
        counts = np.concatenate([self.data["counts"], other["counts"]])
        return {
            "categories": union,
            "counts": np.bincount(inverse, weights=counts, minlength=union.size).astype(np.int64),
            "nulls": np.asarray(self.data["nulls"] + other["nulls"], dtype=np.int64),
        }

    @property
    def null_count(self) -> int:
        """Null values."""
        return int(self.data["nulls"])

    def counts_dict(self) -> dict[str, int]:
        """Category → count (nulls excluded)."""
        return dict(
            zip(self.data["categories"].tolist(), self.data["counts"].tolist(), strict=True)
        )

    def result(self) -> dict[str, Any]:
        """Count, null share and number of categories."""
        total = int(self.data["counts"].sum()) + self.null_count
        return {
            "count": total - self.null_count,
            "null_share": _share(self.null_count, total),
            "categories": int(self.data["categories"].size),
        }


def _share(part: int, total: int) -> float | None:
    return None if total == 0 else part / total


# -- statistics on two windows ---------------------------------------------------------


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Population stability index with shares clipped below at 1e-4."""
    r = np.clip(ref_shares, PSI_FLOOR, None)
    c = np.clip(cur_shares, PSI_FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Jensen–Shannon distance in base 2 (the square root of the divergence)."""
    p = ref_shares / ref_shares.sum()
    q = cur_shares / cur_shares.sum()
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2.0, 0.0) / np.log(2.0)))


def ks_p_value(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Two-sided two-sample KS p-value as scipy's ``method='auto'``: (statistic, p).

    Exact for samples of at most 10,000 (the statistic is then snapped to the lattice
    ``h / lcm(n1, n2)``, as scipy does), Smirnov's asymptotic distribution above.
    """
    if max(n1, n2) <= KS_EXACT_MAX_N:
        exact = _exact_ks(d, n1, n2)
        if exact is not None:
            return exact
    en = n1 * n2 / (n1 + n2)
    return d, kolmogorov_sf(d, round(en))


def _exact_ks(d: float, n1: int, n2: int) -> tuple[float, float] | None:
    scipy_stats()  # the package first, under the import lock: then its submodule is loaded
    try:  # scipy's exact lattice-path probability; its location is private
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - depends on the scipy release
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok, snapped, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    if not ok:
        return None
    return float(snapped), float(np.clip(prob, 0.0, 1.0))


def ks_statistic_sorted(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 20) -> float:
    """Two-sample KS statistic sup|F_a - F_b| of two sorted samples.

    F_a - F_b rises only at points of ``a`` and falls only at points of ``b``, so its
    supremum is reached just below some ``b[j]`` (where F_b = j / n_b) and its infimum at
    some ``b[j]`` itself (F_b = (j + 1) / n_b); ties in ``b`` only add smaller candidates.
    ``b`` is walked in chunks so temporaries stay small.
    """
    d = 0.0
    for lo in range(0, b.size, chunk):
        part = b[lo : lo + chunk]
        right = np.searchsorted(a, part, side="right")  # count of a <= b[j]
        left = right.copy()  # count of a < b[j]: differs only where b[j] equals a value of a
        tied = np.flatnonzero((right > 0) & (a[np.maximum(right - 1, 0)] == part))
        left[tied] = np.searchsorted(a, part[tied], side="left")
        steps = np.arange(lo, lo + part.size, dtype=np.float64) / b.size
        d_plus = float(np.max(left / a.size - steps))  # F_a just below b[j] - F_b there
        d_minus = float(np.max(steps + 1.0 / b.size - right / a.size))
        d = max(d, d_plus, d_minus)
    return d


def wasserstein_sorted(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 19) -> float:
    """Wasserstein-1 distance of two sorted samples: the area between quantile functions.

    The quantile functions step at ``i / n_a`` and ``j / n_b``. On the integer grid of
    ``1 / (n_a n_b)`` both are read off by integer division, so no merge of values is
    needed; the grid is walked in slices of ``chunk`` steps of ``a`` (bounded temporaries).
    """
    n1, n2 = a.size, b.size
    if n1 == n2:
        total = sum(
            float(np.abs(a[i : i + chunk] - b[i : i + chunk]).sum()) for i in range(0, n1, chunk)
        )
        return total / n1
    total = 0.0
    end = np.int64(n1) * n2
    for i0 in range(0, n1, chunk):
        i1 = min(i0 + chunk, n1)
        # grid points of a in [i0*n2, i1*n2), and those of b: j*n1 in the same range
        j0, j1 = -(-i0 * n2 // n1), -(-i1 * n2 // n1)
        grid = np.concatenate([np.arange(i0, i1, dtype=np.int64) * n2,
                               np.arange(j0, j1, dtype=np.int64) * n1])  # fmt: skip
        grid.sort()
        widths = np.diff(grid, append=np.int64(i1) * n2 if i1 < n1 else end)
        total += dot(np.abs(a[grid // n2] - b[grid // n1]), widths)
    return total / (float(n1) * n2)


def numeric_drift(reference: NumericSampleState, current: NumericSampleState) -> dict[str, Any]:
    """ks, psi, jensen_shannon, wasserstein(_normed) and null shares of two windows."""
    out: dict[str, Any] = {
        "type": "numeric",
        "null_share": {
            "reference": _share(reference.null_count, reference.count + reference.null_count),
            "current": _share(current.null_count, current.count + current.null_count),
        },
        "rows": {"reference": reference.count, "current": current.count},
    }
    if reference.count == 0 or current.count == 0:
        which = "reference" if reference.count == 0 else "current"
        out.update(
            ks={"statistic": None, "p_value": None},
            psi=None,
            wasserstein=None,
            wasserstein_normed=None,
            jensen_shannon=None,
            undefined={"all": f"every value is null in the {which} window"},
        )
        return out
    a = reference.sorted_values()
    b = current.sorted_values()
    w = wasserstein_sorted(a, b)
    d, p = ks_p_value(ks_statistic_sorted(a, b), a.size, b.size)
    edges = np.unique(np.quantile(a, PSI_QUANTILES))
    ref_shares = _bin_shares_sorted(a, edges)
    cur_shares = _bin_shares_sorted(b, edges)
    std = float(a.std())
    out.update(
        ks={"statistic": d, "p_value": p},
        psi=psi(ref_shares, cur_shares),
        wasserstein=w,
        wasserstein_normed=w / std if std > 0 else None,
        jensen_shannon=jensen_shannon(ref_shares, cur_shares),
        bins={
            "edges": edges.tolist(),
            "reference": ref_shares.tolist(),
            "current": cur_shares.tolist(),
        },
    )
    if std == 0:
        out["undefined"] = {"wasserstein_normed": "the reference is constant (std = 0)"}
    return out


def _bin_shares_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share per bin where value v falls in bin ``searchsorted(edges, v, 'right')``."""
    # values below edges[j] are exactly those in bins 0..j
    below = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(np.r_[0, below, sorted_values.size])
    return counts / sorted_values.size


def categorical_drift(
    reference: CategoricalCountState, current: CategoricalCountState
) -> dict[str, Any]:
    """chi2 (homogeneity, no correction), psi, jensen_shannon; nulls are a category."""
    ref_total = int(reference.data["counts"].sum()) + reference.null_count
    cur_total = int(current.data["counts"].sum()) + current.null_count
    out: dict[str, Any] = {
        "type": "categorical",
        "null_share": {
            "reference": _share(reference.null_count, ref_total),
            "current": _share(current.null_count, cur_total),
        },
        "rows": {"reference": ref_total, "current": cur_total},
    }
    if ref_total == 0 or cur_total == 0:
        which = "reference" if ref_total == 0 else "current"
        out.update(
            chi2={"statistic": None, "p_value": None, "dof": None},
            psi=None,
            jensen_shannon=None,
            undefined={"all": f"the {which} window has no rows"},
        )
        return out
    union = np.union1d(reference.data["categories"], current.data["categories"])
    table = np.zeros((2, union.size + 1), dtype=np.float64)
    for row, state in enumerate((reference, current)):
        idx = np.searchsorted(union, state.data["categories"])
        table[row, idx] = state.data["counts"]
        table[row, -1] = state.null_count
    if table[:, -1].sum() == 0:
        table = table[:, :-1]
        union_labels = union.tolist()
    else:
        union_labels = [*union.tolist(), None]
    stat, p, dof = chi2_homogeneity(table[:, table.sum(axis=0) > 0])
    ref_shares = table[0] / ref_total
    cur_shares = table[1] / cur_total
    unseen = np.setdiff1d(current.data["categories"], reference.data["categories"])
    out.update(
        chi2={"statistic": stat, "p_value": p, "dof": dof},
        psi=psi(ref_shares, cur_shares),
        jensen_shannon=jensen_shannon(ref_shares, cur_shares),
        unseen_categories=unseen[:50].tolist(),
        unseen_share=float(table[1, np.searchsorted(union, unseen)].sum() / cur_total),
        bins={
            "categories": union_labels,
            "reference": ref_shares.tolist(),
            "current": cur_shares.tolist(),
        },
    )
    return out


def chi2_homogeneity(table: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity on an r×k table without continuity correction.

    Every row and column of ``table`` must have a positive sum.
    """
    rows = table.sum(axis=1, keepdims=True)
    cols = table.sum(axis=0, keepdims=True)
    expected = rows * cols / table.sum()
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    if dof == 0:
        return 0.0, 1.0, 0
    stat = float(np.sum((table - expected) ** 2 / expected))
    sps = scipy_stats()

    return stat, float(sps.chi2.sf(stat, dof)), int(dof)
