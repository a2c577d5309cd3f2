"""Multiclass and regression metrics against scikit-learn and numpy (to 1e-9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    median_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from assay.stats import (
    MulticlassConfusionState,
    MulticlassProbaState,
    RegressionState,
    weighted_median,
)

RTOL = 1e-9
ATOL = 1e-12
AVERAGES = ("macro", "micro", "weighted")
CLASSES = ["ant", "bee", "cat", "dog", "eel"]
REGRESSION_METRICS = ("mae", "mse", "rmse", "mape", "r2", "mean_error", "median_absolute_error")


def approx(value: float) -> Any:
    """pytest.approx at the suite's tolerance."""
    return pytest.approx(value, rel=RTOL, abs=ATOL)


# -- multiclass ------------------------------------------------------------------------


def make_labels(
    seed: int, n: int, weighted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Class codes over CLASSES where "dog" (3) is never predicted, "eel" (4) is only
    predicted (never true), and every class is otherwise mixed up a little."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    noise = rng.choice([0, 1, 2, 4], size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, noise)
    y_pred = np.where(y_pred == 3, 2, y_pred)
    w = rng.uniform(0.1, 3.0, n) if weighted else None
    return y_true, y_pred, w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_multiclass_confusion_matches_sklearn(seed: int, weighted: bool) -> None:
    y_true, y_pred, w = make_labels(seed, 800, weighted)
    assert not np.any(y_pred == 3) and np.any(y_pred == 4) and not np.any(y_true == 4)
    state = MulticlassConfusionState.from_batch(y_true, y_pred, CLASSES, sample_weight=w)
    out = state.result().to_dict()
    assert out["accuracy"] == approx(accuracy_score(y_true, y_pred, sample_weight=w))
    for avg in AVERAGES:
        for name, fn in (
            ("precision", precision_score),
            ("recall", recall_score),
            ("f1", f1_score),
        ):
            ref = fn(y_true, y_pred, average=avg, zero_division=0, sample_weight=w)
            assert out[f"{name}_{avg}"] == approx(ref), f"{name}_{avg}"
            assert out[f"{name}_{avg}_ci"] is not None
    cm = confusion_matrix(y_true, y_pred, labels=range(len(CLASSES)), sample_weight=w)
    np.testing.assert_allclose(np.asarray(out["confusion_matrix"], float), cm, rtol=RTOL)
    assert out["n"] == y_true.size
    assert out["classes"] == CLASSES
    assert any("dog" in note for note in out["notes"])


def test_multiclass_confusion_all_classes_present() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 3, 500))
    out = MulticlassConfusionState.from_batch(y_true, y_pred, ["a", "b", "c"]).result().to_dict()
    for avg in AVERAGES:
        assert out[f"f1_{avg}"] == approx(f1_score(y_true, y_pred, average=avg))
        assert out[f"precision_{avg}"] == approx(precision_score(y_true, y_pred, average=avg))
        assert out[f"recall_{avg}"] == approx(recall_score(y_true, y_pred, average=avg))


def test_multiclass_class_present_only_with_zero_weight() -> None:
    # scikit-learn takes the label set from the data, whatever the weights: class 2 occurs
    # (with weight 0), so it counts in the macro average with precision = recall = 0
    y_true = np.array([0, 1, 2, 0])
    y_pred = np.array([0, 1, 1, 1])
    w = np.array([1.0, 1.0, 0.0, 1.0])
    out = MulticlassConfusionState.from_batch(y_true, y_pred, ["a", "b", "c"], sample_weight=w)
    d = out.result().to_dict()
    for avg in AVERAGES:
        for name, fn in (
            ("precision", precision_score),
            ("recall", recall_score),
            ("f1", f1_score),
        ):
            ref = fn(y_true, y_pred, average=avg, zero_division=0, sample_weight=w)
            assert d[f"{name}_{avg}"] == approx(ref), f"{name}_{avg}"


def test_multiclass_confusion_empty() -> None:
    out = MulticlassConfusionState.empty(["a", "b"]).result().to_dict()
    assert out["n"] == 0
    assert out["accuracy"] is None and out["undefined"]["accuracy"]
    for avg in AVERAGES:
        assert out[f"f1_{avg}"] is None


def make_proba(
    seed: int, n: int, k: int, weighted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows drawn from a few probability templates (so scores tie), labels drawn from them."""
    rng = np.random.default_rng(seed)
    templates = rng.dirichlet(np.ones(k), size=12)
    proba = templates[rng.integers(0, 12, n)]
    y = np.array([rng.choice(k, p=row) for row in proba])
    w = rng.uniform(0.1, 3.0, n) if weighted else None
    return y, proba, w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [4, 5])
def test_multiclass_proba_matches_sklearn(seed: int, weighted: bool) -> None:
    k = 4
    y, proba, w = make_proba(seed, 600, k, weighted)
    assert set(np.unique(y)) == set(range(k))
    out = MulticlassProbaState.from_batch(y, proba, CLASSES[:k], sample_weight=w).result()
    d = out.to_dict()
    assert d["log_loss"] == approx(log_loss(y, proba, labels=list(range(k)), sample_weight=w))
    ref_auc = roc_auc_score(
        y, proba, multi_class="ovr", average="macro", labels=list(range(k)), sample_weight=w
    )
    assert d["roc_auc"] == approx(ref_auc)
    assert d["log_loss_ci"] is not None and d["roc_auc_ci"] is not None


def test_multiclass_proba_missing_class() -> None:
    y, proba, _ = make_proba(6, 300, 3, False)
    y = np.where(y == 2, 0, y)  # class "cat" never true
    d = MulticlassProbaState.from_batch(y, proba, ["ant", "bee", "cat"]).result().to_dict()
    assert d["roc_auc"] is None
    assert "cat" in d["undefined"]["roc_auc"]
    assert d["log_loss"] == approx(log_loss(y, proba, labels=[0, 1, 2]))


def test_multiclass_proba_empty() -> None:
    d = MulticlassProbaState.empty(["a", "b", "c"]).result().to_dict()
    assert d["log_loss"] is None and d["roc_auc"] is None
    assert d["undefined"]["log_loss"] and d["undefined"]["roc_auc"]


# -- regression ------------------------------------------------------------------------


def make_regression(
    seed: int, n: int, weighted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Targets away from zero, noisy predictions with a bias, random float weights."""
    rng = np.random.default_rng(seed)
    y = rng.normal(20.0, 6.0, n)
    p = y + rng.normal(0.7, 3.0, n)
    w = rng.uniform(0.1, 5.0, n) if weighted else None
    return y, p, w


def reference_regression(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    """scikit-learn's regression metrics; the bias from numpy."""
    return {
        "mae": mean_absolute_error(y, p, sample_weight=w),
        "mse": mean_squared_error(y, p, sample_weight=w),
        "rmse": root_mean_squared_error(y, p, sample_weight=w),
        "mape": mean_absolute_percentage_error(y, p, sample_weight=w),
        "r2": r2_score(y, p, sample_weight=w),
        "mean_error": float(np.average(p - y, weights=w)),
        "median_absolute_error": median_absolute_error(y, p, sample_weight=w),
    }


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("seed", "n"), [(1, 500), (2, 501), (3, 2000)])
def test_regression_matches_sklearn(seed: int, n: int, weighted: bool) -> None:
    y, p, w = make_regression(seed, n, weighted)
    out = RegressionState.from_batch(y, p, sample_weight=w).result().to_dict()
    ref = reference_regression(y, p, w)
    for name in REGRESSION_METRICS:
        assert out[name] == approx(ref[name]), name
        assert out[f"{name}_ci"] is not None, name
    assert out["n"] == n


def test_regression_integer_weights_median_on_a_tie() -> None:
    # |errors| 1, 2, 3 with weights 2, 1, 1: the half weight (2) falls exactly after the
    # first value, so the median averages 1 and 2 (scikit-learn's averaged inverted cdf)
    y = np.array([0.0, 0.0, 0.0])
    p = np.array([1.0, -2.0, 3.0])
    w = np.array([2.0, 1.0, 1.0])
    out = RegressionState.from_batch(y + 10, p + 10, sample_weight=w).result().to_dict()
    assert out["median_absolute_error"] == approx(1.5)
    assert out["median_absolute_error"] == approx(median_absolute_error(y, p, sample_weight=w))


def test_regression_hand_worked() -> None:
    y = np.array([3.0, -0.5, 2.0, 7.0])
    p = np.array([2.5, 0.0, 2.0, 8.0])
    out = RegressionState.from_batch(y, p).result().to_dict()
    assert out["mae"] == approx(0.5)
    assert out["mse"] == approx(0.375)
    assert out["rmse"] == approx(np.sqrt(0.375))
    assert out["mean_error"] == approx(0.25)  # (-0.5 + 0.5 + 0 + 1) / 4
    assert out["median_absolute_error"] == approx(0.5)
    # mape: (0.5/3 + 0.5/0.5 + 0 + 1/7) / 4
    assert out["mape"] == approx((0.5 / 3 + 1.0 + 1 / 7) / 4)
    # r2: 1 - 1.5 / Σ(y - 2.875)²
    assert out["r2"] == approx(1 - 1.5 / float(np.sum((y - 2.875) ** 2)))


def test_regression_zero_target_mape_uses_eps_like_sklearn() -> None:
    y = np.array([0.0, 1.0, 2.0, 4.0])
    p = np.array([0.5, 1.5, 1.0, 4.0])
    out = RegressionState.from_batch(y, p).result().to_dict()
    assert out["mape"] == approx(mean_absolute_percentage_error(y, p))


def test_regression_constant_target_r2_undefined() -> None:
    y = np.full(10, 3.0)
    p = np.linspace(2.0, 4.0, 10)
    out = RegressionState.from_batch(y, p).result().to_dict()
    assert out["r2"] is None
    assert out["undefined"]["r2"]
    assert out["mae"] == approx(mean_absolute_error(y, p))


def test_regression_empty() -> None:
    out = RegressionState.empty().result().to_dict()
    assert out["n"] == 0
    for name in REGRESSION_METRICS:
        assert out[name] is None, name
        assert out["undefined"][name], name


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_weighted_median_matches_sklearn_percentile(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=301)
    weights = rng.uniform(0.0, 2.0, 301)
    ref = median_absolute_error(np.zeros(301), values, sample_weight=weights)
    assert weighted_median(np.abs(values), weights) == approx(ref)
    assert weighted_median(values[:300], np.ones(300)) == approx(float(np.median(values[:300])))
