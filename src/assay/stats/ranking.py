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


@dataclass(frozen=True)
class ScoreGroups:
    """Positive and negative weight per distinct score, in ascending score order."""

    order: np.ndarray  # row order that sorts the scores ascending
    ends: np.ndarray  # position (in sorted order) of the last row of each tie group
    pos: np.ndarray  # positive weight per group
    neg: np.ndarray  # negative weight per group
    pos_below: np.ndarray  # positive weight of all lower groups
    neg_below: np.ndarray  # negative weight of all lower groups
    pos_w2: float  # Σw² over positives (for the effective count)
    neg_w2: float
    row_weight: np.ndarray  # weights in sorted order
    row_label: np.ndarray  # labels (0/1) in sorted order

    @property
    def pos_total(self) -> float:
        """Total positive weight."""
        return float(self.pos_below[-1] + self.pos[-1]) if self.pos.size else 0.0

    @property
    def neg_total(self) -> float:
        """Total negative weight."""
        return float(self.neg_below[-1] + self.neg[-1]) if self.neg.size else 0.0

    @classmethod
    def build(cls, y_score: np.ndarray, y_true: np.ndarray, weight: np.ndarray) -> ScoreGroups:
        """Sort once and sum weights per tie group (vectorised)."""
        order = np.argsort(y_score, kind="stable")
        s = y_score[order]
        ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if s.size else np.zeros(0, int)
        row_weight = weight[order]
        row_label = y_true[order]
        pos_row = row_weight * row_label
        neg_row = row_weight - pos_row
        cpos = np.cumsum(pos_row)[ends]
        cneg = np.cumsum(neg_row)[ends]
        pos = np.diff(cpos, prepend=0.0)
        neg = np.diff(cneg, prepend=0.0)
        w2 = row_weight * row_weight
        return cls(
            order=order,
            ends=ends,
            pos=pos,
            neg=neg,
            pos_below=cpos - pos,
            neg_below=cneg - neg,
            pos_w2=float(np.dot(w2, row_label)),
            neg_w2=float(np.dot(w2, 1.0 - row_label)),
            row_weight=row_weight,
            row_label=row_label,
        )

    def average_precision(self) -> float:
        """Σ over thresholds (descending) of Δrecall × precision, as scikit-learn."""
        big_p, big_n = self.pos_total, self.neg_total
        tp = big_p - self.pos_below
        fp = big_n - self.neg_below
        predicted = tp + fp  # 0 only where every row at or above has weight 0
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        return float(np.sum(self.pos / big_p * precision))

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
    v10 = (groups.neg_below + 0.5 * groups.neg) / big_n  # per positive in the group
    auc = float(np.dot(groups.pos, v10) / big_p)
    v01 = (big_p - groups.pos_below - 0.5 * groups.pos) / big_p  # per negative
    m_eff = big_p * big_p / groups.pos_w2
    n_eff = big_n * big_n / groups.neg_w2
    ms10 = float(np.dot(groups.pos, (v10 - auc) ** 2) / big_p)
    ms01 = float(np.dot(groups.neg, (v01 - auc) ** 2) / big_n)
    var = (ms10 / (m_eff - 1) if m_eff > 1 else np.inf) + (
        ms01 / (n_eff - 1) if n_eff > 1 else np.inf
    )
    return auc, float(var)
