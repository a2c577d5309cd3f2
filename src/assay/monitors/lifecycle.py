"""The alert lifecycle: signals over time become notifications.

Per alert (one per label set, :attr:`Signal.key`) a small state machine::

    inactive --breached--> pending --breached for >= for_seconds--> firing
    pending --not breached--> inactive            (nothing is notified)
    firing --recovered--> resolved --> inactive    (one "resolved" notification)

* ``breached=None`` (too few rows or labels to judge) changes nothing.
* A firing alert resolves only on ``recovered=True``: a value between the threshold and
  the hysteresis band keeps it firing, so a signal flapping around its threshold does not
  notify on every flip.
* Firing alerts are re-sent every ``resend_interval`` seconds (Alertmanager forgets alerts
  that are not re-sent), and :meth:`AlertBook.to_dict` / :meth:`AlertBook.from_dict` keep
  the state across a restart, so a restart mid-incident neither re-fires nor loses it.

The book is pure: no I/O, no clock; every time is passed in.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2024, 5, 1, tzinfo=UTC)
>>> def sig(breached, recovered=False):
...     return Signal(labels={"alertname": "auc"}, value=0.7, threshold=0.8,
...                   breached=breached, recovered=recovered, window_start=t0,
...                   window_end=t0, summary="AUC low", for_seconds=60)
>>> book = AlertBook(resend_interval=300)
>>> book.observe([sig(True)], t0)
[]
>>> [n.status for n in book.observe([sig(True)], t0 + timedelta(seconds=60))]
['firing']
>>> [n.status for n in book.observe([sig(False, recovered=True)], t0 + timedelta(seconds=90))]
['resolved']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from assay.errors import ConfigError
from assay.monitors.signals import Notification, Signal

__all__ = ["AlertBook"]

_FORMAT_VERSION = 1
AlertKey = tuple[tuple[str, str], ...]


def _utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive times are taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else _utc(datetime.fromisoformat(text))


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class _Alert:
    """The live state of one alert (pending or firing; inactive alerts are not kept)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: Literal["pending", "firing"]
    active_at: datetime
    for_seconds: float
    value: float | None = None
    fired_at: datetime | None = None
    last_sent: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "state": self.state,
            "active_at": _iso(self.active_at),
            "for_seconds": self.for_seconds,
            "value": _finite(self.value),
            "fired_at": _iso(self.fired_at),
            "last_sent": _iso(self.last_sent),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Alert:
        state = data["state"]
        if state not in ("pending", "firing"):
            raise ConfigError(f"unknown alert state {state!r}", field="alerts.state")
        active_at = _parse(data["active_at"])
        assert active_at is not None
        return cls(
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
            state=state,
            active_at=active_at,
            for_seconds=float(data.get("for_seconds", 0.0)),
            value=_finite(data.get("value")),
            fired_at=_parse(data.get("fired_at")),
            last_sent=_parse(data.get("last_sent")),
        )


class AlertBook:
    """Every alert's lifecycle state, fed with signals by :meth:`observe`.

    ``resend_interval``: seconds between re-sends of a still-firing alert.
    ``generator_url``: put into every notification (a link back to Assay).

    >>> from datetime import UTC, datetime
    >>> book = AlertBook(resend_interval=60)
    >>> AlertBook.from_dict(book.to_dict()).resend_interval
    60.0
    """

    def __init__(self, *, resend_interval: float = 300.0, generator_url: str = "") -> None:
        if not resend_interval > 0:
            raise ConfigError("resend_interval must be > 0 seconds", field="resend_interval")
        self.resend_interval = float(resend_interval)
        self.generator_url = generator_url
        self._alerts: dict[AlertKey, _Alert] = {}

    # -- the state machine -------------------------------------------------------------

    def observe(self, signals: Iterable[Signal], now: datetime) -> list[Notification]:
        """Apply ``signals`` judged at ``now``; return the notifications to deliver.

        One notification when an alert starts firing, one when it resolves, and a re-send
        of every firing alert last sent ``resend_interval`` or more seconds ago (whether or
        not a signal for it arrived in this call).
        """
        now = _utc(now)
        out: list[Notification] = []
        notified: set[AlertKey] = set()
        for signal in signals:
            note = self._apply(signal, now)
            if note is not None:
                out.append(note)
                notified.add(signal.key)
        for key, alert in sorted(self._alerts.items()):
            if alert.state != "firing" or key in notified:
                continue
            last = alert.last_sent or alert.fired_at or now
            if (now - last).total_seconds() >= self.resend_interval:
                alert.last_sent = now
                out.append(self._notification(alert, "firing"))
        return out

    def _apply(self, signal: Signal, now: datetime) -> Notification | None:
        if signal.breached is None:
            return None  # not enough data: nothing changes
        key = signal.key
        alert = self._alerts.get(key)
        if signal.breached:
            if alert is None:
                alert = _Alert(
                    labels=self._labels(signal),
                    annotations=self._annotations(signal),
                    state="pending",
                    active_at=now,
                    for_seconds=max(0.0, float(signal.for_seconds)),
                )
                self._alerts[key] = alert
            else:
                alert.annotations = self._annotations(signal)
                alert.for_seconds = max(0.0, float(signal.for_seconds))
            alert.value = _finite(signal.value)
            if alert.state == "pending":
                if (now - alert.active_at).total_seconds() >= alert.for_seconds:
                    alert.state = "firing"
                    alert.fired_at = now
                    alert.last_sent = now
                    return self._notification(alert, "firing")
                return None
            return self._resend_if_due(alert, now)
        # not breached
        if alert is None:
            return None
        if alert.state == "pending":
            del self._alerts[key]  # back to inactive, silently
            return None
        if signal.recovered:
            del self._alerts[key]
            alert.value = _finite(signal.value)
            return self._notification(alert, "resolved", ends_at=now)
        alert.value = _finite(signal.value)  # inside the hysteresis band: keep firing
        return self._resend_if_due(alert, now)

    def _resend_if_due(self, alert: _Alert, now: datetime) -> Notification | None:
        last = alert.last_sent or alert.fired_at or now
        if (now - last).total_seconds() >= self.resend_interval:
            alert.last_sent = now
            return self._notification(alert, "firing")
        return None

    @staticmethod
    def _labels(signal: Signal) -> dict[str, str]:
        # exactly the signal's labels: they are the alert's identity (and carry severity)
        return {str(k): str(v) for k, v in signal.labels.items()}

    @staticmethod
    def _annotations(signal: Signal) -> dict[str, str]:
        annotations = {"summary": signal.summary}
        if signal.value is not None:
            annotations["value"] = f"{signal.value:.6g}"
        if signal.threshold is not None:
            annotations["threshold"] = f"{signal.threshold:.6g}"
        annotations.update({str(k): str(v) for k, v in signal.annotations.items()})
        return annotations

    def _notification(
        self,
        alert: _Alert,
        status: Literal["firing", "resolved"],
        *,
        ends_at: datetime | None = None,
    ) -> Notification:
        return Notification(
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            status=status,
            starts_at=alert.fired_at or alert.active_at,
            ends_at=ends_at,
            generator_url=self.generator_url,
            value=alert.value,
        )

    # -- views and persistence -----------------------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts for ``GET /v1/alerts`` (JSON-safe, sorted by labels).

        ``since`` is when the alert entered its current state.
        """
        rows = []
        for key in sorted(self._alerts):
            alert = self._alerts[key]
            since = alert.fired_at if alert.state == "firing" else alert.active_at
            rows.append(
                {
                    "state": alert.state,
                    "labels": dict(alert.labels),
                    "annotations": dict(alert.annotations),
                    "since": _iso(since),
                    "active_at": _iso(alert.active_at),
                    "value": _finite(alert.value),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-safe data (restore it with :meth:`from_dict`)."""
        return {
            "version": _FORMAT_VERSION,
            "resend_interval": self.resend_interval,
            "generator_url": self.generator_url,
            "alerts": [self._alerts[key].to_dict() for key in sorted(self._alerts)],
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        resend_interval: float | None = None,
        generator_url: str | None = None,
    ) -> AlertBook:
        """Rebuild a book saved by :meth:`to_dict`; keyword arguments override the saved ones.

        Firing alerts keep their start and last-sent times, so they are neither re-fired
        nor re-sent before their resend interval.
        """
        version = data.get("version", _FORMAT_VERSION)
        if version != _FORMAT_VERSION:
            raise ConfigError(
                f"alert state version {version!r} is not supported (expected {_FORMAT_VERSION})",
                field="version",
            )
        book = cls(
            resend_interval=(
                resend_interval
                if resend_interval is not None
                else float(data.get("resend_interval", 300.0))
            ),
            generator_url=(
                generator_url if generator_url is not None else str(data.get("generator_url", ""))
            ),
        )
        for item in data.get("alerts", []):
            alert = _Alert.from_dict(item)
            book._alerts[tuple(sorted(alert.labels.items()))] = alert
        return book

    def __len__(self) -> int:
        return len(self._alerts)
