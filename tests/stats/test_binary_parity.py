"""Binary metrics against scikit-learn and hand-worked references (to 1e-9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from assay.stats import BinaryConfusionState, BinaryScoreState, binary_metrics

RTOL = 1e-9
ATOL = 1e-12

CONFUSION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "specificity",
    "fpr",
    "fnr",
    "prevalence",
    "predicted_positive_rate",
)
SCORE_METRICS = ("roc_auc", "average_precision", "log_loss", "brier", "ece")


def approx(value: float) -> Any:
    """pytest.approx at the suite's tolerance."""
    return pytest.approx(value, rel=RTOL, abs=ATOL)


def make_binary(
    seed: int, n: int, weighted: bool, decimals: int | None = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels, scores in [0, 1] correlated with the labels (ties when rounded), weights."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    raw = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    s = raw if decimals is None else np.round(raw, decimals)
    w = rng.uniform(0.05, 4.0, n) if weighted else None
    return y, s, w


def reference_ece(y: np.ndarray, s: np.ndarray, w: np.ndarray | None, n_bins: int = 10) -> float:
    """ECE with scikit-learn's calibration_curve binning: Σ_b share_b |mean(y) - mean(p)|."""
    weights = np.ones(y.size) if w is None else w
    bin_ids = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], s)
    total = 0.0
    for b in np.unique(bin_ids):
        in_bin = bin_ids == b
        wb = weights[in_bin]
        share = wb.sum() / weights.sum()
        gap = abs(np.average(y[in_bin], weights=wb) - np.average(s[in_bin], weights=wb))
        total += share * gap
    return float(total)


def reference_confusion(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None) -> dict[str, Any]:
    """Threshold metrics from scikit-learn (and numpy for the plain rates)."""
    cm = confusion_matrix(y, pred, labels=[0, 1], sample_weight=w)
    tn, fp, fn, tp = cm.ravel()
    return {
        "accuracy": accuracy_score(y, pred, sample_weight=w),
        "precision": precision_score(y, pred, sample_weight=w, zero_division=np.nan),
        "recall": recall_score(y, pred, sample_weight=w, zero_division=np.nan),
        "f1": f1_score(y, pred, sample_weight=w, zero_division=np.nan),
        "specificity": recall_score(y, pred, pos_label=0, sample_weight=w, zero_division=np.nan),
        "fpr": fp / (fp + tn) if fp + tn > 0 else np.nan,
        "fnr": fn / (fn + tp) if fn + tp > 0 else np.nan,
        "prevalence": np.average(y, weights=w),
        "predicted_positive_rate": np.average(pred, weights=w),
        "confusion_matrix": cm,
    }


def reference_scores(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    """Score metrics from scikit-learn."""
    return {
        "roc_auc": roc_auc_score(y, s, sample_weight=w),
        "average_precision": average_precision_score(y, s, sample_weight=w),
        "log_loss": log_loss(y, s, labels=[0, 1], sample_weight=w),
        "brier": brier_score_loss(y, s, sample_weight=w),
        "ece": reference_ece(y, s, w),
    }


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 0.37, 0.4])
@pytest.mark.parametrize("seed", [1, 2])
def test_confusion_metrics_match_sklearn(seed: int, threshold: float, weighted: bool) -> None:
    y, s, w = make_binary(seed, 700, weighted)
    pred = (s >= threshold).astype(int)
    if threshold == 0.4:  # rounded scores land exactly on the threshold: >= must count them
        assert np.any(s == threshold)
    got = BinaryConfusionState.from_batch(y, y_score=s, sample_weight=w, threshold=threshold)
    out = got.result().to_dict()
    ref = reference_confusion(y, pred, w)
    for name in CONFUSION_METRICS:
        assert out[name] == approx(ref[name]), name
        lo, hi = out[f"{name}_ci"]
        assert 0.0 <= lo <= hi <= 1.0, name
    np.testing.assert_allclose(
        np.asarray(out["confusion_matrix"], dtype=float),
        ref["confusion_matrix"],
        rtol=RTOL,
        atol=ATOL,
    )
    assert out["n"] == y.size
    assert out["threshold"] == threshold


@pytest.mark.parametrize("weighted", [False, True])
def test_confusion_from_predicted_labels(weighted: bool) -> None:
    y, _s, w = make_binary(3, 500, weighted)
    rng = np.random.default_rng(30)
    pred = np.where(rng.random(y.size) < 0.8, y, 1 - y)
    out = BinaryConfusionState.from_batch(y, y_pred=pred, sample_weight=w).result().to_dict()
    ref = reference_confusion(y, pred, w)
    for name in CONFUSION_METRICS:
        assert out[name] == approx(ref[name]), name


def test_unweighted_confusion_matrix_is_integer_counts() -> None:
    y, s, _ = make_binary(4, 300, False)
    out = BinaryConfusionState.from_batch(y, y_score=s).result().to_dict()
    cm = confusion_matrix(y, (s >= 0.5).astype(int), labels=[0, 1])
    assert out["confusion_matrix"] == cm.tolist()


def test_confusion_hand_worked() -> None:
    # tn=2, fp=1, fn=1, tp=3 -> accuracy 5/7, precision 3/4, recall 3/4, f1 3/4,
    # specificity 2/3, fpr 1/3, fnr 1/4, prevalence 4/7, predicted positive rate 4/7
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.7, 0.3, 0.6, 0.8, 0.9])
    out = BinaryConfusionState.from_batch(y, y_score=s).result().to_dict()
    expected = {
        "accuracy": 5 / 7,
        "precision": 3 / 4,
        "recall": 3 / 4,
        "f1": 3 / 4,
        "specificity": 2 / 3,
        "fpr": 1 / 3,
        "fnr": 1 / 4,
        "prevalence": 4 / 7,
        "predicted_positive_rate": 4 / 7,
    }
    for name, value in expected.items():
        assert out[name] == approx(value), name
    assert out["confusion_matrix"] == [[2, 1], [1, 3]]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_score_metrics_match_sklearn(seed: int, weighted: bool) -> None:
    y, s, w = make_binary(seed, 900, weighted)
    assert np.unique(s).size < s.size  # the data has ties
    out = BinaryScoreState.from_batch(y, s, sample_weight=w).result().to_dict()
    ref = reference_scores(y, s, w)
    for name in SCORE_METRICS:
        assert out[name] == approx(ref[name]), name
        assert out[f"{name}_ci"] is not None, name
    assert out["n"] == y.size
    assert "undefined" not in out


def test_score_metrics_with_scores_at_zero_and_one() -> None:
    # confident mistakes: log_loss clips at float64 eps exactly as scikit-learn
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    s = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.25, 0.75])
    out = BinaryScoreState.from_batch(y, s).result().to_dict()
    ref = reference_scores(y, s, None)
    for name in SCORE_METRICS:
        assert out[name] == approx(ref[name]), name


def test_auc_hand_worked_with_ties() -> None:
    # positives 0.4, 0.8; negatives 0.1, 0.4: pairs (0.4>0.1)=1, (0.4=0.4)=1/2,
    # (0.8>0.1)=1, (0.8>0.4)=1 -> AUC = 3.5 / 4
    y = np.array([1, 1, 0, 0])
    s = np.array([0.4, 0.8, 0.1, 0.4])
    out = BinaryScoreState.from_batch(y, s).result().to_dict()
    assert out["roc_auc"] == approx(3.5 / 4)


def test_ece_cross_checked_with_calibration_curve() -> None:
    y, s, _ = make_binary(8, 2000, False, decimals=None)  # continuous: no value on an edge
    out = BinaryScoreState.from_batch(y, s).result().to_dict()
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(s, bins=np.linspace(0.0, 1.0, 11))
    counts = counts[counts > 0]
    expected = float(np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred)))
    assert out["ece"] == approx(expected)
    assert out["ece"] == approx(reference_ece(y, s, None))


def test_ece_bins_parameter() -> None:
    y, s, w = make_binary(9, 600, True)
    out = BinaryScoreState.from_batch(y, s, sample_weight=w, ece_bins=7).result().to_dict()
    assert out["ece"] == approx(reference_ece(y, s, w, n_bins=7))
    assert len(out["reliability"]["weight"]) == 7


def test_reliability_bins_match_calibration_curve() -> None:
    y, s, _ = make_binary(10, 1500, False)
    rel = BinaryScoreState.from_batch(y, s).result().to_dict()["reliability"]
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    filled = [i for i, v in enumerate(rel["mean_predicted"]) if v is not None]
    np.testing.assert_allclose(
        [rel["mean_predicted"][i] for i in filled], prob_pred, rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        [rel["fraction_positive"][i] for i in filled], prob_true, rtol=RTOL, atol=ATOL
    )
    bin_ids = np.searchsorted(np.linspace(0.0, 1.0, 11)[1:-1], s)
    np.testing.assert_allclose(rel["weight"], np.bincount(bin_ids, minlength=10))


@pytest.mark.parametrize("weighted", [False, True])
def test_all_negative_window(weighted: bool) -> None:
    y, s, w = make_binary(11, 200, weighted)
    y = np.zeros_like(y)
    out = BinaryScoreState.from_batch(y, s, sample_weight=w).result().to_dict()
    assert out["roc_auc"] is None and out["roc_auc_ci"] is None
    assert out["average_precision"] is None
    assert out["undefined"]["roc_auc"]
    assert out["undefined"]["average_precision"]
    assert out["log_loss"] == approx(log_loss(y, s, labels=[0, 1], sample_weight=w))
    assert out["brier"] == approx(brier_score_loss(y, s, sample_weight=w, pos_label=1))
    assert out["ece"] == approx(reference_ece(y, s, w))

    conf = BinaryConfusionState.from_batch(y, y_score=s, sample_weight=w).result().to_dict()
    assert conf["recall"] is None and conf["fnr"] is None
    assert conf["undefined"]["recall"] and conf["undefined"]["fnr"]
    assert conf["accuracy"] == approx(accuracy_score(y, (s >= 0.5).astype(int), sample_weight=w))
    assert conf["specificity"] == approx(conf["accuracy"])


@pytest.mark.parametrize("weighted", [False, True])
def test_all_positive_window(weighted: bool) -> None:
    y, s, w = make_binary(12, 200, weighted)
    y = np.ones_like(y)
    out = BinaryScoreState.from_batch(y, s, sample_weight=w).result().to_dict()
    assert out["roc_auc"] is None
    assert out["undefined"]["roc_auc"]
    # average precision is defined with positives only (every threshold has precision 1)
    assert out["average_precision"] == approx(average_precision_score(y, s, sample_weight=w))
    assert out["log_loss"] == approx(log_loss(y, s, labels=[0, 1], sample_weight=w))

    conf = BinaryConfusionState.from_batch(y, y_score=s, sample_weight=w).result().to_dict()
    assert conf["specificity"] is None and conf["fpr"] is None
    assert conf["undefined"]["specificity"] and conf["undefined"]["fpr"]


def test_no_predicted_positives() -> None:
    y, s, _ = make_binary(13, 100, False)
    out = BinaryConfusionState.from_batch(y, y_score=s, threshold=1.5).result().to_dict()
    assert out["precision"] is None
    assert out["undefined"]["precision"]
    assert out["recall"] == 0.0
    assert out["f1"] == approx(f1_score(y, np.zeros_like(y), zero_division=0.0))


def test_empty_states() -> None:
    scores = BinaryScoreState.empty().result().to_dict()
    assert scores["n"] == 0
    for name in SCORE_METRICS:
        assert scores[name] is None, name
        assert scores[f"{name}_ci"] is None, name
        assert scores["undefined"][name], name

    conf = BinaryConfusionState.empty(threshold=0.3).result().to_dict()
    assert conf["n"] == 0
    assert conf["confusion_matrix"] == [[0, 0], [0, 0]]
    for name in CONFUSION_METRICS:
        assert conf[name] is None, name
        assert conf["undefined"][name], name

    both = binary_metrics(BinaryConfusionState.empty(), BinaryScoreState.empty())
    assert all(both[name] is None for name in (*CONFUSION_METRICS, *SCORE_METRICS))


def test_binary_metrics_combines_both_states() -> None:
    y, s, w = make_binary(14, 400, True)
    out = binary_metrics(
        BinaryConfusionState.from_batch(y, y_score=s, sample_weight=w, threshold=0.6),
        BinaryScoreState.from_batch(y, s, sample_weight=w),
        curves=True,
    )
    ref = {**reference_confusion(y, (s >= 0.6).astype(int), w), **reference_scores(y, s, w)}
    for name in (*CONFUSION_METRICS, *SCORE_METRICS):
        assert out[name] == approx(ref[name]), name
    curve = out["roc_curve"]
    assert curve["fpr"][0] == 0.0 and curve["tpr"][0] == 0.0
    assert curve["fpr"][-1] == approx(1.0) and curve["tpr"][-1] == approx(1.0)


def test_zero_weights_match_sklearn() -> None:
    # rows with weight 0 count for nothing; here they include the top-scored rows, so the
    # highest threshold has no weight at all (scikit-learn's precision there is 0 and its
    # recall step is 0, so it adds nothing to average precision)
    y, s, w = make_binary(15, 400, True)
    assert w is not None
    w[np.argsort(s, kind="stable")[-6:]] = 0.0
    w[:40] = 0.0
    out = binary_metrics(
        BinaryConfusionState.from_batch(y, y_score=s, sample_weight=w),
        BinaryScoreState.from_batch(y, s, sample_weight=w),
    )
    ref = {**reference_confusion(y, (s >= 0.5).astype(int), w), **reference_scores(y, s, w)}
    for name in (*CONFUSION_METRICS, *SCORE_METRICS):
        assert out[name] == approx(ref[name]), name


def test_zero_weight_on_top_score_minimal() -> None:
    y = np.array([1, 0, 1])
    s = np.array([0.2, 0.5, 0.9])
    w = np.array([1.0, 1.0, 0.0])
    out = BinaryScoreState.from_batch(y, s, sample_weight=w).result().to_dict()
    assert out["average_precision"] == approx(average_precision_score(y, s, sample_weight=w))
    assert out["average_precision"] == approx(0.5)  # one positive, ranked below a negative
