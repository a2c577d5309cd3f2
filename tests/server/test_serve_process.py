"""A real ``assay serve`` on 127.0.0.1, driven with httpx and the real ``assay keys`` CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import ARROW_STREAM, FRAUD, arrow_stream, assert_metrics, make_events, sklearn_binary

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def assay_command() -> list[str]:
    """The ``assay`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("assay")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "assay.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the server, SIGKILL it if it does not stop in time; its exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    return process.wait(STOP_TIMEOUT)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    data_dir = tmp_path / "assay-data"
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *assay_command(),
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                HOST,
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, f"assay serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no /healthz answer:\n{log.read_text()}"
            time.sleep(0.1)
        yield Server(process, url, data_dir, log)
    finally:
        stop(process)


def create_key(data_dir: Path, role: str = "admin") -> str:
    """``assay keys create`` (a second process, while the server runs): the last line."""
    done = subprocess.run(
        [
            *assay_command(),
            "keys",
            "create",
            "--data-dir",
            str(data_dir),
            "--tenant",
            "acme",
            "--role",
            role,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_real_server_end_to_end(server: Server) -> None:
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    token = create_key(server.data_dir)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
        assert client.post("/v1/models", json=FRAUD).status_code == 201
        ev = make_events(90, 240, days=2)
        half = np.arange(ev.n) < 120
        answer = client.post(
            "/v1/models/fraud/predictions", json={"events": ev.predictions(np.flatnonzero(half))}
        )
        assert answer.json() == {"accepted": 120, "duplicates": 0, "coerced_to_null": 0}
        answer = client.post(
            "/v1/models/fraud/predictions",
            content=arrow_stream(ev.table(np.flatnonzero(~half))),
            headers={"Content-Type": ARROW_STREAM},
        )
        assert answer.json() == {"accepted": 120, "duplicates": 0, "coerced_to_null": 0}
        labeled = np.arange(ev.n) % 4 != 0
        answer = client.post(
            "/v1/models/fraud/labels", json={"labels": ev.labels(np.flatnonzero(labeled))}
        )
        assert answer.json() == {"accepted": int(labeled.sum()), "duplicates": 0, "unmatched": 0}
        # a key made by the CLI while the server runs works at once, with its role
        read = {"Authorization": f"Bearer {create_key(server.data_dir, 'read')}"}
        response = client.get("/v1/models/fraud/evaluations", params={"window": "1d"}, headers=read)
        assert response.status_code == 200, response.text
        windows = response.json()["windows"]
        assert len(windows) == 2
        for day, window in enumerate(windows):
            mask = (ev.day == day) & labeled
            assert window["rows"] == int((ev.day == day).sum())
            assert window["labeled"] == int(mask.sum())
            assert_metrics(
                window["metrics"], sklearn_binary(ev.y[mask], ev.score[mask], ev.pred()[mask])
            )
        assert client.post("/v1/models", json=FRAUD, headers=read).status_code == 403
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        paths = client.get("/openapi.json").json()["paths"]
        for path in (
            "/v1/models",
            "/v1/models/{model}/predictions",
            "/v1/models/{model}/labels",
            "/v1/models/{model}/evaluations",
            "/healthz",
            "/readyz",
            "/metrics",
        ):
            assert path in paths
        assert "assay_ingested_events_total" in client.get("/metrics").text

    # a clean stop (uvicorn re-raises SIGTERM after its graceful shutdown), and everything
    # acknowledged is on disk exactly once
    assert stop(server.process) in (0, -signal.SIGTERM), server.log.read_text()
    from assay.store.duckdb_store import DuckDBStore

    store = DuckDBStore(server.data_dir)
    try:
        store.get_model("acme", "fraud")
        rows = store.scan("acme", "fraud")
        assert sorted(rows.column("id").to_pylist()) == sorted(ev.ids.tolist())
        assert rows.column("label").null_count == int((~labeled).sum())
    finally:
        store.close()


def test_a_busy_port_is_a_one_line_error_before_anything_opens(tmp_path: Path) -> None:
    """Another process listens on the port: exit 2 with the port named, no traceback, and
    no data directory created (the store is not opened before the port is bound)."""
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        data_dir = tmp_path / "data"
        done = subprocess.run(
            [*assay_command(), "serve", "--data-dir", str(data_dir), "--host", HOST,
             "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on {HOST}:{port}: Address already in use (another process may "
        "listen there: choose another --port, or stop it) [field: port]"
    ]
    assert "serving on" not in done.stdout and not data_dir.exists()
