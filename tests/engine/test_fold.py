"""Partitioning and folding without Ray: listing, splitting, grouping by version × window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from assay.engine.fold import WINDOW, Folded, FoldPlan, fold_batches
from assay.engine.local import finish
from assay.engine.partitions import open_partitioned, read_partition
from assay.engine.spec import EvaluationSpec
from assay.errors import EmptyInputError, InputError


def _write(folder: Path, name: str, rows: int, row_group_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": np.arange(rows)}), folder / name, row_group_size=row_group_size)


def test_partitions_follow_files_and_row_groups_in_order(tmp_path: Path) -> None:
    _write(tmp_path / "a", "1.parquet", 1000, 100)  # 10 row groups
    _write(tmp_path / "b", "2.parquet", 300, 100)
    (tmp_path / "notes.txt").write_text("not data")
    data = open_partitioned(str(tmp_path), role="current", partitions=4)
    sizes = [p.rows for p in data.partitions]
    assert sum(sizes) == 1300 and len(sizes) >= 4 and max(sizes) <= 400
    streamed = [b.column("x").to_numpy() for p in data.partitions
                for b in read_partition(data, p, ["x"], batch_size=64)]  # fmt: skip
    assert all(b.size <= 64 for b in streamed)
    order = np.concatenate(streamed)
    assert np.array_equal(order, np.r_[np.arange(1000), np.arange(300)])  # file order kept


def test_globs_and_missing_data(tmp_path: Path) -> None:
    for day in ("2026-11-01", "2026-11-02", "2026-12-01"):
        _write(tmp_path / day, "p.parquet", 10, 10)
    data = open_partitioned(str(tmp_path / "2026-11-*" / "*.parquet"), role="current")
    assert sum(p.rows for p in data.partitions) == 20
    assert data.source.num_rows == 20
    with pytest.raises(EmptyInputError):
        open_partitioned(str(tmp_path / "2027-*" / "*.parquet"), role="current")
    with pytest.raises(InputError, match="does not exist"):
        open_partitioned("file://" + str(tmp_path / "nowhere"), role="reference")
    uri = open_partitioned("file://" + str(tmp_path / "2026-12-01"), role="current")
    assert uri.source.num_rows == 10


def test_one_pass_keys_states_by_version_and_window() -> None:
    """Groups (version, hourly window) folded in one pass match scikit-learn per group."""
    rng = np.random.default_rng(2)
    n = 6_000
    start = datetime(2026, 11, 1, tzinfo=UTC)
    seconds = rng.integers(0, 3 * 3600, n)
    table = pa.table({
        "ts": pa.array([start + timedelta(seconds=int(s)) for s in seconds],
                       pa.timestamp("us", tz="UTC")),
        "version": rng.choice(["v1", "v2"], n),
        "y": (rng.random(n) < 0.3).astype(np.int64),
        "p": rng.random(n),
    })  # fmt: skip
    spec = EvaluationSpec.build(task="binary", target="y", score="p")
    plan = FoldPlan(spec=spec, role="current", metrics=True,
                    groupings=(("version", WINDOW),), window=("ts", 3600))  # fmt: skip
    halves = [fold_batches(plan, table.slice(i, 3_000).to_batches(max_chunksize=700))
              for i in (0, 3_000)]  # fmt: skip
    folded = Folded.from_bytes(halves[0].merge(halves[1]).to_bytes())
    keys = sorted(k for k in folded.metrics if k)
    assert len(keys) == 6
    for key in keys:
        version, window = key[0][1], key[1][1]
        hour = int(window[11:13])
        rows = (np.asarray(table.column("version")) == version) & (seconds // 3600 == hour)
        metrics = finish(folded.metrics[key], seed=0)
        y, p = table.column("y").to_numpy()[rows], table.column("p").to_numpy()[rows]
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert metrics["n"] == rows.sum()
        assert window == f"2026-11-01T{hour:02d}:00:00Z"


def test_approximate_fold_of_a_column_without_values() -> None:
    """A numeric feature that is null everywhere has no range; its sketch is just empty."""
    from assay.stats.numeric_sketch import sketch_numeric_drift

    spec = EvaluationSpec.build(task="binary", target="y", score="p")
    table = pa.table({"y": [0, 1, 1], "p": [0.1, 0.8, 0.7],
                      "x": pa.array([None, None, None], pa.float64())})  # fmt: skip
    plan = FoldPlan.build(spec, role="current", metrics=True, features={"x": "numeric"},
                          approximate=True)  # fmt: skip
    folded = fold_batches(plan, table.to_batches(max_chunksize=2))
    assert folded.drift["x"].null_count == 3 and folded.drift["x"].count == 0
    drift = sketch_numeric_drift(folded.drift["x"], folded.drift["x"])
    assert drift["ks"]["statistic"] is None and "all" in drift["undefined"]


def test_each_group_is_finished_once_whether_states_travel_cut_or_whole() -> None:
    """A fold's states cut into pieces by the fold task, or sent whole and cut by each
    finishing task (sketches): every group lands in exactly one piece, with its numbers."""
    from assay.engine.ray_tasks import Layout, finish_groups

    rng = np.random.default_rng(5)
    n = 3_000
    table = pa.table({"y": rng.integers(0, 2, n), "p": rng.random(n),
                      "c": rng.choice(["a", "b", "c", "d", "e", "f"], n)})  # fmt: skip
    spec = EvaluationSpec.build(task="binary", target="y", score="p", segments=["c"])
    plan = FoldPlan.build(spec, role="current", metrics=True)
    parts = [fold_batches(plan, table.slice(lo, 1_000).to_batches()) for lo in (0, 1_000, 2_000)]
    for whole in (False, True):
        layout = Layout(buckets=3, whole=whole)
        found: dict = {}
        for piece in range(1 + layout.buckets):
            sent = parts if whole else [layout.split(p)[piece] for p in parts]
            metrics = finish_groups(spec, layout, piece, None, *sent)["metrics"]
            assert not set(metrics) & set(found)  # no group twice
            found.update(metrics)
        assert set(found) == {()} | {(("c", v),) for v in "abcdef"}
        for value in "abcdef":
            rows = np.asarray(table.column("c")) == value
            y, p = table.column("y").to_numpy()[rows], table.column("p").to_numpy()[rows]
            assert found[(("c", value),)]["roc_auc"] == pytest.approx(roc_auc_score(y, p))
