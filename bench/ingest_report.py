"""The tables and the RESULTS.md section of ``bench/ingest.py`` (no measuring here)."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

import assay

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
TARGET_JSON, TARGET_ARROW, TARGET_P99_MS = 50_000, 500_000, 250.0


@dataclass
class Measured:
    """One contender's run: events, wall seconds, per-request latencies.

    ``role``: ``floor`` (the store in process), ``bare`` (an HTTP round trip or a commit
    with no Assay work), ``http`` (Assay served), ``eval`` (the first evaluation).
    """

    name: str
    store: str
    body: str
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    target: float | None = None  # events/s
    note: str = ""
    role: str = "http"
    in_flight: int = 1

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    def quantile_ms(self, q: float) -> float:
        return float(np.quantile(self.latencies, q) * 1000) if self.latencies else float("nan")


HEADERS = [
    "contender",
    "store",
    "in flight",
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
    text = f"≥ {m.target:,.0f}/s: {rate}; p99 ≤ {TARGET_P99_MS:.0f} ms: {p99}"
    return f"{text}; {m.note}" if m.note else text


def target_lines(results: list[Measured]) -> list[str]:
    """One line per target with the measured values (each number of requests in flight)."""
    lines = []
    for body, target in (("json", TARGET_JSON), ("arrow", TARGET_ARROW)):
        runs = [m for m in results if m.role == "http" and m.name == f"HTTP predictions ({body})"]
        if runs:
            values = ", ".join(
                f"{m.store} {m.in_flight} in flight {m.rate:,.0f} "
                f"({'met' if m.rate >= target else '**missed**'})"
                for m in runs
            )
            lines.append(f"- {body.upper()} bodies ≥ {target:,} events/s: {values}")
    timed = [m for m in results if m.role == "http" and m.latencies]
    if timed:
        worst = max(timed, key=lambda m: m.quantile_ms(0.99))
        ok = worst.quantile_ms(0.99) <= TARGET_P99_MS
        lines.append(
            f"- {'met' if ok else '**missed**'}: p99 batch latency ≤ "
            f"{TARGET_P99_MS:.0f} ms (worst: {worst.name}, {worst.store}, "
            f"{worst.in_flight} in flight, {worst.quantile_ms(0.99):.1f} ms)"
        )
    return lines


def table_rows(results: list[Measured]) -> list[list[str]]:
    floors = {
        (m.store, "labels" if "labels" in m.name else "predictions", m.in_flight): m
        for m in results
        if m.role == "floor"
    }
    rows = []
    for m in results:
        if m.events == 0:
            rows.append([m.name, m.store, "-", "-", f"{m.seconds:.2f}", "-", "-", "-", "-", m.note])
            continue
        kind = "labels" if "labels" in m.name else "predictions"
        floor = floors.get((m.store, kind, m.in_flight)) if m.role == "http" else None
        times = f"{floor.rate / m.rate:.1f}×" if floor and m.rate else "-"
        rows.append(
            [
                m.name,
                m.store,
                str(m.in_flight),
                f"{m.events:,}",
                f"{m.seconds:.2f}",
                f"{m.rate:,.0f}",
                "1.0×" if m.role == "floor" else times,
                f"{m.quantile_ms(0.5):.1f}",
                f"{m.quantile_ms(0.99):.1f}",
                _target_text(m) if m.role == "http" else m.note or m.role,
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
    """The best run of each (contender, store, in flight): most events/s, or least seconds."""
    best: dict[tuple[str, str, int], Measured] = {}
    for m in results:
        key = (m.name, m.store, m.in_flight)
        held = best.get(key)
        if held is None or (m.rate > held.rate if m.events else m.seconds < held.seconds):
            best[key] = m
    return list(best.values())


def runs_text(results: list[Measured]) -> str:
    """Every run's events/s (seconds for the evaluation), per contender."""
    runs: dict[tuple[str, str, int], list[str]] = {}
    for m in results:
        value = f"{m.rate:,.0f}/s" if m.events else f"{m.seconds:.2f} s"
        runs.setdefault((m.name, m.store, m.in_flight), []).append(value)
    return "; ".join(
        f"{name} [{store}, {c} in flight] " + " / ".join(v) for (name, store, c), v in runs.items()
    )


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def record(
    results: list[Measured], args: argparse.Namespace, about: str, load: str, every: str
) -> None:
    """Append this run as a Markdown section of RESULTS.md."""
    stores = "DuckDB and PostgreSQL" if args.store else "DuckDB"
    levels = sorted({1, args.concurrency})
    flight = " and ".join(str(c) for c in levels)
    lines = [
        f"## {utc_stamp()}: ingest through HTTP, {args.events:,} events ({stores})",
        "",
        f"Produced by `python bench/ingest.py --events {args.events} --batch-size "
        f"{args.batch_size} --concurrency {args.concurrency}"
        f"{' --store postgresql://...' if args.store else ''} --record`: `assay serve` on "
        "127.0.0.1, a binary model with 16 numeric + 4 categorical features and a 5-value "
        f"segment, events sent with `assay.Client` in batches of {args.batch_size:,}, with "
        f"{flight} request(s) in flight (one client thread each); labels for "
        f"{args.label_share:.0%} of the events in shuffled order; then the first "
        "`GET /evaluations` (rebuilds the rollups of every dirty bucket). *store append* is "
        "the storage floor: `Store.append_predictions` / `append_labels` in process on tables "
        "already validated (with N in flight: `Store.append_many` of N batches, as the "
        "server's group commit does). *bare* rows are measured in the same run: an HTTP "
        "POST of the same bodies to a no-op FastAPI route under uvicorn (the least any "
        "Python HTTP server does per request), and a durable one-row commit. *× floor* is "
        "the floor's events/s (same in flight) divided by the contender's; p50/p99 are per "
        "request, client side.",
        "",
        f"Machine: {about}. Load average before the run: {load}.",
        "",
    ]
    lines += markdown(results)
    lines += [
        "",
        f"Best of {args.repeat} run(s) (fresh models each); every run: {every}. "
        f"Load average after the run: {load_average()}.",
    ]
    lines += ["", "Targets:", "", *target_lines(results)]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"\nrecorded in {RESULTS.relative_to(BENCH_DIR.parent)}")
