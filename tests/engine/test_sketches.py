"""Approximate states against scikit-learn and scipy on the full data: within their bounds.

Each check computes the exact value independently (scikit-learn, scipy, or the
definition in ARCHITECTURE.md written out here), then asserts that the sketch's value is
within the bound the sketch itself reports, and that the bound is small enough to matter.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from assay.stats import State
from assay.stats.numeric_sketch import NumericHistogramState, sketch_numeric_drift
from assay.stats.score_sketch import BinaryScoreSketchState


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int64)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.3 * y - 1)))
    w = rng.gamma(2.0, 0.5, size=n)
    return y, s, w


def _sketch_in_pieces(
    y: np.ndarray, s: np.ndarray, w: np.ndarray | None, pieces: int, bins: int = 4096
) -> BinaryScoreSketchState:
    state = BinaryScoreSketchState.empty(bins)
    for part in np.array_split(np.arange(y.size), pieces):
        one = BinaryScoreSketchState.from_batch(
            y[part], s[part], None if w is None else w[part], bins=bins
        )
        state = state.merge(State.from_bytes(one.to_bytes()))  # type: ignore[assignment]
    return state


@pytest.mark.parametrize("weighted", [False, True])
def test_score_sketch_within_its_bounds_of_scikit_learn(weighted: bool) -> None:
    y, s, w = _scores(200_000, seed=3)
    weight = w if weighted else None
    r = _sketch_in_pieces(y, s, weight, pieces=7).result().to_dict()
    bounds = r["error_bounds"]
    auc = roc_auc_score(y, s, sample_weight=weight)
    ap = average_precision_score(y, s, sample_weight=weight)
    assert abs(r["roc_auc"] - auc) <= bounds["roc_auc"]
    assert abs(r["average_precision"] - ap) <= bounds["average_precision"]
    assert bounds["roc_auc"] < 5e-4 and bounds["average_precision"] < 5e-3  # bounds that bite
    assert r["log_loss"] == pytest.approx(log_loss(y, s, sample_weight=weight), rel=1e-9)
    assert r["brier"] == pytest.approx(brier_score_loss(y, s, sample_weight=weight), rel=1e-9)
    # ECE by hand: 10 equal-width bins, Σ|Σw·y − Σw·s| / Σw
    ww = np.ones_like(s) if weight is None else weight
    cells = np.searchsorted(np.linspace(0, 1, 11)[1:-1], s)
    gap = np.bincount(cells, ww * y, 10) - np.bincount(cells, ww * s, 10)
    assert r["ece"] == pytest.approx(np.abs(gap).sum() / ww.sum(), rel=1e-9)


def test_score_sketch_bound_is_attained_when_a_bin_hides_the_ranking() -> None:
    """Positives just above negatives in the same bin: exact AUC 1, sketch 0.5, bound 0.5."""
    y = np.array([1, 1, 0, 0])
    s = np.array([0.50002, 0.50003, 0.50000, 0.50001])
    r = BinaryScoreSketchState.from_batch(y, s, bins=100).result().to_dict()
    assert roc_auc_score(y, s) == 1.0
    assert r["roc_auc"] == 0.5
    assert r["error_bounds"]["roc_auc"] == 0.5
    assert (
        abs(r["average_precision"] - average_precision_score(y, s))
        <= (r["error_bounds"]["average_precision"])
    )


def test_score_sketch_size_does_not_grow_with_rows() -> None:
    small = BinaryScoreSketchState.from_batch(*_scores(1_000, 1)[:2])
    large = BinaryScoreSketchState.from_batch(*_scores(300_000, 1)[:2])
    assert len(small.to_bytes()) == len(large.to_bytes()) < 70_000


def _psi_js_by_definition(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    shares = [
        np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1) / x.size
        for x in (ref, cur)
    ]
    r, c = (np.clip(v, 1e-4, None) for v in shares)
    return float(np.sum((c - r) * np.log(c / r))), float(jensenshannon(*shares, base=2))


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.15, 1.0), (0.0, 1.4), (1.0, 0.5)])
def test_numeric_sketch_within_its_bounds_of_scipy(shift: float, scale: float) -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=150_000)
    cur = rng.normal(shift, scale, size=120_000)
    lo, hi = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))

    def sketch(x: np.ndarray) -> NumericHistogramState:
        parts = [NumericHistogramState.from_batch(p, lo, hi) for p in np.array_split(x, 5)]
        state = parts[0]
        for p in parts[1:]:
            state = state.merge(p)
        return state

    r = sketch_numeric_drift(sketch(ref), sketch(cur))
    bounds = r["error_bounds"]
    ks = ks_2samp(ref, cur).statistic
    wd = wasserstein_distance(ref, cur)
    psi, js = _psi_js_by_definition(ref, cur)
    assert abs(r["ks"]["statistic"] - ks) <= bounds["ks"] + 1e-12
    assert abs(r["wasserstein"] - wd) <= bounds["wasserstein"]
    assert abs(r["wasserstein_normed"] - wd / ref.std()) <= bounds["wasserstein_normed"]
    assert abs(r["psi"] - psi) <= bounds["psi"]
    assert abs(r["jensen_shannon"] - js) <= bounds["jensen_shannon"]
    width = (hi - lo) / 4096
    assert bounds["ks"] < 2e-3 and bounds["wasserstein"] <= 2 * width
    assert bounds["psi"] < 0.01 + 0.03 * psi and bounds["jensen_shannon"] < 0.01 + 0.03 * js


def test_numeric_sketch_says_when_no_bound_holds() -> None:
    """Values outside the agreed range void the bounds (the result says None, not a number)."""
    ref = NumericHistogramState.from_batch(np.linspace(0, 1, 1000), 0.0, 1.0)
    cur = NumericHistogramState.from_batch(np.linspace(0.5, 2.0, 1000), 0.0, 1.0)
    r = sketch_numeric_drift(ref, cur)
    assert set(r["error_bounds"].values()) == {None}


def test_numeric_sketches_over_different_ranges_do_not_mix() -> None:
    a = NumericHistogramState.from_batch(np.arange(10.0), 0.0, 9.0)
    b = NumericHistogramState.from_batch(np.arange(10.0), 0.0, 10.0)
    with pytest.raises(ValueError, match="hi"):
        sketch_numeric_drift(a, b)
