"""The gate use case: baseline and candidate predictions in, a promote/reject/continue out.

Paired data (shadow mode: both models scored the same events) is joined by id and compared
with paired tests; otherwise the two inputs are independent samples (canary, A/B), with a
sample-ratio check when the policy names the expected split, and, for a canary watched
continuously, always-valid intervals (``sequential``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay import __version__
from assay.engine.columns import read_labeled
from assay.engine.sources import Source, open_source, to_float64
from assay.engine.spec import EvaluationSpec
from assay.errors import ColumnNotFoundError, ConfigError, InputError
from assay.rollout.decision import CheckResult, GateDecision, check, decide
from assay.rollout.policy import (
    LATENCY_GUARDRAILS,
    GatePolicy,
    Guardrail,
    default_metric,
    load_policy,
)
from assay.stats import (
    BINARY_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    SEQUENTIAL_METRICS,
    Difference,
    paired_difference,
    quantile_difference,
    sample_ratio_mismatch,
    sequential_difference,
    split_difference,
)

TASKS = {"binary": BINARY_METRICS, "regression": REGRESSION_METRICS}
_QUANTILES = {"latency_p50": 0.5, "latency_p90": 0.9, "latency_p95": 0.95, "latency_p99": 0.99}


@dataclass
class Arm:
    """One side of the comparison: labels, scores (or predictions), latencies, row count."""

    y_true: np.ndarray
    output: np.ndarray
    rows: int
    latency: dict[str, np.ndarray]
    segments: dict[str, np.ndarray] = field(default_factory=dict)  # value per labeled row

    def subset(self, mask: np.ndarray) -> Arm:
        """The labeled rows where ``mask`` holds (latencies are not per labeled row)."""
        return Arm(self.y_true[mask], self.output[mask], int(mask.sum()), {})


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
    ``margin``) replace the policy's primary metrics; with neither, ROC AUC (MAE for
    regression) must not get worse.

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
        base, cand, rows = _paired_arms(spec, base_src, cand_src, id_column, latency_cols)
        mode = "paired"
    else:
        base = _arm(spec, base_src, latency_cols)
        cand = _arm(spec, cand_src, latency_cols)
        rows = {"baseline": base.rows, "candidate": cand.rows}
        mode = "sequential" if rules.sequential else "split"
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
            f"the gate compares binary or regression models, not {task!r}",
            field="task",
            hint="use --task binary or --task regression",
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


def _output_column(spec: EvaluationSpec) -> str:
    return spec.score[0] if spec.task == "binary" else str(spec.prediction)


def _require(source: Source, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in source.column_names:
            raise ColumnNotFoundError(column, available=source.column_names, where=source.role)


def _arm(spec: EvaluationSpec, source: Source, latency_cols: list[str]) -> Arm:
    _require(source, [spec.target, _output_column(spec), *latency_cols, *spec.segments])
    cols = read_labeled(spec, source)
    output = cols.y_score if spec.task == "binary" else cols.y_pred
    assert output is not None
    latency = {c: _finite(source.column(c)) for c in latency_cols}
    return Arm(cols.y_true, output, source.num_rows, latency, _segment_values(cols.segments))


def _segment_values(segments: dict[str, tuple[np.ndarray, list[str]]]) -> dict[str, np.ndarray]:
    return {c: np.asarray(labels, dtype=object)[codes] for c, (codes, labels) in segments.items()}


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    values = np.asarray(to_float64(column), dtype=float)
    return values[np.isfinite(values)]


def _paired_arms(
    spec: EvaluationSpec, base: Source, cand: Source, id_column: str, latency_cols: list[str]
) -> tuple[Arm, Arm, dict[str, int]]:
    """Both arms on the ids both scored, in one row order, with one label per id."""
    out = _output_column(spec)
    needed = [id_column, out, *latency_cols]
    _require(base, [*needed, spec.target, *spec.segments])  # segments: the baseline's
    _require(cand, needed)
    left = base.read(list(dict.fromkeys([*needed, spec.target, *spec.segments])))
    right = cand.read(
        list(dict.fromkeys([*needed, *([spec.target] if spec.target in cand.column_names else [])]))
    )
    for side, table in (("baseline", left), ("candidate", right)):
        _unique_ids(table, id_column, side)
    right = right.rename_columns([c if c == id_column else f"c::{c}" for c in right.column_names])
    joined = left.join(right, keys=id_column, join_type="inner", use_threads=True)
    label = joined.column(spec.target)
    if f"c::{spec.target}" in joined.column_names:
        other = joined.column(f"c::{spec.target}")
        _same_labels(label, other, spec.target)
        label = pc.coalesce(label, other)
    rows = {
        "baseline": left.num_rows,
        "candidate": right.num_rows,
        "paired": joined.num_rows,
        "unmatched_baseline": left.num_rows - joined.num_rows,
        "unmatched_candidate": right.num_rows - joined.num_rows,
    }
    if joined.num_rows == 0:
        raise InputError(
            f"no {id_column!r} value appears in both the baseline and the candidate",
            field=id_column,
            hint="paired comparison needs both models' predictions of the same events",
        )
    arms = []
    for prefix, role in (("", "baseline"), ("c::", "candidate")):
        table = pa.table(
            {spec.target: label, out: joined.column(prefix + out),
             **{c: joined.column(c) for c in spec.segments}}
        )  # fmt: skip
        cols = read_labeled(spec, open_source(table, role=role))
        output = cols.y_score if spec.task == "binary" else cols.y_pred
        assert output is not None
        latency = {c: _finite(joined.column(prefix + c)) for c in latency_cols}
        segments = _segment_values(cols.segments)
        arms.append(Arm(cols.y_true, output, joined.num_rows, latency, segments))
    return arms[0], arms[1], rows


def _unique_ids(table: pa.Table, id_column: str, side: str) -> None:
    ids = table.column(id_column)
    if ids.null_count:
        raise InputError(
            f"{side} id column {id_column!r} has {ids.null_count} null value(s)", field=id_column
        )
    distinct = pc.count_distinct(ids).as_py()
    if distinct != table.num_rows:
        raise InputError(
            f"{side} id column {id_column!r} repeats {table.num_rows - distinct} id(s)",
            field=id_column,
            hint="each event must appear once per model",
        )


def _same_labels(a: pa.ChunkedArray, b: pa.ChunkedArray, target: str) -> None:
    both = pc.and_(pc.is_valid(a), pc.is_valid(b))
    differ = pc.sum(pc.and_(both, pc.not_equal(pc.cast(a, pa.float64()), pc.cast(b, pa.float64()))))
    count = differ.as_py() or 0
    if count:
        raise InputError(
            f"the baseline and candidate disagree on {target!r} for {count} paired id(s)",
            field=target,
            hint="both files must carry the same ground truth for an event",
        )


def _difference(
    metric: str,
    spec: EvaluationSpec,
    rules: GatePolicy,
    base: Arm,
    cand: Arm,
    mode: str,
    alpha: float | None = None,
) -> Difference:
    common = {"task": spec.task, "threshold": spec.threshold, "alpha": alpha or rules.alpha}
    if mode == "paired":
        return paired_difference(
            metric, base.y_true, base.output, cand.output,
            n_boot=rules.n_boot, seed=rules.seed, **common,
        )  # fmt: skip
    arms = ((base.y_true, base.output), (cand.y_true, cand.output))
    if mode == "sequential":
        return sequential_difference(metric, *arms, min_rows=rules.min_rows, **common)
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
            metric, spec, rules, base.subset(b_mask), cand.subset(c_mask), mode, alpha
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
    blob = json.dumps(config, sort_keys=True).encode()
    return {
        "assay_version": __version__,
        "config": config,
        "config_hash": hashlib.sha256(blob).hexdigest()[:16],
        "inputs": {
            "baseline": {"source": base.description, "fingerprint": base.fingerprint},
            "candidate": {"source": cand.description, "fingerprint": cand.fingerprint},
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_seconds": round(time.time() - started, 3),
    }
