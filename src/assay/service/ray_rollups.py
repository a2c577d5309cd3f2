"""Rebuilding rollup buckets on Ray: the monitor schedule's large refreshes, offloaded.

The server process reads every dirty bucket's rows (the store belongs to it) and puts
them in Ray's object store, one Arrow table per bucket; Ray tasks, each holding
consecutive buckets of about ``task_rows`` rows, run
:func:`~assay.service.rollups.bucket_rollups` on them, and the server writes the
rollups they return exactly as an in-process refresh would (same states, byte for byte).
Tasks are submitted as soon as they are full, so the workers build while the server
reads on. A refresh stays in process until it has read ``min_rows`` rows: small
refreshes (the hourly trickle) never touch Ray, a backfill's rows beyond the threshold
all go to the cluster.

The runtime is started lazily, by the first refresh that needs it: a connection to
``address`` when given, else a local runtime (started from a thread of its own, which
lives until the shutdown); :meth:`RayRollupExecutor.close` shuts down only a runtime it
started. When Ray cannot be reached, the refresh goes on in process
(with a warning in the log), so monitoring never stops for want of a cluster.

Ray is optional: building the executor without it raises
:class:`~assay.errors.MissingDependencyError` with the install hint.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from assay.engine.distributed import connect, import_ray
from assay.service.rollups import RollupSession, bucket_rollups
from assay.store.base import DirtyBucket, Rollup
from assay.store.model import ModelSpec

DEFAULT_MIN_ROWS = 1_000_000
DEFAULT_TASK_ROWS = 250_000
log = logging.getLogger("assay.rollups")


@dataclass
class RaySent:
    """What the executor has handed to Ray so far (buckets, rows, tasks)."""

    buckets: int = 0
    rows: int = 0
    tasks: int = 0


class RayRollupExecutor:
    """A :class:`~assay.service.rollups.RollupExecutor` that builds large refreshes on Ray.

    ``address``: a cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``); without it a
    local runtime of ``cpus`` CPUs (default: all cores). ``min_rows``: rows a refresh
    reads in process before it hands its buckets to Ray. ``task_rows``: rows per task.

    >>> executor = RayRollupExecutor(min_rows=500_000)  # no runtime is started yet
    >>> executor.started, executor.sent
    (False, RaySent(buckets=0, rows=0, tasks=0))
    >>> executor.close()
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        min_rows: int = DEFAULT_MIN_ROWS,
        cpus: int | None = None,
        task_rows: int = DEFAULT_TASK_ROWS,
    ) -> None:
        import_ray()  # without Ray, fail now (at the server's start), not at the first refresh
        self.address, self.min_rows, self.cpus, self.task_rows = address, min_rows, cpus, task_rows
        self.sent = RaySent()
        self._lock = threading.Lock()
        self._owner: _Owner | None = None
        self._started = False

    def session(self, spec: ModelSpec) -> RollupSession:
        """One refresh's rebuild of ``spec``'s buckets."""
        return _RaySession(self, spec)

    def runtime(self) -> Any:
        """The ``ray`` module, connected: the running runtime, or one started now."""
        ray = import_ray()
        with self._lock:
            if not ray.is_initialized():
                self._owner = self._owner or _Owner()
                if self.address:
                    self._owner.call(connect, ray, self.address)
                else:
                    self._owner.call(ray.init, num_cpus=self.cpus or os.cpu_count() or 1,
                                     include_dashboard=False, logging_level="WARNING",
                                     log_to_driver=False)  # fmt: skip
                self._started = True
        return ray

    @property
    def started(self) -> bool:
        """Whether this executor started (and so will shut down) the runtime it uses."""
        return self._started

    def close(self) -> None:
        """Shut down the runtime this executor started (one it found running is left)."""
        with self._lock:
            if self._owner is not None:
                if self._started:
                    self._owner.call(import_ray().shutdown)
                self._owner.stop()
            self._owner, self._started = None, False


class _Owner:
    """A thread that starts and stops the runtime, alive from the start to the shutdown.

    Ray ties the processes of a runtime it starts to the life of the starting *thread*
    (the kernel's parent-death signal), and the monitor schedule's thread ends before
    the server shuts the runtime down.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, name="assay-ray-runtime", daemon=True).start()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the owner thread; its result (or its exception)."""
        done: Future[Any] = Future()
        self._jobs.put((done, lambda: fn(*args, **kwargs)))
        return done.result()

    def stop(self) -> None:
        """End the thread (after the jobs queued before)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            done, fn = job
            try:
                done.set_result(fn())
            except BaseException as err:  # handed to the caller
                done.set_exception(err)


class _RaySession:
    """Buckets in process until ``min_rows`` rows were read; the rest in Ray tasks."""

    def __init__(self, executor: RayRollupExecutor, spec: ModelSpec):
        self.executor, self.spec = executor, spec
        self.rows_read = 0
        self.ray: Any = None  # set once this refresh goes to Ray
        self.task: Any = None  # the remote rebuild
        self.in_process = False  # set when Ray could not be reached
        self.built: list[tuple[DirtyBucket, list[Rollup]]] = []
        self.filling: list[tuple[DirtyBucket, Any]] = []  # (bucket, its rows' object ref)
        self.filling_rows = 0
        self.tasks: list[tuple[list[DirtyBucket], Any]] = []

    def add(self, item: DirtyBucket, rows: pa.Table) -> None:
        self.rows_read += rows.num_rows
        if self.ray is None and not self.in_process and self.rows_read >= self.executor.min_rows:
            self._connect()
        if self.ray is None:
            self.built.append((item, bucket_rollups(self.spec, item.version, item.bucket, rows)))
            return
        self.filling.append((item, self.ray.put(rows)))
        self.filling_rows += rows.num_rows
        sent = self.executor.sent
        sent.buckets, sent.rows = sent.buckets + 1, sent.rows + rows.num_rows
        if self.filling_rows >= self.executor.task_rows:
            self._submit()

    def results(self) -> list[tuple[DirtyBucket, list[Rollup]]]:
        if self.filling:
            self._submit()
        built, self.built = self.built, []
        tasks, self.tasks = self.tasks, []
        if tasks:
            answers = self.ray.get([ref for _, ref in tasks])
            for (items, _), rollups in zip(tasks, answers, strict=True):
                built.extend(zip(items, rollups, strict=True))
        return built

    def _connect(self) -> None:
        try:
            ray = self.executor.runtime()
            self.task, self.ray = ray.remote(_rebuild), ray
        except Exception as err:  # any failure to reach Ray: go on in process
            self.in_process = True
            where = self.executor.address or "a local runtime"
            log.warning("Ray (%s) unavailable, rollups of %s rebuilt in process: %s",
                        where, self.spec.name, err)  # fmt: skip

    def _submit(self) -> None:
        items = [item for item, _ in self.filling]
        keys = [(item.version, item.bucket) for item in items]
        # object refs as top-level arguments: Ray resolves them (zero-copy Arrow) first
        ref = self.task.remote(self.spec, keys, *[r for _, r in self.filling])
        self.tasks.append((items, ref))
        self.executor.sent.tasks += 1
        self.filling, self.filling_rows = [], 0


def _rebuild(
    spec: ModelSpec, keys: list[tuple[str, datetime]], *tables: pa.Table
) -> list[list[Rollup]]:
    """The rollups of each bucket (runs in a Ray worker)."""
    return [bucket_rollups(spec, version, bucket, rows)
            for (version, bucket), rows in zip(keys, tables, strict=True)]  # fmt: skip


__all__ = ["DEFAULT_MIN_ROWS", "DEFAULT_TASK_ROWS", "RayRollupExecutor", "RaySent"]
