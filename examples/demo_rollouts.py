"""`make demo`, part three: champion against challengers, in the running service.

Two rollouts of the fraud model (champion v7) on the days before the drift:

- a canary: half of new traffic goes to v8, which scores the partner channel at random.
  The per-channel guardrail catches it; the decision is to roll back, and the monitor
  schedule raises a critical ``rollout-rollback`` alert through the sinks;
- a shadow: v9 scores the same events as v7 and ranks them better; it is promoted.

Then the same shadow comparison runs as a CI/CD gate on files with ``assay gate``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assay.simulate import DECISION_THRESHOLD

CANARY_POLICY = {
    "metrics": [{"metric": "log_loss", "margin": 0.02}],
    "guardrails": [{"metric": "brier", "max_worsening": 0.01, "segment": "channel"}],
    "segment_min_rows": 300,
}
SHADOW_POLICY = {
    "metrics": [{"metric": "roc_auc", "margin": 0.005}, {"metric": "brier", "margin": 0.002}],
}


def run_rollouts(
    http: httpx.Client,
    console: Console,
    predictions: pa.Table,
    labels: pa.Table,
    out: Path,
    send: Any,
) -> None:
    """Register both rollouts, send the challengers' events, show the decisions.

    ``send(kind, table)`` posts a table of predictions or labels as Arrow bodies.
    """
    start = predictions.column("timestamp")[0].as_py().replace(hour=0, minute=0, second=0)
    lo, hi = start + timedelta(days=4), start + timedelta(days=8)
    ts = predictions.column("timestamp")
    period = predictions.filter(
        pc.and_(pc.greater_equal(ts, pa.scalar(lo, ts.type)), pc.less(ts, pa.scalar(hi, ts.type)))
    )
    label_of = dict(zip(labels.column("id").to_pylist(), labels.column("label").to_pylist(),
                        strict=True))  # fmt: skip
    y = np.array([label_of[i] for i in period.column("id").to_pylist()])
    rng = np.random.default_rng(5)

    canary, canary_labels = _canary(period, y, rng)
    send("predictions", canary)
    send("labels", canary_labels)
    shadow = _shadow(period, y, rng)
    send("predictions", shadow)
    window = {"start": lo.isoformat(), "end": hi.isoformat()}
    for name, mode, challenger, policy in (
        ("v8-canary", "canary", "v8", CANARY_POLICY),
        ("v9-shadow", "shadow", "v9", SHADOW_POLICY),
    ):
        body = {"name": name, "champion": "v7", "challenger": challenger, "mode": mode,
                "policy": policy, **window}  # fmt: skip
        _check(http.post("/v1/models/fraud/rollouts", json=body))
    console.print(
        f"rollouts: v8 canary on {canary.num_rows:,} new events (half each), "
        f"v9 shadow scoring the same {shadow.num_rows:,} events as v7"
    )
    for name in ("v8-canary", "v9-shadow"):
        print_status(_check(http.get(f"/v1/models/fraud/rollouts/{name}/status")), console)
    alert = _wait_for_rollback(http)
    if alert is not None:
        labels, summary = alert["labels"], alert["annotations"]["summary"]
        console.print(
            f"[bold red]alert[/] {labels['monitor']} ({labels['severity']}): {escape(summary)}"
        )
    gate_on_files(period, shadow, y, out, console)


def _canary(period: pa.Table, y: np.ndarray, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """New events split between v7 and v8; v8 scores the partner channel at random."""
    n = period.num_rows
    to_v8 = rng.random(n) < 0.5
    partner = np.asarray(period.column("channel").to_pylist()) == "partner"
    score = period.column("score").to_numpy()
    score = np.where(to_v8 & partner, rng.random(n), score)
    ids = pa.array(["canary-" + i for i in period.column("id").to_pylist()])
    table = (
        period.set_column(period.schema.get_field_index("id"), "id", ids)
        .set_column(period.schema.get_field_index("version"), "version",
                    pa.array(np.where(to_v8, "v8", "v7")))
        .set_column(period.schema.get_field_index("score"), "score", pa.array(score))
        .set_column(period.schema.get_field_index("prediction"), "prediction",
                    pa.array((score >= DECISION_THRESHOLD).astype(float)))
    )  # fmt: skip
    stamps = pc.add(period.column("timestamp"), pa.scalar(timedelta(days=3)))
    return table, pa.table({"id": ids, "label": y, "timestamp": stamps})


def _shadow(period: pa.Table, y: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """v9's predictions of v7's own events (same ids): a sharper model."""
    score = period.column("score").to_numpy()
    logit = np.log(np.clip(score, 1e-6, 1 - 1e-6) / np.clip(1 - score, 1e-6, 1))
    better = 1 / (1 + np.exp(-(logit + 1.5 * (2 * y - 1) + rng.normal(0, 0.5, y.size))))
    return (
        period.set_column(period.schema.get_field_index("version"), "version",
                          pa.array(["v9"] * period.num_rows))
        .set_column(period.schema.get_field_index("score"), "score", pa.array(better))
        .set_column(period.schema.get_field_index("prediction"), "prediction",
                    pa.array((better >= DECISION_THRESHOLD).astype(float)))
    )  # fmt: skip


def print_status(status: dict[str, Any], console: Console) -> None:
    """One rollout's decision and its checks."""
    colour = {"promote": "green", "reject": "red", "continue": "yellow"}[status["decision"]]
    rollout = status["rollout"]
    table = Table(
        title=f"GET /v1/models/fraud/rollouts/{rollout['name']}/status → "
        f"[bold {colour}]{status['decision'].upper()}[/]  ({rollout['mode']}: "
        f"{rollout['champion']} vs {rollout['challenger']})",
        title_justify="left",
    )
    for column in ("check", "metric", "champion", "challenger", "difference [CI]", "outcome"):
        table.add_column(column)
    for c in status["checks"]:
        where = f" [{c['segment']['column']}={c['segment']['value']}]" if c["segment"] else ""
        ci = c["ci"]
        diff = "n/a" if c["difference"] is None else f"{c['difference']:+.4f}" + (
            f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")  # fmt: skip
        table.add_row(c["role"], escape(c["metric"] + where), _num(c["baseline"]),
                      _num(c["candidate"]), diff, c["outcome"])  # fmt: skip
    console.print(table)


def gate_on_files(
    period: pa.Table, shadow: pa.Table, y: np.ndarray, out: Path, console: Console
) -> None:
    """The shadow comparison as a CI/CD gate: two files, `assay gate --paired`."""
    base, cand = out / "shadow-v7.parquet", out / "shadow-v9.parquet"
    for path, table in ((base, period), (cand, shadow)):
        pq.write_table(table.select(["id", "score", "channel"]).append_column("is_fraud",
                       pa.array(y)), path)  # fmt: skip
    assay = str(Path(sys.executable).with_name("assay"))
    command = [assay, "gate", "--baseline", str(base), "--candidate", str(cand),
               "--task", "binary", "--target", "is_fraud", "--score", "score",
               "--paired", "--id", "id", "--metric", "roc_auc", "--margin", "0.005",
               "--json", str(out / "gate.json"), "--markdown", str(out / "gate.md"),
               "--junit", str(out / "gate.xml"), "--quiet"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    console.print(
        f"`assay gate --paired` on the shadow files: exit {done.returncode} "
        f"({done.stdout.strip()}); wrote {out / 'gate.md'}, gate.json and gate.xml"
    )


def _wait_for_rollback(http: httpx.Client, timeout: float = 15.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in _check(http.get("/v1/alerts"))["alerts"]:
            if alert["labels"].get("monitor") == "rollout-rollback" and alert["state"] == "firing":
                return alert
        time.sleep(0.5)
    return None


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url.path}: "
                         f"{response.status_code} {response.text}")  # fmt: skip
    return response.json()
