"""`assay.gate` and `assay gate`: decisions, exit codes and outputs on hand-built cases.

The comparison statistics themselves are checked against independent references in
tests/stats; here the gate's own numbers (each arm's metric, row counts, the sample-ratio
p-value, latency quantiles) are checked against scikit-learn, scipy and numpy.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss
from typer.testing import CliRunner

import assay
from assay.cli.main import app
from assay.errors import ConfigError, InputError
from assay.rollout.decision import judge
from assay.rollout.policy import GatePolicy


def scores(rng: np.random.Generator, y: np.ndarray, strength: float) -> np.ndarray:
    """Probabilities that separate the classes by ``strength`` (0 = noise)."""
    return np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.2, y.size), 0, 1)


def shadow_pair(n: int = 4000, weak: float = 0.2, strong: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    ids = np.array([f"e-{i}" for i in range(n)])
    base = pa.table({"id": ids, "target": y, "score": scores(rng, y, weak)})
    cand = pa.table({"id": ids, "target": y, "score": scores(rng, y, strong)})
    return base, cand


def arm(n: int, strength: float, seed: int, latency: float = 50.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pa.table(
        {
            "target": y,
            "score": scores(rng, y, strength),
            "latency_ms": rng.gamma(4.0, latency / 4.0, n),
        }
    )


# -- the verdict of one check, at its boundaries --------------------------------------------


@pytest.mark.parametrize(
    ("ci", "kind", "margin", "higher", "expected"),
    [
        ((-0.009, 0.02), "non_inferiority", 0.01, True, "pass"),
        ((-0.011, 0.02), "non_inferiority", 0.01, True, "inconclusive"),
        ((-0.05, -0.011), "non_inferiority", 0.01, True, "fail"),
        ((-0.05, -0.01), "non_inferiority", 0.01, True, "inconclusive"),  # touches the bar
        ((0.011, 0.02), "superiority", 0.01, True, "pass"),
        ((0.0, 0.009), "superiority", 0.01, True, "fail"),
        # lower is better: a negative difference is an improvement
        ((-0.02, 0.009), "non_inferiority", 0.01, False, "pass"),
        ((0.011, 0.03), "non_inferiority", 0.01, False, "fail"),
    ],
)
def test_judge_boundaries(ci, kind, margin, higher, expected) -> None:
    assert judge(ci, kind=kind, margin=margin, higher_is_better=higher) == expected


# -- paired (shadow) -------------------------------------------------------------------------


def test_paired_gate_promotes_a_clearly_better_candidate() -> None:
    base, cand = shadow_pair()
    # shuffle the candidate's rows and drop some: pairing is by id, not by position
    order = np.random.default_rng(1).permutation(cand.num_rows)[:3500]
    cand = cand.take(pa.array(order))
    d = assay.gate(base, cand, paired=True, id_column="id")
    assert d.decision == "promote" and d.exit_code == 0
    assert d.rows["paired"] == 3500 and d.rows["unmatched_baseline"] == 500
    c = d.checks[0].to_dict()
    assert c["test"] == "delong_paired" and c["outcome"] == "pass"
    ids = set(cand.column("id").to_pylist())
    keep = np.array([i in ids for i in base.column("id").to_pylist()])
    y = base.column("target").to_numpy()[keep]
    expected_base = roc_auc_score(y, base.column("score").to_numpy()[keep])
    lookup = dict(zip(cand.column("id").to_pylist(), cand.column("score").to_pylist(), strict=True))
    expected_cand = roc_auc_score(y, [lookup[i] for i in base.column("id").to_numpy()[keep]])
    assert c["baseline"] == pytest.approx(expected_base, abs=1e-12)
    assert c["candidate"] == pytest.approx(expected_cand, abs=1e-12)
    assert c["ci"][0] < c["difference"] < c["ci"][1]


def test_paired_gate_gives_the_same_numbers_whatever_the_candidates_row_order() -> None:
    """The joined rows follow the baseline's order: the bootstrap resamples the same rows
    and sums round alike, so the decision repeats bit for bit. (Arrow's threaded join
    returns its rows in an order that varies from run to run.)"""
    base, cand = shadow_pair(n=120_000)
    shuffled = cand.take(pa.array(np.random.default_rng(2).permutation(cand.num_rows)))
    metrics = ["average_precision", "log_loss"]  # both with paired bootstrap intervals
    runs = [assay.gate(base, c, paired=True, id_column="id", metrics=metrics)
            for c in (cand, shuffled, shuffled, cand)]  # fmt: skip
    checks = [[c.to_dict() for c in d.checks] for d in runs]
    assert checks[0][0]["test"] == "paired_bootstrap"
    assert all(found == checks[0] for found in checks[1:])
    y = base.column("target").to_numpy()
    expected = roc_auc_score(y, cand.column("score").to_numpy())  # the rows are all there
    auc = assay.gate(base, shuffled, paired=True, id_column="id").checks[0].to_dict()
    assert auc["candidate"] == pytest.approx(expected, abs=1e-12)


def test_paired_gate_rejects_a_clearly_worse_candidate_on_accuracy() -> None:
    base, cand = shadow_pair()
    d = assay.gate(cand, base, paired=True, id_column="id", metrics=["accuracy"], margin=0.01)
    assert d.decision == "reject" and d.exit_code == 1
    c = d.checks[0].to_dict()
    assert c["test"].startswith("mcnemar") and c["outcome"] == "fail"
    y = base.column("target").to_numpy()
    assert c["baseline"] == pytest.approx(
        accuracy_score(y, cand.column("score").to_numpy() >= 0.5), abs=1e-12
    )


def test_paired_labels_that_disagree_are_an_input_error() -> None:
    base, cand = shadow_pair(n=300)
    flipped = pa.table({**{n: cand.column(n) for n in cand.column_names},
                        "target": pa.array(1 - cand.column("target").to_numpy())})  # fmt: skip
    with pytest.raises(InputError, match="disagree on 'target'"):
        assay.gate(base, flipped, paired=True, id_column="id")


def test_paired_duplicate_ids_are_an_input_error() -> None:
    base, cand = shadow_pair(n=300)
    doubled = pa.concat_tables([base, base.slice(0, 3)])
    with pytest.raises(InputError, match="repeats 3 id"):
        assay.gate(doubled, cand, paired=True, id_column="id")


def test_paired_without_an_id_column_is_a_config_error() -> None:
    base, cand = shadow_pair(n=300)
    with pytest.raises(ConfigError, match="joins by id"):
        assay.gate(base, cand, paired=True)


# -- split traffic (canary, A/B) -------------------------------------------------------------


def test_split_gate_with_too_few_rows_continues() -> None:
    d = assay.gate(arm(60, 0.2, 1), arm(60, 0.6, 2), metrics=["accuracy"])
    assert d.decision == "continue" and d.exit_code == 3
    assert "at least 100 labeled rows" in d.reasons[0]


def test_sample_ratio_mismatch_rejects_with_scipy_p_value() -> None:
    policy = GatePolicy.model_validate(
        {"metrics": [{"metric": "accuracy", "margin": 0.5}], "srm": {"expected_shares": [0.5, 0.5]}}
    )
    d = assay.gate(arm(1000, 0.4, 1), arm(1200, 0.4, 2), policy=policy)
    assert d.decision == "reject"
    expected = sps.chisquare([1000, 1200], [1100, 1100]).pvalue
    assert d.srm is not None and d.srm["p_value"] == pytest.approx(expected, rel=1e-9)
    assert d.reasons[0].startswith("sample ratio mismatch")


def test_latency_guardrail_rejects_a_slower_candidate() -> None:
    base, cand = arm(3000, 0.4, 1, latency=50), arm(3000, 0.4, 2, latency=80)
    policy = GatePolicy.model_validate(
        {
            "metrics": [{"metric": "roc_auc", "margin": 0.2}],
            "guardrails": [{"metric": "latency_p95", "max_worsening": 5}],
        }
    )
    d = assay.gate(base, cand, policy=policy)
    assert d.decision == "reject"
    guard = d.checks[1].to_dict()
    assert guard["role"] == "guardrail" and guard["outcome"] == "fail"
    assert guard["baseline"] == pytest.approx(
        np.quantile(base.column("latency_ms").to_numpy(), 0.95), rel=1e-9
    )


def test_sequential_canary_continues_then_decides() -> None:
    early = assay.gate(arm(80, 0.2, 1), arm(80, 0.2, 2), metrics=["accuracy"], sequential=True)
    assert early.decision == "continue" and early.mode == "sequential"
    worse = assay.gate(
        arm(20000, 0.6, 3), arm(20000, 0.05, 4), metrics=["accuracy"], sequential=True
    )
    assert worse.decision == "reject"
    assert worse.checks[0].difference["test"] == "confidence_sequence"


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="use accuracy"):
        assay.gate(arm(200, 0.4, 1), arm(200, 0.4, 2), metrics=["auc"])


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def shadow_files(tmp_path: Path) -> tuple[Path, Path]:
    base, cand = shadow_pair()
    pq.write_table(base, tmp_path / "base.parquet")
    pq.write_table(cand, tmp_path / "cand.parquet")
    return tmp_path / "base.parquet", tmp_path / "cand.parquet"


def run_gate(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["gate", *args], env=env)


def test_cli_promote_writes_json_junit_markdown_and_step_summary(
    shadow_files: tuple[Path, Path], tmp_path: Path
) -> None:
    base, cand = shadow_files
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    result = run_gate(
        "--baseline", str(base), "--candidate", str(cand), "--task", "binary",
        "--target", "target", "--score", "score", "--metric", "roc_auc", "--metric", "accuracy",
        "--margin", "0.01", "--paired", "--id", "id",
        "--json", str(tmp_path / "g.json"), "--junit", str(tmp_path / "g.xml"),
        "--markdown", str(tmp_path / "g.md"),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "decision: promote"
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["decision"] == "promote" and [c["metric"] for c in data["checks"]] == [
        "roc_auc",
        "accuracy",
    ]
    suite = ET.parse(tmp_path / "g.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert "PROMOTE" in (tmp_path / "g.md").read_text()
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "| `roc_auc` |" in text


def test_cli_reject_exits_1_and_junit_records_the_failure(
    shadow_files: tuple[Path, Path], tmp_path: Path
) -> None:
    base, cand = shadow_files
    result = run_gate(
        "--baseline", str(cand), "--candidate", str(base), "--paired", "--id", "id",
        "--junit", str(tmp_path / "g.xml"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    suite = ET.parse(tmp_path / "g.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None and "roc_auc" in failure.get("message", "")


def test_cli_inconclusive_exits_3(tmp_path: Path) -> None:
    pq.write_table(arm(300, 0.3, 1), tmp_path / "a.parquet")
    pq.write_table(arm(300, 0.32, 2), tmp_path / "b.parquet")
    result = run_gate(
        "--baseline", str(tmp_path / "a.parquet"), "--candidate", str(tmp_path / "b.parquet"),
        "--metric", "accuracy",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert result.output.strip().endswith("decision: continue")


def test_cli_policy_file(tmp_path: Path) -> None:
    pq.write_table(arm(3000, 0.5, 1), tmp_path / "a.parquet")
    pq.write_table(arm(3000, 0.5, 2, latency=90), tmp_path / "b.parquet")
    (tmp_path / "gate.yaml").write_text(
        "metrics:\n  - {metric: accuracy, margin: 0.1}\n"
        "guardrails:\n  - {metric: latency_p95, max_worsening: 10}\n"
    )
    result = run_gate(
        "--baseline", str(tmp_path / "a.parquet"), "--candidate", str(tmp_path / "b.parquet"),
        "--policy", str(tmp_path / "gate.yaml"), "--json", str(tmp_path / "g.json"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    checks = json.loads((tmp_path / "g.json").read_text())["checks"]
    assert [(c["metric"], c["outcome"]) for c in checks] == [
        ("accuracy", "pass"),
        ("latency_p95", "fail"),
    ]


@pytest.mark.parametrize(
    ("policy", "needle"),
    [
        ("metrics:\n  - {metric: accuracy, margin: -1}\n", "metrics[0].margin"),
        ("alpha: 2\n", "alpha"),
        ("guardrails:\n  - {metric: fpr, column: lat}\n", "guardrails[0]"),
        ("metricz: []\n", "metricz"),
    ],
)
def test_cli_bad_policy_exits_2_naming_the_key(
    shadow_files: tuple[Path, Path], tmp_path: Path, policy: str, needle: str
) -> None:
    base, cand = shadow_files
    (tmp_path / "gate.yaml").write_text(policy)
    result = run_gate(
        "--baseline", str(base), "--candidate", str(cand), "--policy", str(tmp_path / "gate.yaml"),
        "--json", str(tmp_path / "g.json"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert needle in result.output and "error:" in result.output
    assert not (tmp_path / "g.json").exists()


def test_cli_missing_column_exits_2(shadow_files: tuple[Path, Path]) -> None:
    base, cand = shadow_files
    result = run_gate("--baseline", str(base), "--candidate", str(cand), "--score", "proba")
    assert result.exit_code == 2 and "proba" in result.output


def test_cli_promote_flag_needs_a_registered_model(shadow_files: tuple[Path, Path]) -> None:
    base, cand = shadow_files
    result = run_gate("--baseline", str(base), "--candidate", str(cand), "--promote")
    assert result.exit_code == 2 and "--registered-model" in result.output


# -- the examples ----------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_policy_is_valid() -> None:
    from assay.rollout.policy import load_policy

    policy = load_policy(EXAMPLES / "gate.yaml")
    assert [m.metric for m in policy.metrics] == ["roc_auc", "log_loss"]
    assert [g.metric for g in policy.guardrails] == ["fpr", "latency_p95"]


@pytest.mark.parametrize("name", ["ci/github-actions.yml", "ci/gitlab-ci.yml"])
def test_ci_examples_use_only_real_gate_flags(name: str) -> None:
    import re

    import yaml

    text = (EXAMPLES / name).read_text()
    yaml.safe_load(text)  # valid YAML
    command = text[text.rindex("assay gate") :].split("\n\n")[0]
    flags = set(re.findall(r"(--[a-z][a-z-]+)", command))
    assert {"--baseline", "--candidate", "--policy", "--junit"} <= flags
    help_text = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    for flag in flags:
        assert flag in help_text, flag


def test_kubernetes_examples_parse() -> None:
    import yaml

    docs = list(
        yaml.safe_load_all((EXAMPLES / "kubernetes/argo-analysis-template.yaml").read_text())
    )
    assert [d["kind"] for d in docs] == ["AnalysisTemplate", "Canary"]


# -- per-segment checks ------------------------------------------------------------------------


def segmented_arm(n: int, seed: int, partner_strength: float) -> pa.Table:
    """Channels web/app/partner (63/30/6%) and a tiny 'kiosk'; 'partner' may be worse."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["web", "app", "partner", "kiosk"], n, p=[0.63, 0.30, 0.06, 0.01])
    y = rng.integers(0, 2, n)
    strength = np.where(channel == "partner", partner_strength, 0.6)
    score = np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    return pa.table({"target": y, "score": score, "channel": channel})


def test_a_candidate_worse_in_one_segment_is_rejected_by_a_segment_guardrail() -> None:
    base, cand = segmented_arm(12000, 1, 0.6), segmented_arm(12000, 2, 0.0)
    policy = GatePolicy.model_validate(
        {
            "metrics": [{"metric": "accuracy", "margin": 0.2}],
            "guardrails": [{"metric": "accuracy", "max_worsening": 0.05, "segment": "channel"}],
            "segment_min_rows": 300,
        }
    )
    d = assay.gate(base, cand, policy=policy)
    assert d.decision == "reject"
    by_label = {c.label: c for c in d.checks if c.role == "guardrail"}
    assert [c.outcome for c in d.checks if c.label == "accuracy"] == ["pass", "pass"]  # overall
    partner = by_label["accuracy[channel=partner]"].to_dict()
    assert partner["outcome"] == "fail" and partner["alpha"] == pytest.approx(0.05 / 3)
    assert by_label["accuracy[channel=web]"].outcome == "pass"
    mask = base.column("channel").to_numpy(zero_copy_only=False) == "partner"
    y, s = base.column("target").to_numpy()[mask], base.column("score").to_numpy()[mask]
    assert partner["baseline"] == pytest.approx(accuracy_score(y, s >= 0.5), rel=1e-12)
    assert "accuracy[channel=kiosk]" not in by_label
    assert any("[channel=kiosk] not judged" in r for r in d.reasons)
    junit = __import__("assay.report.gate", fromlist=["to_junit"]).to_junit(d.to_dict())
    assert 'name="accuracy[channel=partner]"' in junit


def test_paired_segment_checks_use_the_baseline_segments() -> None:
    base, cand = shadow_pair(n=3000)
    channel = np.where(np.arange(3000) % 2 == 0, "a", "b")
    base = base.append_column("channel", pa.array(channel))
    policy = GatePolicy.model_validate(
        {"metrics": [{"metric": "roc_auc", "margin": 0.01, "segment": "channel"}]}
    )
    d = assay.gate(base, cand, paired=True, id_column="id", policy=policy)
    assert [c.label for c in d.checks] == ["roc_auc", "roc_auc[channel=a]", "roc_auc[channel=b]"]
    assert d.decision == "promote"
    y = base.column("target").to_numpy()
    s = cand.column("score").to_numpy()
    assert d.checks[1].difference["candidate"] == pytest.approx(
        roc_auc_score(y[::2], s[::2]), rel=1e-12
    )


def test_sequential_mode_refuses_metrics_its_test_does_not_cover() -> None:
    with pytest.raises(ConfigError, match=r"sequential \(canary\) metric 'roc_auc'"):
        assay.gate(arm(200, 0.4, 1), arm(200, 0.4, 2), metrics=["roc_auc"], sequential=True)
    d = assay.gate(arm(200, 0.4, 1), arm(200, 0.4, 2), sequential=True)
    assert [c.metric for c in d.checks] == ["accuracy"]  # the sequential default


def test_a_margin_without_metrics_next_to_a_policy_is_refused(tmp_path: Path) -> None:
    policy = GatePolicy.model_validate({"metrics": [{"metric": "accuracy"}]})
    with pytest.raises(ConfigError, match="--margin applies"):
        assay.gate(arm(200, 0.4, 1), arm(200, 0.4, 2), policy=policy, margin=0.01)


def test_mean_error_has_no_better_direction_and_is_refused() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"target": rng.normal(size=300), "prediction": rng.normal(size=300)})
    with pytest.raises(ConfigError, match="mean_error") as err:
        assay.gate(table, table, task="regression", prediction="prediction", metrics=["mean_error"])
    assert "mae" in str(err.value)
    d = assay.gate(table, table, task="regression", prediction="prediction", score=None)
    assert [c.metric for c in d.checks] == ["mae"]


def test_sequential_segment_checks_need_only_segment_min_rows() -> None:
    base, cand = segmented_arm(4000, 1, 0.6), segmented_arm(4000, 2, 0.0)
    policy = GatePolicy.model_validate(
        {
            "min_rows": 1000,
            "sequential": True,
            "guardrails": [{"metric": "brier", "max_worsening": 0.01, "segment": "channel"}],
            "segment_min_rows": 150,
        }
    )
    d = assay.gate(base, cand, policy=policy)
    partner = next(c for c in d.checks if c.label == "brier[channel=partner]").to_dict()
    assert partner["test"] == "confidence_sequence" and partner["ci"] is not None
    assert partner["outcome"] == "fail" and d.decision == "reject"


# -- multiclass models -----------------------------------------------------------------------

CLASSES = np.array(["cat", "dog", "eel"])


def multiclass_model(rng: np.random.Generator, y: np.ndarray, accuracy: float):
    """Predicted classes right about ``accuracy`` of the time, and class probabilities
    that favour the predicted class."""
    n = y.size
    pred = np.where(rng.random(n) < accuracy, y, rng.integers(0, 3, n))
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), pred] += 2.0
    return pred, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def multiclass_table(ids: np.ndarray, y: np.ndarray, pred: np.ndarray, proba: np.ndarray):
    return pa.table({"id": ids, "target": CLASSES[y], "pred": CLASSES[pred],
                     **{f"p_{c}": proba[:, i] for i, c in enumerate(CLASSES)}})  # fmt: skip


def split_multiclass(seed: int, *arms: tuple[int, float]) -> list[tuple[Any, ...]]:
    """Independent arms of (rows, accuracy): each arm's table, labels, classes, probabilities."""
    rng = np.random.default_rng(seed)
    out = []
    for n, accuracy in arms:
        y = rng.integers(0, 3, n)
        pred, proba = multiclass_model(rng, y, accuracy)
        out.append((multiclass_table(np.arange(n), y, pred, proba), y, pred, proba))
    return out


def test_paired_multiclass_gate_compares_accuracy_by_mcnemar_and_log_loss() -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    y = rng.integers(0, 3, n)
    (pb, qb), (pc_, qc) = multiclass_model(rng, y, 0.6), multiclass_model(rng, y, 0.8)
    ids = np.arange(n)
    base, cand = multiclass_table(ids, y, pb, qb), multiclass_table(ids, y, pc_, qc)
    shuffled = cand.take(pa.array(rng.permutation(n)))  # paired by id, not by position
    d = assay.gate(base, shuffled, task="multiclass", prediction="pred",
                   score="p_cat,p_dog,p_eel", paired=True, id_column="id",
                   metrics=["accuracy", "log_loss"])  # fmt: skip
    assert d.decision == "promote" and d.task == "multiclass"
    acc, loss = (c.to_dict() for c in d.checks)
    assert acc["baseline"] == pytest.approx(accuracy_score(y, pb), abs=1e-12)
    assert acc["candidate"] == pytest.approx(accuracy_score(y, pc_), abs=1e-12)
    only_base = int(np.sum((pb == y) & (pc_ != y)))
    only_cand = int(np.sum((pb != y) & (pc_ == y)))
    statistic = (only_base - only_cand) ** 2 / (only_base + only_cand)
    assert acc["test"] == "mcnemar_chi2"
    assert acc["p_value"] == pytest.approx(sps.chi2.sf(statistic, 1), rel=1e-9)
    assert loss["baseline"] == pytest.approx(sk_log_loss(y, qb), rel=1e-9)
    assert loss["candidate"] == pytest.approx(sk_log_loss(y, qc), rel=1e-9)
    assert loss["test"] == "paired_bootstrap" and loss["ci"][1] < 0  # lower is better


def test_split_multiclass_gate_uses_two_proportions_and_welch() -> None:
    (base, y_b, pb, qb), (cand, y_c, pc_, qc) = split_multiclass(12, (2_500, 0.7), (2_000, 0.7))
    d = assay.gate(base, cand, task="multiclass", prediction="pred", score="p_cat,p_dog,p_eel",
                   metrics=["error_rate", "log_loss"], margin=0.1)  # fmt: skip
    err, loss = (c.to_dict() for c in d.checks)
    assert err["test"] == "two_proportion"
    assert err["baseline"] == pytest.approx(1 - accuracy_score(y_b, pb), abs=1e-12)
    assert err["difference"] == pytest.approx(np.mean(pc_ != y_c) - np.mean(pb != y_b))
    losses = [
        -np.log(np.clip(q[np.arange(t.size), t], 1e-15, 1)) for q, t in ((qb, y_b), (qc, y_c))
    ]
    welch = sps.ttest_ind(losses[1], losses[0], equal_var=False)
    assert loss["test"].startswith("welch")
    assert loss["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    assert d.decision == "promote"  # the same model: within a 0.1 margin on both


def test_multiclass_gate_without_probabilities_refuses_log_loss_and_defaults_to_accuracy(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(13)
    y = rng.integers(0, 3, 400)
    (pb, qb), (pc_, qc) = multiclass_model(rng, y, 0.6), multiclass_model(rng, y, 0.6)
    base = multiclass_table(np.arange(400), y, pb, qb).select(["id", "target", "pred"])
    cand = multiclass_table(np.arange(400), y, pc_, qc).select(["id", "target", "pred"])
    with pytest.raises(ConfigError, match="needs the class probabilities") as caught:
        assay.gate(base, cand, task="multiclass", prediction="pred", metrics=["log_loss"])
    assert caught.value.field == "score"
    with pytest.raises(ConfigError, match="is not supported"):
        assay.gate(base, cand, task="multiclass", prediction="pred", metrics=["roc_auc"])
    with pytest.raises(ConfigError, match="compares predicted classes") as caught:
        assay.gate(base, cand, task="multiclass")  # neither a class nor probabilities
    assert caught.value.field == "prediction"
    pq.write_table(base, tmp_path / "base.parquet")
    pq.write_table(cand, tmp_path / "cand.parquet")
    out = tmp_path / "decision.json"
    result = CliRunner().invoke(app, ["gate", "--baseline", str(tmp_path / "base.parquet"),
                                      "--candidate", str(tmp_path / "cand.parquet"),
                                      "--task", "multiclass", "--prediction", "pred",
                                      "--paired", "--id", "id", "--json", str(out)])  # fmt: skip
    decision = json.loads(out.read_text())
    assert result.exit_code == decision["exit_code"]
    assert [c["metric"] for c in decision["checks"]] == ["accuracy"]
    assert decision["checks"][0]["baseline"] == pytest.approx(accuracy_score(y, pb))


def test_sequential_multiclass_canary_compares_correctness() -> None:
    (base, y_b, pb, _), (cand, y_c, pc_, _) = split_multiclass(14, (4_000, 0.8), (1_000, 0.4))
    d = assay.gate(base, cand, task="multiclass", prediction="pred", sequential=True)
    [acc] = [c.to_dict() for c in d.checks]
    assert acc["test"] == "confidence_sequence" and acc["metric"] == "accuracy"
    assert acc["difference"] == pytest.approx(np.mean(pc_ == y_c) - np.mean(pb == y_b))
    assert d.decision == "reject"  # far worse: the always-valid interval excludes zero


def test_macro_averaged_metrics_of_multiclass_models_equal_scikit_learn() -> None:
    """Each file codes its own classes (the candidate also predicts a class the baseline
    never does); the gate codes both alike before comparing."""
    rng = np.random.default_rng(15)
    n = 2_000
    y = rng.integers(0, 3, n)
    (pb, qb), (pc_, qc) = multiclass_model(rng, y, 0.5), multiclass_model(rng, y, 0.9)
    pb = np.where(pb == 2, 0, pb)  # the baseline never predicts "eel"
    ids = np.arange(n)
    base, cand = multiclass_table(ids, y, pb, qb), multiclass_table(ids, y, pc_, qc)
    metrics = ["f1_macro", "precision_macro", "recall_macro"]
    for paired in (True, False):
        d = assay.gate(base, cand, task="multiclass", prediction="pred", metrics=metrics,
                       paired=paired, id_column="id" if paired else None)  # fmt: skip
        assert d.decision == "promote"
        for check, average in zip(d.checks, (f1_score, precision_score, recall_score),
                                  strict=True):  # fmt: skip
            found = check.to_dict()
            assert found["test"] == ("paired_bootstrap" if paired else "bootstrap")
            expected_base = average(y, pb, average="macro", zero_division=0)
            assert found["baseline"] == pytest.approx(expected_base, abs=1e-12)
            expected_cand = average(y, pc_, average="macro", zero_division=0)
            assert found["candidate"] == pytest.approx(expected_cand, abs=1e-12)
            assert found["ci"][0] < found["difference"] < found["ci"][1]


def test_multiclass_comparisons_take_class_codes() -> None:
    from assay.stats import paired_difference

    y = np.array([0, 1, 2, 2, 1, 0] * 50)
    good, bad = y.copy(), np.roll(y, 1)
    d = paired_difference("accuracy", y, bad, good, task="multiclass")
    assert d.test.startswith("mcnemar")
    assert d.baseline == pytest.approx(accuracy_score(y, bad)) and d.candidate == 1.0
    with pytest.raises(InputError, match="class codes"):
        paired_difference("f1_macro", y, bad + 0.5, good, task="multiclass")
    with pytest.raises(InputError, match="not supported for a multiclass comparison"):
        paired_difference("roc_auc", y, bad, good, task="multiclass")
