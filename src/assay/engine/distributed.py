"""The Ray engine: partitions folded into states by Ray tasks; metrics and drift finished
by Ray tasks too.

Each fold task streams its partition's record batches (:mod:`assay.engine.partitions`)
into states keyed by group (:mod:`assay.engine.fold`) and returns them cut into pieces
(:class:`~assay.engine.ray_tasks.Layout`): the overall metric states, buckets of segment
values, chunks of drift columns; approximate states, being small, travel whole and each
finishing task cuts out its own piece. Numpy arrays travel out of band and are read in
place. One finishing task per piece merges that piece of every partition, in file order,
and finishes it: exact states give the local engine's numbers exactly. Past
``finish_inputs`` partitions (64 by default), merge tasks first combine neighbouring
partitions 8 at a time, level by level: a merge tree whose last level is the finishing.
The driver submits everything at once, so both windows' folds and the finishing keep
every CPU busy, and it fetches only finished numbers: it never holds a window's states.
With ``approximate=True`` the states that grow with the rows (binary scores, numeric
features) are replaced by fixed-size sketches with stated error bounds, after a first
pass that learns each numeric column's range.

Ray is optional: it is imported when the engine runs, and a missing install raises
:class:`~assay.errors.MissingDependencyError` with the install hint.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from assay.engine import ray_tasks
from assay.engine.fold import FoldPlan, GroupKey
from assay.engine.local import ProgressFactory
from assay.engine.partitions import Partition, Partitioned, open_partitioned
from assay.engine.ray_tasks import Layout, drift_chunks, raise_boxed
from assay.engine.spec import EvaluationSpec, FeatureType
from assay.errors import ClusterUnavailableError, EmptyInputError, MissingDependencyError
from assay.stats import DriftRule

DEFAULT_BATCH_SIZE = 131_072
FINISH_INPUTS = 64  # default: the most partitions' pieces one finishing task reads
MERGE_FAN_IN = 8  # partitions per merge task, when a window has more than FINISH_INPUTS
MAX_BUCKETS = 16  # finishing tasks for segment values, at most (more than CPUs: few
# values hash unevenly)
MAX_CHUNKS = 32  # finishing tasks for drift columns, at most
PROBE_SECONDS = 5.0  # how long a cluster's address may take to accept a connection


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs.

    ``partitions``: at least this many partitions per window (default: 2 × the cluster's
    CPUs, and never fewer than the files). ``worker_memory``: a hard cap, in bytes, on the
    memory each task (fold, merge, finish) may add to its worker (the kernel's data-segment
    limit, set for the task's duration; Linux); past it, a ``WorkerMemoryError``.
    ``finish_inputs``: the most partitions' states one finishing task reads; past it,
    merge tasks first combine neighbours 8 at a time.
    """

    address: str | None = None
    approximate: bool = False
    partitions: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    worker_memory: int | None = None
    finish_inputs: int = FINISH_INPUTS


@dataclass
class WindowFold:
    """One window's folds in flight: its pieces' object refs, then its partitions' infos."""

    data: Partitioned
    plan: FoldPlan
    layout: Layout
    pieces: list[list[Any]]  # per object sent: at most finish_inputs refs, in file order

    def piece(self, index: int) -> list[Any]:
        """The refs of piece ``index`` (of the whole states, when they travel uncut)."""
        return self.pieces[0 if self.layout.whole else index]

    info_refs: list[Any]
    partitions: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    labeled: int = 0

    def gather(self, ray: Any) -> None:
        """Wait for the folds' infos; raise the first partition's error."""
        self.partitions = ray.get(self.info_refs)
        for info in self.partitions:
            raise_boxed(info.get("error"))
        self.rows = sum(info["rows"] for info in self.partitions)
        self.labeled = sum(info["labeled"] for info in self.partitions)


def import_ray() -> Any:
    """The ``ray`` module, or :class:`MissingDependencyError` with the install hint."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError("ray", "ray") from err
    return ray


def connect(ray: Any, address: str, probe_seconds: float = PROBE_SECONDS) -> None:
    """Join the Ray cluster at ``address`` (``HOST:PORT``, ``ray://HOST:PORT`` or
    ``auto``), or raise :class:`~assay.errors.ClusterUnavailableError` naming it.

    A ``HOST:PORT`` is first probed over TCP for ``probe_seconds``: Ray itself retries an
    address where nothing listens for minutes before it gives up.

    >>> import socket
    >>> with socket.socket() as s:  # a port where nothing listens
    ...     s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    >>> try:
    ...     connect(None, f"127.0.0.1:{port}")
    ... except ConnectionError as err:
    ...     print(type(err).__name__, err.field, "Connection refused" in str(err))
    ClusterUnavailableError ray_address True
    """
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (Ray Client's transport)
        except ImportError as err:
            raise MissingDependencyError("grpcio (ray[client])", "ray") from err
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        if host and port.isdigit():
            with socket.create_connection((host.strip("[]"), int(port)), probe_seconds):
                pass
    except OSError as err:  # refused, unreachable, timed out, unknown host
        raise _unavailable(address, err.strerror or str(err)) from err
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except ConnectionError as err:  # Ray's own "no cluster" (auto, or a GCS that died)
        raise _unavailable(address, str(err)) from err


def _unavailable(address: str, why: str) -> ClusterUnavailableError:
    return ClusterUnavailableError(
        f"no Ray cluster answers at {address}: {why}",
        field="ray_address",
        hint="check the address: HOST:PORT of the head's GCS, 6379 by default; "
        "ray://HOST:10001 for Ray Client; auto on a cluster node. Or start a cluster: "
        "ray start --head",
    )


@contextlib.contextmanager
def ray_runtime(address: str | None = None) -> Iterator[Any]:
    """Use the running Ray runtime, or start one (a local one without ``address``).

    Only a runtime started here is shut down here.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            connect(ray, address)
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
    task = ray.remote(ray_tasks.survey_partition)
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
        raise_boxed(found)
        for name, (lo, hi) in found["ranges"].items():
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
        classes[number] |= set(found["classes"])
    return ranges, [sorted(found) for found in classes]


def fold_window(
    ray: Any, data: Partitioned, plan: FoldPlan, layout: Layout, options: RayOptions
) -> WindowFold:
    """Submit a fold task per partition (and the merges past ``finish_inputs``
    partitions); nothing waits."""
    # running out of a fixed memory cap is not transient: no retry then
    fold = ray.remote(ray_tasks.fold_partition).options(
        num_returns=layout.sent + 1, **({"max_retries": 0} if options.worker_memory else {})
    )
    rows, infos = [], []
    for part, filesystem, table in _shipped(ray, data):
        *pieces, info = fold.remote(
            plan, layout, filesystem, table, part, options.batch_size, options.worker_memory
        )
        rows.append(pieces)
        infos.append(info)
    merge = ray.remote(ray_tasks.merge_rows)
    rows = tree_merge(merge, rows, until=options.finish_inputs, worker_memory=options.worker_memory)
    by_piece = [list(column) for column in zip(*rows, strict=True)]
    return WindowFold(data, plan, layout, by_piece, infos)


def tree_merge(
    merge: Any,
    rows: list[list[Any]],
    fan_in: int = MERGE_FAN_IN,
    until: int = 1,
    worker_memory: int | None = None,
) -> list[list[Any]]:
    """Merge ordered partitions' pieces by ``fan_in``-way merge tasks, level by level,
    until at most ``until`` rows are left; those rows of refs, in order.

    ``rows`` holds each partition's piece refs (all rows alike long); a merge task merges
    neighbours piece by piece, so the result keeps the partitions' order. Ray starts a
    merge as soon as its inputs are ready, and the driver holds nothing but refs.
    """
    width = len(rows[0]) if rows else 0
    task = merge.options(num_returns=width) if width else merge
    while len(rows) > max(until, 1):
        merged = []
        for i in range(0, len(rows), fan_in):
            group = rows[i : i + fan_in]
            if len(group) == 1:
                merged.append(group[0])
                continue
            out = task.remote(width, worker_memory, *[ref for row in group for ref in row])
            merged.append(list(out) if width > 1 else [out])
        rows = merged
    return rows


def submit_finishing(
    ray: Any,
    spec: EvaluationSpec,
    cur: WindowFold,
    ref: WindowFold | None,
    worker_memory: int | None = None,
) -> list[tuple[str, Any]]:
    """One finishing task per piece, the longest (overall metrics) first: (role, ref)."""
    groups = ray.remote(ray_tasks.finish_groups)
    drift = ray.remote(ray_tasks.finish_drift)
    cap = worker_memory
    jobs = [("current", groups.remote(spec, cur.layout, b, cap, *cur.piece(b)))
            for b in range(1 + cur.layout.buckets)]  # fmt: skip
    if ref is not None:
        if ref.plan.metrics:
            jobs.append(("reference", groups.remote(spec, ref.layout, 0, cap, *ref.piece(0))))
        for number, columns in enumerate(cur.layout.chunks):
            old = ref.piece(ref.layout.first_chunk + number)
            new = cur.piece(cur.layout.first_chunk + number)
            jobs.append(("drift", drift.remote(columns, len(old), cap, *old, *new)))
    return jobs


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
    spec: EvaluationSpec,
    current: Any,
    reference: Any,
    options: RayOptions,
    progress: ProgressFactory | None = None,
) -> RayEvaluation:
    """Fold both windows and finish metrics and drift on Ray; only numbers come back.

    ``progress(total)`` may return a callback, called as each task (a partition's fold, a
    piece's finishing) ends.
    """
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
        columns = [("drift", name) for name in features] if ref is not None else []
        columns += [("prediction", prediction[0])] if prediction is not None else []
        chunks = drift_chunks(columns, min(2 * cpus, MAX_CHUNKS))
        buckets = min(4 * cpus, MAX_BUCKETS) if windows[0][1].groupings else 0
        # sketches are small: they travel whole, and each finishing task takes its piece
        layouts = [Layout(b, chunks, options.approximate) for b in (buckets, 0)]
        folds = [fold_window(ray, data, plan, layout, options)
                 for (data, plan), layout in zip(windows, layouts, strict=False)]  # fmt: skip
        jobs = submit_finishing(ray, spec, folds[0], folds[1] if len(folds) > 1 else None,
                                options.worker_memory)  # fmt: skip
        try:
            _follow(ray, folds, jobs, progress)
            for fold in folds:
                fold.gather(ray)
                _check_rows(fold)
            finished = ray.get([job for _, job in jobs])
        # No ``ray.cancel`` on failure: a finishing task given a failed fold's piece
        # returns that error without merging anything, and Ray 2.60 aborts the driver
        # ("Tried to complete task that was not pending") when a cancel races a task's end.
        finally:  # the object refs must not outlive the runtime
            for data, _ in windows:
                data.shipped = []
            for fold in folds:
                fold.pieces, fold.info_refs = [], []
    report = _Report.of(spec, [role for role, _ in jobs], finished)
    drift = {name: report.drift[name] for name in features} if ref is not None else {}
    spec.drift_rule.apply(drift)
    prediction_drift = dict(report.prediction)
    if prediction_drift:
        DriftRule(**{**asdict(spec.drift_rule), "correction": "none"}).apply(prediction_drift)
    run = _run_block(options, folds, report.states)
    return RayEvaluation(folds[0], folds[1] if len(folds) > 1 else None, features,
                         report.metrics, drift, prediction_drift, run)  # fmt: skip


_JOB_NAMES = {"current": "metrics", "reference": "reference metrics", "drift": "drift"}


def _follow(
    ray: Any, folds: list[WindowFold], jobs: list[tuple[str, Any]], progress: ProgressFactory | None
) -> None:
    """Wait for every fold and finishing task, ticking ``progress`` as each ends; raise a
    partition's error as soon as its fold ends."""
    labels: dict[Any, str] = {}
    for fold in folds:
        role, count = fold.data.source.role, len(fold.info_refs)
        labels.update({ref: f"{role} partition {i + 1}/{count}"
                       for i, ref in enumerate(fold.info_refs)})  # fmt: skip
    infos = set(labels)
    labels.update({job: _JOB_NAMES[role] for role, job in jobs})
    tick = progress(len(labels)) if progress is not None else None
    pending = list(labels)
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
        for ref in done:
            if ref in infos:
                raise_boxed(ray.get(ref).get("error"))
            if tick is not None:
                tick(labels[ref])


@dataclass
class _Report:
    """The finishing tasks' answers put together as the local engine reports them."""

    metrics: dict[str, Any]
    drift: dict[str, dict[str, Any]]
    prediction: dict[str, dict[str, Any]]
    states: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, spec: EvaluationSpec, roles: list[str], finished: list[Any]) -> _Report:
        groups: dict[GroupKey, dict[str, Any]] = {}
        reference: dict[str, Any] | None = None
        out = cls({}, {}, {}, {})
        for role, found in zip(roles, finished, strict=True):
            raise_boxed(found)
            out.states.update(found["states"])
            if role == "current":
                groups.update(found["metrics"])
            elif role == "reference":
                reference = found["metrics"].get(())
            else:
                out.drift.update(found["drift"])
                out.prediction.update(found["prediction"])
        by_segment: dict[str, dict[str, Any]] = {column: {} for column in spec.segments}
        keyed = sorted((key[0], value) for key, value in groups.items() if len(key) == 1)
        for (column, label), value in sorted(keyed, key=lambda item: item[0][1]):
            if column in by_segment:
                by_segment[column][label] = value
        out.metrics = {"overall": groups[()], "by_segment": by_segment}
        if reference is not None:
            out.metrics["reference"] = reference
        return out


def _prediction_column(spec: EvaluationSpec, ref_columns: list[str]) -> tuple[str, str] | None:
    """The model output whose drift is reported, as the local engine chooses it."""
    if spec.task == "multiclass":
        column, kind = spec.prediction, "categorical"
    else:
        column, kind = (spec.score[0] if spec.score else spec.prediction), "numeric"
    return (column, kind) if column and column in ref_columns else None


def _check_rows(fold: WindowFold) -> None:
    role, plan = fold.data.source.role, fold.plan
    if fold.rows == 0:
        raise EmptyInputError(f"the {role} data has no rows", field=role)
    if plan.metrics and fold.labeled == 0:
        raise EmptyInputError(
            f"no row of the {role} data has a value in target column {plan.spec.target!r}",
            field=plan.spec.target,
        )


def _run_block(
    options: RayOptions, folds: list[WindowFold], states: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the run record says about Ray: partitions, state sizes, exactness, bounds."""
    windows: dict[str, Any] = {}
    for fold in folds:
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
