"""Shared fixtures for the end-to-end tests of Assay's public contract.

The data are synthetic and seeded. Every expected number in the tests is computed here
or in the test itself with scikit-learn, scipy or numpy written out by hand from the
definitions in ARCHITECTURE.md — never with Assay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as skm

RTOL = 1e-9
ATOL = 1e-12

N_CURRENT = 3000
N_REFERENCE = 2500
CHANNELS = ("app", "store", "web")
COUNTRIES = ("DE", "FR", "US")
BINARY_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "ece",
)
# metrics whose 95% interval must contain the point estimate
CI_CONTAINS_VALUE = ("roc_auc", "accuracy", "precision", "recall", "log_loss", "brier")
MULTICLASS_CLASSES = ("cat", "dog", "fox")


# -- data ------------------------------------------------------------------------------


def make_binary_table(seed: int, n: int, *, shift: float = 0.0, unseen: bool = False) -> pa.Table:
    """A binary-classification window.

    Columns: ``id``; numeric ``amount`` (no nulls) and ``tenure`` (~10% nulls);
    categorical ``country`` (~5% nulls; ``unseen`` adds a category ``XX``); segment
    ``channel``; ``target`` (0/1), ``score`` (probability, 2 decimals so ties occur) and
    ``prediction`` (0/1 at the threshold 0.4, so it differs from ``score >= 0.5``).
    ``shift`` moves ``amount`` and ``tenure`` (a little) to make drift non-trivial.
    """
    rng = np.random.default_rng(seed)
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.2, 0.3])
    y = (rng.random(n) < 0.35 + 0.1 * (channel == "web")).astype(np.int64)
    raw = 0.15 + 0.35 * y + 0.45 * rng.random(n) + 0.05 * (channel == "app")
    score = np.round(np.clip(raw, 0.01, 0.99), 2)
    amount = rng.lognormal(3.0 + shift, 0.8, n)
    tenure = rng.normal(24.0 + 2 * shift, 6.0, n)
    tenure_mask = rng.random(n) < 0.1
    countries = list(COUNTRIES) + (["XX"] if unseen else [])
    probs = [0.5, 0.3, 0.2] if not unseen else [0.45, 0.3, 0.2, 0.05]
    country = rng.choice(countries, n, p=probs).astype(object)
    country[rng.random(n) < 0.05] = None
    return pa.table(
        {
            "id": pa.array(np.arange(seed * 1_000_000, seed * 1_000_000 + n), pa.int64()),
            "amount": pa.array(amount, pa.float64()),
            "tenure": pa.array(tenure, pa.float64(), mask=tenure_mask),
            "country": pa.array(country.tolist(), pa.string()),
            "channel": pa.array(channel.tolist(), pa.string()),
            "target": pa.array(y, pa.int64()),
            "score": pa.array(score, pa.float64()),
            "prediction": pa.array((score >= 0.4).astype(np.int64), pa.int64()),
        }
    )


def make_multiclass_table(seed: int, n: int) -> pa.Table:
    """Multiclass window: ``target`` and ``prediction`` class names, ``p_<class>`` columns.

    The probabilities are a softmax (rows sum to 1). ``prediction`` is the argmax except
    for ~10% of rows, so accuracy from ``prediction`` differs from accuracy of the argmax.
    """
    rng = np.random.default_rng(seed)
    k = len(MULTICLASS_CLASSES)
    y = rng.choice(k, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(0.0, 1.0, (n, k))
    logits[np.arange(n), y] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    flip = rng.random(n) < 0.1
    pred[flip] = rng.integers(0, k, int(flip.sum()))
    names = np.array(MULTICLASS_CLASSES)
    columns: dict[str, Any] = {
        "id": pa.array(np.arange(n), pa.int64()),
        "size": pa.array(rng.normal(10.0, 2.0, n), pa.float64()),
        "region": pa.array(rng.choice(["east", "west"], n).tolist(), pa.string()),
        "target": pa.array(names[y].tolist(), pa.string()),
        "prediction": pa.array(names[pred].tolist(), pa.string()),
    }
    for i, cls in enumerate(MULTICLASS_CLASSES):
        columns[f"p_{cls}"] = pa.array(proba[:, i], pa.float64())
    return pa.table(columns)


def make_regression_table(seed: int, n: int) -> pa.Table:
    """Regression window: positive ``target`` (so MAPE is well behaved) and ``prediction``."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(4.0, 25.0, n) + 1.0
    pred = y * rng.normal(1.0, 0.15, n) + rng.normal(0.0, 5.0, n)
    return pa.table(
        {
            "id": pa.array(np.arange(n), pa.int64()),
            "rooms": pa.array(rng.integers(1, 7, n), pa.int64()),
            "district": pa.array(rng.choice(["a", "b", "c"], n).tolist(), pa.string()),
            "target": pa.array(y, pa.float64()),
            "prediction": pa.array(pred, pa.float64()),
        }
    )


@dataclass(frozen=True)
class BinaryData:
    """One current and one reference window, in memory and on disk."""

    current: pa.Table
    reference: pa.Table
    current_parquet: Path
    reference_parquet: Path
    current_csv: Path
    reference_csv: Path
    current_dir: Path
    reference_dir: Path


def write_parquet_folder(table: pa.Table, folder: Path, parts: int = 3) -> Path:
    """Split ``table`` into ``parts`` Parquet files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i in range(parts):
        pq.write_table(
            table.slice(bounds[i], bounds[i + 1] - bounds[i]), folder / f"part-{i}.parquet"
        )
    return folder


@pytest.fixture(scope="session")
def binary_data(tmp_path_factory: pytest.TempPathFactory) -> BinaryData:
    """Seeded binary windows (current has a shift and an unseen country) as files too."""
    root = tmp_path_factory.mktemp("binary")
    current = make_binary_table(1, N_CURRENT, shift=0.15, unseen=True)
    reference = make_binary_table(2, N_REFERENCE)
    paths = {}
    for name, table in (("current", current), ("reference", reference)):
        pq.write_table(table, root / f"{name}.parquet")
        pacsv.write_csv(table, root / f"{name}.csv")
        write_parquet_folder(table, root / f"{name}_parts")
        paths[name] = (root / f"{name}.parquet", root / f"{name}.csv", root / f"{name}_parts")
    return BinaryData(
        current,
        reference,
        paths["current"][0],
        paths["reference"][0],
        paths["current"][1],
        paths["reference"][1],
        paths["current"][2],
        paths["reference"][2],
    )


@pytest.fixture(scope="session")
def multiclass_data() -> tuple[pa.Table, pa.Table]:
    """(current, reference) multiclass windows."""
    return make_multiclass_table(11, 2000), make_multiclass_table(12, 1500)


@pytest.fixture(scope="session")
def regression_data() -> tuple[pa.Table, pa.Table]:
    """(current, reference) regression windows."""
    return make_regression_table(21, 2000), make_regression_table(22, 1500)


@pytest.fixture(scope="session")
def make_binary() -> Callable[..., pa.Table]:
    """Factory for extra binary windows: ``make_binary(seed, n, shift=..., unseen=...)``."""
    return make_binary_table


# -- independent references ------------------------------------------------------------


def close(actual: Any, expected: float) -> bool:
    """Equal to 1e-9 relative (1e-12 absolute near zero)."""
    return actual is not None and math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL)


def assert_close(actual: Any, expected: float, what: str = "") -> None:
    """Assert :func:`close` with a readable message."""
    assert close(actual, expected), f"{what}: got {actual!r}, expected {expected!r}"


def ece_by_hand(y: np.ndarray, s: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error on equal-width bins (lo, hi] (the first bin holds 0).

    Σ_b (n_b / n) · |mean(y_b) − mean(s_b)|, bins as scikit-learn's calibration_curve.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (s <= hi) & ((s > lo) if b > 0 else (s >= lo))
        if in_bin.any():
            total += in_bin.sum() / s.size * abs(y[in_bin].mean() - s[in_bin].mean())
    return float(total)


def binary_reference(
    y: np.ndarray, s: np.ndarray, threshold: float = 0.5, pred: np.ndarray | None = None
) -> dict[str, float]:
    """The nine headline binary metrics from scikit-learn (ECE by hand)."""
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    p = (s >= threshold).astype(np.int64) if pred is None else np.asarray(pred, dtype=np.int64)
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p, zero_division=np.nan),
        "recall": skm.recall_score(y, p, zero_division=np.nan),
        "f1": skm.f1_score(y, p, zero_division=np.nan),
        "roc_auc": skm.roc_auc_score(y, s),
        "average_precision": skm.average_precision_score(y, s),
        "log_loss": skm.log_loss(y, s, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, s),
        "ece": ece_by_hand(y, s),
    }


def multiclass_reference(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: Iterable[str]
) -> dict[str, float]:
    """Multiclass metrics from scikit-learn."""
    labels = list(classes)
    out: dict[str, float] = {"accuracy": skm.accuracy_score(y, pred)}
    for avg in ("macro", "micro", "weighted"):
        out[f"precision_{avg}"] = skm.precision_score(
            y, pred, labels=labels, average=avg, zero_division=0
        )
        out[f"recall_{avg}"] = skm.recall_score(
            y, pred, labels=labels, average=avg, zero_division=0
        )
        out[f"f1_{avg}"] = skm.f1_score(y, pred, labels=labels, average=avg, zero_division=0)
    out["log_loss"] = skm.log_loss(y, proba, labels=labels)
    out["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
    return out


def regression_reference(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Regression metrics from scikit-learn."""
    return {
        "mae": skm.mean_absolute_error(y, pred),
        "mse": skm.mean_squared_error(y, pred),
        "rmse": skm.root_mean_squared_error(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
        "r2": skm.r2_score(y, pred),
    }


def _psi_by_hand(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    r = np.maximum(ref_shares, 1e-4)
    c = np.maximum(cur_shares, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_drift_reference(ref: pa.ChunkedArray, cur: pa.ChunkedArray) -> dict[str, Any]:
    """ks, psi, jensen_shannon, wasserstein(_normed) per ARCHITECTURE.md, nulls dropped."""
    a = pc.drop_null(ref).to_numpy().astype(np.float64)
    b = pc.drop_null(cur).to_numpy().astype(np.float64)
    ks = sps.ks_2samp(a, b)
    edges = np.unique(np.quantile(a, np.arange(1, 10) / 10.0))
    k = edges.size + 1
    ref_shares = np.bincount(np.searchsorted(edges, a, side="right"), minlength=k) / a.size
    cur_shares = np.bincount(np.searchsorted(edges, b, side="right"), minlength=k) / b.size
    w = sps.wasserstein_distance(a, b)
    return {
        "type": "numeric",
        "ks": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue)},
        "psi": _psi_by_hand(ref_shares, cur_shares),
        "jensen_shannon": float(jensenshannon(ref_shares, cur_shares, base=2)),
        "wasserstein": float(w),
        "wasserstein_normed": float(w / np.std(a)),
    }


def categorical_drift_reference(ref: pa.ChunkedArray, cur: pa.ChunkedArray) -> dict[str, Any]:
    """chi2 (no correction), psi, jensen_shannon over the union of categories, nulls a category."""
    ref_values = ["\0null" if v is None else str(v) for v in ref.to_pylist()]
    cur_values = ["\0null" if v is None else str(v) for v in cur.to_pylist()]
    categories = sorted(set(ref_values) | set(cur_values))
    table = np.array(
        [[values.count(c) for c in categories] for values in (ref_values, cur_values)],
        dtype=np.float64,
    )
    chi2 = sps.chi2_contingency(table, correction=False)
    ref_shares = table[0] / table[0].sum()
    cur_shares = table[1] / table[1].sum()
    return {
        "type": "categorical",
        "chi2": {
            "statistic": float(chi2.statistic),
            "p_value": float(chi2.pvalue),
            "dof": int(chi2.dof),
        },
        "psi": _psi_by_hand(ref_shares, cur_shares),
        "jensen_shannon": float(jensenshannon(ref_shares, cur_shares, base=2)),
    }


def drift_reference(
    reference: pa.Table, current: pa.Table, features: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Reference drift statistics of ``features`` (type from the Arrow type)."""
    out = {}
    for name in features:
        column = reference.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out[name] = categorical_drift_reference(column, current.column(name))
        else:
            out[name] = numeric_drift_reference(column, current.column(name))
    return out


def assert_drift_matches(actual: dict[str, Any], expected: dict[str, Any], name: str) -> None:
    """Every statistic of one feature's drift entry equals the reference to 1e-9."""
    assert actual["type"] == expected["type"], name
    assert isinstance(actual["drifted"], bool), f"{name}: drifted is {actual['drifted']!r}"
    if expected["type"] == "numeric":
        assert set(actual["ks"]) >= {"statistic", "p_value"}
        assert_close(actual["ks"]["statistic"], expected["ks"]["statistic"], f"{name} ks stat")
        assert_close(actual["ks"]["p_value"], expected["ks"]["p_value"], f"{name} ks p")
        for key in ("psi", "jensen_shannon", "wasserstein", "wasserstein_normed"):
            assert_close(actual[key], expected[key], f"{name} {key}")
    else:
        assert actual["chi2"]["dof"] == expected["chi2"]["dof"], name
        assert_close(actual["chi2"]["statistic"], expected["chi2"]["statistic"], f"{name} chi2")
        assert_close(actual["chi2"]["p_value"], expected["chi2"]["p_value"], f"{name} chi2 p")
        for key in ("psi", "jensen_shannon"):
            assert_close(actual[key], expected[key], f"{name} {key}")


def assert_metrics_match(actual: dict[str, Any], expected: dict[str, float], where: str) -> None:
    """Every expected metric equals Assay's to 1e-9."""
    for name, value in expected.items():
        assert_close(actual.get(name), value, f"{where} {name}")


def strict_json_loads(text: str) -> Any:
    """json.loads that refuses NaN / Infinity (which Python's json accepts by default)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    import json

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """The independent reference implementations and assertion helpers."""
    return SimpleNamespace(
        binary=binary_reference,
        multiclass=multiclass_reference,
        regression=regression_reference,
        drift=drift_reference,
        numeric_drift=numeric_drift_reference,
        categorical_drift=categorical_drift_reference,
        ece=ece_by_hand,
        close=close,
        assert_close=assert_close,
        assert_drift_matches=assert_drift_matches,
        assert_metrics_match=assert_metrics_match,
        strict_json_loads=strict_json_loads,
        binary_metrics=BINARY_METRICS,
        ci_contains_value=CI_CONTAINS_VALUE,
        classes=MULTICLASS_CLASSES,
    )


# -- bad inputs, shared by the API and the CLI tests ------------------------------------


@dataclass
class BadInput:
    """One invalid evaluation: files on disk, options, and the error it must raise."""

    name: str
    error: type[Exception]
    field: str
    current: Path
    reference: Path | None = None
    task: str = "binary"
    target: str = "target"
    score: str | None = "score"
    prediction: str | None = None
    segments: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    engine: str = "local"

    def api_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``assay.evaluate``."""
        kwargs: dict[str, Any] = {
            "reference": None if self.reference is None else str(self.reference),
            "task": self.task,
            "target": self.target,
            "score": self.score,
            "prediction": self.prediction,
            "segments": self.segments,
            "engine": self.engine,
        }
        if self.features is not None:
            kwargs["features"] = list(self.features)
        return kwargs

    def cli_args(self, json_out: Path) -> list[str]:
        """Arguments of ``assay evaluate``."""
        args = ["evaluate", "--current", str(self.current), "--task", self.task]
        args += ["--target", self.target]
        if self.reference is not None:
            args += ["--reference", str(self.reference)]
        if self.score is not None:
            args += ["--score", self.score]
        if self.prediction is not None:
            args += ["--prediction", self.prediction]
        for segment in self.segments:
            args += ["--segment", segment]
        if self.features is not None:
            args += ["--features", ",".join(self.features)]
        args += ["--engine", self.engine, "--json", str(json_out)]
        return args


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _bad_input(name: str, root: Path) -> BadInput:
    """Build the files of the bad-input case ``name`` under ``root``."""
    from assay.errors import (
        AssayError,
        ColumnNotFoundError,
        ColumnTypeError,
        ConfigError,
        EmptyInputError,
        SchemaMismatchError,
    )

    good = make_binary_table(5, 400)
    good_ref = make_binary_table(6, 300)

    def write(table: pa.Table, filename: str) -> Path:
        path = root / filename
        if path.suffix == ".csv":
            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path)
        return path

    cur = write(good, "current.parquet")
    ref = write(good_ref, "reference.parquet")
    score = good.column("score").to_numpy()
    y = good.column("target").to_numpy()
    if name == "missing_score_column":
        return BadInput(name, ColumnNotFoundError, "nope", cur, score="nope")
    if name == "missing_target_column":
        return BadInput(name, ColumnNotFoundError, "label", cur, target="label")
    if name == "missing_segment_column":
        return BadInput(name, ColumnNotFoundError, "region", cur, segments=("region",))
    if name == "missing_feature_column":
        return BadInput(name, ColumnNotFoundError, "ghost", cur, ref, features=("amount", "ghost"))
    if name == "string_score":
        table = _with_column(good, "score", pa.array([f"{v:.2f}" for v in score]))
        return BadInput(name, ColumnTypeError, "score", write(table, "s.parquet"))
    if name == "score_above_one":
        table = _with_column(good, "score", pa.array(score * 2.0))
        return BadInput(name, ColumnTypeError, "score", write(table, "s.parquet"))
    if name == "negative_score":
        table = _with_column(good, "score", pa.array(score - 0.5))
        return BadInput(name, ColumnTypeError, "score", write(table, "s.parquet"))
    if name == "labels_not_binary":
        table = _with_column(good, "target", pa.array(y + (np.arange(y.size) % 7 == 0)))
        return BadInput(name, ColumnTypeError, "target", write(table, "t.parquet"))
    if name == "string_labels":
        table = _with_column(good, "target", pa.array(np.where(y == 1, "yes", "no").tolist()))
        return BadInput(name, ColumnTypeError, "target", write(table, "t.parquet"))
    if name == "prediction_not_binary":
        table = _with_column(good, "prediction", pa.array(np.full(y.size, 2, np.int64)))
        path = write(table, "p.parquet")
        return BadInput(name, ColumnTypeError, "prediction", path, prediction="prediction")
    if name == "regression_string_prediction":
        reg = make_regression_table(7, 200)
        table = _with_column(reg, "prediction", pa.array(["x"] * reg.num_rows))
        path = write(table, "r.parquet")
        return BadInput(
            name, ColumnTypeError, "prediction", path, task="regression", score=None,
            prediction="prediction",
        )  # fmt: skip
    if name == "empty_parquet":
        return BadInput(name, EmptyInputError, "current", write(good.slice(0, 0), "e.parquet"))
    if name == "empty_csv":
        path = root / "e.csv"
        path.write_text(",".join(good.column_names) + "\n", encoding="utf-8")
        return BadInput(name, EmptyInputError, "current", path)
    if name == "reference_lacks_feature":
        path = write(good_ref.drop_columns(["amount"]), "r.parquet")
        return BadInput(name, SchemaMismatchError, "amount", cur, path)
    if name == "reference_feature_is_string":
        amount = good_ref.column("amount").to_numpy()
        table = _with_column(good_ref, "amount", pa.array([f"{v:.3f}" for v in amount]))
        return BadInput(name, SchemaMismatchError, "amount", cur, write(table, "r.parquet"))
    if name == "unknown_task":
        return BadInput(name, ConfigError, "task", cur, task="ranking")
    if name == "unknown_engine":
        return BadInput(name, ConfigError, "engine", cur, engine="spark")
    if name == "nonexistent_current":
        return BadInput(name, AssayError, "current", root / "missing.parquet")
    if name == "nonexistent_reference":
        return BadInput(name, AssayError, "reference", cur, root / "missing_ref.parquet")
    if name == "unsupported_extension":
        path = root / "current.xlsx"
        path.write_bytes(b"PK\x03\x04 not really a spreadsheet")
        return BadInput(name, ConfigError, "current", path)
    raise AssertionError(name)


BAD_INPUTS = (
    "missing_score_column",
    "missing_target_column",
    "missing_segment_column",
    "missing_feature_column",
    "string_score",
    "score_above_one",
    "negative_score",
    "labels_not_binary",
    "string_labels",
    "prediction_not_binary",
    "regression_string_prediction",
    "empty_parquet",
    "empty_csv",
    "reference_lacks_feature",
    "reference_feature_is_string",
    "unknown_task",
    "unknown_engine",
    "nonexistent_current",
    "nonexistent_reference",
    "unsupported_extension",
)


@pytest.fixture(scope="session")
def build_bad_input() -> Callable[[str, Path], BadInput]:
    """The bad-input case builder: ``build_bad_input(name, folder)``."""
    return _bad_input


@pytest.fixture(params=BAD_INPUTS)
def bad_input(request: pytest.FixtureRequest, tmp_path: Path) -> BadInput:
    """Each invalid input in turn (files written to ``tmp_path``)."""
    return _bad_input(request.param, tmp_path)


@pytest.fixture(scope="session")
def binary_expected(binary_data: BinaryData) -> dict[str, Any]:
    """Reference numbers for ``binary_data`` evaluated with segments=("channel",)."""
    cur = binary_data.current
    y = cur.column("target").to_numpy()
    s = cur.column("score").to_numpy()
    channel = np.array(cur.column("channel").to_pylist())
    by_segment = {
        value: binary_reference(y[channel == value], s[channel == value]) for value in CHANNELS
    }
    features = ("amount", "tenure", "country", "prediction")
    return {
        "overall": binary_reference(y, s),
        "by_segment": by_segment,
        "features": features,
        "drift": drift_reference(binary_data.reference, cur, features),
    }
