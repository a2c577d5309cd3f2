"""Binary classification states: confusion counts (exact) and scored samples (exact).

>>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
>>> r = BinaryScoreState.from_batch(y, s).result().to_dict()
>>> r["roc_auc"], round(r["average_precision"], 4)
(0.75, 0.8333)
>>> BinaryConfusionState.from_batch(y, y_score=s, threshold=0.5).result().values["accuracy"]
0.75
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assay.stats.intervals import (
    WeightedMoments,
    effective_n,
    little_bootstrap_interval,
    wilson_interval,
    z_value,
)
from assay.stats.outcome import MetricSet
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.state import State, weights_or_ones

_EPS = float(np.finfo(np.float64).eps)
_CHUNK = 1 << 20

# name -> (numerator cells, denominator cells); cells index the 2x2 table as (true, pred)
_PROPORTIONS: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]], str]] = {
    "accuracy": ([(0, 0), (1, 1)], [(0, 0), (0, 1), (1, 0), (1, 1)], "no rows"),
    "precision": ([(1, 1)], [(0, 1), (1, 1)], "no predicted positives (tp + fp = 0)"),
    "recall": ([(1, 1)], [(1, 0), (1, 1)], "no positive labels (tp + fn = 0)"),
    "specificity": ([(0, 0)], [(0, 0), (0, 1)], "no negative labels (tn + fp = 0)"),
    "fpr": ([(0, 1)], [(0, 0), (0, 1)], "no negative labels (tn + fp = 0)"),
    "fnr": ([(1, 0)], [(1, 0), (1, 1)], "no positive labels (tp + fn = 0)"),
    "prevalence": ([(1, 0), (1, 1)], [(0, 0), (0, 1), (1, 0), (1, 1)], "no rows"),
    "predicted_positive_rate": (
        [(0, 1), (1, 1)],
        [(0, 0), (0, 1), (1, 0), (1, 1)],
        "no rows",
    ),
}


class BinaryConfusionState(State):
    """Weighted 2x2 confusion table at a fixed threshold; merges exactly.

    A row is predicted positive when ``y_score >= threshold`` (or from ``y_pred`` when
    given). Keeps Σw, Σw² and the row count per cell, so intervals use the Kish
    effective sample size under weights.
    """

    kind = "binary_confusion"

    @classmethod
    def empty(cls, threshold: float = 0.5) -> BinaryConfusionState:
        """The identity of :meth:`merge`."""
        zeros = np.zeros((2, 2), dtype=np.float64)
        return cls(
            {"threshold": float(threshold)},
            {"w": zeros, "w2": zeros.copy(), "n": np.zeros((2, 2), dtype=np.int64)},
        )

    @classmethod
    def from_batch(
        cls,
        y_true: np.ndarray,
        y_score: np.ndarray | None = None,
        y_pred: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        threshold: float = 0.5,
    ) -> BinaryConfusionState:
        """Count one batch; ``y_true`` and ``y_pred`` hold 0/1."""
        y = np.asarray(y_true).astype(np.int64, copy=False)
        if y_pred is None:
            if y_score is None:
                raise ValueError("from_batch needs y_score or y_pred")
            pred = (np.asarray(y_score, dtype=np.float64) >= threshold).astype(np.int64)
        else:
            pred = np.asarray(y_pred).astype(np.int64, copy=False)
        cell = 2 * y + pred
        n = np.bincount(cell, minlength=4).reshape(2, 2).astype(np.int64)
        if sample_weight is None:  # unit weights: Σw = Σw² = the counts
            w_sum, w2_sum = n.astype(np.float64), n.astype(np.float64)
        else:
            w = weights_or_ones(sample_weight, y.shape[0])
            w_sum = np.bincount(cell, weights=w, minlength=4).reshape(2, 2)
            w2_sum = np.bincount(cell, weights=w * w, minlength=4).reshape(2, 2)
        return cls({"threshold": float(threshold)}, {"w": w_sum, "w2": w2_sum, "n": n})

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: self.data[k] + other[k] for k in ("w", "w2", "n")}

    def result(self, *, seed: int = 0) -> MetricSet:
        """Threshold metrics with Wilson intervals (F1: multinomial bootstrap)."""
        w, w2, n = self.data["w"], self.data["w2"], self.data["n"]
        out = MetricSet()
        out.counts["n"] = int(n.sum())
        table = w if not np.array_equal(w, n) else n
        out.extra["confusion_matrix"] = table.tolist()
        out.extra["threshold"] = self.params["threshold"]
        for name, (num_cells, den_cells, reason) in _PROPORTIONS.items():
            num = sum(w[c] for c in num_cells)
            den = sum(w[c] for c in den_cells)
            den_sq = sum(w2[c] for c in den_cells)
            if den <= 0:
                out.undefined(name, reason)
                continue
            n_eff = effective_n(den, den_sq)
            out.set(name, num / den, wilson_interval(num / den * n_eff, n_eff))
        _tn, fp, fn, tp = w[0, 0], w[0, 1], w[1, 0], w[1, 1]
        denom = 2 * tp + fp + fn
        if denom <= 0:
            out.undefined("f1", "no positive labels and no predicted positives")
        else:
            out.set("f1", 2 * tp / denom, self._f1_interval(seed))
        return out

    def _f1_interval(self, seed: int) -> tuple[float, float] | None:
        w, w2 = self.data["w"], self.data["w2"]
        total = float(w.sum())
        n_eff = effective_n(total, float(w2.sum()))
        if n_eff < 2:
            return None
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(round(n_eff), (w / total).ravel(), size=4000)
        tp, fp, fn = draws[:, 3], draws[:, 1], draws[:, 2]
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.full(denom.shape, np.nan), where=denom > 0)
        f1 = f1[np.isfinite(f1)]
        if f1.size == 0:
            return None
        return (float(np.quantile(f1, 0.025)), float(np.quantile(f1, 0.975)))


class BinaryScoreState(State):
    """The labelled, weighted scores themselves; every score metric merges exactly.

    Gives roc_auc (DeLong interval), average_precision and ece (bootstrap intervals),
    log_loss and brier (normal intervals), and the ROC and reliability curves. Memory is
    9 bytes a row (unit weights are implied by an empty weight array), 17 with weights.
    """

    kind = "binary_scores"

    @classmethod
    def empty(cls, ece_bins: int = 10) -> BinaryScoreState:
        """The identity of :meth:`merge`."""
        return cls(
            {"ece_bins": int(ece_bins)},
            {
                "y_true": np.zeros(0, dtype=np.int8),
                "y_score": np.zeros(0, dtype=np.float64),
                "w": np.zeros(0, dtype=np.float64),
            },
        )

    @classmethod
    def from_batch(
        cls,
        y_true: np.ndarray,
        y_score: np.ndarray,
        sample_weight: np.ndarray | None = None,
        ece_bins: int = 10,
    ) -> BinaryScoreState:
        """Keep one batch of 0/1 labels and scores in [0, 1]."""
        y = np.asarray(y_true).astype(np.int8, copy=False)
        # unit weights are stored as an empty array: 8 bytes a row saved
        w = np.zeros(0) if sample_weight is None else weights_or_ones(sample_weight, y.shape[0])
        return cls(
            {"ece_bins": int(ece_bins)},
            {"y_true": y, "y_score": np.asarray(y_score, dtype=np.float64), "w": w},
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: np.concatenate([self.data[k], other[k]]) for k in ("y_true", "y_score")}
        mine, theirs = self.data["w"], other["w"]
        if mine.size == 0 and theirs.size == 0:
            out["w"] = mine
        else:  # one side weighted: spell out the other side's unit weights
            n_mine, n_theirs = self.data["y_true"].size, other["y_true"].size
            out["w"] = np.concatenate([mine if mine.size else np.ones(n_mine),
                                       theirs if theirs.size else np.ones(n_theirs)])  # fmt: skip
        return out

    def result(self, *, seed: int = 0, curves: bool = False) -> MetricSet:
        """Score metrics with 95% intervals; ``curves`` adds ROC and reliability points."""
        y = self.data["y_true"]  # int8: no float copy of a column the size of the data
        s = self.data["y_score"]
        weighted = self.data["w"].size > 0
        # unit weights as a zero-stride view: no memory, same arithmetic
        w = self.data["w"] if weighted else np.broadcast_to(np.float64(1.0), y.shape)
        out = MetricSet()
        out.counts["n"] = int(y.size)
        if y.size == 0:
            for name in ("roc_auc", "average_precision", "log_loss", "brier", "ece"):
                out.undefined(name, "no rows")
            return out

        def log_loss(lo: int, hi: int) -> np.ndarray:
            label = y[lo:hi]
            p = np.clip(s[lo:hi], _EPS, 1 - _EPS)
            q = np.clip(1 - s[lo:hi], _EPS, 1 - _EPS)
            return -np.where(label == 1, np.log(p), np.log(q))

        def brier(lo: int, hi: int) -> np.ndarray:
            return (y[lo:hi] - s[lo:hi]) ** 2

        for name, per_row in (("log_loss", log_loss), ("brier", brier)):
            moments = WeightedMoments.of(per_row, w)
            out.set(name, moments.mean, moments.interval())
        self._ece(out, y, s, w, seed)

        groups = ScoreGroups.build(s, y, w if weighted else None)
        if groups.pos_total <= 0 or groups.neg_total <= 0:
            reason = "only one class present in y_true"
            out.undefined("roc_auc", reason)
            out.undefined("average_precision", reason if groups.pos_total <= 0 else None)
            if groups.pos_total > 0:
                self._average_precision(out, groups, y, s, w, seed)
        else:
            auc, var = auc_delong(groups, w)
            half = z_value() * np.sqrt(var)
            out.set("roc_auc", auc, (max(0.0, auc - half), min(1.0, auc + half)))
            self._average_precision(out, groups, y, s, w, seed)
            if curves:
                out.extra["roc_curve"] = groups.roc_points()
        return out

    def _average_precision(
        self,
        out: MetricSet,
        groups: ScoreGroups,
        y: np.ndarray,
        s: np.ndarray,
        w: np.ndarray,
        seed: int,
    ) -> None:
        def statistic(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            sub = ScoreGroups.build(s[rows], y[rows], w[rows], keep_rows=True)
            return sub.average_precision_replicates(counts)

        ap = groups.average_precision()
        ci = little_bootstrap_interval(statistic, y.size, estimate=ap, seed=seed)
        out.set("average_precision", ap, ci)

    def _ece(self, out: MetricSet, y: np.ndarray, s: np.ndarray, w: np.ndarray, seed: int) -> None:
        k = self.params["ece_bins"]
        inner = np.linspace(0.0, 1.0, k + 1)[1:-1]
        w_bin, y_bin, s_bin = np.zeros(k), np.zeros(k), np.zeros(k)
        for lo in range(0, s.size, _CHUNK):  # bounded temporaries on long windows
            part = slice(lo, lo + _CHUNK)
            bins_part = np.searchsorted(inner, s[part])
            w_bin += np.bincount(bins_part, weights=w[part], minlength=k)
            y_bin += np.bincount(bins_part, weights=w[part] * y[part], minlength=k)
            s_bin += np.bincount(bins_part, weights=w[part] * s[part], minlength=k)
        ece = _ece_from_sums(w_bin[None], y_bin[None], s_bin[None])[0]

        def statistic(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            replicates = counts.shape[0]
            # one bincount over (replicate, bin) cells for all replicates at once
            bins = np.searchsorted(inner, s[rows])
            cell = (np.arange(replicates)[:, None] * k + bins[None, :]).ravel()
            weight = counts * w[rows]

            def per_bin(values: np.ndarray) -> np.ndarray:
                flat = (weight * values).ravel()
                return np.bincount(cell, weights=flat, minlength=replicates * k).reshape(-1, k)

            return _ece_from_sums(per_bin(np.ones(rows.size)), per_bin(y[rows]), per_bin(s[rows]))

        ci = little_bootstrap_interval(statistic, y.size, estimate=float(ece), seed=seed)
        out.set("ece", float(ece), ci)
        filled = w_bin > 0
        out.extra["reliability"] = {
            "bin_edges": np.linspace(0.0, 1.0, k + 1).tolist(),
            "mean_predicted": _nan_to_none(
                np.divide(s_bin, w_bin, where=filled, out=np.full(k, np.nan))
            ),
            "fraction_positive": _nan_to_none(
                np.divide(y_bin, w_bin, where=filled, out=np.full(k, np.nan))
            ),
            "weight": w_bin.tolist(),
        }


def _ece_from_sums(w_bin: np.ndarray, y_bin: np.ndarray, s_bin: np.ndarray) -> np.ndarray:
    """ECE per row of (replicates, bins) sums: Σ_b |Σy − Σs| / Σw."""
    total = w_bin.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(y_bin - s_bin).sum(axis=1) / total


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def binary_metrics(
    confusion: BinaryConfusionState | None,
    scores: BinaryScoreState | None,
    *,
    curves: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Combine both binary states into one flat metric dictionary."""
    out = MetricSet()
    if confusion is not None:
        out.update(confusion.result(seed=seed))
    if scores is not None:
        out.update(scores.result(seed=seed, curves=curves))
    return out.to_dict()
