"""The evaluate use case: one window (and optionally a reference) in, one result out."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from assay.engine import local
from assay.engine.columns import read_labeled
from assay.engine.local import ProgressFactory
from assay.engine.sources import Source, open_source
from assay.engine.spec import EvaluationSpec
from assay.errors import AssayWarning, ConfigError
from assay.result import EvaluationResult
from assay.service.runs import run_record
from assay.stats import DriftRule

if TYPE_CHECKING:
    from assay.engine.distributed import RayOptions


def evaluate(
    current: Any,
    reference: Any = None,
    task: str = "binary",
    target: str = "target",
    score: str | Sequence[str] | None = "score",
    prediction: str | None = None,
    threshold: float = 0.5,
    segments: Iterable[str] = (),
    features: Iterable[str] | Mapping[str, str] | None = None,
    engine: str = "local",
    *,
    weight: str | None = None,
    drift_rule: DriftRule | None = None,
    ece_bins: int = 10,
    seed: int = 0,
    progress: ProgressFactory | None = None,
    ray_address: str | None = None,
    approximate: bool = False,
    ray_options: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate a model on ``current`` and measure drift against ``reference``.

    ``current`` and ``reference`` are Parquet or CSV paths, folders of Parquet files,
    pandas or polars DataFrames, or pyarrow Tables. Metrics come with 95% intervals
    (``<name>_ci``); undefined metrics are ``None`` with a reason under ``undefined``
    and a warning. ``progress(total_steps)`` may return a callback called per step.

    ``engine="ray"`` folds partitions on Ray (the running runtime, the cluster at
    ``ray_address`` or else ``RAY_ADDRESS``, or a local one started for the call);
    ``approximate=True`` replaces the states that grow with the rows by fixed-size
    sketches with stated error bounds;
    ``ray_options`` may set ``partitions``, ``batch_size``, ``worker_memory`` and
    ``finish_inputs`` (see
    :class:`assay.engine.distributed.RayOptions`).

    >>> import pyarrow as pa
    >>> t = pa.table({"target": [0, 1, 1, 0], "score": [0.2, 0.9, 0.6, 0.4],
    ...               "amount": [1.0, 2.0, 3.0, 4.0]})
    >>> r = evaluate(t, reference=t)
    >>> r.metrics["overall"]["roc_auc"], r.drift["amount"]["drifted"]
    (1.0, False)
    """
    started = time.time()
    if task != "binary" and prediction is not None and score == "score":
        score = None  # the binary default; regression and multiclass read the prediction
    spec = EvaluationSpec.build(
        task=task,
        target=target,
        score=score,
        prediction=prediction,
        threshold=threshold,
        segments=segments,
        features=features,
        weight=weight,
        engine=engine,
        drift_rule=drift_rule,
        ece_bins=ece_bins,
        seed=seed,
    )
    if spec.engine == "ray":
        options = _ray_options(ray_address, approximate, ray_options)
        return _evaluate_on_ray(spec, current, reference, options, started, progress)
    if ray_address or approximate or ray_options:
        raise ConfigError(
            "ray_address, approximate and ray_options apply to the ray engine only",
            field="engine",
            hint="pass engine='ray' (--engine ray)",
        )
    cur = open_source(current, role="current")
    ref = None if reference is None else open_source(reference, role="reference")
    feature_types = spec.resolve_features(cur, ref)
    ref_has_labels = ref is not None and all(c in ref.column_names for c in _metric_columns(spec))

    steps = 1 + int(ref_has_labels) + (len(feature_types) + 1 if ref is not None else 0)
    tick = progress(steps) if progress is not None else (lambda _name: None)

    # every value check runs before the heavy work starts
    cur_cols = read_labeled(spec, cur)
    ref_cols = read_labeled(spec, ref, with_segments=False) if ref_has_labels and ref else None

    def reference_metrics() -> dict[str, Any]:
        assert ref_cols is not None
        states = local.metric_states(spec, ref_cols, None)
        return local.finish(states, seed=spec.seed, curves=True)

    def with_tick(name: str, work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            value = work()
            tick(name)
            return value

        return run

    drift: dict[str, dict[str, Any]] = {}
    prediction_drift: dict[str, dict[str, Any]] = {}
    # metrics and drift share one pool: numpy and Arrow release the GIL
    with ThreadPoolExecutor(max_workers=local.default_threads()) as pool:

        def all_metrics() -> dict[str, Any]:
            # one job, so the two windows' full-length temporaries never coexist
            metrics = local.evaluate_metrics(spec, cur_cols, curves=True)
            tick("metrics (current)")
            if ref_cols is not None:
                metrics["reference"] = reference_metrics()
                tick("metrics (reference)")
            return metrics

        metrics_job = pool.submit(all_metrics)
        if ref is not None:
            prediction_job = pool.submit(
                with_tick("prediction drift", lambda: _prediction_drift(spec, ref, cur))
            )
            jobs = local.submit_drift(pool, feature_types, ref, cur, progress=tick)
            drift = {name: job.result()[1] for name, job in jobs.items()}
            spec.drift_rule.apply(drift)
            prediction_drift = prediction_job.result()
        metrics = metrics_job.result()

    rows = {"current": cur.num_rows}
    labeled = {"current": cur_cols.labeled}
    if ref is not None:
        rows["reference"] = ref.num_rows
    if ref_cols is not None:
        labeled["reference"] = ref_cols.labeled
    result = EvaluationResult(
        task=spec.task,
        rows=rows,
        labeled=labeled,
        metrics=metrics,
        drift=drift,
        prediction_drift=prediction_drift,
        drift_rule=spec.drift_rule.describe() if ref is not None else None,
        run=_run_record(spec, feature_types, cur, ref, started),
    )
    return _with_warnings(result)


def _with_warnings(result: EvaluationResult) -> EvaluationResult:
    result.warnings = _collect_warnings(result)
    for message in result.warnings:
        warnings.warn(message, AssayWarning, stacklevel=3)
    return result


def _ray_options(
    address: str | None, approximate: bool, extra: Mapping[str, Any] | None
) -> RayOptions:
    from assay.engine.distributed import RayOptions, import_ray

    import_ray()  # the install hint before any work
    known = {"partitions", "batch_size", "worker_memory", "finish_inputs"}
    unknown = sorted(set(extra or {}) - known)
    if unknown:
        raise ConfigError(
            f"unknown ray option {unknown[0]!r}",
            field=f"ray_options.{unknown[0]}",
            hint="use " + ", ".join(sorted(known)),
        )
    # without an address, Ray's own RAY_ADDRESS names the cluster (set in a Ray job's driver)
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = RayOptions(address=address, approximate=approximate, **dict(extra or {}))
    for name in sorted(known):
        value = getattr(options, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(
                f"ray option {name} must be a positive integer, got {value!r}",
                field=f"ray_options.{name}",
            )
    return options


def _evaluate_on_ray(
    spec: EvaluationSpec,
    current: Any,
    reference: Any,
    options: RayOptions,
    started: float,
    progress: ProgressFactory | None,
) -> EvaluationResult:
    from assay.engine.distributed import evaluate_on_ray

    found = evaluate_on_ray(spec, current, reference, options, progress)
    cur, ref = found.current, found.reference
    rows = {"current": cur.rows}
    labeled = {"current": cur.labeled}
    if ref is not None:
        rows["reference"] = ref.rows
        if "reference" in found.metrics:
            labeled["reference"] = ref.labeled
    run = _run_record(
        spec, found.features, cur.data.source, None if ref is None else ref.data.source, started
    )
    run["ray"] = found.run
    result = EvaluationResult(
        task=spec.task,
        rows=rows,
        labeled=labeled,
        metrics=found.metrics,
        drift=found.drift,
        prediction_drift=found.prediction_drift,
        drift_rule=spec.drift_rule.describe() if ref is not None else None,
        run=run,
    )
    return _with_warnings(result)


def _metric_columns(spec: EvaluationSpec) -> list[str]:
    return [c for c in (spec.target, *spec.score, spec.prediction, spec.weight) if c]


def _prediction_drift(spec: EvaluationSpec, ref: Source, cur: Source) -> dict[str, dict[str, Any]]:
    """Drift of the model's output itself (score, predicted value or predicted class)."""
    if spec.task == "multiclass":
        column, kind = spec.prediction, "categorical"
    else:
        column, kind = (spec.score[0] if spec.score else spec.prediction), "numeric"
    if not column or column not in ref.column_names:
        return {}
    result = local.drift_of(
        kind,  # type: ignore[arg-type]
        local.feature_state(column, kind, ref.column(column)),  # type: ignore[arg-type]
        local.feature_state(column, kind, cur.column(column)),  # type: ignore[arg-type]
    )
    out = {column: result}
    DriftRule(**{**asdict(spec.drift_rule), "correction": "none"}).apply(out)
    return out


def _run_record(
    spec: EvaluationSpec,
    features: dict[str, str],
    cur: Source,
    ref: Source | None,
    started: float,
) -> dict[str, Any]:
    config = {
        "task": spec.task,
        "target": spec.target,
        "score": list(spec.score),
        "prediction": spec.prediction,
        "threshold": spec.threshold,
        "segments": list(spec.segments),
        "features": features,
        "weight": spec.weight,
        "drift_rule": asdict(spec.drift_rule),
        "ece_bins": spec.ece_bins,
        "seed": spec.seed,
    }
    return run_record(config, {"current": cur, "reference": ref}, started, engine=spec.engine)


def _collect_warnings(result: EvaluationResult) -> list[str]:
    messages: list[str] = []
    groups: list[tuple[str, dict[str, Any]]] = [("overall", result.metrics.get("overall", {}))]
    if "reference" in result.metrics:
        groups.append(("reference", result.metrics["reference"]))
    for column, values in result.metrics.get("by_segment", {}).items():
        groups.extend((f"segment {column}={value}", m) for value, m in values.items())
    for where, metrics in groups:
        for name, reason in metrics.get("undefined", {}).items():
            messages.append(f"{name} is undefined ({where}): {reason}")
    for name, drift in {**result.drift, **result.prediction_drift}.items():
        for stat, reason in drift.get("undefined", {}).items():
            messages.append(f"drift of {name!r}: {stat} undefined: {reason}")
    return messages
