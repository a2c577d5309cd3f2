"""A fixed-size, mergeable sketch of binary scores: ROC AUC and AP with a stated bound.

:class:`BinaryScoreSketchState` keeps, per class, the weight of the scores falling in each
of ``bins`` equal-width bins of [0, 1], plus exact sums for log loss, Brier score and ECE.
Its size does not grow with the rows (``2 × bins`` floats), so a partition of any size
sends the same few kilobytes.

Scores in one bin are treated as tied. That changes ROC AUC only through pairs of a
positive and a negative in the same bin, so the exact AUC lies within
``0.5 · Σ_b pos_b · neg_b / (P · N)`` of the sketched one; the average precision lies
between the precisions a positive could have at the two ends of its bin. Both bounds are
computed from the sketch itself and reported under ``error_bounds``. Log loss, Brier
score and ECE are exact up to floating-point rounding.

>>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> r = BinaryScoreSketchState.from_batch(y, s).result().to_dict()
>>> r["roc_auc"], r["error_bounds"]["roc_auc"], round(r["average_precision"], 4)
(0.75, 0.0, 0.8333)
"""

from __future__ import annotations

import numpy as np

from assay.stats.intervals import WeightedMoments, z_value
from assay.stats.outcome import MetricSet
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.reduce import dot
from assay.stats.state import State, weights_or_ones

_EPS = float(np.finfo(np.float64).eps)
DEFAULT_SCORE_BINS = 4096


def score_bin(y_score: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each score in [0, 1]: ``floor(s · bins)``, 1.0 in the last bin (monotone).

    >>> score_bin(np.array([0.0, 0.49, 0.5, 1.0]), 2).tolist()
    [0, 0, 1, 1]
    """
    return np.minimum((np.asarray(y_score, dtype=np.float64) * bins).astype(np.int64), bins - 1)


class BinaryScoreSketchState(State):
    """Per-class score histograms plus exact loss and calibration sums; fixed size."""

    kind = "binary_score_sketch"
    exact = False
    error_bound = (
        "roc_auc within 0.5·Σ_b pos_b·neg_b/(P·N) (pairs sharing a score bin); "
        "average_precision within the precision envelope of each bin; both computed from "
        "the sketch and reported under error_bounds (about 1/bins for continuous scores). "
        "log_loss, brier and ece are exact up to rounding."
    )

    @classmethod
    def empty(cls, bins: int = DEFAULT_SCORE_BINS, ece_bins: int = 10) -> BinaryScoreSketchState:
        """The identity of :meth:`merge`."""
        return cls(
            {"bins": int(bins), "ece_bins": int(ece_bins)},
            {
                "pos": np.zeros(bins),
                "neg": np.zeros(bins),
                "w2": np.zeros(2),  # Σw² of negatives, positives
                "n": np.zeros((), dtype=np.int64),
                "ece": np.zeros((3, ece_bins)),  # Σw, Σw·y, Σw·s per calibration bin
                "moments": np.zeros((2, 4)),  # log_loss, brier: Σw, Σw·x, Σw·x², Σw²
            },
        )

    @classmethod
    def from_batch(
        cls,
        y_true: np.ndarray,
        y_score: np.ndarray,
        sample_weight: np.ndarray | None = None,
        bins: int = DEFAULT_SCORE_BINS,
        ece_bins: int = 10,
    ) -> BinaryScoreSketchState:
        """Fold one batch of 0/1 labels and scores in [0, 1]."""
        y = np.asarray(y_true).astype(np.int64, copy=False)
        s = np.asarray(y_score, dtype=np.float64)
        w = weights_or_ones(sample_weight, y.size)
        cell = score_bin(s, bins)
        wy = w * y
        pos = np.bincount(cell, weights=wy, minlength=bins)
        neg = np.bincount(cell, weights=w - wy, minlength=bins)
        w2 = w * w
        w2_pos = dot(w2, y)
        inner = np.linspace(0.0, 1.0, ece_bins + 1)[1:-1]
        cal = np.searchsorted(inner, s)  # the same calibration bins as the exact state
        ece = np.vstack([np.bincount(cal, weights=v, minlength=ece_bins) for v in (w, wy, w * s)])
        p = np.clip(s, _EPS, 1 - _EPS)
        q = np.clip(1 - s, _EPS, 1 - _EPS)
        losses = -np.where(y == 1, np.log(p), np.log(q))
        brier = (y - s) ** 2
        w_sum, w2_sum = float(w.sum()), float(w2.sum())
        moments = np.array([[w_sum, dot(w, x), dot(w * x, x), w2_sum] for x in (losses, brier)])
        return cls(
            {"bins": int(bins), "ece_bins": int(ece_bins)},
            {
                "pos": pos,
                "neg": neg,
                "w2": np.array([float(w2_sum) - w2_pos, w2_pos]),
                "n": np.asarray(y.size, dtype=np.int64),
                "ece": ece,
                "moments": moments,
            },
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: self.data[k] + other[k] for k in self.data}

    def groups(self) -> ScoreGroups:
        """The sketch as tie groups (one per non-empty bin), ascending."""
        pos, neg = self.data["pos"], self.data["neg"]
        filled = (pos + neg) > 0
        empty = np.zeros(0)
        return ScoreGroups(order=empty.astype(np.int64), ends=empty.astype(np.int64),
                           cpos=np.cumsum(pos)[filled], cneg=np.cumsum(neg)[filled],
                           pos_w2=float(self.data["w2"][1]), neg_w2=float(self.data["w2"][0]),
                           row_weight=empty, row_label=empty)  # fmt: skip

    def auc_bound(self) -> float:
        """Largest possible gap between the sketched and the exact ROC AUC."""
        pos, neg = self.data["pos"], self.data["neg"]
        total = float(pos.sum() * neg.sum())
        return 0.0 if total <= 0 else 0.5 * dot(pos, neg) / total

    def average_precision_range(self) -> tuple[float, float]:
        """Lowest and highest average precision any order of the rows within bins gives."""
        pos, neg = self.data["pos"][::-1], self.data["neg"][::-1]  # highest scores first
        big_p = float(pos.sum())
        tp_above = np.cumsum(pos) - pos
        above = np.cumsum(pos + neg) - (pos + neg)
        with np.errstate(divide="ignore", invalid="ignore"):
            low = np.where(above + pos + neg > 0, tp_above / (above + pos + neg), 0.0)
            high = np.where(above + pos > 0, (tp_above + pos) / (above + pos), 0.0)
        return dot(pos, low) / big_p, dot(pos, high) / big_p

    def result(self, *, seed: int = 0, curves: bool = False) -> MetricSet:
        """Score metrics; roc_auc with a DeLong interval on the binned scores.

        Average precision and ECE have no interval here (their bootstrap needs the rows).
        """
        out = MetricSet()
        out.counts["n"] = int(self.data["n"])
        if out.counts["n"] == 0:
            for name in ("roc_auc", "average_precision", "log_loss", "brier", "ece"):
                out.undefined(name, "no rows")
            return out
        for name, row in zip(("log_loss", "brier"), self.data["moments"], strict=True):
            moments = WeightedMoments(*(float(v) for v in row))
            out.set(name, moments.mean, moments.interval())
        self._ece(out)
        groups = self.groups()
        bounds: dict[str, float] = {}
        if groups.pos_total <= 0 or groups.neg_total <= 0:
            reason = "only one class present in y_true"
            out.undefined("roc_auc", reason)
            if groups.pos_total <= 0:
                out.undefined("average_precision", reason)
        else:
            auc, var = auc_delong(groups, np.zeros(0))
            half = z_value() * np.sqrt(var)
            out.set("roc_auc", auc, (max(0.0, auc - half), min(1.0, auc + half)))
            bounds["roc_auc"] = self.auc_bound()
            if curves:
                out.extra["roc_curve"] = groups.roc_points()
        if groups.pos_total > 0:
            ap = groups.average_precision()
            low, high = self.average_precision_range()
            out.set("average_precision", ap)
            bounds["average_precision"] = max(ap - low, high - ap, 0.0)
        out.extra["error_bounds"] = bounds
        return out

    def _ece(self, out: MetricSet) -> None:
        w_bin, y_bin, s_bin = self.data["ece"]
        k = w_bin.size
        total = float(w_bin.sum())
        if total <= 0:
            out.undefined("ece", "no weight")
            return
        out.set("ece", float(np.abs(y_bin - s_bin).sum() / total))
        filled = w_bin > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(filled, s_bin / w_bin, np.nan)
            frac = np.where(filled, y_bin / w_bin, np.nan)
        out.extra["reliability"] = {
            "bin_edges": np.linspace(0.0, 1.0, k + 1).tolist(),
            "mean_predicted": [None if not np.isfinite(v) else float(v) for v in mean],
            "fraction_positive": [None if not np.isfinite(v) else float(v) for v in frac],
            "weight": w_bin.tolist(),
        }
