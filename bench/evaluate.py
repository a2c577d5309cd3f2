"""Benchmark of ``assay.evaluate`` against a read-only floor and a scikit-learn + scipy baseline.

Usage (from the repository root)::

    python bench/evaluate.py --rows 1000000 [--rows 10000000] [--data-dir bench/data] [--record]

For each ``--rows`` the script generates (once, seeded, then re-used) a reference and a current
window as Parquet files, then times three contenders on the same files, each in a fresh
subprocess so that its peak RSS is its own:

* ``floor``: read both files (all columns, pyarrow) and one numpy pass over every numeric column;
* ``baseline``: scikit-learn + scipy called column by column (metrics overall and per segment, a
  hand-written ECE, and ks / wasserstein / PSI / Jensen-Shannon / chi2 drift per feature);
* ``assay``: ``assay.evaluate`` with a reference and a segment column, intervals included.

It prints a table (seconds, multiple of the floor, peak RSS) and, with ``--record``, appends it
to ``bench/RESULTS.md`` with the date and a description of the machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
DEFAULT_DATA_DIR = BENCH_DIR / "data"
GENERATOR_VERSION = 1
CHUNK_ROWS = 1_000_000  # rows generated (and written as one row group) at a time
CONTENDERS = ("floor", "baseline", "assay")
RESULT_MARKER = "BENCH-RESULT "

# --- the data ---------------------------------------------------------------------------------

# name -> (distribution, parameters, null share); parameters are (loc, scale) for normal,
# (mean, sigma) of the log for lognormal and (scale,) for exponential.
NUMERIC: dict[str, tuple[str, tuple[float, ...], float]] = {
    "num_00": ("normal", (0.0, 1.0), 0.0),
    "num_01": ("normal", (10.0, 2.0), 0.0),
    "num_02": ("normal", (-5.0, 0.5), 0.0),
    "num_03": ("normal", (0.0, 3.0), 0.05),
    "num_04": ("normal", (100.0, 15.0), 0.0),
    "num_05": ("normal", (1.0, 0.1), 0.0),
    "num_06": ("lognormal", (0.0, 1.0), 0.0),
    "num_07": ("lognormal", (3.0, 0.5), 0.0),
    "num_08": ("lognormal", (1.0, 0.8), 0.05),
    "num_09": ("lognormal", (5.0, 1.2), 0.0),
    "num_10": ("lognormal", (-1.0, 0.3), 0.0),
    "num_11": ("exponential", (1.0,), 0.0),
    "num_12": ("exponential", (5.0,), 0.0),
    "num_13": ("exponential", (0.2,), 0.05),
    "num_14": ("exponential", (50.0,), 0.0),
    "num_15": ("exponential", (2.0,), 0.0),
}
# Drift injected into the current window: name -> (parameters, null share) replacing the above.
NUMERIC_DRIFT: dict[str, tuple[tuple[float, ...], float]] = {
    "num_00": ((0.5, 1.0), 0.0),  # mean shift of half a standard deviation
    "num_01": ((10.0, 3.0), 0.0),  # wider
    "num_08": ((1.1, 0.8), 0.08),  # slightly shifted, more nulls
    "num_12": ((6.0,), 0.0),  # longer tail
}
CATEGORY_LEVELS = {"cat_03": 3, "cat_08": 8, "cat_20": 20, "cat_50": 50}
UNSEEN_COLUMN, UNSEEN_SHARE = "cat_08", 0.02  # current only: an unseen level in 2% of rows
SHIFTED_COLUMN = "cat_20"  # current only: level probabilities tilted
SEGMENTS = ("north", "south", "east", "west", "online")
SEGMENT_SHARES = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
SEGMENT_EFFECTS = np.array([0.0, -0.2, 0.1, 0.2, -0.3])
INTERCEPT = -3.8  # gives a positive rate of about 5%


def _zipf_shares(levels: int, tilt: float = 1.0) -> np.ndarray:
    shares = 1.0 / np.arange(1, levels + 1) ** tilt
    return shares / shares.sum()


def _categorical(
    rng: np.random.Generator, shares: np.ndarray, labels: list[str], n: int
) -> pa.Array:
    codes = np.searchsorted(np.cumsum(shares), rng.random(n) * shares.sum(), side="right")
    codes = np.minimum(codes, len(labels) - 1).astype(np.int32)
    return pa.DictionaryArray.from_arrays(codes, pa.array(labels)).cast(pa.string())


def _chunk(rng: np.random.Generator, start: int, n: int, current: bool) -> pa.Table:
    """``n`` rows of one window; vectorised, reproducible from ``rng``."""
    columns: dict[str, pa.Array] = {"id": pa.array(np.arange(start, start + n, dtype=np.int64))}
    raw: dict[str, np.ndarray] = {}
    for name, (dist, params, null_share) in NUMERIC.items():
        if current and name in NUMERIC_DRIFT:
            params, null_share = NUMERIC_DRIFT[name]
        if dist == "normal":
            values = rng.normal(params[0], params[1], n)
        elif dist == "lognormal":
            values = rng.lognormal(params[0], params[1], n)
        else:
            values = rng.exponential(params[0], n)
        raw[name] = values
        mask = rng.random(n) < null_share if null_share else None
        columns[name] = pa.array(values, mask=mask)
    for name, levels in CATEGORY_LEVELS.items():
        labels = [f"{name[-2:]}_{i:02d}" for i in range(levels)]
        shares = _zipf_shares(levels)
        if current and name == SHIFTED_COLUMN:
            shares = _zipf_shares(levels, tilt=0.8)
        if current and name == UNSEEN_COLUMN:
            labels = [*labels, f"{name[-2:]}_new"]
            shares = np.append(shares * (1 - UNSEEN_SHARE), UNSEEN_SHARE)
        columns[name] = _categorical(rng, shares, labels, n)
    segment = np.searchsorted(np.cumsum(SEGMENT_SHARES), rng.random(n), side="right")
    segment = np.minimum(segment, len(SEGMENTS) - 1)
    columns["segment"] = pa.DictionaryArray.from_arrays(
        segment.astype(np.int32), pa.array(list(SEGMENTS))
    ).cast(pa.string())
    # The outcome depends on two undrifted features and the segment; the model sees it with noise.
    logit = (
        INTERCEPT
        + 0.9 * (raw["num_04"] - 100.0) / 15.0
        + 0.6 * np.log(raw["num_06"])
        + SEGMENT_EFFECTS[segment]
        + rng.standard_normal(n)
    )
    target = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    score = 1.0 / (1.0 + np.exp(-(logit + 0.5 * rng.standard_normal(n))))
    columns["score"] = pa.array(score)
    columns["prediction"] = pa.array((score >= 0.5).astype(np.int8))
    columns["target"] = pa.array(target.astype(np.int8))
    return pa.table(columns)


def _write_window(path: Path, rows: int, seed: int, current: bool) -> None:
    tmp = path.with_suffix(".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, rows - start)
            rng = np.random.default_rng([seed, int(current), index])
            table = _chunk(rng, start + (rows if current else 0), n, current)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def window_paths(data_dir: Path, rows: int) -> tuple[Path, Path]:
    """The reference and current files of a run with ``rows`` rows per window."""
    return data_dir / f"reference-{rows}.parquet", data_dir / f"current-{rows}.parquet"


def ensure_data(data_dir: Path, rows: int, seed: int) -> tuple[Path, Path, bool]:
    """Generate the two windows unless files with the same parameters already exist."""
    ref, cur = window_paths(data_dir, rows)
    meta_path = data_dir / f"parameters-{rows}.json"
    meta = {"generator": GENERATOR_VERSION, "rows": rows, "seed": seed, "chunk_rows": CHUNK_ROWS}
    if ref.exists() and cur.exists() and meta_path.exists():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return ref, cur, False
        except json.JSONDecodeError:
            pass
    data_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    _write_window(ref, rows, seed, current=False)
    _write_window(cur, rows, seed, current=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return ref, cur, True


# --- the contenders ---------------------------------------------------------------------------


def run_floor(ref: Path, cur: Path) -> dict[str, Any]:
    """Read each file (all columns) and take one numpy pass over every numeric column."""
    total = 0.0
    for path in (ref, cur):
        table = pq.read_table(path)
        for column in table.itercolumns():
            if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
                total += float(np.nansum(column.to_numpy()))
        del table
    return {"checksum": total}


def _load_numpy(
    path: Path,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, list[str]]]]:
    """Numeric columns as float/int arrays (nulls as NaN), strings as (codes, labels)."""
    schema = pq.read_schema(path)
    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    table = pq.read_table(path, read_dictionary=strings).unify_dictionaries()
    numeric: dict[str, np.ndarray] = {}
    coded: dict[str, tuple[np.ndarray, list[str]]] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in strings:
            codes = np.concatenate(
                [c.indices.to_numpy(zero_copy_only=False) for c in column.chunks]
            )
            labels = column.chunk(0).dictionary.to_pylist() if column.num_chunks else []
            coded[name] = (codes, labels)
        else:
            numeric[name] = column.to_numpy()
    return numeric, coded


def run_baseline(ref: Path, cur: Path) -> dict[str, Any]:
    """scikit-learn + scipy, column by column, on numpy arrays read with pyarrow."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance
    from sklearn import metrics as skm

    ref_num, ref_cat = _load_numpy(ref)
    cur_num, cur_cat = _load_numpy(cur)
    y, s, pred = cur_num["target"], cur_num["score"], cur_num["prediction"]

    def binary_metrics(yy: np.ndarray, ss: np.ndarray, pp: np.ndarray) -> dict[str, float]:
        out = {
            "accuracy": skm.accuracy_score(yy, pp),
            "precision": skm.precision_score(yy, pp, zero_division=0),
            "recall": skm.recall_score(yy, pp, zero_division=0),
            "f1": skm.f1_score(yy, pp, zero_division=0),
            "roc_auc": skm.roc_auc_score(yy, ss),
            "average_precision": skm.average_precision_score(yy, ss),
            "log_loss": skm.log_loss(yy, ss, labels=[0, 1]),
            "brier": skm.brier_score_loss(yy, ss),
        }
        bins = np.minimum((ss * 10).astype(np.int64), 9)
        counts = np.bincount(bins, minlength=10)
        gap = np.bincount(bins, weights=ss - yy, minlength=10)
        out["ece"] = float(np.abs(gap).sum() / counts.sum())  # sum_b n_b/N * |mean(s - y)_b|
        return {k: float(v) for k, v in out.items()}

    result: dict[str, Any] = {"overall": binary_metrics(y, s, pred), "by_segment": {}}
    seg_codes, seg_labels = cur_cat["segment"]
    for code, label in enumerate(seg_labels):
        rows = seg_codes == code
        result["by_segment"][label] = binary_metrics(y[rows], s[rows], pred[rows])

    drift: dict[str, dict[str, float]] = {}
    skip = {"id", "target", "prediction"}
    for name in (n for n in ref_num if n not in skip):
        a, b = ref_num[name], cur_num[name]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        ks = ks_2samp(a, b)
        edges = np.unique(np.quantile(a, np.arange(1, 10) / 10.0))
        bins = np.concatenate(([-np.inf], edges, [np.inf]))
        p = np.histogram(a, bins)[0] / a.size
        q = np.histogram(b, bins)[0] / b.size
        pf, qf = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
        drift[name] = {
            "ks": float(ks.statistic),
            "ks_p": float(ks.pvalue),
            "wasserstein": float(wasserstein_distance(a, b)),
            "psi": float(np.sum((qf - pf) * np.log(qf / pf))),
            "jensen_shannon": float(jensenshannon(p, q, base=2)),
        }
    for name in (n for n in ref_cat if n != "segment"):
        (rc, rl), (cc, cl) = ref_cat[name], cur_cat[name]
        union = sorted(set(rl) | set(cl))
        table = np.zeros((2, len(union)))
        for row, (codes, labels) in enumerate(((rc, rl), (cc, cl))):
            where = np.searchsorted(union, labels)
            table[row, where] = np.bincount(codes, minlength=len(labels))
        chi2 = chi2_contingency(table, correction=False)
        drift[name] = {
            "chi2": float(chi2.statistic),
            "chi2_p": float(chi2.pvalue),
            "jensen_shannon": float(
                jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2)
            ),
        }
    result["drift"] = drift
    return {
        "roc_auc": result["overall"]["roc_auc"],
        "ks_num_00": drift["num_00"]["ks"],
        "chi2_cat_08": drift["cat_08"]["chi2"],
    }


def run_assay(ref: Path, cur: Path) -> dict[str, Any]:
    """The full ``assay.evaluate`` (metrics with intervals, segments, drift, prediction drift)."""
    import assay

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = assay.evaluate(
            str(cur),
            reference=str(ref),
            task="binary",
            target="target",
            score="score",
            prediction="prediction",
            segments=["segment"],
        )
    return {
        "roc_auc": r.metrics["overall"]["roc_auc"],
        "ks_num_00": r.drift["num_00"]["ks"]["statistic"],
        "chi2_cat_08": r.drift["cat_08"]["chi2"]["statistic"],
        "drifted": sorted(k for k, v in r.drift.items() if v.get("drifted")),
    }


RUNNERS: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "floor": run_floor,
    "baseline": run_baseline,
    "assay": run_assay,
}


def _preload(name: str) -> None:
    """Import what a contender needs before the clock starts."""
    modules = {"baseline": ["scipy.spatial.distance", "scipy.stats", "sklearn.metrics"]}
    for module in modules.get(name, []):
        importlib.import_module(module)
    if name == "assay":  # ``import assay`` is lazy: load what ``assay.evaluate`` needs
        _ = importlib.import_module("assay").evaluate


def assay_digest() -> str:
    """A short digest of the installed assay package's source, to tell engine versions apart."""
    import hashlib

    import assay

    root = Path(assay.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, else KiB


def run_only(name: str, rows: int, data_dir: Path, repeat: int) -> None:
    """Child process: time one contender ``repeat`` times, print one JSON line."""
    ref, cur = window_paths(data_dir, rows)
    _preload(name)
    times: list[float] = []
    check: dict[str, Any] = {}
    for _ in range(repeat):
        started = time.perf_counter()
        check = RUNNERS[name](ref, cur)
        times.append(time.perf_counter() - started)
    if name == "assay":
        check["source"] = assay_digest()
    line = {
        "name": name,
        "seconds": min(times),
        "all": times,
        "rss": _peak_rss_mib(),
        "check": check,
    }
    print(RESULT_MARKER + json.dumps(line), flush=True)


# --- the parent -------------------------------------------------------------------------------


@dataclass
class Measured:
    """One contender's best wall time and peak RSS at one size."""

    name: str
    rows: int
    seconds: float
    all_seconds: list[float]
    rss_mib: float
    check: dict[str, Any]


def measure(name: str, rows: int, data_dir: Path, repeat: int) -> Measured:
    """Run one contender in a fresh interpreter."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--rows", str(rows)]
    cmd += ["--data-dir", str(data_dir), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"contender {name!r} failed (exit code {done.returncode})")
    out = json.loads(lines[-1][len(RESULT_MARKER) :])
    return Measured(name, rows, out["seconds"], out["all"], out["rss"], out["check"])


def targets(rows: int, by_name: dict[str, Measured]) -> list[tuple[str, bool]]:
    """The targets that apply at ``rows`` and whether they are met, on both readings."""
    floor, base, mine = by_name["floor"], by_name["baseline"], by_name["assay"]
    out: list[tuple[str, bool]] = []
    for reading, pick in READINGS:
        ratio = pick(mine) / pick(floor)
        speedup = pick(base) / pick(mine)
        if rows in (1_000_000, 10_000_000):
            out.append((f"assay ≤ 2× floor, {reading} (is {ratio:.2f}×)", ratio <= 2.0))
        if rows == 1_000_000:
            text = f"assay ≥ 5× faster than baseline, {reading} (is {speedup:.2f}×)"
            out.append((text, speedup >= 5.0))
    if rows == 10_000_000:
        out.append((f"assay peak RSS ≤ 2 GiB (is {mine.rss_mib:,.0f} MiB)", mine.rss_mib <= 2048))
    return out


# the two readings of each contender: its first run in a fresh process (what a one-off
# ``assay evaluate`` costs, memory first touched and pools cold) and its best warm repeat
READINGS: list[tuple[str, Callable[[Measured], float]]] = [
    ("first run", lambda m: m.all_seconds[0]),
    ("warm", lambda m: m.seconds),
]


def table_rows(results: list[Measured]) -> list[list[str]]:
    """The cells of the result table."""
    floor = next(r for r in results if r.name == "floor")
    return [
        [
            r.name,
            f"{r.rows:,}",
            f"{r.all_seconds[0]:.3f}",
            f"{r.all_seconds[0] / floor.all_seconds[0]:.2f}×",
            f"{r.seconds:.3f}",
            f"{r.seconds / floor.seconds:.2f}×",
            f"{r.rss_mib:,.0f}",
        ]
        for r in results
    ]


HEADERS = [
    "contender",
    "rows",
    "first run s",
    "× floor",
    "warm s",
    "× floor",
    "peak RSS MiB",
]


def print_table(results: list[Measured], repeat: int) -> None:
    """The plain-text table, speed-up, targets and a cross-check of a few values."""
    cells = [HEADERS, *table_rows(results)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    for i, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    by_name = {r.name: r for r in results}
    base_s, mine_s = by_name["baseline"], by_name["assay"]
    print(
        "assay vs baseline speed-up: "
        f"{base_s.all_seconds[0] / mine_s.all_seconds[0]:.2f}× first run, "
        f"{base_s.seconds / mine_s.seconds:.2f}× warm"
    )
    print(f"(warm: best of {repeat}; each contender in a fresh process)")
    for text, ok in targets(results[0].rows, by_name):
        print(f"target {'met   ' if ok else 'MISSED'}: {text}")
    base, mine = by_name["baseline"].check, by_name["assay"].check
    print(
        "cross-check (baseline / assay): "
        + ", ".join(f"{k} {base[k]:.6g} / {mine[k]:.6g}" for k in base)
    )
    print(f"features assay flags as drifted: {', '.join(mine.get('drifted', [])) or 'none'}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> str:
    """CPU, cores, RAM and library versions; no host names, no paths."""
    import scipy
    import sklearn

    import assay

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (
        f"{_cpu_model()}, {cores} cores ({usable} usable), {_ram_gib()} RAM; "
        f"{platform.system()} {platform.machine()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, assay {assay.__version__}"
    )


RESULTS_HEADER = """\
# Benchmark results

Sections are appended by the scripts in `bench/` when run with `--record` (see
`bench/README.md`); each names its script and states the machine it ran on.

## What the `evaluate` sections measure

`python bench/evaluate.py --rows N --record`: a reference and a current window of N rows each
(16 numeric features, 4 categorical features, a 5-value segment column, score, prediction,
binary target at ~5% prevalence; seeded) stored as Parquet, and three contenders timed on the
same files, each in a fresh process:

* **floor**: read both files, all columns, with pyarrow, plus one numpy pass (`np.nansum`) over
  every numeric column. Nothing that reads the data can be much faster.
* **baseline**: scikit-learn + scipy called column by column on numpy arrays read with pyarrow:
  8 sklearn metrics overall and per segment, an ECE by hand, and for every numeric feature and
  the score `ks_2samp`, `wasserstein_distance`, PSI and `jensenshannon` on reference deciles; for
  every categorical `chi2_contingency` and `jensenshannon`. No intervals.
* **assay**: `assay.evaluate(current, reference=..., task="binary", prediction="prediction",
  segments=["segment"])`: the same metrics with 95% intervals, metrics of the reference window,
  curves, drift of every feature and of the score, drift rule applied.

*first run s* is the wall time of the contender's first run in its fresh process (what a one-off
`assay evaluate` costs: memory first touched, thread pools cold, files in the OS page cache);
*warm s* is the best of the repeats in that process; each *× floor* divides by the floor's time
in the same reading. *peak RSS* is `ru_maxrss` of the contender's process (interpreter and
imports included). The load average shows whether other work shared the machine.

Targets: at 1M rows, assay ≤ 2× floor and ≥ 5× faster than the baseline; at 10M rows, assay
≤ 2× floor with peak RSS ≤ 2 GiB.
"""


def record(results: list[Measured], repeat: int, load: tuple[str, str]) -> None:
    """Append a Markdown section for this run to RESULTS.md (created with a header)."""
    rows = results[0].rows
    by_name = {r.name: r for r in results}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {stamp}: evaluate, {rows:,} rows per window", "", f"Machine: {machine()}.", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "|".join(["---", *["---:"] * (len(HEADERS) - 1)]) + "|")
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    base, mine = by_name["baseline"], by_name["assay"]
    first, warm = base.all_seconds[0] / mine.all_seconds[0], base.seconds / mine.seconds
    lines += [
        "",
        f"assay vs baseline speed-up: **{first:.2f}×** first run, **{warm:.2f}×** warm "
        f"(best of {repeat}).",
    ]
    runs = "; ".join(f"{r.name} " + " / ".join(f"{t:.2f}" for t in r.all_seconds) for r in results)
    source = by_name["assay"].check.get("source", "unknown")
    lines += ["", f"Every run (s): {runs}."]
    lines += [f"Load average (1/5/15 min) before the run: {load[0]}; after: {load[1]}."]
    lines += [f"assay source digest: `{source}` (sha256 of the package's .py files)."]
    checks = targets(rows, by_name)
    if checks:
        lines += ["", "Targets:", ""]
        lines += [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in checks]
    section = "\n" + "\n".join(lines) + "\n"
    if RESULTS.exists():  # append: other bench scripts record into the same file
        with RESULTS.open("a") as out:
            out.write(section)
    else:
        RESULTS.write_text(RESULTS_HEADER + section)


class _SerialExecutor(Executor):
    """Stands in for assay's thread pools while profiling, so cProfile sees every call."""

    def __init__(self, max_workers: int | None = None, **_: Any) -> None:
        del max_workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:
            future.set_exception(err)
        return future


def profile_assay(rows: int, data_dir: Path, top: int = 15) -> None:
    """Print the ``top`` cumulative and own-time entries of a cProfile of ``assay.evaluate``.

    cProfile sees only the main thread, so every ``ThreadPoolExecutor`` of the assay modules is
    replaced by a serial one for the profile: its total is the single-threaded time. One
    unprofiled warm-up run comes first.
    """
    import cProfile
    import pstats

    ref, cur = window_paths(data_dir, rows)
    _preload("assay")
    run_assay(ref, cur)  # warm-up: lazy imports and first-touch memory stay out of the profile
    patched = [
        module
        for name, module in list(sys.modules.items())
        if name.split(".")[0] == "assay" and hasattr(module, "ThreadPoolExecutor")
    ]
    for module in patched:
        module.ThreadPoolExecutor = _SerialExecutor  # type: ignore[attr-defined]
    profiler = cProfile.Profile()
    try:
        profiler.runcall(run_assay, ref, cur)
    finally:
        for module in patched:
            module.ThreadPoolExecutor = ThreadPoolExecutor  # type: ignore[attr-defined]
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per window (repeatable)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where the Parquet files go"
    )
    parser.add_argument(
        "--repeat", type=int, help="timed runs per contender (default 3 below 5M rows, else 1)"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="data generator seed")
    parser.add_argument("--record", action="store_true", help="append the results to RESULTS.md")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of assay.evaluate instead"
    )
    parser.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    for rows in args.rows or [1_000_000]:
        repeat = args.repeat or (3 if rows < 5_000_000 else 1)
        if args.only:
            run_only(args.only, rows, data_dir, repeat)
            continue
        started = time.perf_counter()
        _, _, generated = ensure_data(data_dir, rows, args.seed)
        verb = "generated" if generated else "re-used"
        print(f"\n{rows:,} rows per window: data {verb} ({time.perf_counter() - started:.1f} s)")
        if args.profile:
            profile_assay(rows, data_dir)
            continue
        load_before = _load_average()
        results = [measure(name, rows, data_dir, repeat) for name in CONTENDERS]
        load = (load_before, _load_average())
        print_table(results, repeat)
        print(
            "every run (s): "
            + "; ".join(f"{r.name} {[round(t, 3) for t in r.all_seconds]}" for r in results)
        )
        print(f"load average before the run: {load[0]}; after: {load[1]}")
        print(f"assay source digest: {results[-1].check.get('source')}")
        if args.record:
            record(results, repeat, load)
            print(f"recorded in {RESULTS.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
