"""The write queue: one thread applies writes in order; a full queue answers 429.

Bounding the queue bounds memory: a producer faster than the store is told to back off
(``Retry-After``) instead of filling the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from assay.errors import OverloadedError

T = TypeVar("T")
_STOP = object()


class WriteQueue:
    """A bounded queue of write jobs run by one background thread."""

    def __init__(self, capacity: int = 64, retry_after: float = 1.0):
        self.capacity = capacity
        self.retry_after = retry_after
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
        try:
            self._jobs.put_nowait((job, loop, future))
        except queue.Full:
            raise OverloadedError(
                f"the write queue is full ({self.capacity} batches waiting)",
                retry_after=self.retry_after,
            ) from None
        return await future

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            job, loop, future = item
            try:
                result = job()
            except BaseException as err:  # handed to the waiting request
                outcome: tuple[Any, BaseException | None] = (None, err)
            else:
                outcome = (result, None)
            with contextlib.suppress(RuntimeError):  # the request's loop is gone; the write is done
                loop.call_soon_threadsafe(_settle, future, *outcome)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, then stop the thread."""
        self._jobs.put(_STOP)
        self._thread.join(timeout)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
