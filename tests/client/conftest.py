"""Fixtures of the client tests: a real ``assay serve`` subprocess and event builders.

The server runs on 127.0.0.1 on a free port with its own data directory for the whole
session, and is stopped by its pid at the end. Each test registers models under fresh
names, so tests never see each other's events.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

FEATURES = {"amount": "numeric", "tenure": "numeric", "country": "categorical"}
SEGMENTS = ["channel"]
COUNTRIES = ("DE", "FR", "US")
CHANNELS = ("web", "app")
START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass
class LiveServer:
    """A running ``assay serve``: its URL, keys per role and process."""

    url: str
    admin_key: str
    ingest_key: str
    read_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def get(self, path: str, **params: Any) -> Any:
        """GET with the admin key, independently of :class:`assay.Client`."""
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = httpx.get(self.url + path, headers=headers, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def stored_predictions(self, model: str) -> int:
        """Predictions stored for ``model``, summed over versions."""
        versions = self.get(f"/v1/models/{model}/versions")["versions"]
        return sum(v["predictions"] for v in versions)

    def register(self, name: str | None = None) -> str:
        """Register a fresh model (features amount, tenure, country; segment channel)."""
        name = name or f"m-{uuid.uuid4().hex[:10]}"
        body = {"name": name, "task": "binary", "features": FEATURES, "segments": SEGMENTS}
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = httpx.post(self.url + "/v1/models", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return name


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assay_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``assay ARGS`` in a subprocess (the current interpreter's package)."""
    return subprocess.run(
        [sys.executable, "-m", "assay.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def create_key(data_dir: Path, role: str) -> str:
    """``assay keys create``; the key is the last line printed."""
    proc = assay_cli(
        "keys", "create", "--data-dir", str(data_dir), "--tenant", "acme", "--role", role
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def create_keys(data_dir: Path, roles: tuple[str, ...]) -> dict[str, str]:
    """One key per role for tenant ``acme``: the first through ``assay keys create`` (as a
    user would), the others in process (the same control store, and quicker)."""
    from assay.control import open_control_store

    keys = {roles[0]: create_key(data_dir, roles[0])}
    with open_control_store(data_dir) as control:
        for role in roles[1:]:
            keys[role] = control.create_key("acme", role, actor="test")[1]
    return keys


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real ``assay serve`` on 127.0.0.1 (DuckDB in a temporary data directory)."""
    data_dir = tmp_path_factory.mktemp("assay-server")
    keys = create_keys(data_dir, ("admin", "ingest", "read"))
    port = free_port()
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assay.cli.main",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"assay serve exited: {(data_dir / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("assay serve did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield LiveServer(url, keys["admin"], keys["ingest"], keys["read"], data_dir, process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


@pytest.fixture
def model(live_server: LiveServer) -> str:
    """A freshly registered model on the live server."""
    return live_server.register()


# -- events -----------------------------------------------------------------------------


def prediction_events(n: int, prefix: str = "e", version: str = "v1") -> list[dict[str, Any]]:
    """``n`` prediction events in the JSON event shape, one per minute from START."""
    events = []
    for i in range(n):
        events.append(
            {
                "id": f"{prefix}-{i}",
                "version": version,
                "timestamp": (START + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                "score": (i % 100) / 100,
                "prediction": int(i % 100 >= 50),
                "features": {
                    "amount": float(i % 37) * 1.5,
                    "tenure": float(i % 11),
                    "country": COUNTRIES[i % 3],
                },
                "segments": {"channel": CHANNELS[i % 2]},
            }
        )
    return events


def prediction_columns(n: int, prefix: str = "e", version: str = "v1") -> dict[str, list[Any]]:
    """The same events as flat columns (features and segments by name)."""
    events = prediction_events(n, prefix, version)
    columns: dict[str, list[Any]] = {
        "id": [e["id"] for e in events],
        "version": [e["version"] for e in events],
        "timestamp": [START + timedelta(minutes=i) for i in range(n)],
        "score": [e["score"] for e in events],
        "prediction": [e["prediction"] for e in events],
    }
    for name in FEATURES:
        columns[name] = [e["features"][name] for e in events]
    columns["channel"] = [e["segments"]["channel"] for e in events]
    return columns


def label_events(ids: list[str]) -> list[dict[str, Any]]:
    """A label per id (1 for every third), timestamped two days after START."""
    stamp = (START + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    return [{"id": i, "label": int(n % 3 == 0), "timestamp": stamp} for n, i in enumerate(ids)]
