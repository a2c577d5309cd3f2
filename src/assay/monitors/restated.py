"""The hours whose rollups were rebuilt, until the monitor schedule takes them.

Late labels (and late predictions) mark their hourly buckets dirty; whoever evaluates
first rebuilds them — a monitor pass or an evaluation request. Every rebuild notes its
hours here, so the schedule's next pass judges the windows they restate again, whoever
rebuilt them. The journal is in memory and per process (keyed by the store object); the
schedule persists what it takes before judging it (see ``monitor-state.json``).

>>> from datetime import UTC, datetime
>>> class Store: ...
>>> journal, store = RestatedHours(), Store()
>>> journal.note(store, "acme", "fraud", {datetime(2026, 11, 3, 7, tzinfo=UTC)})
>>> [h.hour for h in journal.take(store, "acme", "fraud")], journal.take(store, "acme", "fraud")
([7], set())
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any

MAX_HOURS_PER_MODEL = 50_000  # about 5.7 years of hours; the oldest are dropped beyond


class RestatedHours:
    """Rebuilt hours per (store, tenant, model), taken by the monitor schedule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hours: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], set[datetime]]] = (
            weakref.WeakKeyDictionary()
        )

    def note(self, store: Any, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Remember ``hours`` of ``model`` as rebuilt."""
        with self._lock:
            mine = self._hours.setdefault(store, {}).setdefault((tenant, model), set())
            mine.update(hours)
            if len(mine) > MAX_HOURS_PER_MODEL:
                for hour in sorted(mine)[: len(mine) - MAX_HOURS_PER_MODEL]:
                    mine.discard(hour)

    def take(self, store: Any, tenant: str, model: str) -> set[datetime]:
        """The hours noted since the last ``take`` (and forget them)."""
        with self._lock:
            return self._hours.get(store, {}).pop((tenant, model), set())


RESTATED = RestatedHours()

__all__ = ["RESTATED", "RestatedHours"]
