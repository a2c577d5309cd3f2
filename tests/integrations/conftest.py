"""Shared helpers of the integration tests: a small monitoring config, real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assay.monitors.config import MonitoringConfig

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assay.yaml"

SMALL_CONFIG: dict[str, Any] = {
    "models": [
        {
            "name": "fraud",
            "tenant": "acme",
            "windows": [{"size": "1d"}],
            "monitors": [
                {"name": "auc-low", "kind": "metric", "metric": "roc_auc",
                 "condition": {"op": "<", "value": 0.8}, "for": "1h", "severity": "critical",
                 "labels": {"team": "risk"},
                 "annotations": {"runbook_url": "https://runbooks.example/auc"}},
                {"name": "auc-surely-low", "kind": "metric", "metric": "roc_auc",
                 "condition": {"type": "statistical", "op": "<", "value": 0.75},
                 "segment": "channel"},
                {"name": "precision-drop", "kind": "metric", "metric": "precision",
                 "condition": {"type": "relative", "op": "<", "compare_to": "previous",
                               "change_pct": 5}},
                {"name": "amount-drift", "kind": "drift", "metric": "psi", "feature": "amount",
                 "condition": {"op": ">", "value": 0.2}, "for": "30m"},
                {"name": "any-drift", "kind": "drift", "metric": "drifted", "feature": "*"},
                {"name": "volume-low", "kind": "data_quality", "metric": "volume",
                 "condition": {"op": "<", "value": 100}},
                {"name": "null-rate", "kind": "data_quality", "metric": "null_rate",
                 "feature": "amount", "condition": {"op": ">", "value": 0.1}},
            ],
        }
    ]
}  # fmt: skip


@pytest.fixture
def small_config() -> MonitoringConfig:
    """A config with one monitor of each kind Prometheus can (and one it cannot) express."""
    return MonitoringConfig.model_validate(SMALL_CONFIG)


def assay_command() -> list[str]:
    """The ``assay`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("assay")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "assay.cli.main"]


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process we started (by pid), SIGKILL it if it does not stop in time."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)


def require_binary(name: str, package: str) -> str:
    """The path of ``name``; fails in CI (``CI=true``) and skips elsewhere when missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH (apt-get install -y {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
