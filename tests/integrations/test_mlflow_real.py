"""Assay's runs, gate decisions and aliases in a real MLflow server (sqlite backend).

One ``mlflow server`` per module on 127.0.0.1 (see ``mlflow_server.py``). Everything is
read back through the server's answers; the numbers come from the evaluation JSON and
roc_auc/accuracy are checked again with scikit-learn. Without MLflow the tests are
skipped locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from typer.testing import CliRunner

import assay
from assay.cli.main import app
from assay.errors import (
    AssayWarning,
    MissingDependencyError,
    NotFoundError,
    StoreUnavailableError,
)

from .conftest import free_port
from .mlflow_server import QUIET_ENV, mlflow_server, require_mlflow

N = 1500
REGIONS = [f"r{i:02d}" for i in range(30)]  # 30 segments: more than 1000 metrics in one run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real MLflow server, shared by this module's tests."""
    require_mlflow()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in QUIET_ENV.items():
            mp.setenv(key, value)
        with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
            yield url


@pytest.fixture(scope="module")
def client(server: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server)


def binary_table(seed: int, shift: float = 0.0) -> pa.Table:
    """Seeded binary data; channel ``kiosk`` has negatives only, so its AUC is undefined."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["web", "app/store", "kiosk"], N, p=[0.5, 0.4, 0.1])
    y = (rng.random(N) < 0.4).astype(np.int64)
    y[channel == "kiosk"] = 0
    score = np.round(np.clip(0.1 + 0.4 * y + 0.5 * rng.random(N), 0.0, 1.0), 3)
    return pa.table(
        {
            "channel": channel.tolist(),
            "region": rng.choice(REGIONS, N).tolist(),
            "amount": rng.lognormal(3.0 + shift, 0.8, N),
            "country": rng.choice(["DE", "FR", "US"], N).tolist(),
            "target": y,
            "score": score,
        }
    )


@pytest.fixture(scope="module")
def tables() -> tuple[pa.Table, pa.Table]:
    return binary_table(1), binary_table(2, shift=0.4)


@pytest.fixture(scope="module")
def evaluated(
    tables: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path, Path]:
    """The evaluation's JSON, and the JSON and HTML files it was written to."""
    current, reference = tables
    with pytest.warns(AssayWarning):  # kiosk: one class only
        result = assay.evaluate(
            current,
            reference=reference,
            task="binary",
            target="target",
            score="score",
            segments=("channel", "region"),
            features=["amount", "country"],
        )
    out = tmp_path_factory.mktemp("evaluation")
    json_path, report_path = out / "eval.json", out / "eval.html"
    result.to_json(json_path)
    result.write_report(report_path)
    return json.loads(json_path.read_text()), json_path, report_path


def sanitised(value: str) -> str:
    """The documented rule, written out again: bad characters to ``_`` plus a SHA-1 suffix."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_-. ") else "_" for c in value)
    if clean == value:
        return value
    return f"{clean}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"


def download(server: str, run_id: str, name: str, dst: Path) -> bytes:
    from mlflow.artifacts import download_artifacts

    local = download_artifacts(
        run_id=run_id, artifact_path=name, dst_path=str(dst), tracking_uri=server
    )
    return Path(local).read_bytes()


def expected_block(block: dict[str, Any], prefix: str) -> dict[str, float]:
    """Numbers of one metric block and their intervals, named by hand."""
    out: dict[str, float] = {}
    for name, value in block.items():
        if name.endswith("_ci") and value is not None:
            out[f"{prefix}{name}_low"], out[f"{prefix}{name}_high"] = value
        elif isinstance(value, int | float) and name != "threshold":
            out[prefix + name] = float(value)
    return out


def test_evaluation_run_holds_every_number_with_params_tags_and_artifacts(
    server: str,
    client: Any,
    tables: tuple[pa.Table, pa.Table],
    evaluated: tuple[dict[str, Any], Path, Path],
    tmp_path: Path,
) -> None:
    from assay.integrations.mlflow import MlflowTracker

    data, json_path, report_path = evaluated
    tracker = MlflowTracker("assay-eval", tracking_uri=server)
    run_id = tracker.log_evaluation(
        data, model="fraud", version="7", json_path=json_path, report_path=report_path
    )
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == tracker.experiment_id
    logged = run.data.metrics

    expected = expected_block(data["metrics"]["overall"], "")
    expected |= expected_block(data["metrics"]["reference"], "reference.")
    for column, by_value in data["metrics"]["by_segment"].items():
        for value, block in by_value.items():
            expected |= expected_block(block, f"segment.{column}.{sanitised(value)}.")
    for feature in ("amount", "country"):
        drift = data["drift"][feature]
        expected[f"drift.{feature}.psi"] = drift["psi"]
        expected[f"drift.{feature}.jensen_shannon"] = drift["jensen_shannon"]
        expected[f"drift.{feature}.drifted"] = float(drift["drifted"])
    expected["drift.amount.ks_statistic"] = data["drift"]["amount"]["ks"]["statistic"]
    expected["drift.amount.ks_p_value"] = data["drift"]["amount"]["ks"]["p_value"]
    expected["drift.country.chi2_statistic"] = data["drift"]["country"]["chi2"]["statistic"]
    expected["rows.current"] = N
    expected["labeled.reference"] = N
    assert len(expected) > 1000  # more than one log_batch call's worth
    assert {k: logged.get(k) for k in expected} == expected

    # the JSON's numbers are right: roc_auc and accuracy again with scikit-learn
    current = tables[0].to_pandas()
    assert logged["roc_auc"] == pytest.approx(
        roc_auc_score(current["target"], current["score"]), abs=1e-12
    )
    assert logged["accuracy"] == pytest.approx(
        accuracy_score(current["target"], current["score"] >= 0.5), abs=1e-12
    )
    web = current[current["channel"] == "web"]
    assert logged["segment.channel.web.roc_auc"] == pytest.approx(
        roc_auc_score(web["target"], web["score"]), abs=1e-12
    )
    assert sanitised("app/store") != "app/store"
    assert f"segment.channel.{sanitised('app/store')}.roc_auc" in logged
    # an undefined metric is no number, and its reason is kept
    assert "segment.channel.kiosk.roc_auc" not in logged
    assert "segment.channel.kiosk.roc_auc_ci_low" not in logged
    undefined = json.loads(run.data.tags["assay.undefined"])
    assert "one class" in undefined["segment.channel.kiosk.roc_auc"]

    params, tags = run.data.params, run.data.tags
    config = data["run"]["config"]
    assert params["task"] == "binary"
    assert params["threshold"] == "0.5"
    assert params["segments"] == "channel,region"
    assert params["features"] == "amount:numeric,country:categorical"
    assert params["config_hash"] == data["run"]["config_hash"]
    assert params["assay_version"] == assay.__version__
    assert params["engine"] == "local"
    assert params["drift_rule.alpha"] == str(config["drift_rule"]["alpha"])
    assert tags["assay.kind"] == "evaluation"
    assert tags["assay.model"] == "fraud"
    assert tags["assay.version"] == "7"
    assert tags["assay.segments"] == "channel,region"
    assert tags["assay.drifted_features"].split(",") == [
        f for f in ("amount", "country") if data["drift"][f]["drifted"]
    ]

    names = sorted(a.path for a in client.list_artifacts(run_id))
    assert names == ["eval.html", "eval.json"]
    assert download(server, run_id, "eval.json", tmp_path) == json_path.read_bytes()
    assert download(server, run_id, "eval.html", tmp_path) == report_path.read_bytes()


def test_evaluation_without_files_logs_the_json_and_a_rendered_report(
    server: str, client: Any, tmp_path: Path
) -> None:
    from assay.integrations.mlflow import MlflowTracker

    data = {
        "task": "regression",
        "rows": {"current": 4},
        "metrics": {"overall": {"mae": 0.5, "mae_ci": [0.25, 0.75], "r2": float("nan")}},
    }
    run_id = MlflowTracker("assay-eval", tracking_uri=server).log_evaluation(data)
    run = client.get_run(run_id)
    assert run.data.metrics == {
        "mae": 0.5,
        "mae_ci_low": 0.25,
        "mae_ci_high": 0.75,
        "rows.current": 4,
    }
    assert "r2" in json.loads(run.data.tags["assay.undefined"])
    assert "assay.model" not in run.data.tags
    stored = json.loads(download(server, run_id, "evaluation.json", tmp_path))
    assert stored == {**data, "metrics": {"overall": {**data["metrics"]["overall"], "r2": None}}}
    assert download(server, run_id, "report.html", tmp_path).startswith(b"<!DOCTYPE html>")


GATE_DECISION: dict[str, Any] = {
    "decision": "promote", "exit_code": 0, "mode": "paired", "task": "binary",
    "rows": {"baseline": 5000, "candidate": 5000},
    "checks": [
        {"metric": "roc_auc", "role": "primary", "kind": "non_inferiority", "margin": 0.01,
         "higher_is_better": True, "baseline": 0.81, "candidate": 0.83, "difference": 0.02,
         "ci": [0.005, 0.035], "p_value": 0.01, "test": "delong_paired", "outcome": "pass",
         "reason": "the interval lies above -0.01"},
        {"metric": "fpr", "role": "guardrail", "kind": "non_inferiority", "margin": 0.005,
         "higher_is_better": False, "baseline": 0.1, "candidate": 0.098, "difference": -0.002,
         "ci": [-0.004, 0.0], "p_value": None, "test": "mcnemar", "outcome": "pass",
         "reason": "the interval lies below 0.005", "extra": {"n": 12}},
    ],
    "srm": None, "reasons": ["roc_auc: pass", "fpr: pass"], "policy": {"metrics": ["roc_auc"]},
    "run": {"assay_version": "0.1.0"}, "something_new": [1, 2],
}  # fmt: skip


def test_gate_run_holds_each_check_and_the_files(server: str, client: Any, tmp_path: Path) -> None:
    from assay.integrations.mlflow import MlflowTracker

    summary = tmp_path / "summary.md"
    summary.write_text("# Gate: promote\n")
    junit = tmp_path / "gate.xml"
    junit.write_text('<testsuite name="assay-gate" tests="2"/>\n')
    run_id = MlflowTracker("assay-gates", tracking_uri=server).log_gate(
        GATE_DECISION,
        model="fraud",
        baseline_version="6",
        candidate_version="7",
        artifacts=[summary, junit],
    )
    run = client.get_run(run_id)
    assert run.data.metrics == {
        "gate.rows.baseline": 5000, "gate.rows.candidate": 5000,
        "gate.roc_auc.baseline": 0.81, "gate.roc_auc.candidate": 0.83,
        "gate.roc_auc.difference": 0.02, "gate.roc_auc.ci_low": 0.005,
        "gate.roc_auc.ci_high": 0.035, "gate.roc_auc.p_value": 0.01,
        "gate.fpr.baseline": 0.1, "gate.fpr.candidate": 0.098, "gate.fpr.difference": -0.002,
        "gate.fpr.ci_low": -0.004, "gate.fpr.ci_high": 0.0, "gate.fpr.extra_n": 12,
    }  # fmt: skip
    params = run.data.params
    assert params["decision"] == "promote"
    assert params["mode"] == "paired"
    assert params["exit_code"] == "0"
    assert params["roc_auc.margin"] == "0.01"
    assert params["fpr.margin"] == "0.005"
    assert params["fpr.kind"] == "non_inferiority"
    tags = run.data.tags
    assert tags["assay.kind"] == "gate"
    assert tags["assay.decision"] == "promote"
    assert tags["assay.model"] == "fraud"
    assert tags["assay.baseline_version"] == "6"
    assert tags["assay.candidate_version"] == "7"
    assert tags["assay.gate.fpr.outcome"] == "pass"
    assert tags["assay.reasons"] == "roc_auc: pass\nfpr: pass"
    names = sorted(a.path for a in client.list_artifacts(run_id))
    assert names == ["decision.json", "gate.xml", "summary.md"]
    assert json.loads(download(server, run_id, "decision.json", tmp_path)) == GATE_DECISION
    assert download(server, run_id, "summary.md", tmp_path) == summary.read_bytes()
    assert download(server, run_id, "gate.xml", tmp_path) == junit.read_bytes()


def test_aliases_resolve_and_move(server: str, client: Any) -> None:
    from assay.integrations.mlflow import (
        ModelAliasNotFoundError,
        ModelVersionNotFoundError,
        RegisteredModelNotFoundError,
        resolve_alias,
        set_alias,
    )

    name = f"fraud-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(f"assay-models-{name}")
    runs = [client.create_run(experiment_id).info for _ in range(2)]
    client.create_registered_model(name)
    for info in runs:
        client.create_model_version(name, f"{info.artifact_uri}/model", run_id=info.run_id)
    client.set_model_version_tag(name, "2", "owner", "risk")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")

    champion = resolve_alias(name, "champion", tracking_uri=server)
    assert (champion.name, champion.version, champion.alias) == (name, "1", "champion")
    assert champion.run_id == runs[0].run_id
    assert champion.source == f"{runs[0].artifact_uri}/model"
    challenger = resolve_alias(name, "challenger", tracking_uri=server)
    assert (challenger.version, challenger.run_id) == ("2", runs[1].run_id)
    assert challenger.tags == {"owner": "risk"}
    assert challenger.model_uri == f"models:/{name}/2"

    set_alias(name, "champion", "2", tracking_uri=server)
    assert client.get_registered_model(name).aliases == {"champion": "2", "challenger": "2"}
    assert resolve_alias(name, "champion", tracking_uri=server).version == "2"

    with pytest.raises(ModelAliasNotFoundError, match=f"{name}.*'canary'") as missing_alias:
        resolve_alias(name, "canary", tracking_uri=server)
    assert isinstance(missing_alias.value, NotFoundError)
    assert missing_alias.value.field == "alias"
    with pytest.raises(RegisteredModelNotFoundError, match="no-such-model"):
        resolve_alias("no-such-model", "champion", tracking_uri=server)
    with pytest.raises(ModelVersionNotFoundError, match="'9'"):
        set_alias(name, "champion", "9", tracking_uri=server)
    with pytest.raises(RegisteredModelNotFoundError):
        set_alias("no-such-model", "champion", "1", tracking_uri=server)
    assert client.get_registered_model(name).aliases["champion"] == "2"  # left alone


@pytest.mark.filterwarnings("ignore::assay.errors.AssayWarning")
def test_cli_evaluate_logs_the_run(
    server: str, client: Any, tables: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    current, reference = tables
    pq.write_table(current, tmp_path / "current.parquet")
    pq.write_table(reference, tmp_path / "reference.parquet")
    json_out, report = tmp_path / "out.json", tmp_path / "out.html"
    args = [
        "evaluate", "--current", tmp_path / "current.parquet",
        "--reference", tmp_path / "reference.parquet", "--task", "binary",
        "--target", "target", "--score", "score", "--segment", "channel",
        "--features", "amount,country", "--json", json_out, "--report", report,
        "--mlflow-experiment", "assay-cli", "--mlflow-tracking-uri", server,
        "--model-name", "fraud", "--model-version", "v7",
    ]  # fmt: skip
    outcome = CliRunner().invoke(app, [str(a) for a in args])
    assert outcome.exit_code == 0, outcome.output
    match = re.search(r"^mlflow run: ([0-9a-f]{32})$", outcome.output, re.MULTILINE)
    assert match, outcome.output
    run = client.get_run(match.group(1))
    data = json.loads(json_out.read_text())
    assert run.data.metrics["roc_auc"] == data["metrics"]["overall"]["roc_auc"]
    frame = current.to_pandas()
    assert run.data.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(frame["target"], frame["score"]), abs=1e-12
    )
    assert run.data.metrics["drift.amount.psi"] == data["drift"]["amount"]["psi"]
    assert run.data.tags["assay.segments"] == "channel"
    assert (run.data.tags["assay.model"], run.data.tags["assay.version"]) == ("fraud", "v7")
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "assay-cli"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "out.html",
        "out.json",
    ]
    assert download(server, run.info.run_id, "out.json", tmp_path / "dl") == json_out.read_bytes()


def test_unreachable_server_is_a_clear_error_fast(tmp_path: Path) -> None:
    require_mlflow()
    from assay.integrations.mlflow import MlflowTracker, MlflowUnavailableError, resolve_alias

    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(MlflowUnavailableError, match="cannot be reached") as err:
        MlflowTracker("x", tracking_uri=url)
    assert isinstance(err.value, StoreUnavailableError)
    with pytest.raises(MlflowUnavailableError):
        resolve_alias("fraud", "champion", tracking_uri=url)
    assert time.monotonic() - started < 15

    pq.write_table(binary_table(3).select(["target", "score"]), tmp_path / "c.parquet")
    outcome = CliRunner().invoke(
        app,
        ["evaluate", "--current", str(tmp_path / "c.parquet"), "--task", "binary",
         "--target", "target", "--score", "score", "--quiet",
         "--mlflow-experiment", "x", "--mlflow-tracking-uri", url],
    )  # fmt: skip
    assert outcome.exit_code == 2
    assert "cannot be reached" in outcome.output


def test_missing_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.integrations import mlflow as integration

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'assay\[mlflow\]'"):
        integration.MlflowTracker("x", tracking_uri="http://127.0.0.1:1")
    with pytest.raises(ImportError):
        integration.resolve_alias("fraud", "champion")


def test_batches_stay_within_mlflow_limits() -> None:
    from assay.integrations.mlflow import split_batches

    for n_metrics, n_params, n_tags in [(0, 0, 0), (1000, 100, 100), (2345, 250, 7), (5, 0, 301)]:
        batches = list(split_batches(range(n_metrics), range(n_params), range(n_tags)))
        for m, p, t in batches:
            assert len(m) <= 1000 and len(p) <= 100 and len(t) <= 100
            assert len(m) + len(p) + len(t) <= 1000
            assert m or p or t
        assert [x for b in batches for x in b[0]] == list(range(n_metrics))
        assert [x for b in batches for x in b[1]] == list(range(n_params))
        assert [x for b in batches for x in b[2]] == list(range(n_tags))


def shadow_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Both models scored the same events; the candidate separates the classes far better."""
    rng = np.random.default_rng(5)
    y = (rng.random(N) < 0.4).astype(np.int64)
    files = []
    for name, signal in (("baseline", 0.1), ("candidate", 0.5)):
        score = np.clip(signal * y + (1 - signal) * rng.random(N), 0, 1)
        table = pa.table({"id": np.arange(N), "target": y, "score": score})
        pq.write_table(table, tmp_path / f"{name}.parquet")
        files.append(tmp_path / f"{name}.parquet")
    return files[0], files[1]


def test_cli_gate_resolves_aliases_logs_the_decision_and_promotes_on_request(
    server: str, client: Any, tmp_path: Path
) -> None:
    name = f"gate-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(f"assay-models-{name}")
    client.create_registered_model(name)
    for _ in range(2):
        info = client.create_run(experiment_id).info
        client.create_model_version(name, f"{info.artifact_uri}/model", run_id=info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    baseline, candidate = shadow_pair(tmp_path)
    json_out = tmp_path / "gate.json"
    base = [
        "gate", "--baseline", baseline, "--candidate", candidate, "--paired", "--id", "id",
        "--metric", "roc_auc", "--margin", "0.01", "--registered-model", name,
        "--mlflow-experiment", "assay-gate", "--mlflow-tracking-uri", server,
        "--json", json_out, "--markdown", tmp_path / "gate.md", "--quiet",
    ]  # fmt: skip

    first = CliRunner().invoke(app, [str(a) for a in base])
    assert first.exit_code == 0, first.output
    assert client.get_registered_model(name).aliases["champion"] == "1"  # no --promote
    second = CliRunner().invoke(app, [str(a) for a in [*base, "--promote"]])
    assert second.exit_code == 0, second.output
    assert client.get_registered_model(name).aliases["champion"] == "2"

    decision = json.loads(json_out.read_text())
    experiment = client.get_experiment_by_name("assay-gate")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`assay.model` = '{name}'"
    )
    assert len(runs) == 2
    run = runs[0]  # newest first
    check = decision["checks"][0]
    assert run.data.tags["assay.decision"] == "promote"
    assert run.data.tags["assay.baseline_version"] == "1"
    assert run.data.tags["assay.candidate_version"] == "2"
    assert run.data.metrics["gate.roc_auc.difference"] == check["difference"]
    assert run.data.metrics["gate.roc_auc.ci_low"] == check["ci"][0]
    frame_b, frame_c = pq.read_table(baseline).to_pandas(), pq.read_table(candidate).to_pandas()
    assert check["difference"] == pytest.approx(
        roc_auc_score(frame_c["target"], frame_c["score"])
        - roc_auc_score(frame_b["target"], frame_b["score"]),
        abs=1e-12,
    )
    # the decision once (as decision.json), beside the Markdown summary
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "decision.json",
        "gate.md",
    ]
