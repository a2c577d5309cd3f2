"""The servers of ``bench/ingest.py``: ``assay serve`` and a no-op HTTP server in their own
processes, a scratch PostgreSQL database, and the bare round trips measured beside Assay.

``python bench/ingest_serve.py PORT`` serves the no-op route (``POST /echo``) on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from ingest_report import Measured

TENANT = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            text = log.read_text() if log else ""
            raise SystemExit(f"bench: assay serve exited:\n{text}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit("bench: assay serve did not become ready in 120 s")


@contextlib.contextmanager
def served(data_dir: Path, store_url: str | None) -> Iterator[tuple[str, str]]:
    """``assay serve`` in a subprocess; yields (url, admin key); stopped by its pid."""
    cli = [sys.executable, "-m", "assay.cli.main"]
    where = ["--store", store_url] if store_url else ["--data-dir", str(data_dir)]
    created = subprocess.run(
        [*cli, "keys", "create", *where, "--tenant", TENANT, "--role", "admin"],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise SystemExit(f"bench: assay keys create failed: {created.stderr.strip()}")
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    serve = [
        *cli,
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ] + (["--store", store_url] if store_url else [])
    log = data_dir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(serve, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url, key
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def with_database(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead (query string kept).

    >>> with_database("postgresql:///postgres?sslmode=disable", "x")
    'postgresql:///x?sslmode=disable'
    """
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{dbname}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def postgres_database(base: str) -> Iterator[str]:
    """A fresh database on the server of ``base`` (dropped at the end); yields its URL."""
    import psycopg

    name = f"assay_bench_{secrets.token_hex(5)}"
    url = with_database(base, name)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- bare round trips ----------------------------------------------------------------


def measure_bare_http(
    predictions: pa.Table, events: list[dict[str, Any]], batch_size: int, levels: list[int]
) -> list[Measured]:
    """POST the same bodies to a no-op route (uvicorn + FastAPI, its own process)."""
    import orjson

    from assay import client_data

    tables = [predictions.slice(i, batch_size) for i in range(0, predictions.num_rows, batch_size)]
    bodies = {
        "arrow": [client_data.arrow_body(t) for t in tables],
        "json": [
            orjson.dumps({"events": events[i : i + batch_size]})
            for i in range(0, len(events), batch_size)
        ],
    }
    types = {"arrow": client_data.ARROW_STREAM, "json": "application/json"}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    results = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, None)
        for body, payloads in bodies.items():
            for in_flight in levels:
                latencies: list[float] = []

                def post(
                    k: int,
                    payloads: list[bytes] = payloads,
                    body: str = body,
                    in_flight: int = in_flight,
                    latencies: list[float] = latencies,
                ) -> None:
                    with httpx.Client(base_url=url, timeout=60) as client:
                        for payload in payloads[k::in_flight]:
                            t0 = time.perf_counter()
                            response = client.post(
                                "/echo", content=payload, headers={"Content-Type": types[body]}
                            )
                            response.raise_for_status()
                            latencies.append(time.perf_counter() - t0)

                threads = [threading.Thread(target=post, args=(k,)) for k in range(in_flight)]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                seconds = time.perf_counter() - started
                results.append(
                    Measured(
                        f"bare HTTP POST ({body}, no-op route)",
                        "-",
                        body,
                        len(events),
                        seconds,
                        latencies,
                        role="bare",
                        note="HTTP floor",
                        in_flight=in_flight,
                    )
                )
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return results


def echo_server(port: int) -> None:
    """Serve ``POST /echo`` (read the body, answer its size) and ``GET /readyz``: a FastAPI
    app with plain routes, so the least any Python server on uvicorn does per request."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    async def echo(request: Any) -> JSONResponse:
        return JSONResponse({"bytes": len(await request.body())})

    async def ready(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    app = FastAPI()
    app.add_route("/echo", echo, methods=["POST"])
    app.add_route("/readyz", ready, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def measure_bare_commit(store_name: str, url: str | None, commits: int = 200) -> Measured:
    """Durable commits of one row each: DuckDB on a file, or PostgreSQL over its socket."""
    latencies = []
    with tempfile.TemporaryDirectory(prefix="assay-bench-commit-") as tmp:
        if url is None:
            import duckdb

            con = duckdb.connect(str(Path(tmp) / "commit.duckdb"))
            execute = con.execute
            close = con.close
        else:
            import psycopg

            conn = psycopg.connect(url, autocommit=True)
            execute = conn.execute  # type: ignore[assignment]
            close = conn.close
        try:
            execute("CREATE TABLE bare_commit (x INTEGER)")
            marker = "?" if url is None else "%s"
            started = time.perf_counter()
            for i in range(commits):
                t0 = time.perf_counter()
                execute("BEGIN")
                execute(f"INSERT INTO bare_commit VALUES ({marker})", [i])
                execute("COMMIT")
                latencies.append(time.perf_counter() - t0)
            seconds = time.perf_counter() - started
            if url is not None:
                execute("DROP TABLE bare_commit")
        finally:
            close()
    return Measured(
        "bare durable commit (1 row)",
        store_name,
        "-",
        commits,
        seconds,
        latencies,
        role="bare",
        note="commits/s; the store's floor per transaction",
    )


if __name__ == "__main__":
    echo_server(int(sys.argv[1]))
