"""Benchmark of sustained ingest through the HTTP API with :class:`assay.Client`.

Usage (from the repository root)::

    python bench/ingest.py [--events 200000] [--batch-size 1000] [--store postgresql://...]
                           [--record] [--profile]

The script starts ``assay serve`` on 127.0.0.1 (the embedded DuckDB store in a temporary
data directory; with ``--store`` also on PostgreSQL, in a database it creates there and
drops afterwards), registers a binary model with 20 features (16 numeric, 4 categorical)
and a segment column, and measures with the client, one batch in flight at a time:

* predictions as JSON bodies and as Arrow IPC bodies (each into its own model): events/s
  over the whole run, and p50 / p99 latency of one batch request;
* labels for half of the events (shuffled), as Arrow bodies;
* the time of the first ``GET /evaluations`` after the ingest: the rollups of every dirty
  bucket are rebuilt then, so this shows whether rollups keep up;

and, for comparison in the same run, the storage floor: ``Store.append_predictions`` /
``append_labels`` called in process with tables already validated, batch by batch. The
table shows the HTTP + validation overhead (× floor) beside the targets (JSON ≥ 50,000
events/s, Arrow ≥ 500,000 events/s, p99 ≤ 250 ms). ``--record`` appends it to
``bench/RESULTS.md`` with the date and the machine (no host names, no paths).

``--profile`` serves in process instead (uvicorn in a thread) and prints cProfile's top
functions of the event-loop thread (HTTP, parsing, validation) and of the writer thread
(the store), for the Arrow and the JSON run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

import assay

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
TENANT = "bench"
NUMERIC = [f"num_{i:02d}" for i in range(16)]
CATEGORIES = {"cat_03": 3, "cat_08": 8, "cat_20": 20, "cat_50": 50}
SEGMENT_LEVELS = 5
SPAN = timedelta(hours=48)  # event timestamps spread over the last 48 hours
TARGET_JSON, TARGET_ARROW, TARGET_P99_MS = 50_000, 500_000, 250.0


# --- data -----------------------------------------------------------------------------


def features() -> dict[str, str]:
    """The model's 20 features: 16 numeric, 4 categorical."""
    return {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORIES, "categorical")}


def make_predictions(n: int, seed: int, prefix: str, now: datetime) -> pa.Table:
    """``n`` prediction events as flat columns (seeded), timestamps in the last 48 hours."""
    rng = np.random.default_rng(seed)
    start = now - SPAN
    offsets = np.sort(rng.integers(0, int(SPAN.total_seconds() * 1e6), n))
    stamps = np.datetime64(start.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    score = rng.beta(1, 8, n)
    columns: dict[str, Any] = {
        "id": pa.array([f"{prefix}-{i}" for i in range(n)]),
        "version": pa.array(np.where(rng.random(n) < 0.5, "v1", "v2").tolist()),
        "timestamp": pa.array(stamps, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
        "score": pa.array(score),
        "prediction": pa.array((score >= 0.5).astype(np.float64)),
    }
    for i, name in enumerate(NUMERIC):
        values = rng.normal(i, 1 + i % 4, n) if i % 2 else rng.lognormal(0, 1, n)
        columns[name] = pa.array(values)
    for name, levels in CATEGORIES.items():
        codes = rng.integers(0, levels, n)
        columns[name] = pa.array([f"{name}-{c}" for c in codes])
    columns["segment"] = pa.array([f"s{c}" for c in rng.integers(0, SEGMENT_LEVELS, n)])
    return pa.table(columns)


def as_events(table: pa.Table) -> list[dict[str, Any]]:
    """The same events in the JSON event shape (built before timing)."""
    events = []
    for row in table.to_pylist():
        events.append(
            {
                "id": row["id"],
                "version": row["version"],
                "timestamp": row["timestamp"].isoformat().replace("+00:00", "Z"),
                "score": row["score"],
                "prediction": row["prediction"],
                "features": {name: row[name] for name in (*NUMERIC, *CATEGORIES)},
                "segments": {"segment": row["segment"]},
            }
        )
    return events


def make_labels(predictions: pa.Table, share: float, seed: int, now: datetime) -> pa.Table:
    """Labels for ``share`` of the predictions, in shuffled order (late and out of order)."""
    rng = np.random.default_rng(seed)
    n = predictions.num_rows
    chosen = rng.permutation(n)[: int(n * share)]
    score = predictions.column("score").to_numpy()[chosen]
    label = (rng.random(chosen.size) < score).astype(np.float64)
    return pa.table(
        {
            "id": predictions.column("id").take(pa.array(chosen)),
            "label": pa.array(label),
            "timestamp": pa.array([now] * chosen.size, pa.timestamp("us", tz="UTC")),
        }
    )


def batches(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


# --- measurements ---------------------------------------------------------------------


@dataclass
class Measured:
    """One contender's run: events, wall seconds, per-batch latencies."""

    name: str
    store: str
    body: str
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    target: float | None = None  # events/s
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    def quantile_ms(self, q: float) -> float:
        return float(np.quantile(self.latencies, q) * 1000) if self.latencies else float("nan")


class TimedTransport(httpx.BaseTransport):
    """An httpx transport that records the latency of every event batch request."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.latencies: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = self.inner.handle_request(request)
        response.read()
        if request.method == "POST" and request.url.path.endswith(("/predictions", "/labels")):
            self.latencies.append(time.perf_counter() - started)
        return response

    def close(self) -> None:
        self.inner.close()


def measure_floor(
    store_name: str,
    url: str | None,
    tables: list[pa.Table],
    labels: list[pa.Table],
    repeat: int,
) -> list[Measured]:
    """``append_predictions`` / ``append_labels`` in process on validated tables."""
    from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
    from assay.store.model import ModelSpec

    spec = ModelSpec(name="floor", task="binary", features=features(), segments=["segment"])
    limits = IngestLimits()
    ready = [predictions_from_arrow(spec, t, limits).table for t in tables]
    ready_labels = [labels_from_arrow(spec, t, limits).table for t in labels]
    results = []
    for run in range(repeat):
        results += _floor_once(
            store_name, url, spec.model_copy(update={"name": f"floor-{run}"}), ready, ready_labels
        )
    return results


def _floor_once(
    store_name: str, url: str | None, spec: Any, ready: list[pa.Table], ready_labels: list[pa.Table]
) -> list[Measured]:
    from assay.store import open_store

    with tempfile.TemporaryDirectory(prefix="assay-bench-floor-") as tmp:
        store = open_store(tmp, url)
        try:
            store.register_model(TENANT, spec)
            results = []
            for name, append, items in (
                ("store append: predictions", store.append_predictions, ready),
                ("store append: labels", store.append_labels, ready_labels),
            ):
                latencies = []
                started = time.perf_counter()
                for table in items:
                    t0 = time.perf_counter()
                    append(TENANT, spec.name, table)
                    latencies.append(time.perf_counter() - t0)
                seconds = time.perf_counter() - started
                events = sum(t.num_rows for t in items)
                results.append(
                    Measured(
                        name, store_name, "(in process)", events, seconds, latencies, note="floor"
                    )
                )
        finally:
            store.close()
    return results


def measure_http(
    url: str,
    key: str,
    store_name: str,
    predictions: pa.Table,
    events: list[dict[str, Any]],
    labels: pa.Table,
    batch_size: int,
    run: int,
) -> list[Measured]:
    """JSON and Arrow predictions, Arrow labels, then the first evaluation (fresh models)."""
    results = []
    labeled_model = f"bench-arrow-{run}"
    runs: list[tuple[str, str, Any, float]] = [
        (f"bench-json-{run}", "json", events, TARGET_JSON),
        (labeled_model, "arrow", predictions, TARGET_ARROW),
    ]
    for model, body, data, target in runs:
        with assay.Client(url, key) as admin:
            admin.register_model(model, "binary", features(), segments=["segment"])
        transport = TimedTransport()
        with assay.Client(
            url,
            key,
            batch_size=batch_size,
            format=body,  # type: ignore[arg-type]
            transport=transport,
            timeout=120,
        ) as client:
            started = time.perf_counter()
            answer = client.log_predictions(model, data)
            seconds = time.perf_counter() - started
        _check(answer.accepted == predictions.num_rows, f"{model}: accepted {answer.accepted}")
        results.append(
            Measured(
                f"HTTP predictions ({body})",
                store_name,
                body,
                answer.events,
                seconds,
                transport.latencies,
                target,
                note=_retries(answer.retries),
            )
        )
    transport = TimedTransport()
    with assay.Client(url, key, batch_size=batch_size, transport=transport, timeout=120) as client:
        started = time.perf_counter()
        answer = client.log_labels(labeled_model, labels)
        seconds = time.perf_counter() - started
        _check(
            answer.accepted == labels.num_rows and answer.unmatched == 0,
            f"labels: {answer.to_dict()}",
        )
        results.append(
            Measured(
                "HTTP labels (arrow)",
                store_name,
                "arrow",
                answer.events,
                seconds,
                transport.latencies,
                note=_retries(answer.retries),
            )
        )
        started = time.perf_counter()
        evaluation = client.evaluations(labeled_model, window="1d")
        first = time.perf_counter() - started
        started = time.perf_counter()
        client.evaluations(labeled_model, window="1d")
        again = time.perf_counter() - started
    rows = sum(w["rows"] for w in evaluation["windows"])
    labeled = sum(w["labeled"] for w in evaluation["windows"])
    _check(
        rows == predictions.num_rows and labeled == labels.num_rows,
        f"evaluation counts rows={rows} labeled={labeled}",
    )
    results.append(
        Measured(
            "first GET evaluations (1d windows)",
            store_name,
            "-",
            0,
            first,
            note=f"{first:.2f} s rollups rebuilt; next GET {again:.2f} s; "
            f"rows {rows:,}, labeled {labeled:,}",
        )
    )
    return results


def _retries(count: int) -> str:
    return f"{count} retries (429/503)" if count else ""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench: wrong answer: {what}")


# --- the server -----------------------------------------------------------------------


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


# --- profiling ------------------------------------------------------------------------


class _ProfiledStore:
    """A store whose appends run under a cProfile profiler (they run on the writer thread)."""

    def __init__(self, store: Any, profiler: cProfile.Profile):
        self._store, self._profiler = store, profiler

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in ("append_predictions", "append_labels", "idempotent_answer"):
            return attribute

        def profiled(*args: Any, **kwargs: Any) -> Any:
            self._profiler.enable()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._profiler.disable()

        return profiled


def profile(events: int, batch_size: int, seed: int, top: int) -> None:
    """Serve in process (uvicorn in a thread) and print the server's top costs per body."""
    import uvicorn

    from assay.control import open_control_store
    from assay.server.app import ServerOptions, create_app
    from assay.store import open_store

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    predictions = make_predictions(events, seed, "p", now)
    data = {"json": as_events(predictions), "arrow": predictions}
    for body in ("arrow", "json"):
        with tempfile.TemporaryDirectory(prefix="assay-bench-profile-") as tmp:
            loop_profiler, writer_profiler = cProfile.Profile(), cProfile.Profile()
            store = _ProfiledStore(open_store(tmp), writer_profiler)
            control = open_control_store(tmp)
            _, key = control.create_key(TENANT, "admin", actor="bench")
            app = create_app(store, control, ServerOptions())  # type: ignore[arg-type]
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )

            def run(server: uvicorn.Server = server, profiler: cProfile.Profile = loop_profiler):
                profiler.enable()
                try:
                    server.run()
                finally:
                    profiler.disable()

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, None, None)
            with assay.Client(
                url,
                key,
                batch_size=batch_size,
                format=body,  # type: ignore[arg-type]
                timeout=120,
            ) as client:
                client.register_model("bench", "binary", features(), segments=["segment"])
                started = time.perf_counter()
                client.log_predictions("bench", data[body])
                seconds = time.perf_counter() - started
            server.should_exit = True
            thread.join(30)
            control.close()
            print(
                f"\n=== {body} bodies: {events:,} events in {seconds:.2f} s "
                f"({events / seconds:,.0f} events/s, client in the same process) ==="
            )
            for title, profiler in (
                ("event-loop thread: HTTP, parsing, validation", loop_profiler),
                ("writer thread: store appends", writer_profiler),
            ):
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).strip_dirs()
                stats.sort_stats("tottime").print_stats(top)
                print(f"\n--- {title} (by own time) ---")
                print(_trim_stats(out.getvalue()))


def _trim_stats(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


# --- report ---------------------------------------------------------------------------

HEADERS = [
    "contender",
    "store",
    "events",
    "seconds",
    "events/s",
    "× floor",
    "p50 ms",
    "p99 ms",
    "target",
]


def _target_text(m: Measured) -> str:
    if m.target is None:
        return m.note
    rate = "met" if m.rate >= m.target else "**missed**"
    p99 = "met" if m.quantile_ms(0.99) <= TARGET_P99_MS else "**missed**"
    return f"≥ {m.target:,.0f}/s: {rate}; p99 ≤ {TARGET_P99_MS:.0f} ms: {p99}"


def target_lines(results: list[Measured]) -> list[str]:
    """One line per target with the measured values, for RESULTS.md."""
    lines = []
    for body, target in (("json", TARGET_JSON), ("arrow", TARGET_ARROW)):
        runs = [m for m in results if m.name == f"HTTP predictions ({body})"]
        if runs:
            ok = all(m.rate >= target for m in runs)
            values = ", ".join(f"{m.store} {m.rate:,.0f}" for m in runs)
            lines.append(
                f"- {'met' if ok else '**missed**'}: {body.upper()} bodies ≥ "
                f"{target:,} events/s (is {values})"
            )
    timed = [m for m in results if m.note != "floor" and m.latencies]
    if timed:
        worst = max(timed, key=lambda m: m.quantile_ms(0.99))
        ok = worst.quantile_ms(0.99) <= TARGET_P99_MS
        lines.append(
            f"- {'met' if ok else '**missed**'}: p99 batch latency ≤ "
            f"{TARGET_P99_MS:.0f} ms (worst: {worst.name}, {worst.store}, "
            f"{worst.quantile_ms(0.99):.1f} ms)"
        )
    return lines


def table_rows(results: list[Measured]) -> list[list[str]]:
    floors = {(m.store, m.name.split(":")[-1].strip()): m for m in results if m.note == "floor"}
    rows = []
    for m in results:
        if m.events == 0:
            rows.append([m.name, m.store, "-", f"{m.seconds:.2f}", "-", "-", "-", "-", m.note])
            continue
        kind = "labels" if "labels" in m.name else "predictions"
        floor = floors.get((m.store, kind))
        times = f"{floor.rate / m.rate:.1f}×" if floor and m.rate else "-"
        rows.append(
            [
                m.name,
                m.store,
                f"{m.events:,}",
                f"{m.seconds:.2f}",
                f"{m.rate:,.0f}",
                times,
                f"{m.quantile_ms(0.5):.1f}",
                f"{m.quantile_ms(0.99):.1f}",
                _target_text(m) if m.note != "floor" else "floor",
            ]
        )
    return rows


def markdown(results: list[Measured]) -> list[str]:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", "---", *["---:"] * (len(HEADERS) - 3), "---"]) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    return lines


def print_table(results: list[Measured]) -> None:
    rows = [HEADERS, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    for n, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) if i < len(HEADERS) - 1 else c
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def machine(store_urls: list[str | None]) -> str:
    """CPU, cores, RAM and versions; no host names, no paths."""
    import duckdb
    import fastapi
    import orjson
    import uvicorn

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    text = (
        f"{cpu}, {cores} cores ({usable} usable), {ram} RAM; {platform.system()} "
        f"{platform.machine()}; Python {platform.python_version()}, pyarrow {pa.__version__}, "
        f"duckdb {duckdb.__version__}, fastapi {fastapi.__version__}, uvicorn "
        f"{uvicorn.__version__}, httpx {httpx.__version__}, orjson {orjson.__version__}, "
        f"assay {assay.__version__}"
    )
    if any(store_urls):
        import psycopg

        url = next(u for u in store_urls if u)
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        text += f", psycopg {psycopg.__version__}, PostgreSQL {version[0] if version else '?'}"
    return text


def utc_stamp() -> str:
    """The date as ``date -u`` gives it."""
    try:
        out = subprocess.run(
            ["date", "-u", "+%Y-%m-%d %H:%M UTC"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def best_runs(results: list[Measured]) -> list[Measured]:
    """The best run of each (contender, store): highest events/s, or least seconds."""
    best: dict[tuple[str, str], Measured] = {}
    for m in results:
        key = (m.name, m.store)
        held = best.get(key)
        if held is None or (m.rate > held.rate if m.events else m.seconds < held.seconds):
            best[key] = m
    return list(best.values())


def runs_text(results: list[Measured]) -> str:
    """Every run's events/s (seconds for the evaluation), per contender."""
    runs: dict[tuple[str, str], list[str]] = {}
    for m in results:
        value = f"{m.rate:,.0f}/s" if m.events else f"{m.seconds:.2f} s"
        runs.setdefault((m.name, m.store), []).append(value)
    return "; ".join(f"{name} [{store}] " + " / ".join(v) for (name, store), v in runs.items())


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def record(
    results: list[Measured], args: argparse.Namespace, about: str, load: str, every: str
) -> None:
    """Append this run as a Markdown section of RESULTS.md."""
    stores = "DuckDB and PostgreSQL" if args.store else "DuckDB"
    lines = [
        f"## {utc_stamp()}: ingest through HTTP, {args.events:,} events ({stores})",
        "",
        f"Produced by `python bench/ingest.py --events {args.events} --batch-size "
        f"{args.batch_size}{' --store postgresql://...' if args.store else ''} --record`: "
        "`assay serve` on 127.0.0.1, a binary model with 16 numeric + 4 categorical features "
        "and a 5-value segment, events sent with `assay.Client` in batches of "
        f"{args.batch_size:,}, one request in flight; labels for {args.label_share:.0%} of the "
        "events in shuffled order; then the first `GET /evaluations` (rebuilds the rollups of "
        "every dirty bucket). *store append* is the storage floor: `Store.append_predictions` / "
        "`append_labels` in process on tables already validated. *× floor* is the floor's "
        "events/s divided by the contender's; p50/p99 are per batch request, client side.",
        "",
        f"Machine: {about}. Load average before the run: {load}.",
        "",
    ]
    lines += markdown(results)
    lines += [
        "",
        f"Best of {args.repeat} run(s) (fresh models each); every run: {every}. "
        f"Load average after the run: {_load_average()}.",
    ]
    lines += ["", "Targets:", "", *target_lines(results)]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"\nrecorded in {RESULTS.relative_to(BENCH_DIR.parent)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per contender")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument(
        "--store",
        help="also run on PostgreSQL (postgresql://... of a server "
        "where a database may be created)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per contender (fresh models); the best is reported",
    )
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the server in process instead"
    )
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.events, args.batch_size, args.seed, args.top)
        return
    load = _load_average()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    print(f"generating {args.events:,} events (20 features) ...", flush=True)
    predictions = make_predictions(args.events, args.seed, "p", now)
    events = as_events(predictions)
    labels = make_labels(predictions, args.label_share, args.seed + 1, now)
    tables, label_tables = batches(predictions, args.batch_size), batches(labels, args.batch_size)
    results: list[Measured] = []
    with contextlib.ExitStack() as stack:
        targets: list[tuple[str, str | None]] = [("duckdb", None)]
        if args.store:
            targets.append(("postgresql", stack.enter_context(postgres_database(args.store))))
        for store_name, url in targets:
            print(f"[{store_name}] storage floor ...", flush=True)
            results += measure_floor(store_name, url, tables, label_tables, args.repeat)
            data_dir = Path(tempfile.mkdtemp(prefix="assay-bench-"))
            try:
                with served(data_dir, url) as (server, key):
                    print(f"[{store_name}] HTTP ingest ...", flush=True)
                    for run in range(args.repeat):
                        results += measure_http(
                            server,
                            key,
                            store_name,
                            predictions,
                            events,
                            labels,
                            args.batch_size,
                            run,
                        )
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)
        about = machine([u for _, u in targets])
    print()
    every = runs_text(results)
    results = best_runs(results)
    print_table(results)
    print(f"\nBest of {args.repeat} run(s); every run: {every}")
    print("\n".join(["", "Targets:", *target_lines(results)]))
    print(f"\nMachine: {about}\nLoad average before the run: {load}")
    if args.record:
        record(results, args, about, load, every)


if __name__ == "__main__":
    main()
