"""The Ray engine on a real local Ray runtime: same answers as the local engine.

Exact states must give the local engine's result exactly (the whole JSON but the run
record); approximate states must be within their reported bounds of scikit-learn and
scipy on the full data. One runtime (2 CPUs) serves the module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import assay
from assay.errors import ColumnTypeError, ConfigError, WorkerMemoryError

from .conftest import binary_window, free_port, serving, write_partitioned


def _evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assay.evaluate(*args, **kwargs).to_dict()


def _without_run(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "run"}


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("windows")
    cur, ref = binary_window(60_000, seed=1, shift=0.2), binary_window(50_000, seed=2)
    return {
        "current": write_partitioned(cur, root / "current", files=6, row_group_size=4_000),
        "reference": write_partitioned(ref, root / "reference", files=5, row_group_size=7_000),
        "current_table": cur,
        "reference_table": ref,
    }


ARGS: dict[str, Any] = {
    "task": "binary",
    "target": "target",
    "score": "score",
    "segments": ["channel", "region"],
    "weight": "weight",
}


def _assert_close(a: Any, b: Any, rel: float, where: str = "") -> None:
    """Equal structure; floats equal to ``rel`` (weighted sums add up in another order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            _assert_close(a[key], b[key], rel, f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, rel, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rel, abs=1e-15), where
    else:
        assert a == b, where


def test_exact_states_on_ray_equal_the_local_engine(ray_runtime: Any, windows: dict) -> None:
    """Unit weights: the same JSON exactly. Sample weights: Σw of each partition is added
    to the others', so sums agree to rounding (1e-12), not bit for bit."""
    ref_glob = str(windows["reference"]) + "/day=*/part-*.parquet"  # the same files
    unweighted = {k: v for k, v in ARGS.items() if k != "weight"}
    local = _evaluate(str(windows["current"]), reference=str(windows["reference"]), **unweighted)
    on_ray = _evaluate(str(windows["current"]), reference=ref_glob, engine="ray", **unweighted)
    assert _without_run(on_ray) == _without_run(local)
    assert on_ray["run"]["config_hash"] == local["run"]["config_hash"]

    local = _evaluate(str(windows["current"]), reference=str(windows["reference"]), **ARGS)
    on_ray = _evaluate(str(windows["current"]), reference=ref_glob, engine="ray", **ARGS)
    _assert_close(_without_run(local), _without_run(on_ray), rel=1e-12)
    run = on_ray["run"]
    assert run["engine"] == "ray" and run["ray"]["exact"] is True
    assert run["ray"]["windows"]["current"]["partitions"] >= 6
    assert run["config_hash"] == local["run"]["config_hash"]
    # and independently of both engines: scikit-learn and scipy on the full data
    cur = windows["current_table"].to_pandas()
    labeled = cur[cur["target"].notna()]
    auc = roc_auc_score(labeled["target"], labeled["score"], sample_weight=labeled["weight"])
    assert on_ray["metrics"]["overall"]["roc_auc"] == pytest.approx(auc, abs=1e-9)
    web = labeled[labeled["channel"] == "web"]
    web_auc = roc_auc_score(web["target"], web["score"], sample_weight=web["weight"])
    assert on_ray["metrics"]["by_segment"]["channel"]["web"]["roc_auc"] == pytest.approx(web_auc)
    assert set(on_ray["metrics"]["by_segment"]["region"]) == {"n", "s", "(null)"}
    ref = windows["reference_table"].column("amount").to_numpy(zero_copy_only=False)
    amount = cur["amount"].to_numpy()
    ks = ks_2samp(ref[np.isfinite(ref)], amount[np.isfinite(amount)]).statistic
    assert on_ray["drift"]["amount"]["ks"]["statistic"] == pytest.approx(ks, abs=1e-12)
    assert on_ray["rows"] == {"current": 60_000, "reference": 50_000}


def test_many_partitions_are_tree_merged_before_finishing(ray_runtime: Any, windows: dict) -> None:
    """At most one partition's states per finishing task: the current window's partitions
    go through two levels of 8-way merge tasks, and the JSON is still the local engine's."""
    kwargs = {k: v for k, v in ARGS.items() if k != "weight"}
    local = _evaluate(str(windows["current"]), reference=str(windows["reference"]), **kwargs)
    options = {"partitions": 15, "finish_inputs": 1}
    on_ray = _evaluate(str(windows["current"]), reference=str(windows["reference"]),
                       engine="ray", ray_options=options, **kwargs)  # fmt: skip
    by_uri = _evaluate("file://" + str(windows["current"]), engine="ray", **kwargs)
    alone = _evaluate(str(windows["current"]), **kwargs)  # a filesystem URI: the same data
    assert _without_run(by_uri) == _without_run(alone)
    windows_run = on_ray["run"]["ray"]["windows"]
    assert windows_run["current"]["partitions"] > 8  # two levels
    assert windows_run["reference"]["partitions"] > 1  # one level
    assert _without_run(on_ray) == _without_run(local)
    with pytest.raises(ConfigError, match="finish_inputs must be a positive integer"):
        assay.evaluate(str(windows["current"]), engine="ray", ray_options={"finish_inputs": 0},
                       task="binary", target="target", score="score")  # fmt: skip


def test_in_memory_regression_and_multiclass_equal_the_local_engine(ray_runtime: Any) -> None:
    rng = np.random.default_rng(5)
    n = 9_000
    y = rng.normal(size=n)
    reg = pa.table({"y": y, "p": y + rng.normal(0, 0.3, n), "x": rng.normal(size=n)})
    kwargs: dict[str, Any] = {"task": "regression", "target": "y", "prediction": "p"}
    local = _evaluate(reg, reference=reg.slice(0, 4_000), **kwargs)
    on_ray = _evaluate(reg, reference=reg.slice(0, 4_000), engine="ray",
                       ray_options={"partitions": 4}, **kwargs)  # fmt: skip
    assert _without_run(on_ray) == _without_run(local)

    # class "c" only in the last third: early partitions hold two classes only
    labels = np.where(np.arange(n) < 6_000, rng.choice(["a", "b"], n), rng.choice(["a", "c"], n))
    proba = rng.dirichlet([1, 1, 1], n)
    proba[np.arange(n), np.searchsorted(["a", "b", "c"], labels)] += 1.5
    proba /= proba.sum(axis=1, keepdims=True)
    multi = pa.table({"label": labels, "p_b": proba[:, 1], "p_a": proba[:, 0],
                      "p_c": proba[:, 2]})  # fmt: skip
    kwargs = {"task": "multiclass", "target": "label", "score": "p_b,p_a,p_c"}
    local = _evaluate(multi, **kwargs)
    on_ray = _evaluate(multi, engine="ray", ray_options={"partitions": 5}, **kwargs)
    assert _without_run(on_ray) == _without_run(local)
    predicted = np.array(["a", "b", "c"])[np.argmax(proba, axis=1)]
    overall = on_ray["metrics"]["overall"]
    assert overall["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert overall["f1_macro"] == pytest.approx(f1_score(labels, predicted, average="macro"))


def test_approximate_states_within_their_bounds(ray_runtime: Any, windows: dict) -> None:
    result = _evaluate(str(windows["current"]), reference=str(windows["reference"]),
                       engine="ray", approximate=True, **ARGS)  # fmt: skip
    run = result["run"]["ray"]
    assert run["exact"] is False
    assert run["states"]["binary_score_sketch"]["exact"] is False
    assert "roc_auc" in run["states"]["binary_score_sketch"]["error_bound"]
    sizes = run["windows"]["current"]["state_bytes_per_partition"]
    assert sizes["max"] <= 1 << 20
    assert sizes["min"] == sizes["max"]  # partitions of 4,000 to 10,000 rows: same size
    cur = windows["current_table"].to_pandas()
    labeled = cur[cur["target"].notna()]
    overall = result["metrics"]["overall"]
    exact = roc_auc_score(labeled["target"], labeled["score"], sample_weight=labeled["weight"])
    assert 0 < overall["error_bounds"]["roc_auc"] < 1e-3
    assert abs(overall["roc_auc"] - exact) <= overall["error_bounds"]["roc_auc"]
    partner = labeled[labeled["channel"] == "partner"]
    seg = result["metrics"]["by_segment"]["channel"]["partner"]
    exact = roc_auc_score(partner["target"], partner["score"], sample_weight=partner["weight"])
    assert abs(seg["roc_auc"] - exact) <= seg["error_bounds"]["roc_auc"]
    ref = windows["reference_table"].column("amount").to_numpy(zero_copy_only=False)
    a, b = ref[np.isfinite(ref)], cur["amount"].to_numpy()
    b = b[np.isfinite(b)]
    drift = result["drift"]["amount"]
    assert abs(drift["ks"]["statistic"] - ks_2samp(a, b).statistic) <= drift["error_bounds"]["ks"]
    assert (
        abs(drift["wasserstein"] - wasserstein_distance(a, b))
        <= (drift["error_bounds"]["wasserstein"])
    )
    assert result["drift"]["country"] is not None  # categorical counts stay exact


def test_a_data_set_larger_than_the_workers_memory_completes(
    ray_runtime: Any, tmp_path: Path
) -> None:
    """Each fold task runs under a hard cap of 32 MiB of new memory: RLIMIT_DATA, which the
    kernel enforces on the worker's heap and private mappings, set for the task's duration
    (``ray_options={"worker_memory": ...}``). Each window is 600,000 rows × 26 columns
    (119 MiB as Arrow, 238 MiB for both windows: 3.7× what the two workers may hold
    together). With fixed-size states it completes; with exact states, which keep every
    value, the same cap is hit by a partition of half the rows: proof that the cap is real.
    """
    rng = np.random.default_rng(9)
    n = 600_000
    columns: dict[str, Any] = {"target": (rng.random(n) < 0.3).astype(np.int8),
                               "score": rng.random(n)}  # fmt: skip
    columns.update({f"f{i}": rng.normal(size=n) for i in range(24)})
    table = pa.table(columns)
    assert table.nbytes > 3.5 * (32 << 20)
    folder = tmp_path / "wide"
    folder.mkdir()
    for i in range(2):
        part = table.slice(i * n // 2, n // 2)
        pq.write_table(part, folder / f"p{i}.parquet", row_group_size=16_384)
    del table, columns
    options = {"worker_memory": 32 << 20, "batch_size": 16_384}
    kwargs: dict[str, Any] = {"task": "binary", "target": "target", "score": "score"}
    result = _evaluate(str(folder), reference=str(folder), engine="ray", approximate=True,
                       ray_options=options, **kwargs)  # fmt: skip
    assert result["rows"] == {"current": n, "reference": n}
    assert len(result["drift"]) == 24
    # two partitions of 300,000 rows: their exact states alone (24 × 8 bytes a row) are 55 MiB
    exact = {**options, "partitions": 2}
    with pytest.raises(WorkerMemoryError, match=r"the fold of partition \d") as caught:
        _evaluate(str(folder), reference=str(folder), engine="ray", ray_options=exact, **kwargs)
    assert caught.value.field == "worker_memory" and "approximate=True" in str(caught.value)
    assert isinstance(caught.value, MemoryError)


def test_a_finishing_task_past_the_memory_cap_names_itself(
    ray_runtime: Any, tmp_path: Path
) -> None:
    """Every task runs under the cap, not only the folds: 32 partitions of 62,500 rows
    fold within 24 MiB each, but the overall metrics of 2,000,000 exact scores (16 MiB of
    scores alone, before sorting them) do not. The error names that task; with fixed-size
    approximate states the same data completes under the same cap."""
    rng = np.random.default_rng(21)
    n = 2_000_000
    table = pa.table({"target": (rng.random(n) < 0.3).astype(np.int8), "score": rng.random(n)})
    path = tmp_path / "long.parquet"
    pq.write_table(table, path, row_group_size=n // 32)
    options = {"worker_memory": 24 << 20, "partitions": 32}
    kwargs: dict[str, Any] = {"task": "binary", "target": "target", "score": "score"}
    with pytest.raises(WorkerMemoryError, match="the overall metrics needed more than") as caught:
        _evaluate(str(path), engine="ray", ray_options=options, **kwargs)
    assert caught.value.field == "worker_memory"
    approximate = _evaluate(str(path), engine="ray", approximate=True, ray_options=options,
                            **kwargs)  # fmt: skip
    assert approximate["rows"]["current"] == n


def test_a_bad_value_in_one_partition_raises_the_typed_error(
    ray_runtime: Any, tmp_path: Path
) -> None:
    table = binary_window(3_000, seed=4)
    scores = table.column("score").to_numpy().copy()
    scores[2_500] = 1.7
    table = table.set_column(1, "score", pa.array(scores))
    folder = write_partitioned(table, tmp_path / "bad", files=3, row_group_size=500)
    # Repeated: cancelling the finishing tasks after a failed fold aborted the whole driver
    # (a race inside Ray 2.60) in about one run of four; the engine no longer cancels.
    for _ in range(8):
        with pytest.raises(ColumnTypeError, match="outside") as caught:
            assay.evaluate(str(folder), engine="ray", task="binary", target="target",
                           score="score")  # fmt: skip
        assert caught.value.field == "score"
    assert ray_runtime.is_initialized()


@pytest.fixture
def ray_client_address(ray_runtime: Any, tmp_path: Path) -> Iterator[str]:
    """``ray://127.0.0.1:PORT`` of a Ray Client server on the test's runtime, started and
    stopped here."""
    gcs = ray_runtime.get_runtime_context().gcs_address
    port = free_port()
    command = [sys.executable, "-m", "ray.util.client.server", "--host", "127.0.0.1",
               "-p", str(port), "--address", gcs, "--mode", "legacy"]  # fmt: skip
    with serving(command, port, tmp_path / "ray-client-server.log", "the Ray Client server"):
        yield f"ray://127.0.0.1:{port}"


@pytest.mark.parametrize("given", ["--ray-address", "RAY_ADDRESS", "ray://"])
def test_cli_connects_to_a_cluster_by_address(
    given: str, ray_runtime: Any, windows: dict, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``assay evaluate --engine ray --ray-address`` in another process joins the test's
    runtime (Ray's GCS listens on the loopback too) and leaves it running. Without the
    flag, Ray's ``RAY_ADDRESS`` (set in a Ray job's driver) names the cluster; with a
    ``ray://`` address the tasks go through a Ray Client server."""
    port = ray_runtime.get_runtime_context().gcs_address.rsplit(":", 1)[1]
    address = f"127.0.0.1:{port}"
    if given == "ray://":
        address = request.getfixturevalue("ray_client_address")
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "assay.cli.main", "evaluate", "--current",
               str(windows["current"]), "--task", "binary", "--target", "target", "--score",
               "score", "--segment", "channel", "--engine", "ray", "--json", str(out),
               "--quiet"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if given == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = address
    else:
        command += ["--ray-address", address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["run"]["engine"] == "ray" and result["run"]["ray"]["address"] == address
    local = _evaluate(str(windows["current"]), task="binary", target="target", score="score",
                      segments=["channel"])  # fmt: skip
    assert result["metrics"]["by_segment"] == json.loads(json.dumps(local["metrics"]))["by_segment"]
    assert ray_runtime.is_initialized() and ray_runtime.cluster_resources()["CPU"] == 2


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_no_cluster_answers_is_a_clear_error(
    scheme: str, windows: dict, tmp_path: Path
) -> None:
    """Nothing listening at ``--ray-address`` (a GCS or a Ray Client address): exit 2 with
    one line naming the address and the fix, at once (Ray alone retries for minutes; the
    timeout here is what catches a hang)."""
    address = f"{scheme}127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "assay.cli.main", "evaluate", "--current",
               str(windows["current"]), "--task", "binary", "--target", "target", "--score",
               "score", "--engine", "ray", "--ray-address", address, "--json",
               str(tmp_path / "out.json")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no Ray cluster answers at {address}")
    assert "ray start --head" in last and "[field: ray_address]" in last
    assert "Traceback" not in done.stderr and not (tmp_path / "out.json").exists()


def test_without_ray_the_engine_answers_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from assay.cli.main import app
    from assay.errors import MissingDependencyError

    table = binary_window(200, seed=8)
    path = tmp_path / "w.parquet"
    pq.write_table(table, path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'assay\[ray\]'"):
        assay.evaluate(table, engine="ray")
    done = CliRunner().invoke(app, ["evaluate", "--current", str(path), "--task", "binary",
                                    "--target", "target", "--score", "score",
                                    "--engine", "ray"])  # fmt: skip
    assert done.exit_code == 2
    assert "pip install 'assay[ray]'" in done.output


def test_ray_client_without_grpc_answers_with_the_install_hint(tmp_path: Path) -> None:
    """A ``ray://`` address needs Ray Client's gRPC (``assay[ray]`` brings ``ray[client]``):
    without it, the install hint, not Ray's ValueError. In a process where ``grpc`` cannot
    be imported, against a port that listens (so the address probe passes)."""
    table = binary_window(200, seed=8)
    path = tmp_path / "w.parquet"
    pq.write_table(table, path)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"ray://127.0.0.1:{listening.getsockname()[1]}"
        code = (
            "import sys; sys.modules['grpc'] = None\n"
            "import assay\n"
            "try:\n"
            f"    assay.evaluate({str(path)!r}, task='binary', target='target', score='score',"
            f" engine='ray', ray_address={address!r})\n"
            "except ImportError as err:\n"
            "    print(type(err).__name__, err)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("MissingDependencyError")
    assert "pip install 'assay[ray]'" in done.stdout and "grpcio" in done.stdout


def test_ray_options_need_the_ray_engine() -> None:
    table = binary_window(200, seed=8)
    with pytest.raises(ValueError, match="ray engine only") as caught:
        assay.evaluate(table, approximate=True)
    assert caught.value.field == "engine"  # type: ignore[attr-defined]


def test_without_a_runtime_the_engine_starts_one_and_shuts_it_down(tmp_path: Path) -> None:
    """In a process without Ray running and no address, a local runtime is started for the
    call and shut down after it (a separate process, so the shared runtime is untouched)."""
    table = binary_window(2_000, seed=12)
    path = tmp_path / "w.parquet"
    pq.write_table(table, path)
    code = (
        "import warnings, ray, assay; warnings.simplefilter('ignore');"
        f"r = assay.evaluate({str(path)!r}, engine='ray');"
        "print(r.metrics['overall']['roc_auc'], r.run['engine'], ray.is_initialized())"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    auc, engine, still_running = done.stdout.split()[-3:]
    labeled = table.filter(pc.is_valid(table.column("target")))
    expected = roc_auc_score(labeled.column("target"), labeled.column("score"))
    assert float(auc) == pytest.approx(expected, abs=1e-12)
    assert (engine, still_running) == ("ray", "False")


def test_cli_approx_reports_sketches_and_bounds(
    ray_runtime: Any, windows: dict, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from assay.cli.main import app

    out = tmp_path / "approx.json"
    done = CliRunner().invoke(app, ["evaluate", "--current", str(windows["current"]),
                                    "--reference", str(windows["reference"]), "--task",
                                    "binary", "--target", "target", "--score", "score",
                                    "--engine", "ray", "--approx", "--json", str(out),
                                    "--quiet"])  # fmt: skip
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    assert result["run"]["ray"]["approximate"] is True
    overall = result["metrics"]["overall"]
    cur = windows["current_table"].to_pandas()
    labeled = cur[cur["target"].notna()]
    exact = roc_auc_score(labeled["target"], labeled["score"])
    assert abs(overall["roc_auc"] - exact) <= overall["error_bounds"]["roc_auc"]
    assert set(result["drift"]["age"]["error_bounds"]) >= {"ks", "wasserstein", "psi"}


def test_progress_counts_every_fold_and_finishing_task(ray_runtime: Any, windows: dict) -> None:
    seen: list[tuple[int, str]] = []

    def factory(total: int) -> Any:
        return lambda name: seen.append((total, name))

    kwargs = {k: v for k, v in ARGS.items() if k != "weight"}
    result = _evaluate(str(windows["current"]), reference=str(windows["reference"]),
                       engine="ray", progress=factory, **kwargs)  # fmt: skip
    parts = {role: result["run"]["ray"]["windows"][role]["partitions"]
             for role in ("current", "reference")}  # fmt: skip
    names = [name for _, name in seen]
    assert {total for total, _ in seen} == {len(seen)}  # the total announced is what came
    for role, count in parts.items():
        expected = {f"{role} partition {i}/{count}" for i in range(1, count + 1)}
        assert {n for n in names if n.startswith(f"{role} partition")} == expected
    assert names.count("metrics") >= 1 and names.count("reference metrics") == 1
    assert names.count("drift") >= 1
