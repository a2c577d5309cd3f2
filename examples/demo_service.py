"""`make demo`, part two: Assay as a service on the embedded store.

Starts `assay serve`, creates a key with `assay keys create` while it runs, registers the
fraud model, replays two weeks of production traffic (predictions as they happen, labels
three days later, drift from day 8), then prints the evaluation of each day with its
label completeness and the alerts, runs a canary and a shadow rollout (demo_rollouts.py),
and stops the server it started.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from demo_rollouts import run_rollouts  # beside this script
from rich.console import Console
from rich.table import Table

from assay.simulate import DECISION_THRESHOLD, production_stream

ARROW = "application/vnd.apache.arrow.stream"
PERFORMANCE_MONITOR = "fraud-auc-low"  # examples/assay.yaml: the day's ROC AUC below 0.75
MODEL = {
    "name": "fraud",
    "task": "binary",
    "threshold": DECISION_THRESHOLD,
    "features": {"amount": "numeric", "age": "numeric", "tenure_years": "numeric",
                 "device_score": "numeric", "hour": "numeric", "country": "categorical"},
    "segments": ["channel"],
}  # fmt: skip


def main() -> int:
    """Run the service demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--per-day", type=int, default=4000)
    parser.add_argument("--alertmanager", metavar="URL",
                        help="also deliver the alerts to this Alertmanager")  # fmt: skip
    args = parser.parse_args()
    console = Console(width=120)
    data_dir = args.out / "assay-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    assay = str(Path(sys.executable).with_name("assay"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = _demo_config(args.out, data_dir, args.alertmanager)
    server = subprocess.Popen(
        [assay, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
         "--config", str(config)],
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_ready(url, server)
        console.print(f"[bold]assay serve[/bold] is up on {url} (embedded DuckDB store)")
        created = subprocess.run(
            [assay, "keys", "create", "--data-dir", str(data_dir), "--tenant", "demo",
             "--role", "admin"], check=True, capture_output=True, text=True,
        )  # fmt: skip
        key = created.stdout.strip().splitlines()[-1]
        console.print("created an admin key with `assay keys create` while the server runs")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                          timeout=60) as http:  # fmt: skip
            _check(http.post("/v1/models", json=MODEL))
            predictions, labels = replay(http, console, args.days, args.per_day)
            report = _check(http.get("/v1/models/fraud/evaluations",
                                     params={"window": "1d", "segment": "channel"}))  # fmt: skip
            print_days(report, console)
            print_alerts(_wait_for_alerts(http), console)
            run_rollouts(http, console, predictions, labels, args.out,
                         lambda kind, table: _send(http, kind, table))  # fmt: skip
    finally:
        _stop(server)
    return 0


def replay(
    http: httpx.Client, console: Console, days: int, per_day: int
) -> tuple[pa.Table, pa.Table]:
    """Send each day's predictions, and the labels that arrive that day; answer both."""
    predictions, labels = production_stream(days=days, per_day=per_day, drift_day=days // 2 + 1)
    start = predictions.column("timestamp")[0].as_py().replace(hour=0, minute=0, second=0)
    started = time.perf_counter()
    sent = {"predictions": 0, "labels": 0}
    for day in range(days + 4):
        lo, hi = start + timedelta(days=day), start + timedelta(days=day + 1)
        for kind, table in (("predictions", predictions), ("labels", labels)):
            today = _between(table, lo, min(hi, datetime.now(UTC)))
            sent[kind] += _send(http, kind, today)
        if day == 2:  # the first three days become the drift reference
            _check(
                http.post(
                    "/v1/models/fraud/reference",
                    json={
                        "start": start.isoformat(),
                        "end": (start + timedelta(days=3)).isoformat(),
                    },
                )
            )
            console.print("reference: the first three days of stored predictions")
    elapsed = time.perf_counter() - started
    console.print(f"replayed {sent['predictions']:,} predictions and {sent['labels']:,} labels "
                  f"in {elapsed:.1f} s ({(sent['predictions'] + sent['labels']) / elapsed:,.0f} "
                  "events/s over HTTP with Arrow bodies)")  # fmt: skip
    return predictions, labels


def _send(http: httpx.Client, kind: str, table: pa.Table) -> int:
    """Post ``table`` (predictions or labels) in Arrow batches; answer the accepted count."""
    accepted = 0
    for offset in range(0, table.num_rows, 2000):
        batch = table.slice(offset, 2000)
        answer = _check(http.post(f"/v1/models/fraud/{kind}", content=_arrow(batch),
                                  headers={"Content-Type": ARROW}))  # fmt: skip
        accepted += answer["accepted"]
    return accepted


def print_days(report: dict[str, Any], console: Console) -> None:
    """One row per day: volume, label completeness, ROC AUC, the partner channel, drift."""
    table = Table(title="Evaluations per day (GET /v1/models/fraud/evaluations?window=1d)",
                  title_justify="left")  # fmt: skip
    for column in ("day", "rows", "labeled", "completeness", "roc_auc [95% CI]",
                   "partner roc_auc", "drifted"):  # fmt: skip
        table.add_column(column)
    for w in report["windows"]:
        m = w["metrics"]
        partner = w.get("segments", {}).get("partner", {}).get("metrics", {})
        drifted = [n.replace("(output) ", "") for n, d in w["drift"].items() if d.get("drifted")]
        table.add_row(
            w["start"][5:10], f"{w['rows']:,}", f"{w['labeled']:,}",
            f"{w['label_completeness']:.0%}" if w["label_completeness"] is not None else "n/a",
            _metric(m, "roc_auc"), _metric(partner, "roc_auc"), ", ".join(drifted) or "-",
        )  # fmt: skip
    console.print(table)
    console.print(
        "Recent days are partly labeled: their labels arrive three days later. "
        "Drift appears from the drift day on; ROC AUC on the partner channel drops."
    )


def print_alerts(alerts: list[dict[str, Any]], console: Console) -> None:
    """The alerts the server's monitor schedule raised (examples/assay.yaml's monitors)."""
    table = Table(title="GET /v1/alerts (monitors of examples/assay.yaml)", title_justify="left")
    for column in ("state", "severity", "monitor", "on", "window", "summary"):
        table.add_column(column)
    for alert in alerts:
        labels = alert["labels"]
        where = labels.get("feature") or labels.get("segment") or ""
        window = labels.get("window", "")
        if "window_start" in labels:  # a past day, judged again when its labels arrived
            window = f"{window} of {labels['window_start'][5:10]}"
        table.add_row(alert["state"], labels.get("severity", ""), labels.get("monitor", ""),
                      where, window, alert["annotations"].get("summary", ""))  # fmt: skip
    console.print(table)
    late = [a for a in alerts if "window_start" in a["labels"] and a["state"] == "firing"]
    for alert in late:
        if alert["labels"]["monitor"] == PERFORMANCE_MONITOR:
            console.print(f"[bold]performance alert once the late labels arrived:[/bold] "
                          f"{alert['annotations']['summary']}")  # fmt: skip
    console.print("Performance monitors wait for labels (min_label_completeness): the latest "
                  "days, still unlabelled, are judged on drift and volume only, and a day is "
                  "judged again when its labels arrive three days later (window \"1d of "
                  "MM-DD\": an alert of its own).")  # fmt: skip


def _wait_for_alerts(http: httpx.Client, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll until the schedule has fired the performance alert of a late-labelled day."""
    deadline = time.monotonic() + timeout
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alerts = _check(http.get("/v1/alerts"))["alerts"]
        if any(a["state"] == "firing" and a["labels"].get("monitor") == PERFORMANCE_MONITOR
               for a in alerts):  # fmt: skip
            break
        time.sleep(0.5)
    return alerts


def _demo_config(out: Path, data_dir: Path, alertmanager: str | None) -> Path:
    """examples/assay.yaml, with a pass every 2 seconds and `for:` durations in seconds.

    The demo replays two weeks in seconds, so a `for:` of hours would never elapse: every
    `for:` becomes 4 s (two passes). The volume check waits a minute instead: the replay
    starts from an empty store, and yesterday's empty window would page until it catches up.
    """
    import yaml

    example = Path(__file__).with_name("assay.yaml")
    config = yaml.safe_load(example.read_text())
    config["schedule_interval"] = "2s"
    for model in config["models"]:
        for monitor in model["monitors"]:
            monitor["for"] = "60s" if monitor.get("metric") == "volume" else "4s"
    if alertmanager:
        config["sinks"]["alertmanager"] = {"url": alertmanager, "resend_interval": "5m"}
    config["server"]["data_dir"] = str(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "assay.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _metric(metrics: dict[str, Any], name: str) -> str:
    value, ci = metrics.get(name), metrics.get(f"{name}_ci")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _between(table: pa.Table, lo: datetime, hi: datetime) -> pa.Table:
    ts = table.column("timestamp")
    mask = pc.and_(
        pc.greater_equal(ts, pa.scalar(lo, ts.type)), pc.less(ts, pa.scalar(hi, ts.type))
    )
    return table.filter(mask)


def _arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url.path}: "
                         f"{response.status_code} {response.text}")  # fmt: skip
    return response.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"assay serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("assay serve did not become ready")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
