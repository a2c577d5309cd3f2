"""Tests of :class:`assay.Client`.

Happy paths run against a real ``assay serve`` subprocess (see ``conftest.py``); counts
are checked against what was sent and, independently of the client, against the
server's own ``/versions`` and ``/evaluations`` answers. Retries and error mapping run
against an in-process ``httpx.MockTransport`` stub, because a real server cannot be made
to answer 429 or 503 on demand; the stub records every request and the client's
requested sleeps (an injected ``sleep``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import assay
from assay.client import IngestResult, error_from_response
from assay.errors import (
    AssayError,
    AuthenticationError,
    BatchValidationError,
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    StoreUnavailableError,
)

from .conftest import (
    FEATURES,
    SEGMENTS,
    LiveServer,
    label_events,
    prediction_columns,
    prediction_events,
)

FORMATS = ("arrow", "json")


# == against a real server ==============================================================


@pytest.mark.parametrize("fmt", FORMATS)
def test_dict_events_are_batched_counted_and_deduplicated(
    live_server: LiveServer, model: str, fmt: str
) -> None:
    events = prediction_events(2_500)
    with assay.Client(
        live_server.url, live_server.ingest_key, batch_size=1000, format=fmt
    ) as client:
        first = client.log_predictions(model, events)
        again = client.log_predictions(model, events)
    assert (first.accepted, first.duplicates, first.events, first.batches) == (2500, 0, 2500, 3)
    assert first.coerced_to_null == 0 and first.retries == 0
    assert (again.accepted, again.duplicates, again.batches) == (0, 2500, 3)
    assert live_server.stored_predictions(model) == 2500


def _pandas(n: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(prediction_columns(n, prefix))


def _polars(n: int, prefix: str) -> pl.DataFrame:
    return pl.DataFrame(prediction_columns(n, prefix))


def _arrow(n: int, prefix: str) -> pa.Table:
    return pa.table(prediction_columns(n, prefix))


def _batches(n: int, prefix: str) -> pa.RecordBatchReader:
    table = _arrow(n, prefix)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=333))


SOURCES: dict[str, Callable[[int, str], Any]] = {
    "pandas": _pandas,
    "polars": _polars,
    "arrow": _arrow,
    "record-batches": _batches,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_tables_of_every_kind_are_sent_whole(
    live_server: LiveServer, model: str, source: str, fmt: str
) -> None:
    make = SOURCES[source]
    with assay.Client(
        live_server.url, live_server.ingest_key, batch_size=400, format=fmt
    ) as client:
        result = client.log_predictions(model, make(1_000, "t"))
        again = client.log_predictions(model, make(1_000, "t"))
    assert (result.accepted, result.duplicates, result.events, result.batches) == (1000, 0, 1000, 3)
    assert (again.accepted, again.duplicates) == (0, 1000)
    assert live_server.stored_predictions(model) == 1000
    # the values arrived intact: same per-window rows as the events' timestamps imply
    windows = live_server.get(f"/v1/models/{model}/evaluations", window="1h")["windows"]
    assert [w["rows"] for w in windows] == [60] * 16 + [40]


@pytest.mark.parametrize("fmt", FORMATS)
def test_labels_join_and_count_unmatched_and_duplicates(
    live_server: LiveServer, model: str, fmt: str
) -> None:
    ids = [f"e-{i}" for i in range(1_000)]
    with assay.Client(
        live_server.url, live_server.ingest_key, batch_size=300, format=fmt
    ) as client:
        client.log_predictions(model, prediction_events(1_000))
        labels = label_events(ids[:500] + [f"late-{i}" for i in range(50)])
        result = client.log_labels(model, labels)
        again = client.log_labels(model, pd.DataFrame(labels))
        evaluation = client.evaluations(model, window="7d")
    assert (result.accepted, result.duplicates, result.unmatched) == (550, 0, 50)
    assert (result.events, result.batches) == (550, 2)
    assert (again.accepted, again.duplicates, again.unmatched) == (0, 550, 0)
    (window,) = evaluation["windows"]
    assert (window["rows"], window["labeled"]) == (1000, 500)
    assert window["label_completeness"] == pytest.approx(0.5)
    # accuracy from the server equals the one worked out from the events sent
    truth = {e["id"]: e["label"] for e in labels}
    sent = [e for e in prediction_events(1_000) if e["id"] in truth]
    expected = sum(e["prediction"] == truth[e["id"]] for e in sent) / len(sent)
    assert window["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-12)


def test_non_finite_features_are_stored_as_null_and_counted(
    live_server: LiveServer, model: str
) -> None:
    # pandas' NaN is its missing value: it arrives as null and is not "coerced"; ±inf
    # from pandas and NaN inside an Arrow table are coerced to null and counted
    frame = pd.DataFrame(prediction_columns(10, "nan"))
    frame.loc[[1, 4, 7], "amount"] = math.nan
    frame.loc[2, "tenure"] = math.inf
    frame.loc[3, "tenure"] = -math.inf
    columns = prediction_columns(10, "arrow-nan")
    columns["amount"][5] = math.nan
    with assay.Client(live_server.url, live_server.ingest_key) as client:
        from_pandas = client.log_predictions(model, frame)
        from_arrow = client.log_predictions(model, pa.table(columns))
    assert (from_pandas.accepted, from_pandas.coerced_to_null) == (10, 2)
    assert (from_arrow.accepted, from_arrow.coerced_to_null) == (10, 1)
    scan = live_server.get(f"/v1/models/{model}/evaluations", window="1d")["windows"]
    assert scan[0]["rows"] == 20


def test_references_from_data_and_from_stored_predictions(
    live_server: LiveServer, model: str
) -> None:
    with assay.Client(live_server.url, live_server.admin_key) as client:
        client.log_predictions(model, prediction_events(500))
        uploaded = client.set_reference(model, pd.DataFrame(prediction_columns(300, "r")))
        assert uploaded["rows"] == 300
        stored = client.set_reference(
            model, start="2026-01-05T00:00:00Z", end="2026-01-05T04:00:00Z", version="v1"
        )
        assert stored["rows"] == 240
        windows = client.evaluations(model, window="1d")["windows"]
    assert {"amount", "tenure", "country"} <= set(windows[0]["drift"])


def test_register_model_is_idempotent_and_conflicts_are_typed(live_server: LiveServer) -> None:
    name = f"reg-{uuid.uuid4().hex[:8]}"
    with assay.Client(live_server.url, live_server.admin_key) as client:
        spec = client.register_model(name, "binary", {"amount": "numeric"}, segments=["channel"])
        assert spec["features"] == {"amount": "numeric"} and spec["segments"] == ["channel"]
        assert (
            client.register_model(name, "binary", {"amount": "numeric"}, segments=["channel"])
            == spec
        )
        assert name in [m["name"] for m in client.list_models()]
        with pytest.raises(ConflictError) as caught:
            client.register_model(name, "binary", {"amount": "categorical"})
    assert caught.value.field == "name"


def test_real_server_errors_are_typed_with_field_and_problems(
    live_server: LiveServer, model: str
) -> None:
    bad = assay.Client(live_server.url, "assay_0000000000000000_nope-nope-nope-nope")
    with bad, pytest.raises(AuthenticationError) as auth:
        bad.log_predictions(model, prediction_events(3))
    assert auth.value.field == "Authorization"
    reader = assay.Client(live_server.url, live_server.read_key)
    with reader, pytest.raises(PermissionDeniedError):
        reader.log_predictions(model, prediction_events(3))
    events = prediction_events(60, "v")
    events[25]["score"] = 1.5
    events[47]["features"]["amount"] = "lots"
    with assay.Client(live_server.url, live_server.ingest_key, batch_size=10) as client:
        with pytest.raises(NotFoundError) as missing:
            client.log_predictions("no-such-model", events)
        assert missing.value.field == "model"
        with pytest.raises(BatchValidationError) as invalid:
            client.log_predictions(model, events)
    err = invalid.value
    assert err.http_status == 422 and err.field == "score"
    # indexes count from the first event passed, not from the batch
    assert err.problems == [{"index": 25, "field": "score", "reason": "must be in [0, 1]"}]
    assert err.partial.accepted == 20 and err.partial.batches == 2  # type: ignore[attr-defined]
    assert live_server.stored_predictions(model) == 20  # the bad batch stored nothing


def test_unknown_keys_in_dict_events_are_refused_before_sending(
    live_server: LiveServer, model: str
) -> None:
    flat = {"id": "x", "version": "v1", "score": 0.5, "amount": 3.0}
    client = assay.Client(live_server.url, live_server.ingest_key)
    with client, pytest.raises(InputError) as caught:
        client.log_predictions(model, [flat])
    assert caught.value.field == "amount"
    assert live_server.stored_predictions(model) == 0


# == against a fault-injecting stub ======================================================


@dataclass
class Stub:
    """An ``httpx.MockTransport`` handler answering from a script, recording requests.

    ``script`` holds, in order, what to answer: an ``httpx.Response``, an exception to
    raise (a connection error), or a callable of the request. When it runs out, each
    batch is accepted (``{"accepted": rows, "duplicates": 0}``). ``GET /v1/models/<m>``
    (the client reads the spec to type dict events as Arrow) answers the spec of the
    test model, apart from the script and the recorded requests.
    """

    script: list[Any] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.count("/") == 3:
            name = request.url.path.rsplit("/", 1)[1]
            spec = {"name": name, "task": "binary", "features": FEATURES, "segments": SEGMENTS}
            return httpx.Response(200, json=spec)
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if callable(step) and not isinstance(step, httpx.Response):
                return step(request)
            return step
        return _accept(request)

    def client(self, **options: Any) -> assay.Client:
        options.setdefault("format", "json")
        return assay.Client(
            "http://assay.test",
            "k",
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
            **options,
        )

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


def _accept(request: httpx.Request) -> httpx.Response:
    if request.headers["content-type"] == "application/vnd.apache.arrow.stream":
        rows = pa.ipc.open_stream(request.content).read_all().num_rows
    else:
        rows = len(orjson.loads(request.content)["events"])
    return httpx.Response(200, json={"accepted": rows, "duplicates": 0, "coerced_to_null": 0})


def _problem(
    status: int,
    detail: str,
    field_name: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"type": "about:blank", "title": "T", "status": status, "detail": detail, **extra}
    if field_name is not None:
        body["field"] = field_name
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **(headers or {})}
    )


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key() -> None:
    full = "the write queue is full"
    stub = Stub(
        [
            _problem(429, full, headers={"Retry-After": "3"}),
            _problem(429, full, headers={"Retry-After": "1"}),
        ]
    )
    with stub.client(batch_size=10) as client:
        result = client.log_predictions("m", prediction_events(10))
    assert stub.sleeps == [3.0, 1.0]
    assert len(stub.requests) == 3
    assert len(set(stub.keys)) == 1 and stub.keys[0] is not None
    uuid.UUID(stub.keys[0], version=4)
    assert len({r.content for r in stub.requests}) == 1  # the very same body each time
    assert (result.accepted, result.batches, result.retries) == (10, 1, 2)


def test_each_batch_has_its_own_key_reused_only_by_its_retries() -> None:
    stub = Stub(
        [
            _accept,
            _problem(503, "busy", headers={"Retry-After": "0"}),
            _accept,
            httpx.ConnectError("refused"),
        ]
    )
    with stub.client(batch_size=4) as client:
        result = client.log_predictions("m", prediction_events(10))
    k = stub.keys
    assert len(k) == 5  # batch 1; batch 2 twice; batch 3 twice
    assert k[1] == k[2] and k[3] == k[4]
    assert len({k[0], k[1], k[3]}) == 3
    assert [len(orjson.loads(r.content)["events"]) for r in stub.requests] == [4, 4, 4, 2, 2]
    assert (result.accepted, result.batches, result.retries) == (10, 3, 2)


def test_retry_after_as_an_http_date() -> None:
    later = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past: retry at once
    stub = Stub([_problem(429, "full", headers={"Retry-After": later})])
    with stub.client() as client:
        client.log_predictions("m", prediction_events(1))
    assert stub.sleeps == [0.0]


def test_503_and_connection_errors_back_off_exponentially_with_a_cap() -> None:
    stub = Stub(
        [
            _problem(503, "not ready"),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("reset"),
            _problem(503, "not ready"),
            _problem(502, "bad gateway"),
        ]
    )
    with stub.client(backoff=0.5, max_backoff=4.0) as client:
        result = client.log_predictions("m", prediction_events(5))
    assert result.accepted == 5 and len(stub.requests) == 7
    assert len(set(stub.keys)) == 1
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(stub.sleeps) == len(ceilings)
    for slept, ceiling in zip(stub.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


NOT_RETRIED: list[tuple[int, type[AssayError]]] = [
    (400, ConfigError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (413, PayloadTooLargeError),
    (422, InputError),
]


@pytest.mark.parametrize(("status", "error"), NOT_RETRIED)
def test_other_4xx_are_never_retried_and_raise_their_typed_error(
    status: int, error: type[AssayError]
) -> None:
    stub = Stub([_problem(status, f"refused with {status}", field_name="events")])
    with stub.client() as client, pytest.raises(error) as caught:
        client.log_predictions("m", prediction_events(3))
    assert len(stub.requests) == 1 and stub.sleeps == []
    err = caught.value
    assert type(err) is error
    assert str(err) == f"refused with {status}"
    assert err.field == "events" and err.http_status == status
    assert err.problem["status"] == status  # type: ignore[attr-defined]
    assert isinstance(err.partial, IngestResult)  # type: ignore[attr-defined]


def test_422_batch_problems_count_from_the_first_event_of_the_call() -> None:
    problems = [
        {"index": 2, "field": "features.amount", "reason": "must be a number"},
        {"index": 4, "field": "score", "reason": "must be in [0, 1]"},
    ]
    stub = Stub(
        [_accept, _problem(422, "2 of 5 event(s) are invalid", "features.amount", errors=problems)]
    )
    with stub.client(batch_size=5) as client, pytest.raises(BatchValidationError) as caught:
        client.log_predictions("m", prediction_events(12))
    err = caught.value
    assert len(stub.requests) == 2 and stub.sleeps == []
    assert [p["index"] for p in err.problems] == [7, 9]
    assert err.field == "features.amount"
    assert err.partial.accepted == 5  # type: ignore[attr-defined]
    assert isinstance(err, ValueError)


def test_a_422_without_event_indexes_is_an_input_error() -> None:
    listed = [{"field": "features.amount", "reason": "Input should be 'numeric'"}]
    answer = _problem(422, "features.amount: bad", "features.amount", errors=listed)
    err = error_from_response(answer)
    assert type(err) is InputError and err.problems == listed  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (lambda: _problem(429, "queue full", headers={"Retry-After": "2"}), OverloadedError),
        (lambda: _problem(503, "store down"), StoreUnavailableError),
        (lambda: httpx.ConnectError("refused"), StoreUnavailableError),
        (lambda: httpx.ConnectTimeout("timed out"), StoreUnavailableError),
    ],
    ids=["429", "503", "connect-error", "connect-timeout"],
)
def test_gives_up_after_max_retries(script: Callable[[], Any], error: type[AssayError]) -> None:
    stub = Stub([script() for _ in range(10)])
    with stub.client(max_retries=3) as client, pytest.raises(error) as caught:
        client.log_predictions("m", prediction_events(2))
    assert len(stub.requests) == 4 and len(stub.sleeps) == 3
    assert len(set(stub.keys)) == 1
    if error is OverloadedError:
        assert stub.sleeps == [2.0, 2.0, 2.0]
        assert caught.value.retry_after == 2.0  # type: ignore[attr-defined]
        assert caught.value.http_status == 429
    assert "4 attempt(s)" in str(caught.value)


def test_500_is_not_retried_and_keeps_its_status() -> None:
    stub = Stub([httpx.Response(500, text="Internal Server Error")])
    with stub.client() as client, pytest.raises(AssayError) as caught:
        client.log_predictions("m", prediction_events(1))
    assert len(stub.requests) == 1 and caught.value.http_status == 500


def test_arrow_bodies_carry_flat_columns() -> None:
    bodies: list[pa.Table] = []

    def read(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/vnd.apache.arrow.stream"
        bodies.append(pa.ipc.open_stream(request.content).read_all())
        return httpx.Response(200, json={"accepted": bodies[-1].num_rows, "duplicates": 0})

    stub = Stub([read, read])
    with stub.client(format="arrow", batch_size=3) as client:
        result = client.log_predictions("m", prediction_events(5))
    assert (result.accepted, result.batches) == (5, 2)
    first = bodies[0]
    assert first.num_rows == 3 and bodies[1].num_rows == 2
    assert first.column_names == [
        "id",
        "version",
        "timestamp",
        "score",
        "prediction",
        "feature.amount",
        "feature.tenure",
        "feature.country",
        "segment.channel",
    ]
    assert first.column("feature.country").to_pylist() == ["DE", "FR", "US"]
    assert first.column("feature.amount").to_pylist() == [0.0, 1.5, 3.0]
    assert first.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert first.column("timestamp").to_pylist() == prediction_columns(3)["timestamp"]


ODD_VALUES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("string score", lambda e: e.update(score="0.5")),
    ("boolean score", lambda e: e.update(score=True)),
    ("numeric id", lambda e: e.update(id=17)),
    ("numeric categorical", lambda e: e["features"].update(country=49)),
    ("string numeric feature", lambda e: e["features"].update(amount="3.5")),
    ("unknown feature", lambda e: e["features"].update(colour="red")),
    ("bad timestamp", lambda e: e.update(timestamp="yesterday")),
    ("epoch timestamp", lambda e: e.update(timestamp=1_700_000_000)),
    ("nested value", lambda e: e["features"].update(amount=[1.0])),
]


@pytest.mark.parametrize("change", [c for _, c in ODD_VALUES], ids=[n for n, _ in ODD_VALUES])
def test_dict_values_json_would_read_differently_are_sent_as_json(
    change: Callable[[dict[str, Any]], None],
) -> None:
    # Arrow casts more leniently than the server reads JSON (a string "0.5" would become
    # a score): such a batch goes as JSON, and the server judges it as JSON
    events = prediction_events(6)
    change(events[4])
    stub = Stub()
    with stub.client(format="arrow", batch_size=3) as client:
        client.log_predictions("m", events)
    types = [r.headers["content-type"] for r in stub.requests]
    assert types == ["application/vnd.apache.arrow.stream", "application/json"]
    assert orjson.loads(stub.requests[1].content)["events"] == orjson.loads(
        orjson.dumps(events[3:])
    )


def test_dict_labels_and_boolean_predictions_as_arrow() -> None:
    bodies: list[pa.Table] = []

    def read(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/vnd.apache.arrow.stream"
        bodies.append(pa.ipc.open_stream(request.content).read_all())
        return httpx.Response(200, json={"accepted": bodies[-1].num_rows, "duplicates": 0})

    events = prediction_events(2)
    events[0]["prediction"], events[1]["prediction"] = True, False
    labels = [
        {"id": "a", "label": 1, "timestamp": "2026-01-07T01:02:03+01:00"},
        {"id": "b", "label": 0.0},
    ]
    stub = Stub([read, read])
    with stub.client(format="arrow") as client:
        client.log_predictions("m", events)
        client.log_labels("m", labels)
    assert bodies[0].column("prediction").to_pylist() == [1.0, 0.0]
    assert bodies[1].column("label").to_pylist() == [1.0, 0.0]
    stamps = bodies[1].column("timestamp").to_pylist()
    assert stamps[0] == datetime(2026, 1, 7, 0, 2, 3, tzinfo=UTC) and stamps[1] is None


def test_tables_are_normalised_before_sending() -> None:
    bodies: list[pa.Table] = []

    def read(request: httpx.Request) -> httpx.Response:
        bodies.append(pa.ipc.open_stream(request.content).read_all())
        return httpx.Response(200, json={"accepted": bodies[-1].num_rows, "duplicates": 0})

    columns = prediction_columns(4)
    frame = pl.DataFrame(columns).with_columns(pl.col("country").cast(pl.Categorical))
    berlin = pd.DataFrame(columns).assign(
        timestamp=lambda df: df["timestamp"].dt.tz_convert("Europe/Berlin"),
        channel=lambda df: df["channel"].astype("category"),
    )
    stub = Stub([read, read])
    with stub.client(format="arrow") as client:
        client.log_predictions("m", frame)
        client.log_predictions("m", berlin)
    for body in bodies:
        schema = body.schema
        assert schema.field("country").type == pa.string()
        assert schema.field("channel").type == pa.string()
        assert schema.field("id").type == pa.string()
        assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert schema.metadata is None
        # the same instants, whatever zone the frame showed them in
        assert body.column("timestamp").to_pylist() == columns["timestamp"]


def test_empty_data_sends_nothing() -> None:
    stub = Stub()
    with stub.client() as client:
        assert client.log_predictions("m", []).batches == 0
        assert client.log_labels("m", pa.table({"id": pa.array([], pa.string())})).events == 0
    assert stub.requests == []


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        assay.Client("localhost:8080", "k")
    with pytest.raises(ConfigError):
        assay.Client("http://x", "k", format="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        assay.Client("http://x", "k", batch_size=0)
    with pytest.raises(ConfigError):
        assay.Client("http://x", "")


def _multiclass_model(live_server: LiveServer) -> str:
    name = f"z-{uuid.uuid4().hex[:10]}"
    body = {"name": name, "task": "multiclass", "classes": ["cat", "dog", "bird"]}
    headers = {"Authorization": f"Bearer {live_server.admin_key}"}
    httpx.post(live_server.url + "/v1/models", json=body, headers=headers).raise_for_status()
    return name


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", ["dicts", "pandas"])
def test_multiclass_class_probabilities_arrive(
    live_server: LiveServer, fmt: str, shape: str
) -> None:
    """Class probabilities sent as dict events (``scores``) or as ``scores.<class>``
    columns reach the server: its log loss equals scikit-learn's on what was sent."""
    import numpy as np
    from sklearn.metrics import log_loss

    model = _multiclass_model(live_server)
    classes = ["cat", "dog", "bird"]
    rng = np.random.default_rng(11)
    n = 300
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3), n)
    ids = [f"z-{i}" for i in range(n)]
    stamps = [datetime(2026, 1, 5, 0, i % 60, tzinfo=UTC) for i in range(n)]
    if shape == "dicts":
        data: Any = [{"id": i, "version": "v1", "timestamp": t,
                      "scores": dict(zip(classes, p.tolist(), strict=True))}
                     for i, t, p in zip(ids, stamps, proba, strict=True)]  # fmt: skip
    else:
        columns = {f"scores.{c}": proba[:, k] for k, c in enumerate(classes)}
        data = pd.DataFrame({"id": ids, "version": "v1", "timestamp": stamps, **columns})
    labels = [{"id": i, "label": classes[c], "timestamp": "2026-01-06T00:00:00Z"}
              for i, c in zip(ids, y, strict=True)]  # fmt: skip
    with assay.Client(live_server.url, live_server.ingest_key, format=fmt) as client:
        assert client.log_predictions(model, data).accepted == n
        assert client.log_labels(model, labels).accepted == n
    (window,) = live_server.get(f"/v1/models/{model}/evaluations", window="1d")["windows"]
    assert window["labeled"] == n
    want = log_loss(y, proba, labels=[0, 1, 2])
    assert window["metrics"]["log_loss"] == pytest.approx(want, rel=1e-9)
