"""The gate use case: baseline and candidate predictions in, a promote/reject/continue out.

Paired data (shadow mode: both models scored the same events) is joined by id and compared
with paired tests; otherwise the two inputs are independent samples (canary, A/B), with a
sample-ratio check when the policy names the expected split, and, for a canary watched
continuously, always-valid intervals (``sequential``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from assay.engine.sources import Source, open_source
from assay.engine.spec import EvaluationSpec
from assay.errors import ConfigError
from assay.rollout.decision import CheckResult, GateDecision, check, decide
from assay.rollout.policy import (
    LATENCY_GUARDRAILS,
    GatePolicy,
    Guardrail,
    default_metric,
    load_policy,
)
from assay.service.gate_data import Arm, common_classes, read_arm, read_paired_arms
from assay.service.runs import run_record
from assay.stats import (
    BINARY_METRICS,
    HIGHER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    SEQUENTIAL_METRICS,
    Difference,
    paired_difference,
    quantile_difference,
    sample_ratio_mismatch,
    sequential_difference,
    split_difference,
)

TASKS = {
    "binary": BINARY_METRICS,
    "regression": REGRESSION_METRICS,
    "multiclass": MULTICLASS_METRICS | {"log_loss"},  # log_loss: with class probabilities
}
_QUANTILES = {"latency_p50": 0.5, "latency_p90": 0.9, "latency_p95": 0.95, "latency_p99": 0.99}


def gate(
    baseline: Any,
    candidate: Any,
    *,
    task: str = "binary",
    target: str = "target",
    score: str | None = "score",
    prediction: str | None = None,
    threshold: float = 0.5,
    metrics: Iterable[str] = (),
    margin: float = 0.0,
    paired: bool = False,
    id_column: str | None = None,
    policy: GatePolicy | str | Path | None = None,
    sequential: bool | None = None,
    models: dict[str, Any] | None = None,
) -> GateDecision:
    """Decide whether ``candidate`` may replace ``baseline``.

    ``baseline`` and ``candidate`` take what :func:`assay.evaluate` takes. ``metrics`` (with
    ``margin``) replace the policy's primary metrics; with neither, ROC AUC (accuracy for
    multiclass, MAE for regression) must not get worse. Multiclass models are compared on
    accuracy, error_rate, the macro-averaged f1, precision and recall and, given one
    probability column per class, log_loss.

    >>> import numpy as np, pyarrow as pa
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 4000)
    >>> weak = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 4000), 0, 1)
    >>> strong = np.clip(0.5 + 0.6 * (y - 0.5) + rng.normal(0, 0.2, 4000), 0, 1)
    >>> ids = np.arange(4000)
    >>> d = gate(pa.table({"id": ids, "target": y, "score": weak}),
    ...          pa.table({"id": ids, "target": y, "score": strong}),
    ...          paired=True, id_column="id")
    >>> d.decision, d.exit_code, d.checks[0].difference["test"]
    ('promote', 0, 'delong_paired')
    """
    started = time.time()
    rules = check_policy(
        task, _resolve_policy(policy, metrics, margin), sequential=sequential, margin=margin
    )
    if paired and not id_column:
        raise ConfigError("paired comparison joins by id", field="id", hint="pass --id COLUMN")
    if paired and rules.sequential:
        raise ConfigError(
            "sequential (always-valid) monitoring applies to split traffic, not paired data",
            field="sequential",
            hint="drop --paired, or drop sequential",
        )
    if task != "binary" and prediction is not None and score == "score":
        score = None  # the binary default; regression and multiclass read the prediction
    if task == "multiclass" and prediction is None and score == "score":
        raise ConfigError(
            "a multiclass gate compares predicted classes",
            field="prediction",
            hint="pass --prediction COLUMN, or --score with one probability column per class",
        )
    spec = EvaluationSpec.build(
        task=task,
        target=target,
        score=score,
        prediction=prediction,
        threshold=threshold,
        segments=rules.segment_columns,
    )
    base_src = open_source(baseline, role="baseline")
    cand_src = open_source(candidate, role="candidate")
    latency_cols = sorted({g.latency_column for g in rules.guardrails if _is_latency(g)})
    if paired:
        assert id_column is not None
        base, cand, rows = read_paired_arms(spec, base_src, cand_src, id_column, latency_cols)
        mode = "paired"
    else:
        base = read_arm(spec, base_src, latency_cols)
        cand = read_arm(spec, cand_src, latency_cols)
        rows = {"baseline": base.rows, "candidate": cand.rows}
        mode = "sequential" if rules.sequential else "split"
    if task == "multiclass":
        base, cand = common_classes(base, cand)
    rows["labeled_baseline"] = int(base.y_true.size)
    rows["labeled_candidate"] = int(cand.y_true.size)
    enough = min(base.y_true.size, cand.y_true.size) >= rules.min_rows
    srm = None
    if rules.srm is not None and not paired:
        srm = sample_ratio_mismatch(
            [base.rows, cand.rows],
            list(rules.srm.expected_shares),
            threshold=rules.srm.threshold,
        )
    checks: list[CheckResult] = []
    notes: list[str] = []
    for m in rules.metrics:
        checks.append(_primary(m.metric, m.kind, m.margin, spec, rules, base, cand, mode, enough))
        if m.segment:
            judged, skipped = _per_segment(
                m.metric, "primary", m.kind, m.margin, m.segment, spec, rules, base, cand, mode,
                enough,
            )  # fmt: skip
            checks += judged
            notes += skipped
    for g in rules.guardrails:
        checks.append(_guardrail(g, spec, rules, base, cand, mode, enough))
        if g.segment:
            judged, skipped = _per_segment(
                g.metric, "guardrail", "non_inferiority", g.max_worsening, g.segment, spec,
                rules, base, cand, mode, enough,
            )  # fmt: skip
            checks += judged
            notes += skipped
    decision, reasons = decide(checks, srm)
    reasons += notes
    if not enough:
        reasons.insert(
            0,
            f"each arm needs at least {rules.min_rows} labeled rows before a verdict "
            f"(baseline {base.y_true.size}, candidate {cand.y_true.size})",
        )
    return GateDecision(
        decision=decision,
        mode=mode,
        task=task,
        rows=rows,
        checks=checks,
        reasons=reasons,
        policy=rules.describe(),
        srm=srm,
        models=models or {},
        run=_run_record(spec, rules, base_src, cand_src, mode, started),
    )


def _resolve_policy(
    policy: GatePolicy | str | Path | None, metrics: Iterable[str], margin: float
) -> GatePolicy:
    if margin < 0:
        raise ConfigError(
            f"margin must be 0 or more, got {margin:g}",
            field="margin",
            hint="a margin is how much worse (or better) is acceptable, e.g. 0.01",
        )
    if isinstance(policy, GatePolicy):
        rules = policy
    elif policy is None:
        rules = GatePolicy()
    else:
        rules = load_policy(policy)
    named = list(metrics)
    if named:
        return rules.with_metrics(named, margin)
    if margin and rules.metrics:
        raise ConfigError(
            "--margin applies to the metrics named with --metric",
            field="margin",
            hint="set margins in the policy file, or name the metrics with --metric",
        )
    return rules


def check_policy(
    task: str, rules: GatePolicy, *, sequential: bool | None = None, margin: float = 0.0
) -> GatePolicy:
    """The policy as the gate applies it, once checked: without metrics, the task's default
    metric (see :func:`~assay.rollout.policy.default_metric`) at ``margin``."""
    if sequential is not None:
        rules = rules.model_copy(update={"sequential": sequential})
    if task not in TASKS:
        raise ConfigError(
            f"the gate compares binary, multiclass or regression models, not {task!r}",
            field="task",
            hint="use --task binary, --task multiclass or --task regression",
        )
    if not rules.metrics:
        rules = rules.with_metrics([default_metric(task, sequential=rules.sequential)], margin)
    # metrics with a better direction (mean_error, a bias, is best near zero: not gated)
    known = frozenset(m for m in TASKS[task] if m in HIGHER_IS_BETTER)
    if rules.sequential:  # the confidence sequence covers per-row means only
        known = known & SEQUENTIAL_METRICS
    for where, name in [("metric", m.metric) for m in rules.metrics] + [
        ("guardrails", g.metric) for g in rules.guardrails
    ]:
        if name not in known and not (where == "guardrails" and name in LATENCY_GUARDRAILS):
            choices = sorted(known) + (list(LATENCY_GUARDRAILS) if where == "guardrails" else [])
            what = "sequential (canary)" if rules.sequential and name in TASKS[task] else task
            if name == "mean_error":
                what = "mean_error (a bias, best near zero, has no better direction):"
            raise ConfigError(
                f"{what} metric {name!r} is not supported",
                field=where,
                hint="use " + ", ".join(choices),
            )
    return rules


def _is_latency(g: Guardrail) -> bool:
    return g.metric in LATENCY_GUARDRAILS


def _difference(
    metric: str,
    spec: EvaluationSpec,
    rules: GatePolicy,
    base: Arm,
    cand: Arm,
    mode: str,
    alpha: float | None = None,
    min_rows: int | None = None,
) -> Difference:
    # a multiclass log_loss reaches the tests as a binary one (Arm.comparable)
    task = "binary" if spec.task == "multiclass" and metric == "log_loss" else spec.task
    common = {"task": task, "threshold": spec.threshold, "alpha": alpha or rules.alpha}
    arms = (base.comparable(metric, spec.task), cand.comparable(metric, spec.task))
    if mode == "paired":
        return paired_difference(
            metric, arms[0][0], arms[0][1], arms[1][1],
            n_boot=rules.n_boot, seed=rules.seed, **common,
        )  # fmt: skip
    if mode == "sequential":
        return sequential_difference(metric, *arms, min_rows=min_rows or rules.min_rows, **common)
    return split_difference(metric, *arms, n_boot=rules.n_boot, seed=rules.seed, **common)


def _primary(
    metric: str,
    kind: str,
    margin: float,
    spec: EvaluationSpec,
    rules: GatePolicy,
    base: Arm,
    cand: Arm,
    mode: str,
    enough: bool,
) -> CheckResult:
    diff = _difference(metric, spec, rules, base, cand, mode)
    return check(
        diff,
        role="primary",
        kind=kind,
        margin=margin,
        higher_is_better=HIGHER_IS_BETTER[metric],
        enough_rows=enough,
    )


def _per_segment(
    metric: str,
    role: Literal["primary", "guardrail"],
    kind: str,
    margin: float,
    column: str,
    spec: EvaluationSpec,
    rules: GatePolicy,
    base: Arm,
    cand: Arm,
    mode: str,
    enough: bool,
) -> tuple[list[CheckResult], list[str]]:
    """One check per value of ``column`` with enough rows, at a Bonferroni-split alpha."""
    need = rules.segment_min_rows or rules.min_rows
    values = sorted(set(base.segments[column]) | set(cand.segments[column]))
    masks = {v: (base.segments[column] == v, cand.segments[column] == v) for v in values}
    judged = [v for v, (b, c) in masks.items() if min(b.sum(), c.sum()) >= need]
    skipped = [
        f"{metric} [{column}={v}] not judged: {int(masks[v][0].sum())} and "
        f"{int(masks[v][1].sum())} labeled rows, fewer than {need}"
        for v in values
        if v not in judged
    ]
    alpha = rules.alpha / max(1, len(judged))
    checks = []
    for value in judged:
        b_mask, c_mask = masks[value]
        diff = _difference(
            metric, spec, rules, base.subset(b_mask), cand.subset(c_mask), mode, alpha, need
        )
        checks.append(
            check(
                diff,
                role=role,
                kind=kind,
                margin=margin,
                higher_is_better=HIGHER_IS_BETTER[metric],
                enough_rows=enough,
                segment={"column": column, "value": str(value)},
            )
        )
    return checks, skipped


def _guardrail(
    g: Guardrail, spec: EvaluationSpec, rules: GatePolicy, base: Arm, cand: Arm, mode: str,
    enough: bool,
) -> CheckResult:  # fmt: skip
    if _is_latency(g):
        a, b = base.latency[g.latency_column], cand.latency[g.latency_column]
        if g.metric == "latency_mean":
            from assay.stats import mean_difference

            diff = mean_difference(a, b, paired=False, alpha=rules.alpha, metric=g.metric)
        else:
            diff = quantile_difference(
                a, b, _QUANTILES[g.metric], paired=False, alpha=rules.alpha,
                n_boot=rules.n_boot, seed=rules.seed, metric=g.metric,
            )  # fmt: skip
        higher_is_better = False
    else:
        diff = _difference(g.metric, spec, rules, base, cand, mode)
        higher_is_better = HIGHER_IS_BETTER[g.metric]
    return check(
        diff,
        role="guardrail",
        kind="non_inferiority",
        margin=g.max_worsening,
        higher_is_better=higher_is_better,
        enough_rows=enough,
    )


def _run_record(
    spec: EvaluationSpec,
    rules: GatePolicy,
    base: Source,
    cand: Source,
    mode: str,
    started: float,
) -> dict[str, Any]:
    config = {
        "task": spec.task,
        "target": spec.target,
        "score": list(spec.score),
        "prediction": spec.prediction,
        "threshold": spec.threshold,
        "mode": mode,
        "policy": rules.describe(),
    }
    return run_record(config, {"baseline": base, "candidate": cand}, started)
