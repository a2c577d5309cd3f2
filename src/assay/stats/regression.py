"""Regression state: the labelled predictions themselves; every metric merges exactly.

>>> s = RegressionState.from_batch(np.array([3.0, -0.5, 2.0, 7.0]),
...                                np.array([2.5, 0.0, 2.0, 8.0]))
>>> r = s.result().to_dict()
>>> r["mae"], r["mse"], round(r["r2"], 6)
(0.5, 0.375, 0.948608)
"""

from __future__ import annotations

import numpy as np

from assay.stats.intervals import little_bootstrap_interval, mean_interval
from assay.stats.outcome import MetricSet
from assay.stats.reduce import dot, rows_dot
from assay.stats.state import State, weights_or_ones

_EPS = float(np.finfo(np.float64).eps)


class RegressionState(State):
    """``y_true``, ``y_pred`` and weights of every row: mae, mse, rmse, mape, r2, bias, medae.

    ``mean_error`` is the bias ``mean(y_pred - y_true)``: positive means over-prediction.
    """

    kind = "regression"

    @classmethod
    def empty(cls) -> RegressionState:
        """The identity of :meth:`merge`."""
        z = np.zeros(0, dtype=np.float64)
        return cls({}, {"y_true": z, "y_pred": z.copy(), "w": z.copy()})

    @classmethod
    def from_batch(
        cls, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> RegressionState:
        """Keep one batch of targets and predictions."""
        y = np.asarray(y_true, dtype=np.float64)
        return cls(
            {},
            {
                "y_true": y,
                "y_pred": np.asarray(y_pred, dtype=np.float64),
                "w": weights_or_ones(sample_weight, y.size),
            },
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([self.data[k], other[k]]) for k in self.data}

    def result(self, *, seed: int = 0) -> MetricSet:
        """Metrics with 95% intervals (normal for means, bootstrap for r2 and medae)."""
        y, p, w = self.data["y_true"], self.data["y_pred"], self.data["w"]
        out = MetricSet()
        out.counts["n"] = int(y.size)
        names = ("mae", "mse", "rmse", "mape", "r2", "mean_error", "median_absolute_error")
        if y.size == 0 or w.sum() <= 0:
            for name in names:
                out.undefined(name, "no rows")
            return out
        err = p - y
        abs_err = np.abs(err)
        sq = err * err
        ape = abs_err / np.maximum(np.abs(y), _EPS)
        w_sum = float(w.sum())
        for name, values in (("mae", abs_err), ("mse", sq), ("mape", ape), ("mean_error", err)):
            out.set(name, dot(w, values) / w_sum, mean_interval(values, w))
        mse_ci = out.intervals["mse"]
        rmse_ci = None if mse_ci is None else (np.sqrt(max(mse_ci[0], 0.0)), np.sqrt(mse_ci[1]))
        out.set("rmse", float(np.sqrt(out.values["mse"] or 0.0)), rmse_ci)

        def r2_of(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            cw = counts * w[rows]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                mean = rows_dot(cw, y[rows]) / cw.sum(axis=1)
                sst = (cw * (y[rows][None, :] - mean[:, None]) ** 2).sum(axis=1)
                return 1.0 - rows_dot(cw, sq[rows]) / sst

        y_mean = dot(w, y) / w_sum
        sst = dot(w, (y - y_mean) ** 2)
        if sst <= 0:
            out.undefined("r2", "y_true is constant (total sum of squares is 0)")
        else:
            r2 = 1.0 - dot(w, sq) / sst
            out.set("r2", r2, little_bootstrap_interval(r2_of, y.size, estimate=r2, seed=seed))

        def medae_of(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            order = np.argsort(abs_err[rows])
            values = abs_err[rows][order]
            return np.array(
                [weighted_median(values, c[order] * w[rows][order], True) for c in counts]
            )

        medae = weighted_median(abs_err, w)
        ci = little_bootstrap_interval(medae_of, y.size, estimate=medae, seed=seed, resamples=40)
        out.set("median_absolute_error", medae, ci)
        return out


def weighted_median(values: np.ndarray, weights: np.ndarray, presorted: bool = False) -> float:
    """Weighted median; averages the two middle values when the half weight falls between.

    With unit weights this is :func:`numpy.median`.

    >>> weighted_median(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    2.5
    """
    if not presorted:
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        return float("nan")
    cum = np.cumsum(weights)
    half = cum[-1] / 2.0
    i = int(np.searchsorted(cum, half, side="left"))
    if np.isclose(cum[i], half, rtol=1e-12, atol=0.0) and i + 1 < values.size:
        return float((values[i] + values[i + 1]) / 2.0)
    return float(values[i])
