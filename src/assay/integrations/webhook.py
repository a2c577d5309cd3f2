"""Generic JSON webhook sink, optionally signed with HMAC-SHA256.

The body is ``{"alerts": [...]}``; with a secret, the header
``X-Assay-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` lets the receiver
check it came from Assay (compare with :func:`hmac.compare_digest`).

>>> sign(b'{"alerts":[]}', "s3cret")[:15]
'sha256=ebee03b5'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from typing import Any

import httpx

from assay.integrations.alertmanager import rfc3339
from assay.integrations.delivery import DeliveryError
from assay.monitors.signals import Notification

__all__ = ["SIGNATURE_HEADER", "WebhookSink", "sign", "webhook_body"]

SIGNATURE_HEADER = "X-Assay-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header value for ``body``: ``sha256=<hex digest>``.

    >>> import hashlib, hmac
    >>> sign(b"x", "k") == "sha256=" + hmac.new(b"k", b"x", hashlib.sha256).hexdigest()
    True
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(notifications: Sequence[Notification]) -> bytes:
    """The JSON body (UTF-8 bytes) posted for ``notifications``.

    >>> from datetime import UTC, datetime
    >>> n = Notification(labels={"alertname": "auc"}, annotations={}, status="firing",
    ...                  starts_at=datetime(2024, 5, 1, tzinfo=UTC), value=0.7)
    >>> json.loads(webhook_body([n]))["alerts"][0]["status"]
    'firing'
    """
    alerts: list[dict[str, Any]] = [
        {
            "status": n.status,
            "labels": dict(n.labels),
            "annotations": dict(n.annotations),
            "startsAt": rfc3339(n.starts_at),
            "endsAt": None if n.ends_at is None else rfc3339(n.ends_at),
            "generatorURL": n.generator_url,
            "value": n.value if n.value is None or math.isfinite(n.value) else None,
        }
        for n in notifications
    ]
    return json.dumps({"alerts": alerts}, separators=(",", ":"), allow_nan=False).encode()


class WebhookSink:
    """POSTs ``{"alerts": [...]}`` to ``url``; signs the body when ``secret`` is set."""

    name = "webhook"

    def __init__(self, url: str, *, secret: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout)

    def send(self, notifications: Sequence[Notification]) -> None:
        """POST the batch; raise :class:`DeliveryError` unless the receiver answers 2xx."""
        if not notifications:
            return
        body = webhook_body(notifications)
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise DeliveryError(f"webhook {self.url}: {err}") from err
        if not response.is_success:
            raise DeliveryError(f"webhook {self.url} answered {response.status_code}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
