"""Ingest over HTTP: answers, duplicates, all-or-nothing batches, limits, idempotency,
backpressure — each checked against what the store holds afterwards."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assay.control import open_control_store
from assay.errors import ConfigError
from assay.server.app import ServerOptions, create_app
from assay.store.duckdb_store import DuckDBStore

from .conftest import (
    ARROW_STREAM,
    FRAUD,
    PARQUET,
    Api,
    ApiFactory,
    arrow_stream,
    assert_problem,
    iso,
    make_events,
    parquet_bytes,
    scan,
)

LIMITS = {"max_body_bytes": 20_000, "max_events": 20, "max_string_length": 64}


def post(
    api: Api,
    headers: dict[str, str],
    events: list[dict[str, Any]],
    kind: str = "predictions",
    **kwargs: Any,
) -> httpx.Response:
    key = "events" if kind == "predictions" else "labels"
    return api.client.post(
        f"/v1/models/fraud/{kind}", json={key: events}, headers=headers, **kwargs
    )


def stored_ids(api: Api) -> list[str]:
    return sorted(api.rows().column("id").to_pylist())


def by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in table.to_pylist()}


# -- accepted batches --------------------------------------------------------------------


def test_json_batch_is_stored_with_its_values(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(1, 40)
    response = post(api, admin, ev.predictions())
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 40, "duplicates": 0, "coerced_to_null": 0}
    rows = by_id(api.rows())
    assert sorted(rows) == sorted(ev.ids.tolist())
    for i in range(ev.n):
        row = rows[ev.ids[i]]
        assert row["version"] == ev.version[i]
        assert row["timestamp"] == ev.ts[i]
        assert row["score"] == ev.score[i]
        sent = ev.prediction[i]
        assert (row["prediction"] is None) if np.isnan(sent) else row["prediction"] == sent
        amount = ev.amount[i]
        assert (
            (row["feature.amount"] is None)
            if np.isnan(amount)
            else (row["feature.amount"] == amount)
        )
        assert row["feature.country"] == ev.country[i]
        assert row["segment.channel"] == ev.channel[i]
        assert row["label"] is None


def test_resent_ids_are_duplicates_and_never_double_counted(
    api: Api, admin: dict[str, str]
) -> None:
    ev = make_events(2, 30)
    assert post(api, admin, ev.predictions(range(20))).json()["accepted"] == 20
    # ids 10..29: 10 already stored (sent again with another score), 10 new
    again = ev.predictions(range(10, 30))
    for event in again[:10]:
        event["score"] = 0.01
    response = post(api, admin, again)
    assert response.status_code == 200
    assert response.json() == {"accepted": 10, "duplicates": 10, "coerced_to_null": 0}
    rows = api.rows()
    assert rows.num_rows == 30
    assert stored_ids(api) == sorted(ev.ids.tolist())
    kept = by_id(rows)
    assert [kept[ev.ids[i]]["score"] for i in range(10, 20)] == ev.score[10:20].tolist()
    # the whole batch once more: all duplicates, still 30 rows
    response = post(api, admin, ev.predictions())
    assert response.json() == {"accepted": 0, "duplicates": 30, "coerced_to_null": 0}
    assert api.rows().num_rows == 30


def test_repeated_ids_inside_one_batch_count_once(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(3, 4)
    events = ev.predictions([0, 1, 0, 2, 1, 3, 0])
    events[2]["score"] = 0.99  # a later repeat does not replace the first occurrence
    response = post(api, admin, events)
    assert response.status_code == 200
    assert response.json() == {"accepted": 4, "duplicates": 3, "coerced_to_null": 0}
    rows = api.rows()
    assert rows.num_rows == 4
    assert by_id(rows)[ev.ids[0]]["score"] == ev.score[0]


def test_labels_count_duplicates_and_unmatched(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(4, 10)
    post(api, admin, ev.predictions(range(6)))
    # labels for 0..5 (stored) and 6..9 (not stored yet); 2 repeated in the batch
    response = post(api, admin, ev.labels([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 7]), "labels")
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 10, "duplicates": 2, "unmatched": 4}
    response = post(api, admin, ev.labels(range(10)), "labels")
    assert response.json() == {"accepted": 0, "duplicates": 10, "unmatched": 0}
    labeled = pc.sum(pc.is_valid(api.rows().column("label"))).as_py()
    assert labeled == 6
    # the predictions arrive after their labels: joined by id
    post(api, admin, ev.predictions(range(6, 10)))
    rows = by_id(api.rows())
    assert {i: rows[i]["label"] for i in ev.ids.tolist()} == dict(
        zip(ev.ids.tolist(), ev.y.astype(float).tolist(), strict=True)
    )


# -- Arrow and Parquet bodies --------------------------------------------------------------


def _with_non_finite(table: pa.Table) -> tuple[pa.Table, list[int]]:
    amount = table.column("amount").to_numpy(zero_copy_only=False).copy()
    bad = [1, 4, 7]
    amount[bad] = [math.nan, math.inf, -math.inf]
    nulls = np.zeros(amount.size, bool)
    nulls[9] = True  # a null is a missing value, not a coerced one
    index = table.schema.get_field_index("amount")
    return table.set_column(index, "amount", pa.array(amount, pa.float64(), mask=nulls)), bad


@pytest.mark.parametrize("content_type", [ARROW_STREAM, PARQUET])
def test_arrow_and_parquet_bodies_store_non_finite_features_as_null(
    api: Api, admin: dict[str, str], content_type: str
) -> None:
    ev = make_events(5, 12)
    ev.amount[:] = np.arange(1.0, 13.0)
    table, bad = _with_non_finite(ev.table())
    body = arrow_stream(table) if content_type == ARROW_STREAM else parquet_bytes(table)
    headers = {**admin, "Content-Type": content_type}
    response = api.client.post("/v1/models/fraud/predictions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 12, "duplicates": 0, "coerced_to_null": 3}
    rows = by_id(api.rows())
    for i in range(12):
        expected = None if i in (*bad, 9) else float(i + 1)
        assert rows[ev.ids[i]]["feature.amount"] == expected
        assert rows[ev.ids[i]]["timestamp"] == ev.ts[i]
        assert rows[ev.ids[i]]["segment.channel"] == ev.channel[i]
    # the same body again: all duplicates
    again = api.client.post("/v1/models/fraud/predictions", content=body, headers=headers)
    assert again.json() == {"accepted": 0, "duplicates": 12, "coerced_to_null": 3}
    assert api.rows().num_rows == 12
    # labels as Arrow too
    labels = pa.table(
        {
            "id": ev.ids.tolist(),
            "label": ev.y.astype(float),
            "timestamp": pa.array(ev.label_ts, pa.timestamp("us", tz="UTC")),
        }
    )
    lbody = arrow_stream(labels) if content_type == ARROW_STREAM else parquet_bytes(labels)
    response = api.client.post("/v1/models/fraud/labels", content=lbody, headers=headers)
    assert response.json() == {"accepted": 12, "duplicates": 0, "unmatched": 0}
    assert [by_id(api.rows())[i]["label"] for i in ev.ids] == ev.y.astype(float).tolist()


def test_non_finite_score_in_arrow_is_rejected_not_coerced(api: Api, admin: dict[str, str]) -> None:
    table = make_events(6, 5).table()
    score = table.column("score").to_numpy().copy()
    score[3] = math.nan
    table = table.set_column(table.schema.get_field_index("score"), "score", pa.array(score))
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=arrow_stream(table),
        headers={**admin, "Content-Type": ARROW_STREAM},
    )
    body = assert_problem(response, 422)
    assert {(e["index"], e["field"]) for e in body["errors"]} == {(3, "score")}
    assert api.rows().num_rows == 0


def test_unreadable_arrow_body_is_422(api: Api, admin: dict[str, str]) -> None:
    for content_type in (ARROW_STREAM, PARQUET):
        response = api.client.post(
            "/v1/models/fraud/predictions",
            content=b"not arrow",
            headers={**admin, "Content-Type": content_type},
        )
        assert assert_problem(response, 422)["field"] == "body"


def test_integer_timestamps_in_arrow_are_rejected(api: Api, admin: dict[str, str]) -> None:
    """Epoch numbers are ambiguous (s? ms? us?): rejected, not silently read as 1970."""
    table = make_events(7, 3).table()
    seconds = pa.array([int(t.timestamp()) for t in make_events(7, 3).ts], pa.int64())
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", seconds)
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=arrow_stream(table),
        headers={**admin, "Content-Type": ARROW_STREAM},
    )
    body = assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"timestamp"}
    assert api.rows().num_rows == 0


# -- all-or-nothing --------------------------------------------------------------------------


def test_invalid_events_reject_the_whole_batch(api: Api, admin: dict[str, str]) -> None:
    first = make_events(8, 15)
    assert post(api, admin, first.predictions()).status_code == 200
    before = api.rows()
    ev = make_events(9, 10)
    events = ev.predictions()
    events[2]["score"] = 1.5
    del events[5]["id"]
    events[7]["features"]["colour"] = "red"
    events[7]["version"] = ""
    events[9]["timestamp"] = "yesterday"
    response = post(api, admin, events)
    body = assert_problem(response, 422)
    problems = {(e["index"], e["field"]) for e in body["errors"]}
    assert problems == {
        (2, "score"),
        (5, "id"),
        (7, "features.colour"),
        (7, "version"),
        (9, "timestamp"),
    }
    assert all(e["reason"] for e in body["errors"])
    assert api.rows().equals(before)
    # the good events of the rejected batch are not stored either
    assert not set(ev.ids.tolist()) & set(stored_ids(api))


def test_invalid_labels_reject_the_whole_batch(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(10, 6)
    post(api, admin, ev.predictions())
    labels = ev.labels()
    labels[1]["label"] = 2
    labels[3]["label"] = "yes"
    labels[4]["label"] = None
    response = post(api, admin, labels, "labels")
    body = assert_problem(response, 422)
    assert {(e["index"], e["field"]) for e in body["errors"]} == {
        (1, "label"),
        (3, "label"),
        (4, "label"),
    }
    assert pc.sum(pc.is_valid(api.rows().column("label"))).as_py() in (0, None)


# -- limits ----------------------------------------------------------------------------------


def _mutate(case: str, events: list[dict[str, Any]]) -> tuple[int, str]:
    """Break event 3 of ``events`` as ``case`` says; (expected status, problem field)."""
    e = events[3]
    future = datetime.now(UTC) + timedelta(hours=2)
    if case == "unknown_feature":
        e["features"]["colour"] = "red"
        return 422, "features.colour"
    if case == "unknown_segment":
        e["segments"]["region"] = "eu"
        return 422, "segments.region"
    if case == "long_id":
        e["id"] = "x" * 65
        return 422, "id"
    if case == "long_version":
        e["version"] = "v" * 65
        return 422, "version"
    if case == "long_category":
        e["features"]["country"] = "C" * 65
        return 422, "features.country"
    if case == "long_segment":
        e["segments"]["channel"] = "w" * 65
        return 422, "segments.channel"
    if case == "future_timestamp":
        e["timestamp"] = iso(future)
        return 422, "timestamp"
    if case == "missing_id":
        del e["id"]
        return 422, "id"
    if case == "empty_id":
        e["id"] = ""
        return 422, "id"
    if case == "missing_version":
        del e["version"]
        return 422, "version"
    if case == "score_above_one":
        e["score"] = 1.5
        return 422, "score"
    if case == "score_below_zero":
        e["score"] = -0.1
        return 422, "score"
    if case == "score_string":
        e["score"] = "0.5"
        return 422, "score"
    if case == "score_bool":
        e["score"] = True
        return 422, "score"
    if case == "prediction_not_binary":
        e["prediction"] = 2
        return 422, "prediction"
    if case == "feature_not_number":
        e["features"]["amount"] = "12.5"
        return 422, "features.amount"
    if case == "feature_bool":
        e["features"]["amount"] = False
        return 422, "features.amount"
    raise AssertionError(case)


CASES = (
    "unknown_feature",
    "unknown_segment",
    "long_id",
    "long_version",
    "long_category",
    "long_segment",
    "future_timestamp",
    "missing_id",
    "empty_id",
    "missing_version",
    "score_above_one",
    "score_below_zero",
    "score_string",
    "score_bool",
    "prediction_not_binary",
    "feature_not_number",
    "feature_bool",
)


@pytest.mark.parametrize("case", CASES)
def test_each_bad_event_answers_its_status_and_loses_nothing(
    make_api: ApiFactory, case: str
) -> None:
    api = make_api(LIMITS)
    admin = api.key()
    api.register(admin)
    accepted = make_events(11, 10, prefix="ok")
    assert post(api, admin, accepted.predictions()).status_code == 200
    before = api.rows()
    events = make_events(12, 8).predictions()
    status, field = _mutate(case, events)
    body = assert_problem(post(api, admin, events), status)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(3, field)]
    assert api.rows().equals(before)


def test_timestamps_just_inside_the_future_limit_are_accepted(
    api: Api, admin: dict[str, str]
) -> None:
    events = make_events(13, 2).predictions()
    soon = datetime.now(UTC) + timedelta(minutes=30)
    events[0]["timestamp"] = iso(soon)
    events[1]["timestamp"] = soon.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00"
    assert post(api, admin, events).json()["accepted"] == 2


@pytest.mark.parametrize(
    "case",
    ["label_two", "label_half", "label_string", "label_missing", "label_future", "label_no_id"],
)
def test_bad_labels_answer_422(api: Api, admin: dict[str, str], case: str) -> None:
    ev = make_events(14, 5)
    post(api, admin, ev.predictions())
    labels = ev.labels()
    field = "label"
    if case == "label_two":
        labels[3]["label"] = 2
    elif case == "label_half":
        labels[3]["label"] = 0.5
    elif case == "label_string":
        labels[3]["label"] = "1"
    elif case == "label_missing":
        del labels[3]["label"]
    elif case == "label_future":
        labels[3]["timestamp"] = iso(datetime.now(UTC) + timedelta(days=1))
        field = "timestamp"
    else:
        del labels[3]["id"]
        field = "id"
    body = assert_problem(post(api, admin, labels, "labels"), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(3, field)]
    assert pc.sum(pc.is_valid(api.rows().column("label"))).as_py() in (0, None)


def test_too_many_events_is_413(make_api: ApiFactory) -> None:
    api = make_api(LIMITS)
    admin = api.key()
    api.register(admin)
    ev = make_events(15, 21)
    assert_problem(post(api, admin, ev.predictions()), 413)
    table_body = arrow_stream(ev.table())
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=table_body,
        headers={**admin, "Content-Type": ARROW_STREAM},
    )
    assert_problem(response, 413)
    labels = post(api, admin, ev.labels(), "labels")
    assert_problem(labels, 413)
    assert api.rows().num_rows == 0
    # exactly at the limit is fine
    assert post(api, admin, ev.predictions(range(20))).json()["accepted"] == 20


def test_body_too_large_is_413(make_api: ApiFactory) -> None:
    api = make_api(LIMITS)
    admin = api.key()
    api.register(admin)
    body = json.dumps({"events": make_events(16, 2).predictions()}).encode()
    padded = body[:-1] + b" " * LIMITS["max_body_bytes"] + b"}"  # valid JSON, too big
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=padded,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 413)
    assert api.rows().num_rows == 0


def test_declared_content_length_over_the_limit_is_413(make_api: ApiFactory) -> None:
    api = make_api(LIMITS)
    admin = api.key()
    api.register(admin)

    def body() -> Iterator[bytes]:  # a small body that claims to be huge
        yield b'{"events": []}'

    headers = {**admin, "Content-Type": "application/json", "Content-Length": "10000000"}
    response = api.client.post("/v1/models/fraud/predictions", content=body(), headers=headers)
    problem = assert_problem(response, 413)
    assert "10000000" in problem["detail"]  # refused on the declared length


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"events": {}}', b'{"events": []}'])
def test_malformed_json_bodies_are_422(api: Api, admin: dict[str, str], body: bytes) -> None:
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_problem(response, 422)


# -- Idempotency-Key -------------------------------------------------------------------------


def test_idempotency_key_same_body_same_answer(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(17, 10)
    events = ev.predictions([0, 1, 2, 3, 4, 5, 0])
    headers = {**admin, "Idempotency-Key": "batch-0001"}
    first = post(api, admin | headers, events)
    assert first.status_code == 200
    assert first.json() == {"accepted": 6, "duplicates": 1, "coerced_to_null": 0}
    # another batch stores more rows in between; the replay must not change its answer
    post(api, admin, ev.predictions(range(6, 10)))
    again = post(api, headers, events)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert api.rows().num_rows == 10


def test_idempotency_key_with_another_body_is_422(api: Api, admin: dict[str, str]) -> None:
    ev = make_events(18, 10)
    headers = {**admin, "Idempotency-Key": "batch-0002"}
    assert post(api, headers, ev.predictions(range(5))).status_code == 200
    body = assert_problem(post(api, headers, ev.predictions(range(5, 10))), 422)
    assert body["field"] == "Idempotency-Key"
    assert stored_ids(api) == sorted(ev.ids[:5].tolist())
    # the same key on the labels route is another body too
    assert_problem(post(api, headers, ev.labels(range(5)), "labels"), 422)
    assert pc.sum(pc.is_valid(api.rows().column("label"))).as_py() in (0, None)


def test_overlong_idempotency_key_is_422(api: Api, admin: dict[str, str]) -> None:
    events = make_events(21, 3).predictions()
    body = assert_problem(post(api, {**admin, "Idempotency-Key": "k" * 1025}, events), 422)
    assert body["field"] == "Idempotency-Key"
    assert api.rows().num_rows == 0


def test_idempotency_keys_belong_to_one_tenant(api: Api, admin: dict[str, str]) -> None:
    beta = api.key("beta", "admin")
    api.register(beta)
    events = make_events(19, 4).predictions()
    assert post(api, {**admin, "Idempotency-Key": "k"}, events).json()["accepted"] == 4
    # the same key and body in another tenant is a new batch there
    assert post(api, {**beta, "Idempotency-Key": "k"}, events).json()["accepted"] == 4
    assert api.rows("beta").num_rows == 4


def test_old_idempotency_keys_are_forgotten(make_api: ApiFactory) -> None:
    """Answers older than server.idempotency_hours are deleted, checked every
    server.idempotency_prune_seconds when a batch commits (with a key or without)."""
    ttl = 0.5  # seconds
    api = make_api({"idempotency_hours": ttl / 3600, "idempotency_prune_seconds": 1e-6})
    admin = api.key("acme", "admin")
    api.register(admin)
    ev = make_events(23, 8)
    old = post(api, {**admin, "Idempotency-Key": "old"}, ev.predictions(range(3)))
    assert old.json()["accepted"] == 3
    assert api.store.idempotent_answer("acme", "old") is not None  # younger than ttl
    time.sleep(ttl + 0.1)
    new = post(api, {**admin, "Idempotency-Key": "new"}, ev.predictions(range(3, 6)))
    assert new.json()["accepted"] == 3
    assert api.store.idempotent_answer("acme", "old") is None  # pruned after that answer
    assert api.store.idempotent_answer("acme", "new") is not None
    time.sleep(ttl + 0.1)
    assert post(api, admin, ev.predictions(range(6, 8))).json()["accepted"] == 2  # no key
    assert api.store.idempotent_answer("acme", "new") is None
    assert api.app.state.idempotency_pruned >= 1
    assert api.rows().num_rows == 8  # the events stay
    # the forgotten key takes another body now; its events are duplicates, not stored twice
    again = post(api, {**admin, "Idempotency-Key": "old"}, ev.predictions(range(4)))
    assert again.status_code == 200 and again.json()["duplicates"] == 4


@pytest.mark.parametrize("value", [0, -1, "a day", True])
def test_a_bad_idempotency_retention_is_a_config_error(make_api: ApiFactory, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"server\.idempotency_hours") as caught:
        make_api({"idempotency_hours": value})
    assert caught.value.field == "server.idempotency_hours"


def test_replayed_batches_are_not_counted_again_in_metrics(api: Api, admin: dict[str, str]) -> None:
    headers = {**admin, "Idempotency-Key": "replay"}
    events = make_events(20, 7).predictions()
    for _ in range(3):
        assert post(api, headers, events).status_code == 200
    text = api.client.get("/metrics", headers=admin).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("assay_ingested_events_total{")
        and 'kind="predictions"' in ln
        and 'outcome="accepted"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) == 7.0


# -- backpressure ----------------------------------------------------------------------------


def test_full_write_queue_answers_429_and_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DuckDBStore(tmp_path)
    control = open_control_store(tmp_path)
    app = create_app(store, control, ServerOptions(queue_capacity=1))
    _, token = control.create_key("acme", "admin", actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    entered, release = threading.Event(), threading.Event()
    append = store.append_predictions

    def slow_append(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(20), "the test never released the writer"
        return append(*args, **kwargs)

    batches = [make_events(30 + i, 5, prefix=f"b{i}").predictions() for i in range(12)]

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay") as client:
            assert (await client.post("/v1/models", json=FRAUD, headers=headers)).status_code == 201
            monkeypatch.setattr(store, "append_predictions", slow_append)

            def send(i: int) -> Any:
                return client.post(
                    "/v1/models/fraud/predictions", json={"events": batches[i]}, headers=headers
                )

            running = asyncio.ensure_future(send(0))  # taken by the writer, then blocked
            assert await asyncio.to_thread(entered.wait, 10)
            waiting = asyncio.ensure_future(send(1))  # fills the one queue slot
            for _ in range(500):
                if app.state.writer.depth == 1:
                    break
                await asyncio.sleep(0.01)
            depths = [app.state.writer.depth]
            rejected = list(await asyncio.gather(*(send(i) for i in range(2, 12))))
            depths.append(app.state.writer.depth)
            release.set()
            done = [await running, await waiting]
            depths.append(app.state.writer.depth)
            return done, rejected, depths

    try:
        done, rejected, depths = asyncio.run(scenario())
    finally:
        release.set()
        app.state.writer.close()
    assert [r.status_code for r in done] == [200, 200]
    assert all(r.json()["accepted"] == 5 for r in done)
    for response in rejected:
        body = assert_problem(response, 429)
        assert int(response.headers["Retry-After"]) >= 1
        assert "queue" in body["detail"]
    assert depths[0] == 1 and depths[1] == 1 and depths[2] == 0  # never above capacity
    ids = set(scan(store, "acme", "fraud").column("id").to_pylist())
    assert ids == {e["id"] for b in batches[:2] for e in b}
    store.close()
    control.close()


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded"])
def test_a_body_of_another_media_type_is_a_415(
    api: Api, admin: dict[str, str], content_type: str
) -> None:
    ev = make_events(5, 3)
    body = json.dumps({"events": ev.predictions()})
    response = api.client.post(
        "/v1/models/fraud/predictions",
        content=body,
        headers={**admin, "Content-Type": content_type},
    )
    problem = assert_problem(response, 415)
    assert problem["field"] == "Content-Type" and "application/json" in problem["detail"]
    assert api.rows().num_rows == 0
    # JSON with a charset parameter, or with no type at all, is read as JSON
    for header in ({"Content-Type": "application/json; charset=utf-8"}, {}):
        response = api.client.post(
            "/v1/models/fraud/predictions", content=body, headers={**admin, **header}
        )
        assert response.status_code == 200, response.text
