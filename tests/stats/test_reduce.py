"""The same data gives the same bits whatever the number of BLAS threads.

BLAS splits a long dot product across its threads and rounds differently with each
thread count; a Ray worker runs with one BLAS thread, a laptop with several. Evaluations
(binary with and without weights, regression, multiclass) and a paired gate run in fresh
interpreters with 1 and with 4 OpenBLAS threads must print identical JSON. Before the
stats core summed products in numpy's own loop, average precision and ROC AUC differed
in the last digit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assay.stats.reduce import dot, rows_dot

SCRIPT = """
import json, warnings
import numpy as np
import pandas as pd
import assay
warnings.simplefilter("ignore")
rng = np.random.default_rng(5)
n = 120_000
x = rng.normal(size=n)
y = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(int)
frame = pd.DataFrame({"y": y, "p": 1 / (1 + np.exp(-(x + rng.normal(0, 1, n)))),
                      "w": rng.gamma(2.0, 0.5, n), "seg": rng.choice(["a", "b"], n),
                      "f": rng.lognormal(0, 1, n), "t": x * 3 + rng.normal(0, 1, n),
                      "q": x * 3 + rng.normal(0, 1.2, n)})
classes = np.array(["c0", "c1", "c2"])
logits = np.stack([x, -x, rng.normal(size=n)], axis=1)
proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
frame["k"] = classes[np.argmax(logits + rng.normal(0, 1, (n, 3)), axis=1)]
frame["kp"] = classes[np.argmax(proba, axis=1)]
for i, c in enumerate(classes):
    frame[c] = proba[:, i]
ref = frame.sample(frac=0.5, random_state=1)
out = {}
for name, kwargs in {
    "binary": dict(task="binary", target="y", score="p", segments=["seg"]),
    "weighted": dict(task="binary", target="y", score="p", weight="w"),
    "regression": dict(task="regression", target="t", prediction="q"),
    "multiclass": dict(task="multiclass", target="k", prediction="kp", score=list(classes)),
}.items():
    result = assay.evaluate(frame, reference=ref, features=["f"], **kwargs).to_dict()
    out[name] = {k: v for k, v in result.items() if k != "run"}
challenger = frame.assign(id=np.arange(n), p=1 / (1 + np.exp(-frame["q"] / 3)))
gate = assay.gate(frame.assign(id=np.arange(n)), challenger, task="binary", target="y",
                  score="p", paired=True, id_column="id",
                  metrics=["roc_auc", "average_precision", "log_loss"])
out["gate"] = gate.to_dict()["checks"]
print(json.dumps(out, sort_keys=True, default=str))
"""


def _run(threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_evaluations_do_not_depend_on_the_blas_thread_count() -> None:
    one, four = _run(1), _run(4)
    assert one["binary"]["metrics"]["overall"]["roc_auc"] > 0.5  # a real evaluation ran
    for name in one:
        assert one[name] == four[name], name


def test_reductions_equal_numpy_to_rounding() -> None:
    rng = np.random.default_rng(3)
    a, b, m = rng.normal(size=10_001), rng.normal(size=10_001), rng.normal(size=(7, 10_001))
    assert dot(a, b) == pytest.approx(float(np.sum(a * b)), rel=1e-12)
    assert dot(np.array([1.5, -2.0, 4.0]), np.array([2.0, 3.0, 0.25])) == -2.0
    assert np.allclose(rows_dot(m, b), m @ b, rtol=1e-12)
    assert rows_dot(np.zeros((2, 0)), np.zeros(0)).tolist() == [0.0, 0.0]
