"""One real local Ray runtime shared by the engine tests (Ray's start-up is slow)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[Any]:
    """A local Ray runtime with 2 CPUs, shut down (by this process) at the end.

    Ray is in the ``test`` extra, so a missing install fails here, in CI as locally.
    """
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def binary_window(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    """A binary model's window: target (with unlabeled rows), score, weight, segments,
    numeric and categorical features (with nulls)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.float64)
    y[rng.random(n) < 0.05] = np.nan  # unlabeled rows
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * np.nan_to_num(y) - 1.2)))
    amount = rng.lognormal(3 + shift, 1.0, n)
    amount[rng.random(n) < 0.02] = np.nan
    country = rng.choice(np.array(["DE", "FR", "US", "BR"]), n, p=[0.4, 0.3, 0.2, 0.1])
    return pa.table(
        {
            "target": pa.array(y, from_pandas=True).cast(pa.int64()),
            "score": score,
            "weight": rng.gamma(2.0, 0.5, n),
            "channel": rng.choice(np.array(["web", "app", "partner"]), n),
            "region": pa.array(
                [None if v == "x" else v for v in rng.choice(np.array(["n", "s", "x"]), n)]
            ),
            "amount": amount,
            "age": rng.integers(18, 90, n).astype(np.float64) + shift * 5,
            "country": pa.array([None if i % 97 == 0 else c for i, c in enumerate(country)]),
        }
    )


def write_partitioned(table: pa.Table, folder: Path, files: int, row_group_size: int) -> Path:
    """Write ``table`` as ``files`` Parquet files (in nested folders) of small row groups."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    for i in range(files):
        sub = folder / f"day={i // 2}"
        sub.mkdir(exist_ok=True)
        part = table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i]))
        pq.write_table(part, sub / f"part-{i:03d}.parquet", row_group_size=row_group_size)
    return folder


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path, what: str) -> Iterator[None]:
    """Run ``command`` (a server, in a process group of its own, output to ``log``) until
    it accepts connections on ``port``; stop the group afterwards. Fails the test with the
    log's tail when the server exits or does not listen within a minute."""
    with open(log, "wb") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True,
                                  env={**os.environ, "RAY_AUTH_MODE": "disabled"})  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what} did not start (exit {server.poll()}):\n"
                                + log.read_text()[-3000:])  # fmt: skip
                time.sleep(0.2)
        yield
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
