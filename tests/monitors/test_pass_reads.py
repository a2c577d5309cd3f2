"""A monitor pass reads only the windows it judges, however long the history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
from assay.store.base import Rollup
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

DAY0 = datetime(2026, 9, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HISTORY = 60  # days, two hourly buckets each
LATE_DAY = 55
SPEC = ModelSpec(name="fraud", task="binary", features={"amount": "numeric"}, segments=[])
CONFIG = {"models": [{
    "name": "fraud", "tenant": "acme", "min_rows": 1,
    "windows": [{"size": "1d"}, {"size": "2d", "kind": "sliding"}],
    "expected_rows_per_window": 20,
    "monitors": [
        {"name": "auc-drop", "kind": "metric", "metric": "roc_auc", "window": "1d",
         "condition": {"type": "relative", "op": "<", "compare_to": "previous",
                       "change_pct": 10}},
        {"name": "volume", "kind": "data_quality", "metric": "volume", "window": "1d",
         "condition": {"op": "<", "value": 0.1}},
        {"name": "auc-2d", "kind": "metric", "metric": "roc_auc", "window": "2d",
         "condition": {"op": "<", "value": 0.5}},
        {"name": "volume-6h", "kind": "data_quality", "metric": "volume", "window": "6h",
         "condition": {"op": "<", "value": 0.01}}]}]}  # fmt: skip


class CountingStore(DuckDBStore):
    """A DuckDB store that records every rollup read: (start, end, rollups returned)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reads: list[tuple[datetime, datetime, int]] = []

    def load_rollups(self, *args: Any, **kwargs: Any) -> list[Rollup]:
        rollups = super().load_rollups(*args, **kwargs)
        self.reads.append((kwargs["start"], kwargs["end"], len(rollups)))
        return rollups


def _history(store: DuckDBStore) -> pa.Table:
    """Ten rows at 03:00 and ten at 15:00 of each day; labels for all but LATE_DAY."""
    rng = np.random.default_rng(9)
    n = HISTORY * 20
    stamps = [DAY0 + (i // 20) * DAY + timedelta(hours=3 if i % 20 < 10 else 15) for i in range(n)]
    ids = [f"e{i}" for i in range(n)]
    label = np.tile([0.0, 1.0], n // 2)
    events = pa.table({"id": ids, "version": ["v1"] * n,
                       "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                       "score": np.clip(label * 0.5 + rng.random(n) * 0.6, 0, 1),
                       "amount": rng.normal(size=n)})  # fmt: skip
    prepared = predictions_from_arrow(SPEC, events, IngestLimits())
    store.append_predictions("acme", "fraud", prepared.table)
    labels = pa.table({"id": ids, "label": label, "timestamp": events.column("timestamp")})
    day = np.array([i // 20 for i in range(n)])
    store.append_labels("acme", "fraud", labels_from_arrow(
        SPEC, labels.filter(pa.array(day != LATE_DAY)), IngestLimits()).table)  # fmt: skip
    return labels.filter(pa.array(day == LATE_DAY))


def test_a_pass_reads_the_windows_it_judges_and_the_restated_one(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "data")
    store.register_model("acme", SPEC)
    try:
        late = _history(store)
        clock = [DAY0 + HISTORY * DAY + timedelta(hours=1, minutes=30)]
        config = MonitoringConfig.model_validate(CONFIG)
        scheduler = MonitorScheduler(store, config, tmp_path, clock=lambda: clock[0])
        scheduler.run_once()  # the first pass rebuilds the history's rollups
        today = DAY0 + HISTORY * DAY
        day = [(today - k * DAY, today - (k - 1) * DAY) for k in (1, 2)]  # yesterday, before
        end = today + timedelta(hours=2)  # the pass's time (01:40 to 02:00) rounded up
        sliding = (end - 2 * DAY, end)
        six = (today - timedelta(hours=6), today)  # the latest closed 6 hours
        judged = {*day, sliding, six}

        store.reads.clear()
        clock[0] += timedelta(minutes=10)
        scheduler.run_once()
        assert {(a, b) for a, b, _ in store.reads} == judged
        assert len(store.reads) == len(judged)  # each span read once
        # rollups read: the two buckets of yesterday and of the day before, the sliding
        # span's four (from 02:00 two days ago), none in the last 6 hours
        assert sum(n for *_, n in store.reads) == 8

        store.append_labels("acme", "fraud",
                            labels_from_arrow(SPEC, late, IngestLimits()).table)  # fmt: skip
        store.reads.clear()
        clock[0] += timedelta(minutes=10)
        scheduler.run_once()
        restated = (DAY0 + LATE_DAY * DAY, DAY0 + (LATE_DAY + 1) * DAY)
        before = (restated[0] - DAY, restated[0])  # its previous, for the relative condition
        assert {(a, b) for a, b, _ in store.reads} == judged | {restated, before}
        assert sum(n for *_, n in store.reads) == 8 + 4  # of 120 buckets in the history
    finally:
        store.close()
