"""out_of_range: the share of a window's values outside the reference's range.

Every share is checked against a brute-force count over the raw values written in the
test (a boolean mask, no sorting), never against the code's own output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.service.evaluations import evaluate_windows, out_of_range, reference_from_range
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.stats import NumericSampleState
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = ModelSpec(name="fraud", task="binary",
                 features={"amount": "numeric", "country": "categorical"})  # fmt: skip


def brute_force(reference: np.ndarray, current: np.ndarray, q: tuple[float, float]) -> float:
    """Share of the finite current values strictly outside the reference's quantiles."""
    ref = reference[np.isfinite(reference)]
    cur = current[np.isfinite(current)]
    low, high = np.quantile(ref, q)
    return float(np.mean((cur < low) | (cur > high)))


def test_hand_worked_bounds_ties_and_nulls() -> None:
    # reference 1..9 (min 1, max 9); current has a tie at each bound, one value out below,
    # two above, and a null: out of range = 3 of 8 non-null values
    ref = NumericSampleState.from_batch(np.arange(1.0, 10.0))
    cur = NumericSampleState.from_batch(np.array([0.5, 1, 1, 5, 9, 9, 9.5, 11, np.nan]))
    result = out_of_range(ref, cur, (0.0, 1.0))
    assert result["bounds"] == [1.0, 9.0]
    assert (result["below"], result["above"], result["count"]) == (1, 2, 8)
    assert result["share"] == 3 / 8
    # quantiles 0.25 / 0.75 of 1..9 by linear interpolation: 3 and 7 -> 0.5, 1, 1 below;
    # 9, 9, 9.5, 11 above: 7 of 8
    quartiles = out_of_range(ref, cur, (0.25, 0.75))
    assert quartiles["bounds"] == [3.0, 7.0]
    assert quartiles["share"] == 7 / 8
    empty = out_of_range(ref, NumericSampleState.from_batch(np.array([np.nan])), (0.0, 1.0))
    assert empty["share"] is None and empty["count"] == 0


@pytest.mark.parametrize("quantiles", [(0.0, 1.0), (0.001, 0.999), (0.05, 0.9)])
def test_matches_a_brute_force_count(quantiles: tuple[float, float]) -> None:
    rng = np.random.default_rng(3)
    reference = rng.lognormal(3.0, 1.0, 5000).round(1)  # rounding makes ties at the bounds
    current = np.concatenate([rng.lognormal(3.3, 1.1, 3000).round(1), [np.nan] * 40])
    # merged states, as a window merges its hourly buckets
    parts = np.array_split(current, 7)
    state = NumericSampleState.from_batch(parts[0])
    for part in parts[1:]:
        state = state.merge(NumericSampleState.from_batch(part))
    result = out_of_range(NumericSampleState.from_batch(reference), state, quantiles)
    assert result["share"] == pytest.approx(brute_force(reference, current, quantiles), abs=1e-15)
    assert result["count"] == 3000


def _append(store: DuckDBStore, day: int, amount: np.ndarray) -> None:
    n = amount.size
    rng = np.random.default_rng(100 + day)
    label = (rng.random(n) < 0.5).astype(float)
    ids = [f"d{day}-{i}" for i in range(n)]
    ts = pa.array([DAY0 + timedelta(days=day, minutes=int(m)) for m in rng.integers(0, 1440, n)],
                  pa.timestamp("us", tz="UTC"))  # fmt: skip
    events = pa.table({"id": ids, "version": ["v1"] * n, "timestamp": ts,
                       "score": rng.random(n), "amount": amount,
                       "country": rng.choice(["DE", "FR"], n)})  # fmt: skip
    prepared = predictions_from_arrow(SPEC, events, IngestLimits())
    store.append_predictions("acme", "fraud", prepared.table)
    labels = pa.table({"id": ids, "label": label, "timestamp": ts})
    store.append_labels("acme", "fraud", labels_from_arrow(SPEC, labels, IngestLimits()).table)


def test_window_evaluation_and_monitor_on_a_real_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(50, 10, 800)
    reference[:8] = np.nan
    shifted = np.concatenate([rng.normal(65, 10, 600), [np.nan] * 5])
    store = DuckDBStore(tmp_path / "data")
    try:
        store.register_model("acme", SPEC)
        _append(store, 0, reference)
        _append(store, 1, shifted)
        reference_from_range(store, "acme", "fraud", start=DAY0, end=DAY0 + timedelta(days=1))
        result = evaluate_windows(store, "acme", "fraud", window="1d",
                                  range_bounds=[(0.0, 1.0), (0.01, 0.99)])  # fmt: skip
        [day0, day1] = result["windows"]
        assert set(day1["data_quality"]) == {"amount"}  # numeric features only
        entries = {tuple(e["quantiles"]): e for e in day1["data_quality"]["amount"]["out_of_range"]}
        for q in ((0.0, 1.0), (0.01, 0.99)):
            assert entries[q]["share"] == pytest.approx(brute_force(reference, shifted, q))
            assert entries[q]["count"] == 600
        assert day0["data_quality"]["amount"]["out_of_range"][0]["share"] == 0.0  # itself
        expected = brute_force(reference, shifted, (0.01, 0.99))
        assert expected > 0.2  # the shift pushes a fifth of the values past the 99th pct

        config = MonitoringConfig.model_validate({"models": [{
            "name": "fraud", "tenant": "acme", "min_rows": 100, "monitors": [
                {"name": "amount-range", "kind": "data_quality", "metric": "out_of_range",
                 "feature": "*", "bounds": [0.01, 0.99], "window": "1d",
                 "condition": {"op": ">", "value": 0.2}}]}]})  # fmt: skip
        scheduler = MonitorScheduler(store, config, tmp_path,
                                     clock=lambda: DAY0 + timedelta(days=2, hours=1))  # fmt: skip
        [note] = scheduler.run_once()
        assert (note.status, note.labels["feature"]) == ("firing", "amount")
        assert note.value == pytest.approx(expected)
    finally:
        store.close()
