"""Drift statistics against scipy and the literal definitions in ARCHITECTURE.md."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp, wasserstein_distance

from assay.stats import (
    CategoricalCountState,
    DriftRule,
    NumericSampleState,
    benjamini_hochberg,
    categorical_drift,
    numeric_drift,
)

RTOL = 1e-9
ATOL = 1e-12
PSI_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
PSI_FLOOR = 1e-4


def approx(value: float) -> Any:
    """pytest.approx at the suite's tolerance."""
    return pytest.approx(value, rel=RTOL, abs=ATOL)


def psi_of_shares(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """PSI: shares clipped below at 1e-4, then Σ (cur - ref) ln(cur / ref)."""
    r = np.clip(ref_shares, PSI_FLOOR, None)
    c = np.clip(cur_shares, PSI_FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bins_reference(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin shares of both windows on the reference deciles (outer bins open)."""
    edges = np.unique(np.quantile(ref, PSI_QUANTILES))
    k = edges.size + 1
    ref_bins = np.searchsorted(edges, ref, side="right")
    cur_bins = np.searchsorted(edges, cur, side="right")
    return (
        np.bincount(ref_bins, minlength=k) / ref.size,
        np.bincount(cur_bins, minlength=k) / cur.size,
    )


def check_numeric(ref_raw: np.ndarray, cur_raw: np.ndarray) -> dict[str, Any]:
    """Compare numeric_drift on raw data (NaN = null) with scipy and the definitions."""
    out = numeric_drift(
        NumericSampleState.from_batch(ref_raw), NumericSampleState.from_batch(cur_raw)
    )
    ref = ref_raw[~np.isnan(ref_raw)]
    cur = cur_raw[~np.isnan(cur_raw)]
    ks = ks_2samp(ref, cur)  # method="auto"
    assert out["type"] == "numeric"
    assert out["ks"]["statistic"] == approx(ks.statistic)
    assert out["ks"]["p_value"] == approx(ks.pvalue)
    wd = wasserstein_distance(ref, cur)
    assert out["wasserstein"] == approx(wd)
    assert out["wasserstein_normed"] == approx(wd / np.std(ref))
    ref_shares, cur_shares = numeric_bins_reference(ref, cur)
    assert out["psi"] == approx(psi_of_shares(ref_shares, cur_shares))
    assert out["jensen_shannon"] == approx(float(jensenshannon(ref_shares, cur_shares, base=2)))
    assert out["null_share"]["reference"] == approx(np.isnan(ref_raw).mean())
    assert out["null_share"]["current"] == approx(np.isnan(cur_raw).mean())
    assert out["rows"] == {"reference": ref.size, "current": cur.size}
    return out


def with_nulls(x: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A float copy of x with about ``share`` of its values replaced by NaN."""
    out = x.astype(np.float64)
    out[rng.random(x.size) < share] = np.nan
    return out


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift"),
    [(50, 80, 0.5), (400, 300, 0.1), (3000, 5000, 0.05), (10_000, 10_000, 0.02)],
)
def test_numeric_drift_small_samples_exact_ks(n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    ref = with_nulls(rng.normal(0.0, 1.0, n_ref), 0.05, rng)
    cur = with_nulls(rng.normal(shift, 1.2, n_cur), 0.1, rng)
    out = check_numeric(ref, cur)
    assert out["ks"]["p_value"] > 0.0


@pytest.mark.parametrize(("n_ref", "n_cur"), [(20_000, 15_000), (12_000, 30_000)])
def test_numeric_drift_large_samples_asymptotic_ks(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref)
    ref = with_nulls(rng.normal(0.0, 1.0, n_ref), 0.02, rng)
    cur = with_nulls(rng.normal(0.01, 1.0, n_cur), 0.02, rng)
    out = check_numeric(ref, cur)
    assert 1e-6 < out["ks"]["p_value"] < 1.0


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 250), (8000, 6000), (25_000, 20_000)])
def test_numeric_drift_integer_ties_and_nulls(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_cur)
    ref = with_nulls(rng.poisson(4.0, n_ref), 0.1, rng)
    cur = with_nulls(rng.poisson(4.4, n_cur), 0.2, rng)
    out = check_numeric(ref, cur)
    assert len(out["bins"]["edges"]) < 9  # ties collapse some deciles


def test_numeric_drift_psi_hand_worked() -> None:
    # reference 0..99: deciles 9.9, 19.8, ..., 89.1 -> ten bins of 10% each.
    # current: 0..49 twice -> bins 0..4 hold 20% each, bins 5..9 hold 0 (clipped to 1e-4)
    ref = np.arange(100.0)
    cur = np.r_[np.arange(50.0), np.arange(50.0)]
    out = numeric_drift(NumericSampleState.from_batch(ref), NumericSampleState.from_batch(cur))
    expected = 5 * (0.2 - 0.1) * np.log(0.2 / 0.1) + 5 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert out["psi"] == approx(expected)
    # ks: the cdfs differ most at 49: 1.0 - 0.5
    assert out["ks"]["statistic"] == approx(0.5)


def test_numeric_drift_identical_windows() -> None:
    x = np.random.default_rng(3).normal(size=1000)
    out = check_numeric(x, x.copy())
    assert out["ks"]["statistic"] == 0.0
    assert out["psi"] == 0.0
    assert out["jensen_shannon"] == approx(0.0)
    assert out["wasserstein"] == 0.0


@pytest.mark.parametrize("which", ["reference", "current", "both"])
def test_numeric_drift_all_null_feature(which: str) -> None:
    values = np.random.default_rng(4).normal(size=50)
    nulls = np.full(40, np.nan)
    ref = nulls if which in ("reference", "both") else values
    cur = nulls if which in ("current", "both") else values
    out = numeric_drift(NumericSampleState.from_batch(ref), NumericSampleState.from_batch(cur))
    assert out["ks"] == {"statistic": None, "p_value": None}
    for name in ("psi", "wasserstein", "wasserstein_normed", "jensen_shannon"):
        assert out[name] is None, name
    assert out["undefined"]
    assert all(isinstance(reason, str) and reason for reason in out["undefined"].values())
    if which in ("reference", "both"):
        assert out["null_share"]["reference"] == 1.0


def test_numeric_drift_constant_reference() -> None:
    ref = np.full(30, 2.0)
    cur = np.r_[np.full(20, 2.0), np.full(10, 3.0)]
    out = numeric_drift(NumericSampleState.from_batch(ref), NumericSampleState.from_batch(cur))
    assert out["wasserstein"] == approx(wasserstein_distance(ref, cur))
    assert out["wasserstein_normed"] is None
    assert out["undefined"]["wasserstein_normed"]
    ks = ks_2samp(ref, cur)
    assert out["ks"]["statistic"] == approx(ks.statistic)
    assert out["ks"]["p_value"] == approx(ks.pvalue)
    ref_shares, cur_shares = numeric_bins_reference(ref, cur)
    assert out["psi"] == approx(psi_of_shares(ref_shares, cur_shares))


def test_numeric_drift_merged_state_matches_one_batch() -> None:
    rng = np.random.default_rng(5)
    ref = with_nulls(rng.normal(size=3000), 0.05, rng)
    cur = with_nulls(rng.normal(0.2, 1.0, 2000), 0.05, rng)
    merged_ref = NumericSampleState.from_batch(ref[:1000]).merge(
        NumericSampleState.from_batch(ref[1000:])
    )
    out = numeric_drift(merged_ref, NumericSampleState.from_batch(cur))
    assert out["ks"]["p_value"] == approx(ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)]).pvalue)
    assert out["null_share"]["reference"] == approx(np.isnan(ref).mean())


NUMERIC_VALUES = st.one_of(
    st.integers(-3, 3).map(float),
    st.floats(-100.0, 100.0, allow_nan=False),
    st.just(float("nan")),
)


@settings(max_examples=50, deadline=None)
@given(
    ref=st.lists(NUMERIC_VALUES, min_size=1, max_size=60),
    cur=st.lists(NUMERIC_VALUES, min_size=1, max_size=60),
)
def test_numeric_drift_matches_scipy_on_arbitrary_small_samples(
    ref: list[float], cur: list[float]
) -> None:
    ref_raw, cur_raw = np.array(ref), np.array(cur)
    ref_ok, cur_ok = ref_raw[~np.isnan(ref_raw)], cur_raw[~np.isnan(cur_raw)]
    if ref_ok.size == 0 or cur_ok.size == 0:
        out = numeric_drift(
            NumericSampleState.from_batch(ref_raw), NumericSampleState.from_batch(cur_raw)
        )
        assert out["ks"]["p_value"] is None and out["undefined"]
        return
    if np.std(ref_ok) == 0:
        out = numeric_drift(
            NumericSampleState.from_batch(ref_raw), NumericSampleState.from_batch(cur_raw)
        )
        assert out["wasserstein_normed"] is None
        assert out["ks"]["p_value"] == approx(ks_2samp(ref_ok, cur_ok).pvalue)
        return
    check_numeric(ref_raw, cur_raw)


# -- categorical -----------------------------------------------------------------------


def categorical_reference(ref: list[Any], cur: list[Any]) -> dict[str, Any]:
    """chi2 / psi / js on the 2×k table over the union of categories, nulls a category."""

    def is_null(x: Any) -> bool:
        return x is None or (isinstance(x, float) and np.isnan(x))

    cats = sorted({str(x) for x in ref + cur if not is_null(x)})
    columns: list[str | None] = list(cats)
    if any(is_null(x) for x in ref + cur):
        columns.append(None)
    table = np.array(
        [
            [sum(1 for x in window if (is_null(x) if c is None else str(x) == c)) for c in columns]
            for window in (ref, cur)
        ],
        dtype=float,
    )
    chi2 = chi2_contingency(table, correction=False)
    ref_shares = table[0] / table[0].sum()
    cur_shares = table[1] / table[1].sum()
    return {
        "table": table,
        "columns": columns,
        "statistic": chi2.statistic,
        "p_value": chi2.pvalue,
        "dof": chi2.dof,
        "psi": psi_of_shares(ref_shares, cur_shares),
        "jensen_shannon": float(jensenshannon(ref_shares, cur_shares, base=2)),
    }


def check_categorical(ref: list[Any], cur: list[Any]) -> dict[str, Any]:
    """Compare categorical_drift with scipy on raw value lists."""
    out = categorical_drift(
        CategoricalCountState.from_batch(np.array(ref, dtype=object)),
        CategoricalCountState.from_batch(np.array(cur, dtype=object)),
    )
    expected = categorical_reference(ref, cur)
    assert out["type"] == "categorical"
    assert out["chi2"]["statistic"] == approx(expected["statistic"])
    assert out["chi2"]["p_value"] == approx(expected["p_value"])
    assert out["chi2"]["dof"] == expected["dof"]
    assert out["psi"] == approx(expected["psi"])
    assert out["jensen_shannon"] == approx(expected["jensen_shannon"])
    assert out["bins"]["categories"] == expected["columns"]
    assert out["rows"] == {"reference": len(ref), "current": len(cur)}
    return out


def draw(rng: np.random.Generator, cats: list[Any], p: list[float], n: int) -> list[Any]:
    """n values drawn from cats (may include None) with probabilities p."""
    idx = rng.choice(len(cats), size=n, p=p)
    return [cats[i] for i in idx]


@settings(max_examples=50, deadline=None)
@given(
    ref=st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=40),
    cur=st.lists(st.sampled_from(["a", "b", "c", "e", None]), min_size=1, max_size=40),
)
def test_categorical_drift_matches_scipy_on_arbitrary_samples(
    ref: list[str | None], cur: list[str | None]
) -> None:
    out = check_categorical(list(ref), list(cur))
    unseen = sorted({x for x in cur if x is not None} - {x for x in ref if x is not None})
    assert out["unseen_categories"] == unseen


def test_categorical_drift_with_nulls_and_unseen_categories() -> None:
    rng = np.random.default_rng(10)
    ref = draw(rng, ["DE", "FR", "IT", "ES", None], [0.4, 0.3, 0.15, 0.1, 0.05], 5000)
    # current: "ES" vanishes, "ZZ" and "PL" are new, more nulls
    cur = draw(rng, ["DE", "FR", "IT", "ZZ", "PL", None], [0.35, 0.3, 0.15, 0.1, 0.02, 0.08], 4000)
    out = check_categorical(ref, cur)
    assert out["unseen_categories"] == ["PL", "ZZ"]
    assert out["unseen_share"] == approx(sum(1 for x in cur if x in ("PL", "ZZ")) / len(cur))
    assert out["null_share"]["reference"] == approx(ref.count(None) / len(ref))
    assert out["null_share"]["current"] == approx(cur.count(None) / len(cur))


def test_categorical_drift_without_nulls() -> None:
    rng = np.random.default_rng(11)
    ref = draw(rng, ["a", "b", "c"], [0.5, 0.3, 0.2], 800)
    cur = draw(rng, ["a", "b", "c"], [0.45, 0.35, 0.2], 900)
    out = check_categorical(ref, cur)
    assert None not in out["bins"]["categories"]
    assert out["chi2"]["dof"] == 2


def test_categorical_drift_nan_is_null_and_numbers_compare_as_strings() -> None:
    rng = np.random.default_rng(12)
    ref = draw(rng, [1, 2, 3, float("nan")], [0.5, 0.3, 0.1, 0.1], 400)
    cur = draw(rng, [1, 2, 3, None], [0.3, 0.3, 0.3, 0.1], 500)
    check_categorical(ref, cur)


def test_categorical_drift_single_category() -> None:
    out = check_categorical(["x"] * 10, ["x"] * 7)
    assert out["chi2"] == {"statistic": 0.0, "p_value": 1.0, "dof": 0}
    assert out["psi"] == 0.0


def test_categorical_drift_all_null_feature() -> None:
    # nulls are a category: two all-null windows form a 2x1 table, which scipy treats as
    # homogeneous (statistic 0, p 1, dof 0)
    out = check_categorical([None] * 12, [None] * 5)
    assert out["null_share"] == {"reference": 1.0, "current": 1.0}
    # all-null reference against real values: every current category is unseen
    out = check_categorical([None] * 12, ["a", "b", None, "a"])
    assert out["unseen_categories"] == ["a", "b"]


def test_categorical_drift_zero_count_category_from_counts() -> None:
    # a category counted 0 in both windows is in neither window, so it is not one of the
    # union's bins: the statistics equal scipy's on the table without it (scipy itself
    # rejects a table with an all-zero column)
    ref = CategoricalCountState.from_counts(np.array(["a", "b", "c"]), np.array([50, 30, 0]), 4)
    cur = CategoricalCountState.from_counts(np.array(["a", "b", "c"]), np.array([40, 60, 0]), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = categorical_drift(ref, cur)
    expected = categorical_reference(
        ["a"] * 50 + ["b"] * 30 + [None] * 4, ["a"] * 40 + ["b"] * 60 + [None] * 2
    )
    assert out["chi2"]["statistic"] == approx(expected["statistic"])
    assert out["chi2"]["p_value"] == approx(expected["p_value"])
    assert out["chi2"]["dof"] == expected["dof"]
    assert out["psi"] == approx(expected["psi"])
    assert out["jensen_shannon"] == approx(expected["jensen_shannon"])


def test_categorical_drift_empty_window() -> None:
    cur = CategoricalCountState.from_batch(np.array(["a", "b"], dtype=object))
    for ref_state, cur_state in (
        (CategoricalCountState.empty(), cur),
        (cur, CategoricalCountState.empty()),
    ):
        out = categorical_drift(ref_state, cur_state)
        assert out["chi2"] == {"statistic": None, "p_value": None, "dof": None}
        assert out["psi"] is None and out["jensen_shannon"] is None
        assert out["undefined"]
        assert all(isinstance(reason, str) and reason for reason in out["undefined"].values())


# -- false discovery control and the drift rule -----------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(size=30), rng.uniform(0, 1e-3, 10), [0.02, 0.02, 0.02, 1.0, 0.0]]
    rng.shuffle(p)
    np.testing.assert_allclose(
        benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=RTOL, atol=ATOL
    )


def test_benjamini_hochberg_small_cases() -> None:
    assert benjamini_hochberg(np.array([])).size == 0
    np.testing.assert_allclose(benjamini_hochberg(np.array([0.3])), [0.3])
    # hand-worked: p = (0.01, 0.04, 0.03) -> sorted 0.01, 0.03, 0.04 scaled by 3/i:
    # 0.03, 0.045, 0.04 -> step-up minimum: 0.03, 0.04, 0.04
    np.testing.assert_allclose(
        benjamini_hochberg(np.array([0.01, 0.04, 0.03])), [0.03, 0.04, 0.04], rtol=RTOL
    )


def test_drift_rule_large_samples() -> None:
    rng = np.random.default_rng(2024)
    n = 1_000_000
    ref = NumericSampleState.from_batch(rng.normal(0.0, 1.0, n))
    same = NumericSampleState.from_batch(rng.normal(0.0, 1.0, n))
    shifted = NumericSampleState.from_batch(rng.normal(0.5, 1.0, n))
    cat_ref = CategoricalCountState.from_counts(
        np.array(["a", "b"]), np.array([600_000, 400_000]), 0
    )
    cat_cur = CategoricalCountState.from_counts(
        np.array(["a", "b"]), np.array([600_300, 399_700]), 0
    )
    results = {
        "same": numeric_drift(ref, same),
        "shifted": numeric_drift(ref, shifted),
        "category": categorical_drift(cat_ref, cat_cur),
    }
    raw = np.array(
        [
            results["same"]["ks"]["p_value"],
            results["shifted"]["ks"]["p_value"],
            results["category"]["chi2"]["p_value"],
        ]
    )
    DriftRule().apply(results)
    assert results["same"]["drifted"] is False
    assert results["category"]["drifted"] is False
    assert results["shifted"]["drifted"] is True
    adjusted = false_discovery_control(raw, method="bh")
    for name, p_adj in zip(("same", "shifted", "category"), adjusted, strict=True):
        assert results[name]["p_value_adjusted"] == approx(p_adj), name
        assert results[name]["reason"]


def test_drift_rule_significance_alone_is_not_enough() -> None:
    results: dict[str, dict[str, Any]] = {
        "tiny_effect": {"type": "numeric", "ks": {"p_value": 1e-12}, "psi": 0.01},
        "big_effect": {"type": "numeric", "ks": {"p_value": 1e-12}, "psi": 0.5},
        "not_significant": {"type": "categorical", "chi2": {"p_value": 0.4}, "psi": 0.5},
        "undefined": {"type": "numeric", "ks": {"p_value": None}, "psi": None},
    }
    DriftRule().apply(results)
    assert results["tiny_effect"]["drifted"] is False
    assert results["big_effect"]["drifted"] is True
    assert results["not_significant"]["drifted"] is False
    assert results["undefined"]["drifted"] is None
    assert DriftRule().describe()["description"]
