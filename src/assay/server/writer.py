"""The write queue: one thread applies writes in order; a full queue answers 429.

Bounding the queue bounds memory: a producer faster than the store is told to back off
(``Retry-After``) instead of filling the server's memory.

Group commit: event batches queued back to back for the same group (tenant, model and
kind) are taken together and handed to their runner at once, which applies them in one
transaction, so concurrent requests share one durable commit. Only consecutive jobs are
grouped: the order of writes is the order of arrival.

>>> import asyncio
>>> writer = WriteQueue(capacity=8)
>>> def run(items: list[int]) -> list[tuple[int, None]]:
...     return [(item * 10, None) for item in items]
>>> async def send() -> list[int]:
...     jobs = [writer.submit_grouped(("acme", "m", "labels"), i, run) for i in range(3)]
...     return list(await asyncio.gather(*jobs))
>>> asyncio.run(send())
[0, 10, 20]
>>> writer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from assay.errors import OverloadedError

T = TypeVar("T")
_STOP = object()
Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, error)
GroupRunner = Callable[[list[Any]], list[Outcome]]


@dataclass
class _Job:
    run: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass
class _Grouped:
    key: Hashable
    item: Any
    weight: int
    runner: GroupRunner
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class WriteQueue:
    """A bounded queue of write jobs run by one background thread.

    ``max_group_items`` / ``max_group_weight`` bound one group (jobs, and the sum of their
    weights, such as events).
    """

    def __init__(self, capacity: int = 64, retry_after: float = 1.0, *,
                 max_group_items: int = 32, max_group_weight: int = 50_000):  # fmt: skip
        self.capacity = capacity
        self.retry_after = retry_after
        self.max_group_items = max_group_items
        self.max_group_weight = max_group_weight
        self.groups = 0  # groups run, and the jobs in them: jobs / groups is the mean size
        self.grouped_jobs = 0
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="assay-writer", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting."""
        return self._jobs.qsize()

    async def submit(self, job: Callable[[], T]) -> T:
        """Run ``job`` on the writer thread and wait for its result (or its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(_Job(job, loop, future))
        return await future

    async def submit_grouped(self, key: Hashable, item: Any, runner: GroupRunner,
                             weight: int = 1) -> Any:  # fmt: skip
        """Queue ``item``; the writer calls ``runner`` with it and the items queued right
        behind it under the same ``key``, and each caller gets its own outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._put(_Grouped(key, item, weight, runner, loop, future))
        return await future

    def _put(self, entry: Any) -> None:
        try:
            self._jobs.put_nowait(entry)
        except queue.Full:
            raise OverloadedError(
                f"the write queue is full ({self.capacity} batches waiting)",
                retry_after=self.retry_after,
            ) from None

    def _run(self) -> None:
        held = None  # taken from the queue while growing a group, but not of it
        while True:
            entry = held if held is not None else self._jobs.get()
            held = None
            if entry is _STOP:
                return
            if isinstance(entry, _Job):
                try:
                    outcome: Outcome = (entry.run(), None)
                except BaseException as err:  # handed to the waiting request
                    outcome = (None, err)
                _hand_over(entry.loop, entry.future, outcome)
                continue
            group, weight = [entry], entry.weight
            while len(group) < self.max_group_items and weight < self.max_group_weight:
                try:
                    follower = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(follower, _Grouped) or follower.key != entry.key:
                    held = follower
                    break
                group.append(follower)
                weight += follower.weight
            self.groups += 1
            self.grouped_jobs += len(group)
            try:
                outcomes = entry.runner([g.item for g in group])
                if len(outcomes) != len(group):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(group)} jobs")
            except BaseException as err:  # the runner itself failed: every job gets it
                outcomes = [(None, err)] * len(group)
            for member, member_outcome in zip(group, outcomes, strict=True):
                _hand_over(member.loop, member.future, member_outcome)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, then stop the thread."""
        self._jobs.put(_STOP)
        self._thread.join(timeout)


def _hand_over(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
               outcome: Outcome) -> None:  # fmt: skip
    with contextlib.suppress(RuntimeError):  # the request's loop is gone; the write is done
        loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Every:
    """A chore due once every ``seconds`` (monotonic clock); ``due()`` claims it.

    >>> chore = Every(3600)
    >>> chore.due(), chore.due()
    (False, False)
    >>> Every(0).due()
    True
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = time.monotonic()

    def due(self) -> bool:
        """True (once) when ``seconds`` have passed since the last claim."""
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        """Make the chore due again at once (its last run failed)."""
        self._last = -float("inf")
