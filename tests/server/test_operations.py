"""Serving latency and errors: carried by prediction events, summarised per window."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from assay.cli.serve import build_app

SPEC = {"name": "m", "task": "binary", "features": {"x": "numeric"}}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    app = build_app(tmp_path, None, {}, False)
    _, key = app.state.control.create_key("acme", "admin", actor="test")
    c = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    assert c.post("/v1/models", json=SPEC).status_code == 201
    return c


def test_latency_quantiles_and_error_rate_per_window(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    latency = rng.gamma(2.0, 40.0, 300).round(3)
    errors = rng.uniform(size=300) < 0.05
    events = [
        {"id": f"e{i}", "version": "v1", "timestamp": f"2026-11-02T{i % 24:02d}:00:00Z",
         "score": 0.5, "features": {"x": 1.0}, "latency_ms": float(latency[i]),
         "error": bool(errors[i])}
        for i in range(200)
    ]  # fmt: skip
    assert client.post("/v1/models/m/predictions", json={"events": events}).status_code == 200
    # the other 100 as an Arrow body with a boolean error column
    stamps = pa.array([datetime(2026, 11, 2, i % 24, 30, tzinfo=UTC) for i in range(100)],
                      pa.timestamp("us", tz="UTC"))  # fmt: skip
    table = pa.table({"id": [f"a{i}" for i in range(100)], "version": ["v1"] * 100,
                      "timestamp": stamps, "score": [0.5] * 100, "x": [1.0] * 100,
                      "latency_ms": latency[200:], "error": errors[200:]})  # fmt: skip
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    answer = client.post(
        "/v1/models/m/predictions",
        content=sink.getvalue(),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert answer.status_code == 200, answer.text
    [day] = client.get("/v1/models/m/evaluations?window=1d").json()["windows"]
    ops = day["operations"]
    assert ops["latency_count"] == 300 and ops["error_count"] == 300
    for q in (50, 95, 99):
        assert ops[f"latency_p{q}_ms"] == pytest.approx(np.quantile(latency, q / 100), rel=1e-12)
    assert ops["error_rate"] == pytest.approx(errors.mean(), rel=1e-12)


@pytest.mark.parametrize(("field", "value"), [("latency_ms", -1), ("latency_ms", "fast"),
                                              ("error", "yes"), ("error", 2)])  # fmt: skip
def test_bad_latency_or_error_is_rejected(client: TestClient, field: str, value: object) -> None:
    event = {"id": "e", "version": "v1", "score": 0.5, "features": {"x": 1.0}, field: value}
    answer = client.post("/v1/models/m/predictions", json={"events": [event]})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field
