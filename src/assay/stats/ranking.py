"""Rank statistics on scores grouped by tied value: ROC AUC with DeLong variance, AP.

>>> g = ScoreGroups.build(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1.0]),
...                       np.ones(4))
>>> auc, var = auc_delong(g, np.ones(4))
>>> auc, round(g.average_precision(), 4)
(0.75, 0.8333)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.stats.reduce import dot


@dataclass(frozen=True)
class ScoreGroups:
    """Positive and negative weight per distinct score, in ascending score order."""

    order: np.ndarray  # row order that sorts the scores ascending (only with keep_rows)
    ends: np.ndarray  # sorted position of each tie group's last row (only with keep_rows)
    cpos: np.ndarray  # positive weight of this group and all lower ones
    cneg: np.ndarray  # negative weight of this group and all lower ones
    pos_w2: float  # Σw² over positives (for the effective count)
    neg_w2: float
    row_weight: np.ndarray  # weights in sorted order (only with keep_rows)
    row_label: np.ndarray  # labels (0/1) in sorted order (only with keep_rows)

    # Only the two cumulative arrays are kept (one float a group each); the per-group and
    # "below" arrays are derived on use, which keeps long windows' memory down.
    @property
    def pos(self) -> np.ndarray:
        """Positive weight per group."""
        return np.diff(self.cpos, prepend=0.0)

    @property
    def neg(self) -> np.ndarray:
        """Negative weight per group."""
        return np.diff(self.cneg, prepend=0.0)

    @property
    def pos_below(self) -> np.ndarray:
        """Positive weight of all lower groups."""
        return np.concatenate(([0.0], self.cpos[:-1]))

    @property
    def neg_below(self) -> np.ndarray:
        """Negative weight of all lower groups."""
        return np.concatenate(([0.0], self.cneg[:-1]))

    @property
    def pos_total(self) -> float:
        """Total positive weight."""
        return float(self.cpos[-1]) if self.cpos.size else 0.0

    @property
    def neg_total(self) -> float:
        """Total negative weight."""
        return float(self.cneg[-1]) if self.cneg.size else 0.0

    @classmethod
    def build(
        cls,
        y_score: np.ndarray,
        y_true: np.ndarray,
        weight: np.ndarray | None,
        *,
        keep_rows: bool = False,
    ) -> ScoreGroups:
        """Sort once and sum weights per tie group (vectorised); ``None`` = unit weights.

        ``keep_rows`` keeps the per-row weights and labels in sorted order, which the
        bootstrap replicates need; without it only per-group arrays are kept.
        """
        if weight is None and not keep_rows:
            return cls._build_unweighted(y_score, y_true)
        if weight is None:
            weight = np.ones(y_score.shape[0])
        order = np.argsort(y_score)  # tie order is irrelevant: ties are summed per group
        s = y_score[order]
        ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, int)
        del s
        row_weight = weight[order]
        row_label = y_true[order]
        cpos = np.cumsum(row_weight * row_label)[ends]
        cneg = np.cumsum(row_weight)[ends] - cpos
        w2_total = dot(row_weight, row_weight)
        pos_w2 = dot(row_weight * row_weight, row_label)
        return cls(
            order=order if keep_rows else np.zeros(0, np.int64),
            ends=ends if keep_rows else np.zeros(0, np.int64),
            cpos=cpos,
            cneg=cneg,
            pos_w2=pos_w2,
            neg_w2=w2_total - pos_w2,
            row_weight=row_weight if keep_rows else np.zeros(0),
            row_label=row_label if keep_rows else np.zeros(0),
        )

    @classmethod
    def _build_unweighted(cls, y_score: np.ndarray, y_true: np.ndarray) -> ScoreGroups:
        order = np.argsort(y_score)
        s = y_score[order]
        ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, int)
        del s
        cpos = np.cumsum(y_true[order], dtype=np.float64)[ends]
        del order
        cneg = (ends + 1.0) - cpos
        del ends
        big_p = float(cpos[-1]) if cpos.size else 0.0
        empty = np.zeros(0)
        return cls(order=empty.astype(np.int64), ends=empty.astype(np.int64), cpos=cpos,
                   cneg=cneg, pos_w2=big_p, neg_w2=float(y_score.shape[0]) - big_p,
                   row_weight=empty, row_label=empty)  # fmt: skip

    def average_precision(self) -> float:
        """Σ over thresholds (descending) of Δrecall × precision, as scikit-learn."""
        big_p, big_n = self.pos_total, self.neg_total
        pos = self.pos
        tp = big_p - self.cpos + pos  # positives at or above each threshold
        predicted = tp + (big_n - self.cneg + self.neg)  # 0 only if all those rows weigh 0
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        return dot(pos, precision) / big_p

    def average_precision_replicates(self, counts: np.ndarray) -> np.ndarray:
        """Average precision under each row of resampling ``counts`` (replicates, rows)."""
        weight = counts[:, self.order] * self.row_weight
        cpos = np.cumsum(weight * self.row_label, axis=1)[:, self.ends]
        cneg = np.cumsum(weight, axis=1)[:, self.ends] - cpos
        pos = np.diff(cpos, axis=1, prepend=0.0)
        neg = np.diff(cneg, axis=1, prepend=0.0)
        tp = cpos[:, -1:] - (cpos - pos)
        fp = cneg[:, -1:] - (cneg - neg)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            return np.sum(pos * precision, axis=1) / cpos[:, -1]

    def auc_replicates(self, counts: np.ndarray) -> np.ndarray:
        """ROC AUC under each row of resampling ``counts`` (replicates, rows)."""
        weight = counts[:, self.order] * self.row_weight
        cpos = np.cumsum(weight * self.row_label, axis=1)[:, self.ends]
        cneg = np.cumsum(weight, axis=1)[:, self.ends] - cpos
        pos = np.diff(cpos, axis=1, prepend=0.0)
        neg = np.diff(cneg, axis=1, prepend=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = cpos[:, -1] * cneg[:, -1]
            return np.sum(pos * (cneg - neg + 0.5 * neg), axis=1) / total

    def roc_points(self, max_points: int = 200) -> dict[str, list[float]]:
        """ROC curve (fpr, tpr) from the highest threshold down, thinned to ``max_points``."""
        tpr = np.r_[0.0, (self.pos_total - self.pos_below)[::-1] / self.pos_total]
        fpr = np.r_[0.0, (self.neg_total - self.neg_below)[::-1] / self.neg_total]
        if tpr.size > max_points:
            keep = np.unique(np.r_[np.linspace(0, tpr.size - 1, max_points).astype(int)])
            tpr, fpr = tpr[keep], fpr[keep]
        return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def auc_delong(groups: ScoreGroups, weight: np.ndarray) -> tuple[float, float]:
    """ROC AUC (ties count one half) and its DeLong variance.

    With unit weights this is DeLong, DeLong & Clarke-Pearson (1988) in the grouped form of
    Sun & Xu (2014). Under weights the structural components are weighted and the
    effective (Kish) counts replace the class sizes.
    """
    big_p, big_n = groups.pos_total, groups.neg_total
    pos, neg = groups.pos, groups.neg
    v10 = (groups.cneg - 0.5 * neg) / big_n  # per positive: negatives below + half the ties
    auc = dot(pos, v10) / big_p
    v01 = (big_p - groups.cpos + 0.5 * pos) / big_p  # per negative: positives above + half
    m_eff = big_p * big_p / groups.pos_w2
    n_eff = big_n * big_n / groups.neg_w2
    # sums of squares: never negative, though a group's weight (a difference of cumulative
    # sums) may round to a hair below zero
    ms10 = max(dot(pos, (v10 - auc) ** 2) / big_p, 0.0)
    ms01 = max(dot(neg, (v01 - auc) ** 2) / big_n, 0.0)
    var = (ms10 / (m_eff - 1) if m_eff > 1 else np.inf) + (
        ms01 / (n_eff - 1) if n_eff > 1 else np.inf
    )
    return auc, float(var)
