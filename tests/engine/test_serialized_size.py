"""serialized_size() is the length of to_bytes(), for states and for folded partitions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from assay.engine.fold import FoldPlan, fold_batches
from assay.engine.spec import EvaluationSpec
from assay.stats import BinaryConfusionState, NumericSampleState


def test_state_size_is_its_bytes_length() -> None:
    rng = np.random.default_rng(3)
    states = [
        NumericSampleState.from_batch(rng.normal(size=1001)),
        NumericSampleState.empty(),
        BinaryConfusionState.from_batch(rng.integers(0, 2, 300), rng.random(300)),
    ]
    for state in states:
        assert state.serialized_size() == len(state.to_bytes())


def test_folded_size_is_its_bytes_length() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    table = pa.table({
        "y": rng.integers(0, 2, n), "p": rng.random(n), "x": rng.normal(size=n),
        "seg": rng.choice(["a", "b", "c"], n), "c": rng.choice(["u", "v"], n),
    })  # fmt: skip
    spec = EvaluationSpec.build(task="binary", target="y", score="p", segments=["seg"])
    for approximate in (False, True):
        plan = FoldPlan.build(spec, role="current", metrics=True, approximate=approximate,
                              features={"x": "numeric", "c": "categorical"})  # fmt: skip
        folded = fold_batches(plan, table.to_batches(max_chunksize=500))
        assert folded.serialized_size() == len(folded.to_bytes())
