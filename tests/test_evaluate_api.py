"""End-to-end tests of ``assay.evaluate`` against its public contract (ARCHITECTURE.md).

Every number is compared with scikit-learn, scipy or a hand computation, never with
Assay's own output.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

import assay
from assay.errors import (
    AssayError,
    ColumnNotFoundError,
    ColumnTypeError,
    ConfigError,
    EmptyInputError,
    SchemaMismatchError,
)

pytestmark = pytest.mark.filterwarnings("ignore::assay.AssayWarning")


def run(current: Any, **kwargs: Any) -> dict[str, Any]:
    """``assay.evaluate(...).to_dict()``."""
    return assay.evaluate(current, **kwargs).to_dict()


def drift_p_value(entry: dict[str, Any]) -> float:
    return entry["ks"]["p_value"] if entry["type"] == "numeric" else entry["chi2"]["p_value"]


@pytest.fixture(scope="module")
def binary_result(binary_data: Any) -> assay.EvaluationResult:
    """The binary windows evaluated in memory with the channel segment."""
    return assay.evaluate(
        binary_data.current, reference=binary_data.reference, segments=["channel"]
    )


# -- 1. the binary contract ------------------------------------------------------------


def test_binary_result_structure(binary_result: assay.EvaluationResult, ref: SimpleNamespace):
    out = binary_result.to_dict()
    assert out["task"] == "binary"
    assert out["rows"] == {"current": 3000, "reference": 2500}
    assert out["labeled"]["current"] == 3000
    overall = out["metrics"]["overall"]
    for name in ref.binary_metrics:
        value, ci = overall[name], overall[f"{name}_ci"]
        assert isinstance(value, float), name
        assert isinstance(ci, list) and len(ci) == 2, name
        assert all(isinstance(v, float) and math.isfinite(v) for v in ci), name
        assert ci[0] <= ci[1], name
    for name in ref.ci_contains_value:
        lo, hi = overall[f"{name}_ci"]
        assert lo <= overall[name] <= hi, f"{name}={overall[name]} outside [{lo}, {hi}]"
    assert set(out["metrics"]["by_segment"]) == {"channel"}


def test_binary_overall_metrics_equal_sklearn(
    binary_result: assay.EvaluationResult,
    binary_data: Any,
    binary_expected: dict[str, Any],
    ref: SimpleNamespace,
):
    metrics = binary_result.to_dict()["metrics"]
    ref.assert_metrics_match(metrics["overall"], binary_expected["overall"], "overall")
    # the reference window has labels too: its metrics are reported alongside
    rfr = binary_data.reference
    expected = ref.binary(rfr.column("target").to_numpy(), rfr.column("score").to_numpy())
    ref.assert_metrics_match(metrics["reference"], expected, "reference")


def test_binary_segment_metrics_equal_sklearn_on_segment_rows(
    binary_result: assay.EvaluationResult, binary_expected: dict[str, Any], ref: SimpleNamespace
):
    by_channel = binary_result.to_dict()["metrics"]["by_segment"]["channel"]
    assert set(by_channel) == set(binary_expected["by_segment"])
    for value, expected in binary_expected["by_segment"].items():
        ref.assert_metrics_match(by_channel[value], expected, f"channel={value}")
        for name in ref.binary_metrics:
            ci = by_channel[value][f"{name}_ci"]
            assert ci is not None and len(ci) == 2 and ci[0] <= ci[1]


def test_drift_features_and_statistics_equal_scipy(
    binary_result: assay.EvaluationResult, binary_expected: dict[str, Any], ref: SimpleNamespace
):
    drift = binary_result.to_dict()["drift"]
    # every column without a role is a feature, except the identifier ``id``
    assert set(drift) == set(binary_expected["features"])
    assert drift["amount"]["type"] == "numeric"
    assert drift["tenure"]["type"] == "numeric"
    assert drift["country"]["type"] == "categorical"
    for name, expected in binary_expected["drift"].items():
        ref.assert_drift_matches(drift[name], expected, name)
    # the current window has a country unseen in the reference, and nulls: 5 columns
    assert drift["country"]["chi2"]["dof"] == 4


def test_drift_decision_follows_reported_rule(binary_result: assay.EvaluationResult):
    out = binary_result.to_dict()
    rule = out["drift_rule"]
    assert {"alpha", "correction", "effect", "min_effect"} <= set(rule)
    assert rule["correction"] == "bh"
    names = list(out["drift"])
    raw = np.array([drift_p_value(out["drift"][n]) for n in names])
    adjusted = sps.false_discovery_control(raw, method="bh")
    for name, p_adj in zip(names, adjusted, strict=True):
        entry = out["drift"][name]
        assert math.isclose(entry["p_value_adjusted"], p_adj, rel_tol=1e-9, abs_tol=1e-15)
        expected = bool(p_adj < rule["alpha"] and entry[rule["effect"]] >= rule["min_effect"])
        assert entry["drifted"] is expected, name


def test_json_is_strict_and_equals_to_dict(
    binary_result: assay.EvaluationResult, ref: SimpleNamespace, tmp_path: Path
):
    text = binary_result.to_json()
    parsed = ref.strict_json_loads(text)
    # to_dict is "the same structure as the JSON": plain, finite, JSON-equal values
    assert parsed == json.loads(json.dumps(binary_result.to_dict(), allow_nan=False))
    out = tmp_path / "result.json"
    binary_result.to_json(out)
    assert ref.strict_json_loads(out.read_text(encoding="utf-8")) == parsed


def test_threshold_and_prediction_column(binary_data: Any, ref: SimpleNamespace):
    cur = binary_data.current
    y = cur.column("target").to_numpy()
    s = cur.column("score").to_numpy()
    out = run(cur, threshold=0.3)
    ref.assert_metrics_match(out["metrics"]["overall"], ref.binary(y, s, threshold=0.3), "t=0.3")
    out = run(cur, prediction="prediction")
    expected = ref.binary(y, s, pred=cur.column("prediction").to_numpy())
    ref.assert_metrics_match(out["metrics"]["overall"], expected, "prediction column")


def test_explicit_features_list_and_declared_types(binary_data: Any, ref: SimpleNamespace):
    cur, rfr = binary_data.current, binary_data.reference
    out = run(cur, reference=rfr, features=["amount", "country"])
    assert set(out["drift"]) == {"amount", "country"}
    for name, expected in ref.drift(rfr, cur, ["amount", "country"]).items():
        ref.assert_drift_matches(out["drift"][name], expected, name)
    # an integer column declared categorical is compared category by category
    out = run(cur, reference=rfr, features={"prediction": "categorical"})
    as_text = {n: t.column("prediction").cast(pa.string()) for n, t in (("r", rfr), ("c", cur))}
    expected = ref.categorical_drift(as_text["r"], as_text["c"])
    ref.assert_drift_matches(out["drift"]["prediction"], expected, "prediction:categorical")


def test_without_reference_there_is_no_drift(
    binary_data: Any, binary_expected: dict[str, Any], ref
):
    out = run(binary_data.current, segments=["channel"])
    assert out["rows"] == {"current": 3000}
    assert not out["drift"]
    ref.assert_metrics_match(out["metrics"]["overall"], binary_expected["overall"], "overall")


# -- 2. every input kind gives the same numbers ----------------------------------------


def _as_input(kind: str, data: Any, role: str) -> Any:
    table: pa.Table = getattr(data, role)
    if kind == "table":
        return table
    if kind == "parquet":
        return str(getattr(data, f"{role}_parquet"))
    if kind == "parquet_pathlib":
        return getattr(data, f"{role}_parquet")
    if kind == "csv":
        return str(getattr(data, f"{role}_csv"))
    if kind == "folder":
        return str(getattr(data, f"{role}_dir"))
    if kind == "glob":
        return str(getattr(data, f"{role}_dir")) + "/*.parq*"
    if kind in ("parquet_uri", "csv_uri"):  # file:// URIs go through pyarrow's filesystems
        path = getattr(data, f"{role}_{kind.split('_')[0]}")
        return Path(path).absolute().as_uri()
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        return pl.from_arrow(table)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["table", "parquet", "parquet_pathlib", "csv", "folder", "glob", "parquet_uri", "csv_uri",
     "pandas", "polars"],
)  # fmt: skip
def test_every_input_kind_gives_the_reference_numbers(
    kind: str, binary_data: Any, binary_expected: dict[str, Any], ref: SimpleNamespace
):
    current = _as_input(kind, binary_data, "current")
    reference = _as_input(kind, binary_data, "reference")
    out = run(current, reference=reference, segments=["channel"])
    assert out["rows"] == {"current": 3000, "reference": 2500}
    ref.assert_metrics_match(out["metrics"]["overall"], binary_expected["overall"], kind)
    for value, expected in binary_expected["by_segment"].items():
        segment = out["metrics"]["by_segment"]["channel"][value]
        ref.assert_metrics_match(segment, expected, f"{kind} channel={value}")
    assert set(out["drift"]) == set(binary_expected["features"])
    for name, expected in binary_expected["drift"].items():
        ref.assert_drift_matches(out["drift"][name], expected, f"{kind} {name}")


def test_a_path_with_glob_characters_that_exists_is_read_as_written(
    binary_data: Any, binary_expected: dict[str, Any], ref: SimpleNamespace, tmp_path: Path
):
    import shutil

    import pyarrow.parquet as pq

    literal = tmp_path / "runs[1]?.parquet"  # exists as written: not a glob
    shutil.copy(binary_data.current_parquet, literal)
    # what the same text matches as a glob: "runs" + "1" + one character
    pq.write_table(binary_data.current.slice(0, 1_000), tmp_path / "runs1x.parquet")
    out = run(str(literal), segments=["channel"])
    assert out["rows"] == {"current": 3000}
    ref.assert_metrics_match(out["metrics"]["overall"], binary_expected["overall"], "literal")
    literal.unlink()  # now only a glob can name anything
    assert run(str(literal))["rows"] == {"current": 1000}


def test_pandas_current_with_parquet_reference(
    binary_data: Any, binary_expected: dict[str, Any], ref: SimpleNamespace
):
    out = run(binary_data.current.to_pandas(), reference=str(binary_data.reference_parquet))
    for name, expected in binary_expected["drift"].items():
        ref.assert_drift_matches(out["drift"][name], expected, name)


# -- 3. multiclass and regression ------------------------------------------------------


def _multiclass_arrays(table: pa.Table, classes: tuple[str, ...]):
    y = np.array(table.column("target").to_pylist())
    pred = np.array(table.column("prediction").to_pylist())
    proba = np.column_stack([table.column(f"p_{c}").to_numpy() for c in classes])
    return y, pred, proba


def test_multiclass_metrics_equal_sklearn(multiclass_data: Any, ref: SimpleNamespace):
    cur, rfr = multiclass_data
    classes = ref.classes
    out = run(
        cur,
        reference=rfr,
        task="multiclass",
        prediction="prediction",
        score=[f"p_{c}" for c in classes],
    )
    assert out["task"] == "multiclass"
    assert out["rows"] == {"current": cur.num_rows, "reference": rfr.num_rows}
    y, pred, proba = _multiclass_arrays(cur, classes)
    overall = out["metrics"]["overall"]
    expected = ref.multiclass(y, pred, proba, classes)
    ref.assert_metrics_match(overall, expected, "multiclass")
    for name in ("accuracy", "f1_macro", "log_loss"):
        lo, hi = overall[f"{name}_ci"]
        assert lo <= hi
    # the class-probability columns have roles; the other columns are features
    assert set(out["drift"]) == {"size", "region"}
    for name, exp in ref.drift(rfr, cur, ["size", "region"]).items():
        ref.assert_drift_matches(out["drift"][name], exp, name)


def test_multiclass_score_columns_are_matched_by_class_name(
    multiclass_data: Any, ref: SimpleNamespace
):
    cur, _ = multiclass_data
    shuffled = ["p_fox", "p_cat", "p_dog"]
    out = run(cur, task="multiclass", prediction="prediction", score=shuffled)
    y, pred, proba = _multiclass_arrays(cur, ref.classes)
    ref.assert_metrics_match(
        out["metrics"]["overall"], ref.multiclass(y, pred, proba, ref.classes), "shuffled"
    )


def test_a_class_the_data_never_shows_keeps_its_own_score_column() -> None:
    """Class ``eel`` has a probability column but no row: the columns, given out of order,
    are still paired by name (before, they were paired by order, and log_loss was wrong)."""
    rng = np.random.default_rng(8)
    n = 2_000
    y = rng.integers(0, 2, n)  # cat or dog only
    proba = rng.dirichlet([2.0, 2.0, 1.0], n)
    table = pa.table({"target": np.array(["cat", "dog"])[y], "p_eel": proba[:, 2],
                      "p_cat": proba[:, 0], "p_dog": proba[:, 1]})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = assay.evaluate(table, task="multiclass", target="target",
                             score=["p_eel", "p_cat", "p_dog"])  # fmt: skip
    expected = log_loss(y, proba, labels=[0, 1, 2])
    assert out.metrics["overall"]["log_loss"] == pytest.approx(expected, rel=1e-12)
    # classes whose names end alike: each column goes to the longest name that fits
    both = pa.table({"target": ["b", "a_b", "b", "a_b"], "p_b": [0.9, 0.2, 0.8, 0.3],
                     "p_a_b": [0.1, 0.8, 0.2, 0.7]})  # fmt: skip
    for order in (["p_b", "p_a_b"], ["p_a_b", "p_b"]):
        found = assay.evaluate(both, task="multiclass", target="target", score=order)
        assert found.metrics["overall"]["accuracy"] == 1.0
    with pytest.raises(ColumnTypeError, match="name no class"):
        assay.evaluate(table.append_column("q_fox", table.column("p_eel")), task="multiclass",
                       target="target", score=["p_eel", "p_cat", "p_dog", "q_fox"])  # fmt: skip


def test_multiclass_without_prediction_uses_the_argmax(multiclass_data: Any, ref: SimpleNamespace):
    cur, _ = multiclass_data
    out = run(cur, task="multiclass", score=[f"p_{c}" for c in ref.classes])
    y, _, proba = _multiclass_arrays(cur, ref.classes)
    argmax = np.array(ref.classes)[proba.argmax(axis=1)]
    ref.assert_metrics_match(
        out["metrics"]["overall"], ref.multiclass(y, argmax, proba, ref.classes), "argmax"
    )


def test_multiclass_segments_equal_sklearn(multiclass_data: Any, ref: SimpleNamespace):
    cur, _ = multiclass_data
    out = run(
        cur,
        task="multiclass",
        prediction="prediction",
        score=[f"p_{c}" for c in ref.classes],
        segments=["region"],
    )
    y, pred, proba = _multiclass_arrays(cur, ref.classes)
    region = np.array(cur.column("region").to_pylist())
    for value in ("east", "west"):
        rows = region == value
        expected = ref.multiclass(y[rows], pred[rows], proba[rows], ref.classes)
        ref.assert_metrics_match(
            out["metrics"]["by_segment"]["region"][value], expected, f"region={value}"
        )


def test_regression_metrics_equal_sklearn(regression_data: Any, ref: SimpleNamespace):
    cur, rfr = regression_data
    out = run(
        cur, reference=rfr, task="regression", prediction="prediction", score=None,
        segments=["district"],
    )  # fmt: skip
    assert out["task"] == "regression"
    y = cur.column("target").to_numpy()
    pred = cur.column("prediction").to_numpy()
    overall = out["metrics"]["overall"]
    ref.assert_metrics_match(overall, ref.regression(y, pred), "regression")
    for name in ("mae", "mse", "rmse", "mape", "r2"):
        lo, hi = overall[f"{name}_ci"]
        assert lo <= hi, name
    for name in ("mae", "rmse", "mse"):
        lo, hi = overall[f"{name}_ci"]
        assert lo <= overall[name] <= hi, name
    district = np.array(cur.column("district").to_pylist())
    for value in ("a", "b", "c"):
        rows = district == value
        ref.assert_metrics_match(
            out["metrics"]["by_segment"]["district"][value],
            ref.regression(y[rows], pred[rows]),
            f"district={value}",
        )
    assert set(out["drift"]) == {"rooms"}
    ref.assert_drift_matches(
        out["drift"]["rooms"], ref.drift(rfr, cur, ["rooms"])["rooms"], "rooms"
    )


def test_regression_needs_only_the_prediction_column(regression_data: Any, ref: SimpleNamespace):
    """The contract's call: ``evaluate(data, task="regression", prediction=COL)``.

    ``score`` keeps its default; a regression has no score, so the missing ``score``
    column must not be an error.
    """
    cur, _ = regression_data
    out = run(cur, task="regression", prediction="prediction")
    y, pred = cur.column("target").to_numpy(), cur.column("prediction").to_numpy()
    ref.assert_metrics_match(out["metrics"]["overall"], ref.regression(y, pred), "regression")


def test_multiclass_needs_only_the_prediction_column(multiclass_data: Any):
    """``evaluate(data, task="multiclass", prediction=COL)`` on data without a ``score``."""
    cur, _ = multiclass_data
    table = cur.drop_columns([f"p_{c}" for c in ("cat", "dog", "fox")])
    out = run(table, task="multiclass", prediction="prediction")
    y = np.array(table.column("target").to_pylist())
    pred = np.array(table.column("prediction").to_pylist())
    assert math.isclose(out["metrics"]["overall"]["accuracy"], float(np.mean(y == pred)))


# -- 4. unlabeled rows -----------------------------------------------------------------


def test_rows_without_target_are_unlabeled(make_binary: Any, ref: SimpleNamespace):
    table = make_binary(31, 2000)
    rng = np.random.default_rng(31)
    unlabeled = rng.random(table.num_rows) < 0.12
    target = pa.array(table.column("target").to_numpy(), pa.int64(), mask=unlabeled)
    table = table.set_column(table.schema.get_field_index("target"), "target", target)
    reference = make_binary(32, 1500)
    out = run(table, reference=reference, segments=["channel"])
    assert out["rows"]["current"] == 2000
    assert out["labeled"]["current"] == int((~unlabeled).sum())
    assert out["labeled"]["reference"] == 1500
    y = table.column("target").to_numpy(zero_copy_only=False)[~unlabeled].astype(int)
    s = table.column("score").to_numpy()[~unlabeled]
    ref.assert_metrics_match(out["metrics"]["overall"], ref.binary(y, s), "labeled rows")
    channel = np.array(table.column("channel").to_pylist())[~unlabeled]
    for value in ("app", "store", "web"):
        rows = channel == value
        ref.assert_metrics_match(
            out["metrics"]["by_segment"]["channel"][value],
            ref.binary(y[rows], s[rows]),
            f"labeled channel={value}",
        )
    # drift uses every row, labeled or not
    expected = ref.drift(reference, table, ["amount"])["amount"]
    ref.assert_drift_matches(out["drift"]["amount"], expected, "amount")


def test_all_rows_unlabeled_is_an_empty_input(make_binary: Any):
    table = make_binary(33, 100)
    target = pa.nulls(table.num_rows, pa.int64())
    table = table.set_column(table.schema.get_field_index("target"), "target", target)
    with pytest.raises(EmptyInputError) as info:
        assay.evaluate(table)
    assert info.value.field == "target"


# -- 5. undefined results --------------------------------------------------------------


@pytest.mark.filterwarnings("default::assay.AssayWarning")
def test_one_class_segment_is_undefined_not_a_crash(make_binary: Any, ref: SimpleNamespace):
    table = make_binary(41, 1500)
    channel = np.array(table.column("channel").to_pylist())
    y = table.column("target").to_numpy().copy()
    y[channel == "store"] = 0
    table = table.set_column(table.schema.get_field_index("target"), "target", pa.array(y))
    with pytest.warns(assay.AssayWarning, match="roc_auc"):
        result = assay.evaluate(table, segments=["channel"])
    out = ref.strict_json_loads(result.to_json())
    store = out["metrics"]["by_segment"]["channel"]["store"]
    assert store["roc_auc"] is None
    assert store["roc_auc_ci"] is None
    assert isinstance(store["undefined"]["roc_auc"], str) and store["undefined"]["roc_auc"]
    # what is defined there still equals scikit-learn
    s = table.column("score").to_numpy()
    rows = channel == "store"
    y_store, s_store = y[rows], s[rows]
    expected = {
        "accuracy": accuracy_score(y_store, s_store >= 0.5),
        "log_loss": log_loss(y_store, s_store, labels=[0, 1]),
        "brier": brier_score_loss(y_store, s_store, pos_label=1),
        "ece": ref.ece(y_store, s_store),
    }
    for name, value in expected.items():
        ref.assert_close(store[name], value, f"store {name}")
    for value in ("app", "web"):
        ref.assert_metrics_match(
            out["metrics"]["by_segment"]["channel"][value],
            ref.binary(y[channel == value], s[channel == value]),
            f"channel={value}",
        )
    ref.assert_close(out["metrics"]["overall"]["roc_auc"], ref.binary(y, s)["roc_auc"], "overall")
    assert any("roc_auc" in w for w in out["warnings"])


@pytest.mark.filterwarnings("default::assay.AssayWarning")
def test_all_null_feature_has_undefined_drift(make_binary: Any, ref: SimpleNamespace):
    cur = make_binary(51, 800)
    rfr = make_binary(52, 700)
    cur = cur.append_column("blank", pa.nulls(cur.num_rows, pa.float64()))
    rfr = rfr.append_column("blank", pa.nulls(rfr.num_rows, pa.float64()))
    values = np.random.default_rng(5).normal(size=rfr.num_rows)
    cur = cur.append_column("gone", pa.nulls(cur.num_rows, pa.float64()))
    rfr = rfr.append_column("gone", pa.array(values))
    with pytest.warns(assay.AssayWarning):
        result = assay.evaluate(cur, reference=rfr)
    out = ref.strict_json_loads(result.to_json())
    for name in ("blank", "gone"):
        entry = out["drift"][name]
        assert entry["type"] == "numeric"
        assert entry["ks"]["statistic"] is None and entry["ks"]["p_value"] is None
        for key in ("psi", "wasserstein", "wasserstein_normed", "jensen_shannon"):
            assert entry[key] is None, (name, key)
        assert entry["undefined"] and all(isinstance(r, str) for r in entry["undefined"].values())
        assert entry["drifted"] is not True
    # the other features are unaffected, and BH runs over the defined ones only
    for name, expected in ref.drift(rfr, cur, ["amount", "tenure", "country"]).items():
        ref.assert_drift_matches(out["drift"][name], expected, name)
    defined = [n for n in out["drift"] if n not in ("blank", "gone")]
    adjusted = sps.false_discovery_control(
        [drift_p_value(out["drift"][n]) for n in defined], method="bh"
    )
    for name, p_adj in zip(defined, adjusted, strict=True):
        assert math.isclose(out["drift"][name]["p_value_adjusted"], p_adj, rel_tol=1e-9)


# -- 6. the drift rule on large samples ------------------------------------------------


def _large_window(seed: int, n: int, *, shift: float = 0.0, tiny: float = 0.0, cat_p=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pa.table(
        {
            "target": y,
            "score": np.round(np.clip(0.3 * y + 0.6 * rng.random(n) + 0.05, 0.0, 1.0), 2),
            "x": rng.normal(shift, 1.0, n),
            "z": rng.normal(0.0, 1.0, n),
            "small_shift": rng.normal(tiny, 1.0, n),
            "color": rng.choice(
                ["red", "green", "blue", "grey"], n, p=cat_p or [0.4, 0.3, 0.2, 0.1]
            ),
        }
    )


@pytest.fixture(scope="module")
def large_reference() -> pa.Table:
    return _large_window(61, 300_000)


def test_large_samples_of_one_distribution_do_not_drift(large_reference: pa.Table):
    out = run(_large_window(62, 300_000), reference=large_reference)
    assert set(out["drift"]) == {"x", "z", "small_shift", "color"}
    assert [n for n, e in out["drift"].items() if e["drifted"]] == []
    assert all(e["drifted"] is False for e in out["drift"].values())
    rule = out["drift_rule"]
    assert {"alpha", "correction", "effect", "min_effect"} <= set(rule)


def test_clear_shift_drifts_and_a_tiny_significant_shift_does_not(large_reference: pa.Table):
    current = _large_window(63, 300_000, shift=0.5, tiny=0.03, cat_p=[0.25, 0.25, 0.25, 0.25])
    out = run(current, reference=large_reference)
    drift = out["drift"]
    assert drift["x"]["drifted"] is True
    assert drift["color"]["drifted"] is True
    assert drift["z"]["drifted"] is False
    # 300k rows make a 0.03 sd shift highly significant (scipy agrees) but it is no drift
    a = large_reference.column("small_shift").to_numpy()
    b = current.column("small_shift").to_numpy()
    assert sps.ks_2samp(a, b).pvalue < 1e-6
    assert drift["small_shift"]["drifted"] is False


def test_custom_drift_rule_is_reported_and_applied(large_reference: pa.Table):
    current = _large_window(63, 300_000, shift=0.5, tiny=0.03, cat_p=[0.25, 0.25, 0.25, 0.25])
    rule = assay.DriftRule(alpha=0.01, correction="none", effect="jensen_shannon", min_effect=0.0)
    out = run(current, reference=large_reference, drift_rule=rule)
    reported = out["drift_rule"]
    assert reported["alpha"] == 0.01
    assert reported["correction"] == "none"
    assert reported["effect"] == "jensen_shannon"
    assert reported["min_effect"] == 0.0
    # with no minimum effect, significance alone decides: the tiny shift is now flagged
    assert out["drift"]["small_shift"]["drifted"] is True
    assert out["drift"]["z"]["drifted"] is (drift_p_value(out["drift"]["z"]) < 0.01)


# -- 7. bad input raises typed errors naming the field ---------------------------------


def test_bad_input_raises_a_typed_error_naming_the_field(bad_input: Any):
    with pytest.raises(bad_input.error) as info:
        assay.evaluate(str(bad_input.current), **bad_input.api_kwargs())
    err = info.value
    assert isinstance(err, AssayError)
    assert isinstance(err, ValueError)
    assert err.field == bad_input.field, f"{bad_input.name}: field {err.field!r}"
    assert bad_input.field in str(err)


def test_error_classes_are_assay_and_value_errors():
    for cls in (
        ColumnNotFoundError,
        ColumnTypeError,
        SchemaMismatchError,
        EmptyInputError,
        ConfigError,
    ):
        assert issubclass(cls, AssayError) and issubclass(cls, ValueError), cls


def test_bad_input_in_memory(make_binary: Any):
    table = make_binary(71, 200)
    with pytest.raises(ColumnNotFoundError) as info:
        assay.evaluate(table, score="proba")
    assert info.value.field == "proba"
    with pytest.raises(EmptyInputError):
        assay.evaluate(table.slice(0, 0))
    with pytest.raises(EmptyInputError):
        assay.evaluate(pd.DataFrame({"target": pd.Series([], dtype="int64"), "score": []}))
    as_string = table.set_column(
        table.schema.get_field_index("score"), "score", pc.cast(table.column("score"), pa.string())
    )
    with pytest.raises(ColumnTypeError) as info:
        assay.evaluate(pl.from_arrow(as_string))
    assert info.value.field == "score"
    reference = table.drop_columns(["tenure"])
    with pytest.raises(SchemaMismatchError) as info:
        assay.evaluate(table, reference=reference)
    assert info.value.field == "tenure"


def test_ray_engine_without_ray_names_the_install(
    make_binary: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(AssayError) as info:
        assay.evaluate(make_binary(72, 100), engine="ray")
    assert "ray" in str(info.value)
    assert "pip install" in str(info.value)


def test_no_warning_for_a_clean_evaluation(binary_data: Any):
    with warnings.catch_warnings():
        warnings.simplefilter("error", assay.AssayWarning)
        assay.evaluate(binary_data.current, reference=binary_data.reference)


def test_progress_ticks_once_per_step_of_the_local_engine() -> None:
    seen: list[tuple[int, str]] = []

    def factory(total: int) -> Any:
        return lambda name: seen.append((total, name))

    rng = np.random.default_rng(4)
    n = 2_000
    frame = pa.table({"target": rng.integers(0, 2, n), "score": rng.random(n),
                      "amount": rng.normal(size=n), "kind": rng.choice(["a", "b"], n)})  # fmt: skip
    assay.evaluate(frame, reference=frame, progress=factory)
    names = sorted(name for _, name in seen)
    assert names == sorted(["metrics (current)", "metrics (reference)", "prediction drift",
                            "amount", "kind"])  # fmt: skip
    assert {total for total, _ in seen} == {5}
