"""Tests of ``assay ingest`` against a real ``assay serve`` (see ``conftest.py``).

Predictions then labels from Parquet, CSV and JSONL files; the counts printed are checked
against the rows written and against the server's own answers. Bad files end with exit
code 2 and one ``error:`` line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli.main import app

from .conftest import LiveServer, label_events, prediction_columns, prediction_events

N = 2_345


def invoke(server: LiveServer, *args: Any, key: str | None = None) -> Any:
    """Run ``assay ingest ...`` in process with the server's URL and an ingest key."""
    base = ["ingest", *map(str, args), "--url", server.url, "--key", key or server.ingest_key]
    return CliRunner().invoke(app, base)


def assert_one_error_line(stderr: str, *must_name: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in stderr
    for name in must_name:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


def write_predictions(path: Path, n: int = N, prefix: str = "e") -> Path:
    """``n`` prediction events as a Parquet, CSV or JSONL file (by suffix)."""
    if path.suffix == ".jsonl":
        lines = [orjson.dumps(e) for e in prediction_events(n, prefix)]
        path.write_bytes(b"\n".join(lines) + b"\n")
        return path
    table = pa.table(prediction_columns(n, prefix))
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=1000)
    return path


def write_labels(path: Path, ids: list[str]) -> Path:
    labels = label_events(ids)
    if path.suffix == ".jsonl":
        path.write_bytes(b"\n".join(orjson.dumps(e) for e in labels))  # no final newline
    elif path.suffix == ".csv":
        pacsv.write_csv(pa.Table.from_pylist(labels), path)
    else:
        pq.write_table(pa.Table.from_pylist(labels), path)
    return path


@pytest.mark.parametrize("fmt", ["arrow", "json"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_predictions_then_labels_from_each_file_type(
    live_server: LiveServer, model: str, tmp_path: Path, suffix: str, fmt: str
) -> None:
    predictions = write_predictions(tmp_path / f"predictions{suffix}")
    proc = invoke(
        live_server,
        predictions,
        "--model",
        model,
        "--kind",
        "predictions",
        "--batch-size",
        500,
        "--format",
        fmt,
        "--json",
    )
    assert proc.exit_code == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["accepted"] == N and answer["duplicates"] == 0
    assert answer["events"] == N and answer["batches"] == 5
    assert live_server.stored_predictions(model) == N

    ids = [f"e-{i}" for i in range(0, N, 2)] + ["never-predicted"]
    labels = write_labels(tmp_path / f"labels{suffix}", ids)
    proc = invoke(live_server, labels, "--model", model, "--kind", "labels", "--format", fmt)
    assert proc.exit_code == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(f"labels: {len(ids)} sent in 2 batch(es): ")
    assert f"accepted {len(ids)}, duplicates 0, unmatched 1" in line
    windows = live_server.get(f"/v1/models/{model}/evaluations", window="7d")["windows"]
    assert sum(w["labeled"] for w in windows) == len(ids) - 1
    assert sum(w["rows"] for w in windows) == N

    again = invoke(live_server, predictions, "--model", model, "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["duplicates"] == N


def test_flat_jsonl_lines_and_environment_settings(
    live_server: LiveServer, model: str, tmp_path: Path
) -> None:
    columns = prediction_columns(120, "flat")
    rows = pa.table(columns).to_pylist()
    path = tmp_path / "flat.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n\n")
    env = {"ASSAY_URL": live_server.url, "ASSAY_KEY": live_server.ingest_key}
    proc = CliRunner().invoke(app, ["ingest", str(path), "--model", model, "--json"], env=env)
    assert proc.exit_code == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"] == 120
    windows = live_server.get(f"/v1/models/{model}/evaluations", window="1d")["windows"]
    assert windows[0]["rows"] == 120


def test_the_installed_script_prints_the_summed_answer(
    live_server: LiveServer, model: str, tmp_path: Path
) -> None:
    path = write_predictions(tmp_path / "p.parquet", n=1_500)
    env = {**os.environ, "ASSAY_KEY": live_server.ingest_key}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "assay.cli.main",
            "ingest",
            str(path),
            "--model",
            model,
            "--url",
            live_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "predictions: 1500 sent in 2 batch(es): accepted 1500, duplicates 0, coerced_to_null 0"
    )
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


# -- bad input: exit 2, one line ---------------------------------------------------------


def test_corrupt_parquet_file(live_server: LiveServer, model: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all")
    proc = invoke(live_server, path, "--model", model)
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "broken.parquet", "file")


def test_unknown_extension_and_missing_file(
    live_server: LiveServer, model: str, tmp_path: Path
) -> None:
    sheet = tmp_path / "events.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    proc = invoke(live_server, sheet, "--model", model)
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "events.xlsx")
    proc = invoke(live_server, tmp_path / "missing.csv", "--model", model)
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "missing.csv")


def test_bad_options(live_server: LiveServer, model: str, tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "p.csv", n=5)
    proc = invoke(live_server, path, "--model", model, "--kind", "scores")
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "kind")
    proc = invoke(live_server, path, "--model", model, "--format", "xml")
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "format")
    proc = CliRunner().invoke(
        app, ["ingest", str(path), "--model", model], env={"ASSAY_URL": None, "ASSAY_KEY": None}
    )
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "url")


def test_unknown_model_and_bad_key(live_server: LiveServer, tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "p.parquet", n=5)
    proc = invoke(live_server, path, "--model", "nope")
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "model 'nope' not found")
    unknown_key = "assay_0123456789abcdef_xxxxxxxxxxxxxxxx"
    proc = invoke(live_server, path, "--model", "nope", key=unknown_key)
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "Authorization")


def test_invalid_events_midway_name_index_and_what_was_stored(
    live_server: LiveServer, model: str, tmp_path: Path
) -> None:
    columns = prediction_columns(1_000)
    columns["score"][750] = 7.0
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table(columns), path)
    proc = invoke(live_server, path, "--model", model, "--batch-size", 250)
    assert proc.exit_code == 2
    line = assert_one_error_line(proc.stderr, "score", "750 events", "re-running")
    assert "event 0 field 'score'" in line  # the server's own detail, batch-relative
    assert live_server.stored_predictions(model) == 750


def test_csv_with_a_bad_value_deep_in_the_file(
    live_server: LiveServer, model: str, tmp_path: Path
) -> None:
    # pyarrow reads CSV in blocks of 1 MiB: the bad value sits in a later block, so the
    # batches of the first block are stored before the error is met
    path = write_predictions(tmp_path / "p.csv", n=30_000)
    text = path.read_text().splitlines()
    cells = text[29_000].split(",")
    amount = text[0].split(",").index('"amount"')
    cells[amount] = "lots"
    text[29_000] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    proc = invoke(live_server, path, "--model", model)
    assert proc.exit_code == 2
    line = assert_one_error_line(proc.stderr, "p.csv", "'amount'", "invalid value 'lots'")
    stored = live_server.stored_predictions(model)
    assert 0 < stored < 29_000 and f"stopped after {stored} events" in line


def test_jsonl_with_a_broken_line(live_server: LiveServer, model: str, tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "p.jsonl", n=10)
    path.write_bytes(path.read_bytes() + b"{not json\n")
    proc = invoke(live_server, path, "--model", model)
    assert proc.exit_code == 2
    assert_one_error_line(proc.stderr, "line 11", "p.jsonl")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_multiclass_probability_columns_from_files(
    live_server: LiveServer, tmp_path: Path, suffix: str
) -> None:
    """Flat ``scores.<class>`` columns (CSV, Parquet, flat JSONL lines) reach the server
    as class probabilities: its log loss equals scikit-learn's on the file's values."""
    import uuid

    import httpx
    import numpy as np
    from sklearn.metrics import log_loss

    model = f"z-{uuid.uuid4().hex[:10]}"
    classes = ["cat", "dog", "bird"]
    body = {"name": model, "task": "multiclass", "classes": classes}
    headers = {"Authorization": f"Bearer {live_server.admin_key}"}
    httpx.post(live_server.url + "/v1/models", json=body, headers=headers).raise_for_status()
    rng = np.random.default_rng(12)
    n = 200
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3), n)
    table = pa.table({
        "id": [f"z-{i}" for i in range(n)],
        "version": ["v1"] * n,
        "timestamp": [f"2026-01-05T00:{i % 60:02d}:00Z" for i in range(n)],
        "prediction": [classes[int(k)] for k in np.argmax(proba, axis=1)],
        **{f"scores.{c}": proba[:, k] for k, c in enumerate(classes)},
    })  # fmt: skip
    path = tmp_path / f"predictions{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    else:
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in table.to_pylist()))
    proc = invoke(live_server, path, "--model", model, "--json")
    assert proc.exit_code == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"] == n
    labels = [{"id": f"z-{i}", "label": classes[int(c)], "timestamp": "2026-01-06T00:00:00Z"}
              for i, c in enumerate(y)]  # fmt: skip
    label_path = tmp_path / "labels.jsonl"
    label_path.write_bytes(b"\n".join(orjson.dumps(e) for e in labels))
    assert invoke(live_server, label_path, "--model", model, "--kind", "labels").exit_code == 0
    (window,) = live_server.get(f"/v1/models/{model}/evaluations", window="1d")["windows"]
    want = log_loss(y, proba, labels=[0, 1, 2])
    assert window["metrics"]["log_loss"] == pytest.approx(want, rel=1e-9)
