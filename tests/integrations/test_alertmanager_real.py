"""Assay's alerts reach a real Alertmanager and arrive at a webhook receiver behind it.

Needs the ``alertmanager`` binary (Debian: ``apt-get install -y prometheus-alertmanager``).
Missing, the test is skipped locally and fails in CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.integrations.alertmanager import AlertmanagerSink
from assay.monitors.signals import Notification

from . import Receiver

HINT = "install it with: apt-get update && apt-get install -y prometheus-alertmanager"


def find_alertmanager() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    message = f"the alertmanager binary is not on PATH ({HINT})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Receiver) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 routing everything to ``receiver``; its base URL."""
    binary = find_alertmanager()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: assay-test
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: assay-test
    webhook_configs:
      - url: {receiver.url}/alertmanager
        send_resolved: true
"""
    )
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"alertmanager exited ({process.returncode}): "
                    + (tmp_path / "alertmanager.log").read_text()[-2000:]
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("alertmanager did not become ready within 15 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()  # only the process this fixture started, by its pid
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def alerts_with_status(requests: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [
        alert
        for request in requests
        for alert in request["json"]["alerts"]
        if alert["status"] == status and alert["labels"].get("alertname") == "assay_roc_auc_low"
    ]


def test_firing_and_resolved_alerts_reach_the_receiver_through_alertmanager(
    alertmanager: str, receiver: Receiver
) -> None:
    labels = {
        "alertname": "assay_roc_auc_low",
        "tenant": "acme",
        "model": "fraud",
        "severity": "critical",
    }
    annotations = {"summary": "AUC 0.71 < 0.80", "runbook_url": "https://runbooks.example/auc"}
    started = datetime.now(UTC).replace(microsecond=0)
    sink = AlertmanagerSink(alertmanager, timeout=5, resend_interval=60)
    try:
        sink.send(
            [
                Notification(
                    labels=labels,
                    annotations=annotations,
                    status="firing",
                    starts_at=started,
                    generator_url="http://127.0.0.1/v1/alerts",
                    value=0.71,
                )
            ]
        )
        # Alertmanager holds it
        held = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        assert [a["labels"] for a in held] == [labels]
        assert held[0]["status"]["state"] == "active"

        requests = receiver.wait_for(lambda r: alerts_with_status(r, "firing"), timeout=15)
        (firing,) = alerts_with_status(requests, "firing")
        assert firing["labels"] == labels
        assert firing["annotations"] == annotations
        assert firing["generatorURL"] == "http://127.0.0.1/v1/alerts"
        assert firing["startsAt"].startswith(started.strftime("%Y-%m-%dT%H:%M:%S"))
        assert requests[0]["path"] == "/alertmanager"

        resolved_at = datetime.now(UTC)
        sink.send(
            [
                Notification(
                    labels=labels,
                    annotations=annotations,
                    status="resolved",
                    starts_at=started,
                    ends_at=resolved_at,
                    generator_url="http://127.0.0.1/v1/alerts",
                )
            ]
        )
        requests = receiver.wait_for(lambda r: alerts_with_status(r, "resolved"), timeout=15)
        resolved = alerts_with_status(requests, "resolved")[0]
        assert resolved["labels"] == labels
        assert resolved["endsAt"].startswith(resolved_at.strftime("%Y-%m-%dT%H:%M"))
        last = requests[-1]["json"]
        assert last["status"] == "resolved"
    finally:
        sink.close()
