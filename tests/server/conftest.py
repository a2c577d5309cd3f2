"""Fixtures of the HTTP API and rollup tests: an in-process app, keys, seeded events.

Every expected number is computed in the tests from the generated events with
scikit-learn, scipy or plain numpy, never with Assay.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from assay.cli.serve import build_app

BASE = datetime(2026, 3, 1, tzinfo=UTC)  # day 0 of the generated events (in the past)
FRAUD: dict[str, Any] = {
    "name": "fraud",
    "task": "binary",
    "features": {"amount": "numeric", "country": "categorical"},
    "segments": ["channel"],
}
CHANNELS = ("app", "store", "web")
COUNTRIES = ("DE", "FR", "US")
PROBLEM = "application/problem+json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
RTOL = 1e-9


def iso(moment: datetime) -> str:
    """``moment`` as an ISO-8601 UTC string with ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- events ------------------------------------------------------------------------------


@dataclass
class Events:
    """Seeded binary prediction events and their (hidden) true labels.

    ``prediction`` is NaN where the event carries none (the model then decides at the
    threshold 0.5); ``amount`` is NaN where the feature is missing, ``country`` None.
    """

    ids: np.ndarray
    version: np.ndarray
    ts: list[datetime]
    day: np.ndarray
    score: np.ndarray
    prediction: np.ndarray
    amount: np.ndarray
    country: np.ndarray
    channel: np.ndarray
    y: np.ndarray
    label_ts: list[datetime] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.ids.size)

    def pred(self) -> np.ndarray:
        """The decision the metrics use: the sent prediction, else score >= 0.5."""
        return np.where(np.isnan(self.prediction), self.score >= 0.5, self.prediction).astype(int)

    def _idx(self, idx: Any) -> np.ndarray:
        return np.arange(self.n) if idx is None else np.asarray(idx, dtype=int)

    def predictions(self, idx: Any = None) -> list[dict[str, Any]]:
        """JSON prediction events of the rows ``idx`` (all by default)."""
        out = []
        for i in self._idx(idx):
            event: dict[str, Any] = {
                "id": str(self.ids[i]),
                "version": str(self.version[i]),
                "timestamp": iso(self.ts[i]),
                "score": float(self.score[i]),
                "features": {},
                "segments": {"channel": str(self.channel[i])},
            }
            if not np.isnan(self.prediction[i]):
                event["prediction"] = int(self.prediction[i])
            if not np.isnan(self.amount[i]):
                event["features"]["amount"] = float(self.amount[i])
            if self.country[i] is not None:
                event["features"]["country"] = self.country[i]
            out.append(event)
        return out

    def labels(self, idx: Any = None) -> list[dict[str, Any]]:
        """JSON label events of the rows ``idx``."""
        return [
            {"id": str(self.ids[i]), "label": int(self.y[i]), "timestamp": iso(self.label_ts[i])}
            for i in self._idx(idx)
        ]

    def table(self, idx: Any = None) -> pa.Table:
        """The prediction events as an Arrow table (JSON field names as columns)."""
        i = self._idx(idx)
        return pa.table(
            {
                "id": pa.array(self.ids[i].tolist(), pa.string()),
                "version": pa.array(self.version[i].tolist(), pa.string()),
                "timestamp": pa.array([self.ts[k] for k in i], pa.timestamp("us", tz="UTC")),
                "score": pa.array(self.score[i], pa.float64()),
                "prediction": pa.array(
                    self.prediction[i], pa.float64(), mask=np.isnan(self.prediction[i])
                ),
                "amount": pa.array(self.amount[i], pa.float64(), mask=np.isnan(self.amount[i])),
                "country": pa.array(self.country[i].tolist(), pa.string()),
                "channel": pa.array(self.channel[i].tolist(), pa.string()),
            }
        )


HOURS = (2, 9, 15, 21)  # few hour buckets per day keep the rollups (one per hour) quick


def make_events(
    seed: int,
    n: int,
    *,
    days: int = 3,
    prefix: str = "e",
    start: datetime = BASE,
    hours: tuple[int, ...] = HOURS,
) -> Events:
    """``n`` events over ``days`` UTC days from ``start``, at random times in ``hours``."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(0, days, n))
    seconds = rng.choice(hours, n) * 3600 + rng.integers(0, 3600, n)
    ts = [start + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day, seconds, strict=True)]
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.2, 0.3])
    y = (rng.random(n) < 0.35 + 0.1 * (channel == "web")).astype(np.int64)
    score = np.round(np.clip(0.15 + 0.35 * y + 0.45 * rng.random(n), 0.01, 0.99), 2)
    prediction = np.where(rng.random(n) < 0.5, (score >= 0.4).astype(float), np.nan)
    amount = rng.lognormal(3.0 + 0.2 * day, 0.8, n)
    amount[rng.random(n) < 0.05] = np.nan
    country = rng.choice(COUNTRIES, n, p=[0.5, 0.3, 0.2]).astype(object)
    country[rng.random(n) < 0.05] = None
    return Events(
        ids=np.array([f"{prefix}-{seed}-{i}" for i in range(n)]),
        version=rng.choice(["v1", "v2"], n, p=[0.7, 0.3]),
        ts=ts,
        day=day,
        score=score,
        prediction=prediction,
        amount=amount,
        country=country,
        channel=channel,
        y=y,
        label_ts=[t + timedelta(days=2) for t in ts],
    )


def arrow_stream(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a Parquet file."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# -- expected numbers ----------------------------------------------------------------------


def sklearn_binary(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The binary metrics by scikit-learn."""
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, score),
        "average_precision": skm.average_precision_score(y, score),
        "log_loss": skm.log_loss(y, score, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, score),
    }


def assert_metrics(got: dict[str, Any], expected: dict[str, float]) -> None:
    """Each expected metric matches to 1e-9 (relative)."""
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=RTOL, abs=1e-12), name


# -- the app -------------------------------------------------------------------------------


@dataclass
class Api:
    """An in-process Assay app, its test client and helpers to make keys."""

    app: FastAPI
    client: TestClient
    data_dir: Path

    @property
    def store(self) -> Any:
        return self.app.state.store

    @property
    def control(self) -> Any:
        return self.app.state.control

    def key(self, tenant: str = "acme", role: str = "admin") -> dict[str, str]:
        """Headers with a new key of ``role`` for ``tenant``."""
        _, token = self.control.create_key(tenant, role, actor="test")
        return {"Authorization": f"Bearer {token}"}

    def register(self, headers: dict[str, str], spec: dict[str, Any] | None = None) -> None:
        response = self.client.post("/v1/models", json=spec or FRAUD, headers=headers)
        assert response.status_code in (200, 201), response.text

    def rows(self, tenant: str = "acme", model: str = "fraud") -> pa.Table:
        """Everything stored for ``model`` (predictions joined with labels)."""
        return scan(self.store, tenant, model)


def scan(store: Any, tenant: str, model: str, **kwargs: Any) -> pa.Table:
    """``store.scan(...)`` (a lookup on the thread's cursor first: a pending ``fetchone()``
    result must not break the Arrow scan, as it once did on DuckDB 2)."""
    store.get_model(tenant, model)
    return store.scan(tenant, model, **kwargs)


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[ApiFactory]:
    """Build apps on fresh data directories (``settings`` as in assay.yaml's server:)."""
    made: list[tuple[Api, TestClient]] = []

    def make(settings: dict[str, Any] | None = None, *, metrics_public: bool = False) -> Api:
        folder = tmp_path / f"data-{len(made)}"
        app = build_app(folder, None, settings or {}, metrics_public)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        api = Api(app, client, folder)
        made.append((api, client))
        return api

    yield make
    for api, client in made:
        client.__exit__(None, None, None)
        api.store.close()
        api.control.close()


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    """An app with default limits."""
    return make_api()


@pytest.fixture
def admin(api: Api) -> dict[str, str]:
    """An admin key of tenant ``acme``, with the model ``fraud`` registered."""
    headers = api.key("acme", "admin")
    api.register(headers)
    return headers


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body
