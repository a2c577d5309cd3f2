"""Benchmark of sustained ingest through the HTTP API with :class:`assay.Client`.

Usage (from the repository root)::

    python bench/ingest.py [--events 200000] [--batch-size 1000] [--concurrency 4]
                           [--store postgresql://...] [--record] [--profile]

The script starts ``assay serve`` on 127.0.0.1 (the embedded DuckDB store in a temporary
data directory; with ``--store`` also on PostgreSQL, in a database it creates there and
drops afterwards), registers a binary model with 20 features (16 numeric, 4 categorical)
and a segment column, and measures with the client, with one request in flight and with
``--concurrency`` requests in flight (one client thread each):

* predictions as JSON bodies and as Arrow IPC bodies (each into its own model): events/s
  over the whole run, and p50 / p99 latency of one batch request;
* labels for half of the events (shuffled), as Arrow bodies;
* the time of the first ``GET /evaluations`` after the ingest: the rollups of every dirty
  bucket are rebuilt then, so this shows whether rollups keep up;

and, for comparison in the same run: the storage floor (``Store.append_predictions`` /
``append_labels`` in process on tables already validated, batch by batch; with N in flight
``Store.append_many`` of N batches, as the server's group commit does); a bare HTTP round
trip (the same bodies POSTed to a no-op FastAPI route under uvicorn); and a bare durable
one-row commit. The table shows the HTTP + validation overhead (× floor) beside the
targets (JSON ≥ 50,000 events/s, Arrow ≥ 500,000 events/s, p99 ≤ 250 ms). ``--record``
appends it to ``bench/RESULTS.md`` with the date and the machine (no host names, no paths).

``--profile`` serves in process instead (uvicorn in a thread) and prints cProfile's top
functions of the event-loop thread (HTTP, parsing, validation) and of the writer thread
(the store), for the Arrow and the JSON run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

import assay
from ingest_report import (
    TARGET_ARROW,
    TARGET_JSON,
    Measured,
    best_runs,
    load_average,
    machine,
    print_table,
    record,
    runs_text,
    target_lines,
)
from ingest_serve import (
    TENANT,
    free_port,
    measure_bare_commit,
    measure_bare_http,
    postgres_database,
    served,
    wait_healthy,
)

NUMERIC = [f"num_{i:02d}" for i in range(16)]
CATEGORIES = {"cat_03": 3, "cat_08": 8, "cat_20": 20, "cat_50": 50}
SEGMENT_LEVELS = 5
SPAN = timedelta(hours=48)  # event timestamps spread over the last 48 hours


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


def shards(data: Any, batch_size: int, count: int) -> list[Any]:
    """``data`` (a table or a list of events) dealt out batch by batch to ``count`` senders.

    >>> shards(list(range(7)), 2, 2)
    [[0, 1, 4, 5], [2, 3, 6]]
    """
    if isinstance(data, pa.Table):
        parts = batches(data, batch_size)
        return [pa.concat_tables(parts[k::count]) for k in range(count) if parts[k::count]]
    chunks = [data[i : i + batch_size] for i in range(0, len(data), batch_size)]
    return [
        [e for chunk in chunks[k::count] for e in chunk] for k in range(count) if chunks[k::count]
    ]


def send_concurrently(
    url: str, key: str, model: str, kind: str, data: Any, body: str, batch_size: int, in_flight: int
) -> tuple[Any, float, list[float]]:
    """Send ``data`` with ``in_flight`` client threads; (summed answer, seconds, latencies)."""
    parts = shards(data, batch_size, in_flight)
    answers: list[Any] = [None] * len(parts)
    errors: list[BaseException] = []
    transports = [TimedTransport() for _ in parts]

    def send(k: int) -> None:
        try:
            with assay.Client(
                url,
                key,
                batch_size=batch_size,
                format=body,  # type: ignore[arg-type]
                transport=transports[k],
                timeout=120,
            ) as client:
                log = client.log_predictions if kind == "predictions" else client.log_labels
                answers[k] = log(model, parts[k])
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(parts))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    total = answers[0]
    for answer in answers[1:]:
        for name in ("accepted", "duplicates", "unmatched", "events", "retries"):
            if getattr(answer, name) is not None:
                setattr(total, name, (getattr(total, name) or 0) + getattr(answer, name))
    return total, seconds, [x for t in transports for x in t.latencies]


def measure_floor(
    store_name: str,
    url: str | None,
    tables: list[pa.Table],
    labels: list[pa.Table],
    repeat: int,
    levels: list[int],
) -> list[Measured]:
    """``append_predictions`` / ``append_labels`` in process on validated tables; with N in
    flight, ``append_many`` of N batches at a time (the server's group commit)."""
    from assay.service.ingest import IngestLimits, labels_from_arrow, predictions_from_arrow
    from assay.store.model import ModelSpec

    spec = ModelSpec(name="floor", task="binary", features=features(), segments=["segment"])
    limits = IngestLimits()
    ready = [predictions_from_arrow(spec, t, limits).table for t in tables]
    ready_labels = [labels_from_arrow(spec, t, limits).table for t in labels]
    results = []
    for run in range(repeat):
        for group in levels:
            named = spec.model_copy(update={"name": f"floor-{run}-{group}"})
            results += _floor_once(store_name, url, named, ready, ready_labels, group)
    return results


def _floor_once(
    store_name: str,
    url: str | None,
    spec: Any,
    ready: list[pa.Table],
    ready_labels: list[pa.Table],
    group: int,
) -> list[Measured]:
    from assay.store import open_store

    with tempfile.TemporaryDirectory(prefix="assay-bench-floor-") as tmp:
        store = open_store(tmp, url)
        try:
            store.register_model(TENANT, spec)
            results = []
            for kind, items in (("predictions", ready), ("labels", ready_labels)):
                latencies = []
                started = time.perf_counter()
                for i in range(0, len(items), group):
                    t0 = time.perf_counter()
                    if group == 1:
                        append = (
                            store.append_predictions
                            if kind == "predictions"
                            else (store.append_labels)
                        )
                        append(TENANT, spec.name, items[i])
                    else:
                        chunk = [(table, None) for table in items[i : i + group]]
                        store.append_many(TENANT, spec.name, kind, chunk)
                    latencies += [time.perf_counter() - t0] * len(items[i : i + group])
                seconds = time.perf_counter() - started
                events = sum(t.num_rows for t in items)
                results.append(
                    Measured(
                        f"store append: {kind}",
                        store_name,
                        "(in process)",
                        events,
                        seconds,
                        latencies,
                        role="floor",
                        in_flight=group,
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
    in_flight: int,
) -> list[Measured]:
    """JSON and Arrow predictions, Arrow labels, then the first evaluation (fresh models)."""
    results = []
    labeled_model = f"bench-arrow-{run}-{in_flight}"
    runs: list[tuple[str, str, Any, float]] = [
        (f"bench-json-{run}-{in_flight}", "json", events, TARGET_JSON),
        (labeled_model, "arrow", predictions, TARGET_ARROW),
    ]
    for model, body, data, target in runs:
        with assay.Client(url, key) as admin:
            admin.register_model(model, "binary", features(), segments=["segment"])
        answer, seconds, latencies = send_concurrently(
            url, key, model, "predictions", data, body, batch_size, in_flight
        )
        _check(answer.accepted == predictions.num_rows, f"{model}: accepted {answer.accepted}")
        results.append(
            Measured(
                f"HTTP predictions ({body})",
                store_name,
                body,
                answer.events,
                seconds,
                latencies,
                target,
                note=_retries(answer.retries),
                in_flight=in_flight,
            )
        )
    answer, seconds, latencies = send_concurrently(
        url, key, labeled_model, "labels", labels, "arrow", batch_size, in_flight
    )
    _check(
        answer.accepted == labels.num_rows and answer.unmatched == 0, f"labels: {answer.to_dict()}"
    )
    results.append(
        Measured(
            "HTTP labels (arrow)",
            store_name,
            "arrow",
            answer.events,
            seconds,
            latencies,
            note=_retries(answer.retries),
            in_flight=in_flight,
        )
    )
    with assay.Client(url, key, timeout=120) as client:
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
            role="eval",
            in_flight=in_flight,
        )
    )
    return results


def _retries(count: int) -> str:
    return f"{count} retries (429/503)" if count else ""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench: wrong answer: {what}")


# --- profiling ------------------------------------------------------------------------


class _ProfiledStore:
    """A store whose appends run under a cProfile profiler (they run on the writer thread)."""

    def __init__(self, store: Any, profiler: cProfile.Profile):
        self._store, self._profiler = store, profiler

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in ("append_predictions", "append_labels", "append_many", "idempotent_answer"):
            return attribute

        def profiled(*args: Any, **kwargs: Any) -> Any:
            self._profiler.enable()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._profiler.disable()

        return profiled


def profile(events: int, batch_size: int, seed: int, top: int, in_flight: int) -> None:
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
            with assay.Client(url, key) as client:
                client.register_model("bench", "binary", features(), segments=["segment"])
            _, seconds, _ = send_concurrently(
                url, key, "bench", "predictions", data[body], body, batch_size, in_flight
            )
            writer = app.state.writer
            server.should_exit = True
            thread.join(30)
            control.close()
            print(
                f"\n=== {body} bodies: {events:,} events in {seconds:.2f} s "
                f"({events / seconds:,.0f} events/s, {in_flight} in flight, client in the same "
                f"process); {writer.grouped_jobs} batches in {writer.groups} transactions ==="
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per contender")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight, measured beside 1 in flight"
    )
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
        profile(args.events, args.batch_size, args.seed, args.top, args.concurrency)
        return
    load = load_average()
    levels = sorted({1, max(1, args.concurrency)})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    print(f"generating {args.events:,} events (20 features) ...", flush=True)
    predictions = make_predictions(args.events, args.seed, "p", now)
    events = as_events(predictions)
    labels = make_labels(predictions, args.label_share, args.seed + 1, now)
    tables, label_tables = batches(predictions, args.batch_size), batches(labels, args.batch_size)
    print("bare HTTP round trips ...", flush=True)
    results: list[Measured] = measure_bare_http(predictions, events, args.batch_size, levels)
    with contextlib.ExitStack() as stack:
        targets: list[tuple[str, str | None]] = [("duckdb", None)]
        if args.store:
            targets.append(("postgresql", stack.enter_context(postgres_database(args.store))))
        for store_name, url in targets:
            print(f"[{store_name}] bare commits and storage floor ...", flush=True)
            results += [measure_bare_commit(store_name, url) for _ in range(args.repeat)]
            results += measure_floor(store_name, url, tables, label_tables, args.repeat, levels)
            data_dir = Path(tempfile.mkdtemp(prefix="assay-bench-"))
            try:
                with served(data_dir, url) as (server, key):
                    for in_flight in levels:
                        print(f"[{store_name}] HTTP ingest, {in_flight} in flight ...", flush=True)
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
                                in_flight,
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
