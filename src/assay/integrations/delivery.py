"""Delivering notifications to sinks without ever blocking the caller.

:class:`Dispatcher` keeps one bounded queue and one background thread per sink, so a slow
or dead sink delays only itself. :meth:`Dispatcher.submit` only appends to the queues
(dropping the oldest notification of a full queue, counted as ``dropped``); the threads
send batches with retry and exponential backoff and count ``delivered``, ``retried`` and
``failed`` notifications per sink (:meth:`Dispatcher.counters`).

A sink is any object with a ``name`` and a ``send(notifications)`` method that raises
on failure (:class:`Sink`). :class:`ConsoleSink` prints one line per notification.

>>> import io
>>> from datetime import UTC, datetime
>>> out = io.StringIO()
>>> d = Dispatcher([ConsoleSink(out)])
>>> d.submit([Notification(labels={"alertname": "auc"}, annotations={"summary": "low"},
...                        status="firing", starts_at=datetime(2024, 5, 1, tzinfo=UTC))])
>>> d.close(timeout=5)
True
>>> out.getvalue()
'2024-05-01T00:00:00Z FIRING {alertname="auc"} low\\n'
>>> d.counters()["console"]["delivered"]
1
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any, Protocol, TextIO, runtime_checkable

from assay.errors import AssayError, ConfigError
from assay.monitors.signals import Notification

__all__ = [
    "ConsoleSink",
    "DeliveryError",
    "Dispatcher",
    "Sink",
    "format_line",
    "sinks_from_config",
]

COUNTERS = ("delivered", "failed", "retried", "dropped")


class DeliveryError(AssayError, ConnectionError):
    """A sink could not deliver a batch (unreachable, timed out, or answered an error)."""

    http_status = 502


@runtime_checkable
class Sink(Protocol):
    """Where notifications go. ``send`` delivers one batch or raises."""

    name: str

    def send(self, notifications: Sequence[Notification]) -> None:
        """Deliver ``notifications``; raise (any exception) when they were not delivered."""
        ...


def format_line(notification: Notification) -> str:
    """One human-readable line for a notification.

    >>> from datetime import UTC, datetime
    >>> n = Notification(labels={"severity": "critical", "alertname": "auc"},
    ...                  annotations={"summary": "AUC 0.71 < 0.80"}, status="resolved",
    ...                  starts_at=datetime(2024, 5, 1, 12, tzinfo=UTC), value=0.71)
    >>> format_line(n)
    '2024-05-01T12:00:00Z RESOLVED {alertname="auc",severity="critical"} AUC 0.71 < 0.80'
    """
    moment = notification.ends_at or notification.starts_at
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    when = moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(notification.labels.items()))
    summary = notification.annotations.get("summary", "")
    return f"{when} {notification.status.upper()} {{{labels}}} {summary}".rstrip()


class ConsoleSink:
    """Prints one line per notification to ``stream`` (standard output by default)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, notifications: Sequence[Notification]) -> None:
        """Write one line per notification and flush."""
        stream = self._stream if self._stream is not None else sys.stdout
        for notification in notifications:
            stream.write(format_line(notification) + "\n")
        stream.flush()


class _Lane:
    """One sink's queue, worker thread and counters."""

    def __init__(self, name: str, sink: Sink, capacity: int) -> None:
        self.name = name
        self.sink = sink
        self.queue: deque[Notification] = deque()
        self.capacity = capacity
        self.in_flight = 0
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None


class Dispatcher:
    """Bounded, retrying, non-blocking delivery of notifications to every sink.

    ``capacity``: notifications queued per sink before the oldest is dropped.
    ``max_attempts``: sends of one batch before its notifications count as ``failed``.
    ``backoff``: seconds before the first retry, doubled after each failure
    (capped at ``max_backoff``). ``batch_size``: notifications per send.
    """

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        capacity: int = 1000,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        batch_size: int = 100,
    ) -> None:
        if capacity < 1:
            raise ConfigError("capacity must be >= 1", field="capacity")
        if max_attempts < 1:
            raise ConfigError("max_attempts must be >= 1", field="max_attempts")
        if backoff < 0 or max_backoff < 0:
            raise ConfigError("backoff must be >= 0 seconds", field="backoff")
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1", field="batch_size")
        self.capacity = capacity
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.batch_size = batch_size
        self._cond = threading.Condition()
        self._closing = False
        self._abort = threading.Event()
        self._lanes: list[_Lane] = []
        seen: dict[str, int] = {}
        for sink in sinks:
            base = str(getattr(sink, "name", type(sink).__name__))
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}-{seen[base]}"
            self._lanes.append(_Lane(name, sink, capacity))
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._run, args=(lane,), name=f"assay-sink-{lane.name}", daemon=True
            )
            lane.thread.start()

    @property
    def sink_names(self) -> list[str]:
        """The sinks' names, as used in :meth:`counters`."""
        return [lane.name for lane in self._lanes]

    def submit(self, notifications: Iterable[Notification]) -> None:
        """Queue ``notifications`` for every sink; never blocks on delivery.

        A full queue drops its oldest notification (counted as ``dropped``); after
        :meth:`close` everything submitted is dropped and counted.
        """
        batch = list(notifications)
        if not batch:
            return
        with self._cond:
            for lane in self._lanes:
                if self._closing:
                    lane.counts["dropped"] += len(batch)
                    continue
                for notification in batch:
                    if len(lane.queue) >= lane.capacity:
                        lane.queue.popleft()
                        lane.counts["dropped"] += 1
                    lane.queue.append(notification)
            self._cond.notify_all()

    def counters(self) -> dict[str, dict[str, Any]]:
        """Per sink: ``delivered``, ``failed``, ``retried``, ``dropped``, ``queued``
        and ``last_error`` (the last failure's message, or None)."""
        with self._cond:
            return {
                lane.name: {
                    **lane.counts,
                    "queued": len(lane.queue) + lane.in_flight,
                    "last_error": lane.last_error,
                }
                for lane in self._lanes
            }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(lane.queue or lane.in_flight for lane in self._lanes):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting, give the queues up to ``timeout`` seconds to drain, then stop.

        Returns True when everything queued was handled (delivered or failed); what is
        still queued after the timeout is counted as ``dropped``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for lane in self._lanes:
            assert lane.thread is not None
            lane.thread.join(max(0.0, deadline - time.monotonic()))
        drained = not any(
            lane.thread is not None and lane.thread.is_alive() for lane in self._lanes
        )
        if not drained:
            self._abort.set()
            with self._cond:
                for lane in self._lanes:
                    lane.counts["dropped"] += len(lane.queue)
                    lane.queue.clear()
                self._cond.notify_all()
        for lane in self._lanes:
            close = getattr(lane.sink, "close", None)
            if callable(close) and not (lane.thread and lane.thread.is_alive()):
                close()
        return drained

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker -------------------------------------------------------------------

    def _run(self, lane: _Lane) -> None:
        while True:
            with self._cond:
                while not lane.queue and not self._closing and not self._abort.is_set():
                    self._cond.wait()
                if self._abort.is_set() or (not lane.queue and self._closing):
                    return
                batch = [lane.queue.popleft() for _ in range(min(self.batch_size, len(lane.queue)))]
                lane.in_flight = len(batch)
            self._deliver(lane, batch)
            with self._cond:
                lane.in_flight = 0
                self._cond.notify_all()

    def _deliver(self, lane: _Lane, batch: list[Notification]) -> None:
        delay = self.backoff
        for attempt in range(1, self.max_attempts + 1):
            try:
                lane.sink.send(batch)
            except Exception as err:  # any failure of a sink is counted, never raised
                with self._cond:
                    lane.last_error = f"{type(err).__name__}: {err}"
                    if attempt == self.max_attempts:
                        lane.counts["failed"] += len(batch)
                        return
                    lane.counts["retried"] += 1
                if self._abort.wait(delay):
                    with self._cond:
                        lane.counts["dropped"] += len(batch)
                    return
                delay = min(delay * 2, self.max_backoff)
            else:
                with self._cond:
                    lane.counts["delivered"] += len(batch)
                return


def sinks_from_config(
    config: Any,
    *,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    timeout: float = 5.0,
) -> list[Sink]:
    """The sinks declared in an ``assay.yaml`` ``sinks:`` section (:class:`Sinks`).

    >>> from assay.monitors.config import Sinks
    >>> [s.name for s in sinks_from_config(Sinks(console=True))]
    ['console']
    """
    from assay.integrations.alertmanager import AlertmanagerSink
    from assay.integrations.webhook import WebhookSink
    from assay.monitors.config import parse_duration

    env = os.environ if environ is None else environ
    sinks: list[Sink] = []
    if config.console:
        sinks.append(ConsoleSink(stream))
    if config.alertmanager is not None:
        sinks.append(
            AlertmanagerSink(
                config.alertmanager.url,
                timeout=timeout,
                resend_interval=parse_duration(config.alertmanager.resend_interval),
            )
        )
    if config.webhook is not None:
        secret = None
        if config.webhook.secret_env:
            secret = env.get(config.webhook.secret_env)
            if not secret:
                raise ConfigError(
                    f"environment variable {config.webhook.secret_env!r} is not set",
                    field="sinks.webhook.secret_env",
                    hint="set it to the webhook's shared secret, or remove secret_env",
                )
        sinks.append(WebhookSink(config.webhook.url, secret=secret, timeout=timeout))
    return sinks
