"""The Ray engine's tasks: what each worker runs, with no Ray in sight.

A fold task reads one partition and folds it into states (:mod:`assay.engine.fold`), then
cuts them into *pieces* by a :class:`Layout`: the overall metric states, the segment
values' metric states spread over a few buckets, and the drift states in a few chunks of
columns. Each piece travels as its own object, so the task that finishes a piece reads
only that piece of every partition: the finishing of metrics and drift is spread over the
cluster's processes (no driver thread, no GIL shared), and no process but the one that
needs them ever holds a window's full exact states.

>>> import numpy as np
>>> from assay.engine.spec import EvaluationSpec
>>> from assay.engine.fold import FoldPlan, fold_batches
>>> import pyarrow as pa
>>> spec = EvaluationSpec.build(task="binary", target="y", score="p", segments=["c"])
>>> plan = FoldPlan.build(spec, role="current", metrics=True)
>>> t = pa.table({"y": [0, 1, 1, 0], "p": [0.2, 0.9, 0.6, 0.4], "c": ["a", "a", "b", "b"]})
>>> layout = Layout(buckets=2)
>>> pieces = layout.split(fold_batches(plan, t.to_batches(max_chunksize=3)))
>>> len(pieces), sorted(k for p in pieces[1:] for k in p.metrics)
(3, [(('c', 'a'),), (('c', 'b'),)])
>>> finish_groups(spec, layout, 0, None, pieces[0])["metrics"][()]["roc_auc"]
1.0
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from assay.engine import local
from assay.engine.fold import Folded, FoldPlan, GroupKey, fold_batches, merge_folded, merge_states
from assay.engine.partitions import Partition, read_partition
from assay.engine.spec import EvaluationSpec
from assay.errors import AssayError, WorkerMemoryError
from assay.stats import NumericSampleState, State
from assay.stats.numeric_sketch import NumericHistogramState, sketch_numeric_drift

DriftColumn = tuple[str, str]  # ("drift" | "prediction", column name)


@dataclass(frozen=True)
class Layout:
    """How a partition's states are cut into pieces, each finished by its own task.

    Piece 0 holds the overall metric states (and the row counts); the next ``buckets``
    pieces hold the metric states of the other groups, each group in the bucket a hash of
    its key picks (the groups are only known once the data is read); then one piece per
    chunk of drift columns. With ``whole``, a fold sends its states uncut and each
    finishing task takes its piece itself: for small fixed-size states (sketches), whose
    pieces would be too small for Ray's shared object store and would travel through the
    driver instead.
    """

    buckets: int = 0
    chunks: tuple[tuple[DriftColumn, ...], ...] = ()
    whole: bool = False

    @property
    def pieces(self) -> int:
        """How many pieces :meth:`split` returns."""
        return 1 + self.buckets + len(self.chunks)

    @property
    def sent(self) -> int:
        """How many objects a fold task returns for its states."""
        return 1 if self.whole else self.pieces

    def holds(self, piece: int, key: GroupKey) -> bool:
        """Whether metric piece ``piece`` (0: overall, then the buckets) holds group ``key``."""
        return not key if piece == 0 else bool(key) and self.bucket_of(key) == piece - 1

    @property
    def first_chunk(self) -> int:
        """The index of the first drift chunk among the pieces."""
        return 1 + self.buckets

    def bucket_of(self, key: GroupKey) -> int:
        """The bucket of a group (the same in every process; a CRC would put keys that
        differ in one character into few buckets)."""
        digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.buckets

    def split(self, folded: Folded) -> list[Folded]:
        """``folded`` cut into :attr:`pieces` pieces (the states are shared, not copied)."""
        overall = Folded(folded.rows, folded.labeled)
        buckets = [Folded() for _ in range(self.buckets)]
        for key, states in folded.metrics.items():
            if not key:
                overall.metrics[key] = states
            elif self.buckets:
                buckets[self.bucket_of(key)].metrics[key] = states
        chunks = []
        for chunk in self.chunks:
            piece = Folded()
            for section, name in chunk:
                found = getattr(folded, section).get(name)
                if found is not None:
                    getattr(piece, section)[name] = found
            chunks.append(piece)
        return [overall, *buckets, *chunks]


def drift_chunks(columns: list[DriftColumn], most: int) -> tuple[tuple[DriftColumn, ...], ...]:
    """``columns`` dealt round-robin into at most ``most`` chunks (none when empty)."""
    count = min(len(columns), max(most, 1))
    return tuple(tuple(columns[i::count]) for i in range(count))


# -- errors carried back to the driver ----------------------------------------------


@dataclass(frozen=True)
class Boxed:
    """An Assay error raised in a task, carried back to the driver intact."""

    kind: type[AssayError]
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, err: AssayError) -> Boxed:
        """Box ``err``."""
        return cls(type(err), str(err), dict(err.__dict__))

    def rebuild(self) -> AssayError:
        """The error itself, with its field and hint (``__init__`` is not run again)."""
        builtin = self.kind  # the builtin whose __new__ lays the object out
        while builtin.__module__ != "builtins":
            builtin = builtin.__base__
        err = builtin.__new__(self.kind)
        Exception.__init__(err, self.message)
        err.__dict__.update(self.attributes)
        return err


def raise_boxed(value: Any) -> None:
    """Raise the error ``value`` carries, if it is a :class:`Boxed`."""
    if isinstance(value, Boxed):
        raise value.rebuild()


def _first_boxed(parts: tuple[Any, ...]) -> Boxed | None:
    return next((p for p in parts if isinstance(p, Boxed)), None)


# -- fold and merge ------------------------------------------------------------------


def fold_partition(
    plan: FoldPlan,
    layout: Layout,
    filesystem: pafs.FileSystem | None,
    rows: pa.Table | None,
    part: Partition,
    batch_size: int,
    worker_memory: int | None,
) -> list[Any]:
    """One partition folded and cut into pieces, then a small info dictionary."""
    started = time.perf_counter()
    _reset_peak_rss()
    info: dict[str, Any] = {"index": part.index, "rows": part.rows}
    try:
        with memory_cap(worker_memory, f"the fold of partition {part.index + 1}"):
            batches = read_partition((filesystem, rows), part, plan.columns, batch_size)
            folded = fold_batches(plan, batches)
            pieces: list[Any] = [folded] if layout.whole else layout.split(folded)
            info["state_bytes"] = folded.serialized_size()  # what the partition's states weigh
            info["labeled"] = folded.labeled
    except AssayError as err:
        boxed = Boxed.of(err)
        pieces = [boxed] * layout.sent
        info["error"] = boxed
    info["seconds"] = round(time.perf_counter() - started, 4)
    info["peak_rss_bytes"] = _proc_status("VmHWM")
    info["pid"] = os.getpid()
    return [*pieces, info]


def merge_parts(parts: tuple[Folded | Boxed, ...], worker_memory: int | None) -> Folded | Boxed:
    """Neighbours' pieces merged in order (their arrays are read in place)."""
    boxed = _first_boxed(parts)
    if boxed is not None:
        return boxed
    try:
        with memory_cap(worker_memory, "a merge of neighbouring partitions"):
            return merge_folded(list(parts))  # type: ignore[arg-type]
    except AssayError as err:
        return Boxed.of(err)


def merge_rows(width: int, worker_memory: int | None, *pieces: Folded | Boxed) -> Any:
    """Neighbouring partitions' pieces merged piece by piece: ``pieces`` holds each
    partition's ``width`` pieces in turn; one merged piece per column (a list when
    ``width`` > 1, as Ray's ``num_returns`` wants it)."""
    rows = [pieces[i : i + width] for i in range(0, len(pieces), width)]
    merged = [merge_parts(column, worker_memory) for column in zip(*rows, strict=True)]
    return merged if width > 1 else merged[0]


# -- finish --------------------------------------------------------------------------


def finish_groups(
    spec: EvaluationSpec,
    layout: Layout,
    piece: int,
    worker_memory: int | None,
    *parts: Folded | Boxed,
) -> dict[str, Any] | Boxed:
    """The metrics of the groups of metric piece ``piece`` (0: overall, then the buckets),
    from that piece (or, ``layout.whole``, all the states) of each partition, in order.

    Overall metrics come with their curves, as the local engine reports them. Each
    group's states are merged, finished and released before the next group's.
    """
    boxed = _first_boxed(parts)
    if boxed is not None:
        return boxed
    folded: list[Folded] = list(parts)  # type: ignore[arg-type]
    keys = [key for key in dict.fromkeys(k for part in folded for k in part.metrics)
            if layout.holds(piece, key)]  # fmt: skip
    metrics: dict[GroupKey, dict[str, Any]] = {}
    kinds: dict[str, dict[str, Any]] = {}
    what = "the overall metrics" if piece == 0 else f"the metrics of segment bucket {piece}"
    try:
        with memory_cap(worker_memory, what):
            for key in keys:
                slots = zip(*(p.metrics[key] for p in folded if key in p.metrics), strict=True)
                states = [merge_states(list(slot)) for slot in slots]
                metrics[key] = local.finish(states, seed=spec.seed, curves=not key)
                kinds.update(state_kinds(states))
                del slots, states
    except AssayError as err:
        return Boxed.of(err)
    return {"metrics": metrics, "states": kinds}


def finish_drift(
    columns: tuple[DriftColumn, ...],
    reference_parts: int,
    worker_memory: int | None,
    *parts: Folded | Boxed,
) -> dict[str, Any] | Boxed:
    """Drift of ``columns`` between two windows: the first ``reference_parts`` of
    ``parts`` are the reference window's partitions' states, the rest the current's."""
    boxed = _first_boxed(parts)
    if boxed is not None:
        return boxed
    folded: list[Folded] = list(parts)  # type: ignore[arg-type]
    ref, cur = folded[:reference_parts], folded[reference_parts:]
    out: dict[str, Any] = {"drift": {}, "prediction": {}, "states": {}}
    names = ", ".join(name for _, name in columns)
    try:
        with memory_cap(worker_memory, f"the drift of {names}"):
            for section, name in columns:
                pair = [merge_states([getattr(p, section)[name] for p in window])
                        for window in (ref, cur)]  # fmt: skip
                out[section][name] = drift_between(*pair)
                out["states"].update(state_kinds(pair))
                del pair
    except AssayError as err:
        return Boxed.of(err)
    return out


def drift_between(reference: State, current: State) -> dict[str, Any]:
    """Drift statistics of one column between two windows' states."""
    if isinstance(reference, NumericHistogramState):
        assert isinstance(current, NumericHistogramState)
        return sketch_numeric_drift(reference, current)
    kind = "numeric" if isinstance(reference, NumericSampleState) else "categorical"
    return local.drift_of(kind, reference, current)  # type: ignore[arg-type]


def state_kinds(states: list[State]) -> dict[str, dict[str, Any]]:
    """Which kinds of state were used, each exact or not, with its error bound."""
    return {s.kind: {"exact": s.exact, "error_bound": s.error_bound} for s in states}


# -- the first pass of approximate states ---------------------------------------------


def survey_partition(
    filesystem: pafs.FileSystem | None,
    rows: pa.Table | None,
    part: Partition,
    numeric: list[str],
    labels: list[str],
    target: str,
    batch_size: int,
) -> dict[str, Any] | Boxed:
    """Numeric columns' ranges and the classes of labeled rows, in one partition."""
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


@contextlib.contextmanager
def memory_cap(worker_memory: int | None, what: str) -> Iterator[None]:
    """Let the task add at most ``worker_memory`` bytes to its worker while the block runs
    (the kernel's data-segment limit, RLIMIT_DATA: heap and private mappings; Linux);
    past it, a :class:`~assay.errors.WorkerMemoryError` naming ``what`` ran out.

    >>> with memory_cap(None, "nothing"):  # no cap: the block runs as it is
    ...     len(bytearray(1 << 20))
    1048576
    """
    limit = resource.getrlimit(resource.RLIMIT_DATA)
    if worker_memory:  # the kernel refuses this task any allocation past the cap
        cap = _proc_status("VmData") + worker_memory
        resource.setrlimit(resource.RLIMIT_DATA, (cap, limit[1]))
    ran_out = False
    try:
        yield
    except MemoryError:
        if not worker_memory:
            raise
        ran_out = True  # raised below, once the cap is lifted and the block's memory freed
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, limit)  # the worker outlives the task
    if ran_out:
        raise WorkerMemoryError(
            f"{what} needed more than worker_memory={worker_memory:,} bytes",
            field="worker_memory",
            hint="give each task more (ray_options={'worker_memory': ...}) or use "
            "approximate=True (--approx), whose states have a fixed size (exact ones keep "
            "every value); a fold also fits in less with more partitions "
            "(ray_options={'partitions': ...})",
        )


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
