"""The Ray engine: partitions folded into states by Ray tasks, then tree-merged.

Each task streams its partition's record batches (:mod:`assay.engine.partitions`) into
states keyed by group (:mod:`assay.engine.fold`) and returns them to the object store
(numpy arrays travel out of band, and are read in place by the tasks that merge them). Adjacent
partitions' states are merged by further tasks as soon as both are ready, so the merge
is a tree, the driver never holds more than the final states, and the rows meet in file
order: exact states give the local engine's numbers exactly. With ``approximate=True``
the states that grow with the rows (binary scores, numeric features) are replaced by
fixed-size sketches with stated error bounds, after a first pass that learns each
numeric column's range.

Ray is optional: it is imported when the engine runs, and a missing install raises
:class:`~assay.errors.MissingDependencyError` with the install hint.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from assay.engine import local
from assay.engine.fold import Folded, FoldPlan, fold_batches, merge_folded
from assay.engine.partitions import Partition, Partitioned, open_partitioned, read_partition
from assay.engine.spec import EvaluationSpec, FeatureType
from assay.errors import AssayError, EmptyInputError, MissingDependencyError
from assay.stats import DriftRule, MetricSet, NumericSampleState, State
from assay.stats.numeric_sketch import NumericHistogramState, sketch_numeric_drift
from assay.stats.score_sketch import BinaryScoreSketchState

DEFAULT_BATCH_SIZE = 131_072


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs.

    ``partitions``: at least this many partitions per window (default: 2 × the cluster's
    CPUs, and never fewer than the files). ``worker_memory``: a hard cap, in bytes, on the
    memory each fold task may add to its worker (the kernel's data-segment limit, set for
    the task's duration; Linux).
    """

    address: str | None = None
    approximate: bool = False
    partitions: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    worker_memory: int | None = None


@dataclass
class WindowFold:
    """One window's data set and its merged states."""

    data: Partitioned
    folded: Folded
    partitions: list[dict[str, Any]] = field(default_factory=list)


def import_ray() -> Any:
    """The ``ray`` module, or :class:`MissingDependencyError` with the install hint."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError("ray", "ray") from err
    return ray


@contextlib.contextmanager
def ray_runtime(address: str | None = None) -> Iterator[Any]:
    """Use the running Ray runtime, or start one (a local one without ``address``).

    Only a runtime started here is shut down here.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)  # fmt: skip
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def open_window(data: Any, role: str, options: RayOptions, cpus: int) -> Partitioned:
    """Open one window's data set for folding."""
    wanted = options.partitions if options.partitions else 2 * max(cpus, 1)
    return open_partitioned(data, role=role, partitions=wanted)


def survey(
    ray: Any, windows: list[tuple[Partitioned, FoldPlan]], options: RayOptions
) -> tuple[dict[str, tuple[float, float]], list[list[str]]]:
    """A cheap first pass: numeric columns' ranges over all windows (approximate states),
    and each window's classes (multiclass)."""
    task = ray.remote(_survey_partition)
    jobs: list[tuple[int, Any]] = []
    for number, (data, plan) in enumerate(windows):
        numeric = plan.numeric_columns() if plan.approximate else []
        labels = []
        if plan.spec.task == "multiclass" and plan.metrics:
            labels = [c for c in (plan.spec.target, plan.spec.prediction) if c]
        if not numeric and not labels:
            continue
        for part, filesystem, rows in _shipped(ray, data):
            jobs.append((number, task.remote(filesystem, rows, part, numeric, labels,
                                             plan.spec.target, options.batch_size)))  # fmt: skip
    ranges: dict[str, tuple[float, float]] = {}
    classes: list[set[str]] = [set() for _ in windows]
    for (number, _), found in zip(jobs, ray.get([job for _, job in jobs]), strict=True):
        _raise_boxed(found)
        for name, (lo, hi) in found["ranges"].items():
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
        classes[number] |= set(found["classes"])
    return ranges, [sorted(found) for found in classes]


def fold_window(ray: Any, data: Partitioned, plan: FoldPlan, options: RayOptions) -> WindowFold:
    """Fold every partition on Ray and tree-merge the states; only the result is fetched."""
    # running out of a fixed memory cap is not transient: no retry then
    fold = ray.remote(_fold_partition).options(
        num_returns=2, **({"max_retries": 0} if options.worker_memory else {})
    )
    states, infos = [], []
    for part, filesystem, rows in _shipped(ray, data):
        folded, info = fold.remote(
            plan, filesystem, rows, part, options.batch_size, options.worker_memory
        )
        states.append(folded)
        infos.append(info)
    root = tree_merge(ray, ray.remote(_merge_folded), states)
    del states  # intermediate states are freed as soon as their merge has read them
    merged = ray.get(root)
    partitions = ray.get(infos)
    _raise_boxed(merged)
    return WindowFold(data, merged, partitions)


def tree_merge(ray: Any, merge: Any, refs: list[Any], fan_in: int = 8) -> Any:
    """Merge ordered object refs in a tree of ``fan_in``-way merge tasks; the root's ref.

    Each task merges neighbours, so the result keeps the partitions' order; Ray starts a
    merge as soon as its inputs are ready, and the driver holds nothing but refs.
    """
    while len(refs) > 1:
        refs = [
            refs[i] if len(refs[i : i + fan_in]) == 1 else merge.remote(*refs[i : i + fan_in])
            for i in range(0, len(refs), fan_in)
        ]
    return refs[0]


def _shipped(ray: Any, data: Partitioned) -> Iterator[tuple[Partition, Any, Any]]:
    """Each partition with what a task needs to read it: a filesystem, or its rows.

    In-memory rows go to the object store as top-level task arguments, which Ray
    resolves (zero-copy for Arrow) before the task runs.
    """
    if data.table is not None and not data.shipped:  # put once, for the survey and the fold
        data.shipped = [ray.put(data.table.slice(p.offset, p.rows)) for p in data.partitions]
    for i, part in enumerate(data.partitions):
        if data.table is None:
            yield part, data.filesystem, None
        else:
            yield replace(part, offset=0), None, data.shipped[i]


# -- the tasks (run in Ray workers) --------------------------------------------------


@dataclass(frozen=True)
class _Boxed:
    """An Assay error raised in a task, carried back to the driver intact."""

    kind: type[AssayError]
    message: str
    attributes: dict[str, Any]

    def rebuild(self) -> AssayError:
        err = self.kind.__new__(self.kind)
        Exception.__init__(err, self.message)
        err.__dict__.update(self.attributes)
        return err


def _raise_boxed(value: Any) -> None:
    if isinstance(value, _Boxed):
        raise value.rebuild()


def _box(err: AssayError) -> _Boxed:
    return _Boxed(type(err), str(err), dict(err.__dict__))


def _fold_partition(
    plan: FoldPlan,
    filesystem: pafs.FileSystem | None,
    rows: pa.Table | None,
    part: Partition,
    batch_size: int,
    worker_memory: int | None,
) -> tuple[Folded | _Boxed, dict[str, Any]]:
    started = time.perf_counter()
    _reset_peak_rss()
    info: dict[str, Any] = {"index": part.index, "rows": part.rows}
    limit = resource.getrlimit(resource.RLIMIT_DATA)
    if worker_memory:  # the kernel refuses this task any allocation past the cap
        cap = _proc_status("VmData") + worker_memory
        resource.setrlimit(resource.RLIMIT_DATA, (cap, limit[1]))
    try:
        batches = read_partition((filesystem, rows), part, plan.columns, batch_size)
        folded = fold_batches(plan, batches)
        result: Folded | _Boxed = folded
        info["state_bytes"] = folded.serialized_size()  # what the partition's states weigh
    except AssayError as err:
        result = _box(err)
        info["error"] = str(err)
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, limit)  # the worker outlives the task
    info["seconds"] = round(time.perf_counter() - started, 4)
    info["peak_rss_bytes"] = _proc_status("VmHWM")
    info["pid"] = os.getpid()
    return result, info


def _merge_folded(*parts: Folded | _Boxed) -> Folded | _Boxed:
    """Merge neighbours' states (their arrays are read in place from the object store)."""
    for part in parts:
        if isinstance(part, _Boxed):
            return part
    try:
        return merge_folded(list(parts))  # type: ignore[arg-type]
    except AssayError as err:
        return _box(err)


def _survey_partition(
    filesystem: pafs.FileSystem | None,
    rows: pa.Table | None,
    part: Partition,
    numeric: list[str],
    labels: list[str],
    target: str,
    batch_size: int,
) -> dict[str, Any] | _Boxed:
    ranges: dict[str, tuple[float, float]] = {}
    classes: set[str] = set()
    columns = list(dict.fromkeys([*numeric, *labels]))
    for batch in read_partition((filesystem, rows), part, columns, batch_size):
        for name in numeric:
            values = pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)
            values = values[np.isfinite(values)]
            if values.size:
                lo, hi = ranges.get(name, (float(values.min()), float(values.max())))
                ranges[name] = (min(lo, float(values.min())), max(hi, float(values.max())))
        if labels:
            labeled = batch.filter(pc.is_valid(batch.column(target)))
            for name in labels:
                strings = pc.cast(labeled.column(name), pa.string())
                classes |= {v for v in pc.unique(strings).to_pylist() if v is not None}
    return {"ranges": ranges, "classes": sorted(classes)}


def _proc_status(field_name: str) -> int:
    """A ``/proc/self/status`` size in bytes (0 where there is no /proc)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> None:
    """Restart the process's peak-RSS counter, so it measures this task alone."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


# -- the driver: one evaluation ------------------------------------------------------


@dataclass
class RayEvaluation:
    """What the Ray engine found, ready for :class:`~assay.result.EvaluationResult`."""

    current: WindowFold
    reference: WindowFold | None
    features: dict[str, FeatureType]
    metrics: dict[str, Any]
    drift: dict[str, dict[str, Any]]
    prediction_drift: dict[str, dict[str, Any]]
    run: dict[str, Any]


def evaluate_on_ray(
    spec: EvaluationSpec, current: Any, reference: Any, options: RayOptions
) -> RayEvaluation:
    """Fold both windows on Ray and finish metrics and drift on the driver."""
    with ray_runtime(options.address) as ray:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        cur = open_window(current, "current", options, cpus)
        ref = None if reference is None else open_window(reference, "reference", options, cpus)
        features = spec.resolve_features(cur.source, None if ref is None else ref.source)
        prediction = None if ref is None else _prediction_column(spec, ref.source.column_names)
        common: dict[str, Any] = {"approximate": options.approximate, "prediction": prediction}
        if ref is not None:
            common["features"] = features
        windows = [(cur, FoldPlan.build(spec, role="current", metrics=True, **common))]
        if ref is not None:
            labels = [c for c in (spec.target, *spec.score, spec.prediction, spec.weight) if c]
            has_labels = all(c in ref.source.column_names for c in labels)
            windows.append((ref, FoldPlan.build(spec, role="reference", metrics=has_labels,
                                                segments=False, **common)))  # fmt: skip
        ranges, classes = survey(ray, windows, options)
        windows = [
            (data, replace(plan, ranges=ranges, classes=tuple(found) if found else None))
            for (data, plan), found in zip(windows, classes, strict=True)
        ]
        folds = [fold_window(ray, data, plan, options) for data, plan in windows]
        for data, _ in windows:
            data.shipped = []  # the object refs must not outlive the runtime
    cur_fold, ref_fold = folds[0], (folds[1] if len(folds) > 1 else None)
    for fold, plan in zip(folds, (p for _, p in windows), strict=True):
        _check_rows(fold, plan)

    def all_metrics() -> dict[str, Any]:  # one job: both windows' temporaries never coexist
        metrics = finish_metrics(spec, cur_fold.folded, segments=True)
        if ref_fold is not None and windows[1][1].metrics:
            reference = finish_metrics(spec, ref_fold.folded, segments=False)
            metrics["reference"] = reference["overall"]
        return metrics

    drift: dict[str, dict[str, Any]] = {}
    prediction_drift: dict[str, dict[str, Any]] = {}
    # as in the local engine, metrics and drift share a small pool (numpy releases the GIL)
    with ThreadPoolExecutor(max_workers=local.default_threads()) as pool:
        metrics_job = pool.submit(all_metrics)
        if ref_fold is not None:
            ref_states, cur_states = ref_fold.folded, cur_fold.folded
            jobs = {n: pool.submit(drift_between, ref_states.drift[n], cur_states.drift[n])
                    for n in features}  # fmt: skip
            if prediction is not None:
                name = prediction[0]
                jobs[f"\0{name}"] = pool.submit(
                    drift_between, ref_states.prediction[name], cur_states.prediction[name]
                )
            drift = {n: jobs[n].result() for n in features}
            spec.drift_rule.apply(drift)
            if prediction is not None:
                prediction_drift = {prediction[0]: jobs[f"\0{prediction[0]}"].result()}
                rule = DriftRule(**{**asdict(spec.drift_rule), "correction": "none"})
                rule.apply(prediction_drift)
        metrics = metrics_job.result()
    run = _run_block(options, folds)
    return RayEvaluation(cur_fold, ref_fold, features, metrics, drift, prediction_drift, run)


def _prediction_column(spec: EvaluationSpec, ref_columns: list[str]) -> tuple[str, str] | None:
    """The model output whose drift is reported, as the local engine chooses it."""
    if spec.task == "multiclass":
        column, kind = spec.prediction, "categorical"
    else:
        column, kind = (spec.score[0] if spec.score else spec.prediction), "numeric"
    return (column, kind) if column and column in ref_columns else None


def _check_rows(fold: WindowFold, plan: FoldPlan) -> None:
    role = plan.role
    if fold.folded.rows == 0:
        raise EmptyInputError(f"the {role} data has no rows", field=role)
    if plan.metrics and fold.folded.labeled == 0:
        raise EmptyInputError(
            f"no row of the {role} data has a value in target column {plan.spec.target!r}",
            field=plan.spec.target,
        )


def finish_metrics(spec: EvaluationSpec, folded: Folded, *, segments: bool) -> dict[str, Any]:
    """Metrics overall (with curves) and per segment value, as the local engine reports them."""
    out: dict[str, Any] = {"overall": finish_states(folded.metrics[()], seed=spec.seed,
                                                    curves=True)}  # fmt: skip
    if segments:
        by_segment: dict[str, dict[str, Any]] = {c: {} for c in spec.segments}
        keyed = [(key[0], states) for key, states in folded.metrics.items() if len(key) == 1]
        for (column, label), states in sorted(keyed, key=lambda item: item[0][1]):
            if column in by_segment:
                by_segment[column][label] = finish_states(states, seed=spec.seed)
        out["by_segment"] = by_segment
    return out


def finish_states(states: list[State], *, seed: int, curves: bool = False) -> dict[str, Any]:
    """One group's metric dictionary (the local engine's finish, sketches included)."""
    if not any(isinstance(s, BinaryScoreSketchState) for s in states):
        return local.finish(states, seed=seed, curves=curves)
    out = MetricSet()
    for state in states:
        if isinstance(state, BinaryScoreSketchState):
            out.update(state.result(seed=seed, curves=curves))
        else:
            out.update(state.result(seed=seed))
    return out.to_dict()


def drift_between(reference: State, current: State) -> dict[str, Any]:
    """Drift statistics of one column between two windows' states."""
    if isinstance(reference, NumericHistogramState):
        assert isinstance(current, NumericHistogramState)
        return sketch_numeric_drift(reference, current)
    kind = "numeric" if isinstance(reference, NumericSampleState) else "categorical"
    return local.drift_of(kind, reference, current)  # type: ignore[arg-type]


def _run_block(options: RayOptions, folds: list[WindowFold]) -> dict[str, Any]:
    """What the run record says about Ray: partitions, state sizes, exactness, bounds."""
    states: dict[str, dict[str, Any]] = {}
    windows: dict[str, Any] = {}
    for fold in folds:
        every = [s for group in fold.folded.metrics.values() for s in group]
        every += [*fold.folded.drift.values(), *fold.folded.prediction.values()]
        for state in every:
            states[state.kind] = {"exact": state.exact, "error_bound": state.error_bound}
        sizes = [p.get("state_bytes", 0) for p in fold.partitions]
        windows[fold.data.source.role] = {
            "partitions": len(fold.partitions),
            "rows_per_partition": {"min": min(p["rows"] for p in fold.partitions),
                                   "max": max(p["rows"] for p in fold.partitions)},
            "state_bytes_per_partition": {"min": min(sizes), "max": max(sizes),
                                          "mean": round(sum(sizes) / len(sizes))},
            "peak_task_rss_bytes": max(p["peak_rss_bytes"] for p in fold.partitions),
            "fold_task_seconds": round(sum(p["seconds"] for p in fold.partitions), 3),
        }  # fmt: skip
    return {
        "address": options.address,
        "approximate": options.approximate,
        "exact": all(s["exact"] for s in states.values()),
        "states": states,
        "batch_size": options.batch_size,
        "windows": windows,
    }
