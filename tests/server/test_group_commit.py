"""Group commit: the write queue hands consecutive batches of one model to one transaction.

Expected answers are replayed by brute force (a set of stored ids), never taken from the
server.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from assay.control import open_control_store
from assay.errors import OverloadedError
from assay.server.app import ServerOptions, create_app
from assay.server.writer import WriteQueue
from assay.service.commit import IngestJob, commit_jobs
from assay.service.ingest import IngestLimits, PreparedBatch, predictions_from_arrow
from assay.store.duckdb_store import DuckDBStore
from assay.store.model import ModelSpec

from .conftest import FRAUD, make_events, scan

# -- the queue -------------------------------------------------------------------------------


def _blocked(writer: WriteQueue) -> tuple[threading.Event, tuple[threading.Event, Any]]:
    """(release, (started, hold)): ``hold`` occupies the writer thread until ``release``."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert release.wait(10)

    return release, (started, hold)


def test_only_consecutive_jobs_of_one_group_run_together() -> None:
    writer = WriteQueue(capacity=16, max_group_items=3)
    calls: list[list[str]] = []

    def runner(items: list[str]) -> list[tuple[str, None]]:
        calls.append(items)
        return [(item.upper(), None) for item in items]

    async def scenario() -> list[Any]:
        release, (started, hold) = _blocked(writer)
        first = asyncio.ensure_future(writer.submit(hold))
        assert await asyncio.to_thread(started.wait, 10)
        jobs = [("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"), ("a", "a4"), ("a", "a5"),
                ("a", "a6"), (None, "plain"), ("a", "a7")]  # fmt: skip
        futures = [
            asyncio.ensure_future(
                writer.submit(lambda: "done") if key is None
                else writer.submit_grouped(key, item, runner)
            )
            for key, item in jobs
        ]  # fmt: skip
        while writer.depth < len(jobs):
            await asyncio.sleep(0.001)
        release.set()
        await first
        return list(await asyncio.gather(*futures))

    try:
        answers = asyncio.run(scenario())
    finally:
        writer.close()
    assert answers == ["A1", "A2", "B1", "A3", "A4", "A5", "A6", "done", "A7"]
    assert calls == [["a1", "a2"], ["b1"], ["a3", "a4", "a5"], ["a6"], ["a7"]]
    assert (writer.groups, writer.grouped_jobs) == (5, 8)


def test_each_job_of_a_group_gets_its_own_outcome_and_the_queue_stays_bounded() -> None:
    writer = WriteQueue(capacity=2)

    def runner(items: list[int]) -> list[tuple[Any, BaseException | None]]:
        return [(None, ValueError(f"bad {i}")) if i % 2 else (i, None) for i in items]

    def broken(items: list[int]) -> list[Any]:
        raise RuntimeError("runner broke")

    async def scenario() -> tuple[list[Any], list[Any]]:
        release, (started, hold) = _blocked(writer)
        first = asyncio.ensure_future(writer.submit(hold))
        assert await asyncio.to_thread(started.wait, 10)
        queued = [asyncio.ensure_future(writer.submit_grouped("g", i, runner)) for i in (0, 1)]
        while writer.depth < 2:
            await asyncio.sleep(0.001)
        with pytest.raises(OverloadedError):
            await writer.submit_grouped("g", 2, runner)
        release.set()
        await first
        mixed = list(await asyncio.gather(*queued, return_exceptions=True))
        failed = await asyncio.gather(
            *(writer.submit_grouped("h", i, broken) for i in (3, 4)), return_exceptions=True
        )
        return mixed, list(failed)

    try:
        mixed, failed = asyncio.run(scenario())
    finally:
        writer.close()
    assert mixed[0] == 0 and isinstance(mixed[1], ValueError) and str(mixed[1]) == "bad 1"
    assert all(isinstance(f, RuntimeError) and str(f) == "runner broke" for f in failed)


# -- the service's runner -----------------------------------------------------------------------


def _job(table: pa.Table, key: str | None = None, digest: str = "") -> IngestJob:
    return IngestJob("acme", "fraud", "predictions", PreparedBatch(table, table.num_rows, 0, 0),
                     key, digest)  # fmt: skip


def test_a_failing_batch_fails_alone_and_the_others_are_committed(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    spec, _ = store.register_model("acme", ModelSpec.model_validate(FRAUD))
    events = make_events(3, 9)
    good = [events.table(range(0, 3)), events.table(range(2, 6)), events.table(range(6, 9))]
    tables = [predictions_from_arrow(spec, t, IngestLimits()).table for t in good]
    broken = tables[0].set_column(0, "id", pa.array([None] * 3, pa.string()))
    jobs = [_job(tables[0], "k1", "h1"), _job(broken), _job(tables[1]),
            _job(tables[2], "k1", "h1"), _job(tables[2], "k1", "h2")]  # fmt: skip
    outcomes = commit_jobs(store, jobs)
    answers = [answer for answer, _ in outcomes]
    assert answers[0] == ({"accepted": 3, "duplicates": 0, "coerced_to_null": 0}, False)
    assert answers[1] is None and outcomes[1][1] is not None
    assert answers[2] == ({"accepted": 3, "duplicates": 1, "coerced_to_null": 0}, False)
    assert answers[3] == (answers[0][0], True)  # the key's first answer, replayed
    assert answers[4] is None and "different body" in str(outcomes[4][1])
    assert sorted(scan(store, "acme", "fraud").column("id").to_pylist()) == sorted(
        events.ids[:6].tolist()
    )
    store.close()


# -- through HTTP ----------------------------------------------------------------------------------


def test_concurrent_requests_share_a_transaction_and_answer_as_if_alone(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    control = open_control_store(tmp_path)
    app = create_app(store, control, ServerOptions(queue_capacity=32))
    _, token = control.create_key("acme", "admin", actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    events = make_events(41, 60)
    # overlapping slices: later requests repeat ids of earlier ones
    slices = [range(0, 10), range(5, 20), range(20, 30), range(25, 45), range(40, 60)]
    keys = ["k-a", None, "k-b", None, "k-a"]  # the last re-uses the first's key with another body
    stored: set[str] = set()
    expected: list[Any] = []
    for rows, key in zip(slices, keys, strict=True):
        ids = [str(events.ids[i]) for i in rows]
        if key == "k-a" and expected:
            expected.append(422)
            continue
        fresh = [i for i in ids if i not in stored]
        stored |= set(fresh)
        expected.append({"accepted": len(fresh), "duplicates": len(ids) - len(fresh),
                         "coerced_to_null": 0})  # fmt: skip

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay") as client:
            assert (await client.post("/v1/models", json=FRAUD, headers=headers)).status_code == 201
            release, (started, hold) = _blocked(app.state.writer)
            first = asyncio.ensure_future(app.state.writer.submit(hold))
            assert await asyncio.to_thread(started.wait, 10)
            sent = []
            for rows, key in zip(slices, keys, strict=True):
                extra = {"Idempotency-Key": key} if key else {}
                sent.append(asyncio.ensure_future(client.post(
                    "/v1/models/fraud/predictions", json={"events": events.predictions(rows)},
                    headers={**headers, **extra})))  # fmt: skip
                while app.state.writer.depth < len(sent):  # queued in this order
                    await asyncio.sleep(0.001)
            release.set()
            await first
            return list(await asyncio.gather(*sent))

    try:
        responses = asyncio.run(scenario())
    finally:
        app.state.writer.close()
    got = [r.status_code if r.status_code != 200 else r.json() for r in responses]
    assert got == expected
    assert (app.state.writer.groups, app.state.writer.grouped_jobs) == (1, len(slices))
    assert sorted(scan(store, "acme", "fraud").column("id").to_pylist()) == sorted(stored)
    store.close()
    control.close()
