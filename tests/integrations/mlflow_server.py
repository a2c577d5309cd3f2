"""A real ``mlflow server`` for the tests: sqlite backend and artifact store in a tmp dir.

Started in its own process group (``setsid``) on 127.0.0.1 and a free port, waited for on
``/health``, stopped with SIGTERM (then SIGKILL) to that group only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import HOST, free_port

START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
HINT = "install it with: pip install 'assay[mlflow]'"
# no usage reports, no background job runner: a quiet, local server
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def require_mlflow() -> None:
    """Skip when MLflow is not installed; fail instead in CI (``CI=true``)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        message = f"mlflow is not installed ({HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def mlflow_command() -> list[str]:
    """The ``mlflow`` script of this interpreter's environment (or ``python -m mlflow``)."""
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


@contextlib.contextmanager
def mlflow_server(directory: Path) -> Iterator[str]:
    """Run ``mlflow server`` with its data under ``directory``; yield its URL."""
    port = free_port()
    log_path = directory / "mlflow-server.log"
    command = [
        *mlflow_command(),
        "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET_ENV},
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        _wait_healthy(process, url, log_path)
        yield url
    finally:
        _stop_group(process)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"mlflow server exited ({process.returncode}): {log_path.read_text()[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server not healthy after {START_TIMEOUT:.0f} s")
        time.sleep(0.2)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group this helper started, SIGKILL what is left of it in time."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT)


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the leader, so a zombie does not count
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
