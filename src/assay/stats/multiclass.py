"""Multiclass states: a k×k confusion table (exact) and class probabilities (exact).

Classes are given as a list of labels (strings) fixed in the state's parameters; rows
carry class codes (positions in that list).

>>> c = MulticlassConfusionState.from_batch(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]),
...                                          classes=["a", "b", "c"])
>>> r = c.result().to_dict()
>>> r["accuracy"], round(r["f1_macro"], 4)
(0.75, 0.6)
"""

from __future__ import annotations

import numpy as np

from assay.stats.intervals import (
    effective_n,
    little_bootstrap_interval,
    mean_interval,
    wilson_interval,
)
from assay.stats.outcome import MetricSet
from assay.stats.ranking import ScoreGroups, auc_delong
from assay.stats.reduce import dot
from assay.stats.state import State, weights_or_ones

_EPS = float(np.finfo(np.float64).eps)
_AVERAGES = ("macro", "micro", "weighted")


class MulticlassConfusionState(State):
    """Weighted confusion table ``[true, predicted]`` over a fixed list of classes."""

    kind = "multiclass_confusion"

    @classmethod
    def empty(cls, classes: list[str]) -> MulticlassConfusionState:
        """The identity of :meth:`merge`."""
        k = len(classes)
        return cls(
            {"classes": list(classes)},
            {"w": np.zeros((k, k)), "w2": np.zeros((k, k)), "n": np.zeros((k, k), np.int64)},
        )

    @classmethod
    def from_batch(
        cls,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        classes: list[str],
        sample_weight: np.ndarray | None = None,
    ) -> MulticlassConfusionState:
        """Count one batch of class codes."""
        k = len(classes)
        t = np.asarray(y_true, dtype=np.int64)
        cell = t * k + np.asarray(y_pred, dtype=np.int64)
        w = weights_or_ones(sample_weight, t.size)
        return cls(
            {"classes": list(classes)},
            {
                "w": np.bincount(cell, weights=w, minlength=k * k).reshape(k, k),
                "w2": np.bincount(cell, weights=w * w, minlength=k * k).reshape(k, k),
                "n": np.bincount(cell, minlength=k * k).reshape(k, k).astype(np.int64),
            },
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: self.data[k] + other[k] for k in ("w", "w2", "n")}

    def result(self, *, seed: int = 0) -> MetricSet:
        """Accuracy (Wilson) and macro/micro/weighted precision, recall, f1 (bootstrap).

        As scikit-learn, averages run over the classes present in ``y_true`` or the
        predictions, and a class whose precision or recall is undefined counts as 0.
        """
        w, w2, n = self.data["w"], self.data["w2"], self.data["n"]
        out = MetricSet()
        out.counts["n"] = int(n.sum())
        out.extra["classes"] = self.params["classes"]
        out.extra["confusion_matrix"] = (n if np.array_equal(w, n) else w).tolist()
        total = float(w.sum())
        if total <= 0:
            for name in (
                "accuracy",
                *(f"{m}_{a}" for m in ("precision", "recall", "f1") for a in _AVERAGES),
            ):
                out.undefined(name, "no rows")
            return out
        n_eff = effective_n(total, float(w2.sum()))
        acc = float(np.trace(w) / total)
        out.set("accuracy", acc, wilson_interval(acc * n_eff, n_eff))
        present = (n.sum(axis=0) + n.sum(axis=1)) > 0  # by rows, as scikit-learn's labels
        point = _averaged_scores(w[None], present)
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(max(round(n_eff), 1), (w / total).ravel(), size=2000)
        k = w.shape[0]
        boot = _averaged_scores(draws.reshape(-1, k, k).astype(np.float64), present)
        for name, values in point.items():
            reps = boot[name][np.isfinite(boot[name])]
            ci = (
                (float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975)))
                if reps.size
                else None
            )
            out.set(name, float(values[0]), ci)
        no_pred = [
            c
            for c, p, s in zip(self.params["classes"], present, w.sum(axis=0), strict=True)
            if p and s == 0
        ]
        if no_pred:
            out.extra["notes"] = [
                f"class {c!r} is never predicted: its precision counts as 0" for c in no_pred
            ]
        return out


def _averaged_scores(tables: np.ndarray, present: np.ndarray) -> dict[str, np.ndarray]:
    """Macro/micro/weighted precision, recall, f1 for a stack of (k, k) tables.

    ``present`` marks the classes that macro averages run over.
    """
    tp = np.diagonal(tables, axis1=1, axis2=2)
    predicted = tables.sum(axis=1)
    actual = tables.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
        n_present = present.sum()
        support = actual.sum(axis=1)
        micro = tp.sum(axis=1) / support
        out: dict[str, np.ndarray] = {}
        for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
            out[f"{name}_macro"] = np.where(present, per_class, 0.0).sum(axis=1) / n_present
            out[f"{name}_micro"] = micro
            out[f"{name}_weighted"] = (per_class * actual).sum(axis=1) / support
    return out


class MulticlassProbaState(State):
    """True class codes, class-probability rows and weights: log_loss and one-vs-rest AUC."""

    kind = "multiclass_proba"

    @classmethod
    def empty(cls, classes: list[str]) -> MulticlassProbaState:
        """The identity of :meth:`merge`."""
        k = len(classes)
        return cls(
            {"classes": list(classes)},
            {"y_true": np.zeros(0, np.int64), "proba": np.zeros((0, k)), "w": np.zeros(0)},
        )

    @classmethod
    def from_batch(
        cls,
        y_true: np.ndarray,
        proba: np.ndarray,
        classes: list[str],
        sample_weight: np.ndarray | None = None,
    ) -> MulticlassProbaState:
        """Keep one batch; ``proba`` has one column per class, in ``classes`` order."""
        t = np.asarray(y_true, dtype=np.int64)
        return cls(
            {"classes": list(classes)},
            {
                "y_true": t,
                "proba": np.asarray(proba, dtype=np.float64).reshape(t.size, len(classes)),
                "w": weights_or_ones(sample_weight, t.size),
            },
        )

    def _merge_data(self, other: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([self.data[k], other[k]]) for k in self.data}

    def result(self, *, seed: int = 0) -> MetricSet:
        """log_loss (normal interval) and macro one-vs-rest roc_auc (bootstrap interval)."""
        t, proba, w = self.data["y_true"], self.data["proba"], self.data["w"]
        out = MetricSet()
        if t.size == 0:
            out.undefined("log_loss", "no rows")
            out.undefined("roc_auc", "no rows")
            return out
        p_true = np.clip(proba[np.arange(t.size), t], _EPS, 1 - _EPS)
        losses = -np.log(p_true)
        out.set("log_loss", dot(w, losses) / float(w.sum()), mean_interval(losses, w))
        k = proba.shape[1]
        missing = [c for i, c in enumerate(self.params["classes"]) if not np.any(t == i)]
        if missing:
            out.undefined("roc_auc", f"classes absent from y_true: {missing}")
            return out
        aucs = []
        for c in range(k):
            groups = ScoreGroups.build(proba[:, c], (t == c).astype(np.float64), w)
            aucs.append(auc_delong(groups, w)[0])

        def macro_auc(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            reps = []
            for c in range(k):
                g = ScoreGroups.build(
                    proba[rows, c], (t[rows] == c).astype(np.float64), w[rows], keep_rows=True
                )
                reps.append(g.auc_replicates(counts))
            return np.mean(reps, axis=0)

        auc = float(np.mean(aucs))
        out.set(
            "roc_auc", auc, little_bootstrap_interval(macro_auc, t.size, estimate=auc, seed=seed)
        )
        return out
