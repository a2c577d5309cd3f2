"""Alertmanager v2 API sink: ``POST {url}/api/v2/alerts``.

Firing alerts carry ``endsAt`` a few resend intervals ahead, so Alertmanager keeps them
alive between re-sends (:class:`assay.monitors.lifecycle.AlertBook` re-sends them) but
still expires them if Assay stops; resolved alerts carry the resolution time.

>>> from datetime import UTC, datetime
>>> n = Notification(labels={"alertname": "auc"}, annotations={"summary": "low"},
...                  status="firing", starts_at=datetime(2024, 5, 1, tzinfo=UTC))
>>> alerts_payload([n], now=datetime(2024, 5, 1, 0, 5, tzinfo=UTC), resend_interval=60)
[{'labels': {'alertname': 'auc'}, 'annotations': {'summary': 'low'}, \
'startsAt': '2024-05-01T00:00:00Z', 'endsAt': '2024-05-01T00:09:00Z'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from assay.integrations.delivery import DeliveryError
from assay.monitors.signals import Notification

__all__ = ["RESEND_FACTOR", "AlertmanagerSink", "alerts_payload", "rfc3339"]

#: firing alerts stay valid in Alertmanager for this many resend intervals
RESEND_FACTOR = 4


def rfc3339(moment: datetime) -> str:
    """An RFC 3339 UTC timestamp (naive datetimes are taken to be UTC).

    >>> rfc3339(datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC))
    '2024-05-01T12:30:00.250Z'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec) + "Z"


def alerts_payload(
    notifications: Sequence[Notification], *, now: datetime, resend_interval: float
) -> list[dict[str, Any]]:
    """The Alertmanager v2 ``postableAlerts`` body for ``notifications``.

    Firing: ``endsAt = now + RESEND_FACTOR * resend_interval``. Resolved: ``endsAt`` is
    the resolution time (``ends_at``, or ``now`` when missing). ``generatorURL`` is left
    out when empty (Alertmanager validates it as a URI).
    """
    horizon = now + timedelta(seconds=RESEND_FACTOR * resend_interval)
    alerts = []
    for n in notifications:
        if n.status == "resolved":
            ends = n.ends_at or now
        else:
            ends = horizon if n.ends_at is None else max(n.ends_at, horizon)
        alert: dict[str, Any] = {
            "labels": {str(k): str(v) for k, v in n.labels.items()},
            "annotations": {str(k): str(v) for k, v in n.annotations.items()},
            "startsAt": rfc3339(n.starts_at),
            "endsAt": rfc3339(ends),
        }
        if n.generator_url:
            alert["generatorURL"] = n.generator_url
        alerts.append(alert)
    return alerts


class AlertmanagerSink:
    """Posts notifications to an Alertmanager (``url`` is its base, e.g. ``http://am:9093``).

    ``resend_interval`` must match the :class:`AlertBook`'s, so firing alerts do not expire
    between re-sends. :meth:`send` raises :class:`DeliveryError` on any failure.
    """

    name = "alertmanager"

    def __init__(self, url: str, *, timeout: float = 5.0, resend_interval: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/api/v2/alerts"
        self.resend_interval = float(resend_interval)
        self._client = httpx.Client(timeout=timeout)

    def send(self, notifications: Sequence[Notification]) -> None:
        """POST the batch; raise :class:`DeliveryError` unless Alertmanager answers 2xx."""
        if not notifications:
            return
        body = alerts_payload(
            notifications, now=datetime.now(UTC), resend_interval=self.resend_interval
        )
        try:
            response = self._client.post(self.endpoint, json=body)
        except httpx.HTTPError as err:
            raise DeliveryError(f"alertmanager {self.endpoint}: {err}") from err
        if not response.is_success:
            raise DeliveryError(
                f"alertmanager {self.endpoint} answered {response.status_code}: "
                f"{response.text[:200]}"
            )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
