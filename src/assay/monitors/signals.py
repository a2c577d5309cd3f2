"""What flows between the pieces: a monitor's judgement of one window, and a notification.

Rules turn a window evaluation into :class:`Signal` s; the alert lifecycle turns signals
over time into :class:`Notification` s; sinks deliver notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Signal:
    """One monitor's judgement of one window (and segment value) at one moment.

    ``labels`` identify the alert (tenant, model, monitor, severity, window, and the
    version and segment when set, plus the monitor's own labels): one alert per label set.
    ``breached`` is None when the window has too few rows or labels to be judged;
    ``recovered`` is True only when the value is back past the hysteresis band.
    """

    labels: dict[str, str]
    value: float | None
    threshold: float | None
    breached: bool | None
    recovered: bool
    window_start: datetime
    window_end: datetime
    summary: str
    severity: str = "warning"
    for_seconds: float = 0.0
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """The alert identity: the sorted label set."""
        return tuple(sorted(self.labels.items()))


@dataclass(frozen=True)
class Notification:
    """A firing or resolved alert to deliver (the Alertmanager v2 alert shape)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    status: Literal["firing", "resolved"]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    value: float | None = None
