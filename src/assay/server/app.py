"""The HTTP API (FastAPI): thin routes over the service layer.

Every route but ``/healthz`` and ``/readyz`` (and ``/metrics`` when configured public)
needs ``Authorization: Bearer <key>``; every query is scoped to the key's tenant, so
another tenant's model answers 404 exactly as a missing one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from assay import __version__
from assay.errors import AssayError, InputError, PayloadTooLargeError, UnsupportedMediaTypeError
from assay.server.auth import Admin, Caller, Ingester, Reader, caller
from assay.server.problems import (
    assay_error_handler,
    http_error_handler,
    problem,
    validation_error_handler,
)
from assay.server.rollouts import add_rollout_routes
from assay.server.telemetry import Telemetry
from assay.server.writer import Every, WriteQueue
from assay.service import evaluations, ingest
from assay.service.commit import IngestJob, Outcome, commit_jobs
from assay.service.ingest import IngestLimits, PreparedBatch
from assay.store.base import EventKind, Store
from assay.store.model import ModelSpec

JSON_TYPES = ("application/json", "text/json")
ARROW_TYPES = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file",
               "application/vnd.apache.parquet", "application/x-parquet")  # fmt: skip


@dataclass
class ServerOptions:
    """Options of one server, built at the edge (CLI flags > environment > file)."""

    limits: IngestLimits = field(default_factory=IngestLimits)
    queue_capacity: int = 64
    metrics_public: bool = False
    # an Idempotency-Key's answer is kept this long; older ones are deleted every
    # ``prune_every_seconds`` (checked when a batch commits)
    idempotency_ttl: timedelta = timedelta(hours=24)
    prune_every_seconds: float = 600.0


def create_app(store: Store, control: Any, options: ServerOptions | None = None) -> FastAPI:
    """Build the application around a data store and a control store."""
    options = options or ServerOptions()
    writer = WriteQueue(options.queue_capacity)
    telemetry = Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(writer.close)  # finish the queued writes

    app = FastAPI(title="Assay", version=__version__, lifespan=lifespan,
                  description="Continuous evaluation of ML models in production.")  # fmt: skip
    app.state.store, app.state.control, app.state.writer = store, control, writer
    app.state.telemetry = telemetry
    app.state.rollups = None  # how dirty buckets are rebuilt (assay.yaml's engine:)
    app.add_exception_handler(AssayError, assay_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)

    async def audit(who: Caller, action: str, target: str, details: dict[str, Any]) -> None:
        # a blocking write to the control store (other processes may hold its lock):
        # off the event loop
        await run_in_threadpool(control.append_audit, who.actor, action, target, details,
                                tenant=who.tenant)  # fmt: skip

    # -- health ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        try:
            store.ping()
        except Exception as err:  # any failure means not ready
            return problem(503, "NotReady", f"the store does not answer: {err}")
        return JSONResponse({"status": "ready", "write_queue": writer.depth})

    @app.get("/metrics", tags=["health"])
    def metrics(request: Request) -> Response:
        tenant = None
        if not options.metrics_public or request.headers.get("authorization"):
            tenant = caller(request).tenant
        telemetry.queue_depth = writer.depth
        return Response(telemetry.render(tenant), media_type="text/plain; version=0.0.4")

    # -- models ---------------------------------------------------------------------------
    @app.post("/v1/models", tags=["models"])
    async def register_model(spec: ModelSpec, who: Admin) -> JSONResponse:
        registered, created = await writer.submit(lambda: store.register_model(who.tenant, spec))
        if created:
            await audit(who, "model.register", spec.name, spec.model_dump())
        return JSONResponse(registered.model_dump(), status_code=201 if created else 200)

    @app.get("/v1/models", tags=["models"])
    def list_models(who: Reader) -> dict[str, Any]:
        return {"models": [m.model_dump() for m in store.list_models(who.tenant)]}

    @app.get("/v1/models/{model}", tags=["models"])
    def get_model(model: str, who: Reader) -> dict[str, Any]:
        return store.get_model(who.tenant, model).model_dump()

    @app.get("/v1/models/{model}/versions", tags=["models"])
    def list_versions(model: str, who: Reader) -> dict[str, Any]:
        versions = store.list_versions(who.tenant, model)
        return {"versions": [
            {"version": v.version, "predictions": v.predictions,
             "first_seen": v.first_seen.isoformat(), "last_seen": v.last_seen.isoformat()}
            for v in versions
        ]}  # fmt: skip

    # -- events ---------------------------------------------------------------------------
    specs: dict[tuple[str, str], ModelSpec] = {}  # (tenant, model) -> its registered spec

    async def receive(request: Request, who: Caller, model: str, kind: EventKind) -> JSONResponse:
        started = time.perf_counter()
        # a missing (or another tenant's) model answers 404 before anything is counted, so
        # the series' labels are only ever this tenant's registered models
        spec = specs.get((who.tenant, model))
        if spec is None:  # a registered spec never changes: look it up once
            spec = await run_in_threadpool(store.get_model, who.tenant, model)
            specs[(who.tenant, model)] = spec
        status = 500
        try:
            body = await _read_body(request, options.limits)
            content_type = request.headers.get("content-type", "")
            batch = _prepare(spec, kind, body, content_type, options.limits)
            idem_key = request.headers.get("idempotency-key")
            longest = options.limits.max_string_length
            if idem_key is not None and not 0 < len(idem_key) <= longest:
                raise InputError(f"an Idempotency-Key has 1 to {longest} characters",
                                 field="Idempotency-Key")  # fmt: skip
            digest = ingest.body_hash(f"{kind}|{model}|".encode() + body) if idem_key else ""
            job = IngestJob(who.tenant, model, kind, batch, idem_key, digest)
            # requests queued back to back for this model and kind share one transaction
            answer, replayed = await writer.submit_grouped(
                (who.tenant, model, kind), job, commit_group, weight=batch.table.num_rows
            )
            status = 200
            if not replayed:  # a replay stores nothing: its events were counted the first time
                telemetry.count_events(who.tenant, model, kind, "accepted", answer["accepted"])
                telemetry.count_events(who.tenant, model, kind, "duplicate", answer["duplicates"])
            if pruning.due():  # after the answer is sent
                return JSONResponse(answer, background=BackgroundTask(prune_idempotency))
            return JSONResponse(answer)
        except AssayError as err:
            status = err.http_status
            raise
        finally:
            telemetry.count_batch(who.tenant, model, kind, status)
            telemetry.observe_latency(who.tenant, kind, time.perf_counter() - started)

    def commit_group(jobs: list[IngestJob]) -> list[Outcome]:
        return commit_jobs(store, jobs)

    pruning = Every(options.prune_every_seconds)
    app.state.idempotency_pruned = 0

    async def prune_idempotency() -> None:
        before = datetime.now(UTC) - options.idempotency_ttl
        try:  # on the writer thread, in turn with the batches
            app.state.idempotency_pruned += await writer.submit(
                lambda: store.prune_idempotency(before)
            )
        except Exception:  # a full queue or a store hiccup: the next due prune catches up
            pruning.reset()

    @app.post("/v1/models/{model}/predictions", tags=["events"])
    async def post_predictions(model: str, request: Request, who: Ingester) -> JSONResponse:
        return await receive(request, who, model, "predictions")

    @app.post("/v1/models/{model}/labels", tags=["events"])
    async def post_labels(model: str, request: Request, who: Ingester) -> JSONResponse:
        return await receive(request, who, model, "labels")

    # -- references and evaluations -------------------------------------------------------
    @app.post("/v1/models/{model}/reference", tags=["evaluations"])
    async def post_reference(model: str, request: Request, who: Admin) -> dict[str, Any]:
        await run_in_threadpool(store.get_model, who.tenant, model)
        body = await _read_body(request, options.limits)
        content_type = request.headers.get("content-type", "")
        _check_media_type(content_type)
        if content_type.startswith(ARROW_TYPES):
            table = ingest.read_arrow_body(body, content_type, IngestLimits(
                max_body_bytes=options.limits.max_body_bytes, max_events=10**9))  # fmt: skip
            job = lambda: evaluations.save_reference(  # noqa: E731
                store, who.tenant, model, table, {"source": "upload"}
            )
        else:
            spec = _json_object(body)
            start, end = _time(spec, "start"), _time(spec, "end")
            if not isinstance(spec.get("version"), str | None):
                raise InputError('"version" is a string (or absent for all)', field="version")
            job = lambda: evaluations.reference_from_range(  # noqa: E731
                store, who.tenant, model, start=start, end=end, version=spec.get("version")
            )
        info = await writer.submit(job)
        await audit(who, "reference.set", model, info)
        return info

    @app.get("/v1/models/{model}/evaluations", tags=["evaluations"])
    async def get_evaluations(
        model: str,
        who: Reader,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        window: Annotated[str, Query(pattern=r"^\d+[hdw]$")] = "1d",
        segment: str | None = None,
    ) -> dict[str, Any]:
        result = await writer.submit(lambda: evaluations.evaluate_windows(
            store, who.tenant, model, version=version, start=start, end=end, window=window,
            segment=segment, executor=app.state.rollups))  # fmt: skip
        telemetry.record_evaluation(who.tenant, model, result)
        await audit(who, "evaluation.run", model, {
            "version": version, "start": start, "end": end, "window": window,
            "segment": segment, "windows": len(result["windows"]),
            "fingerprint": _fingerprint(result)})  # fmt: skip
        return result

    add_rollout_routes(app, store, writer, audit)

    @app.get("/v1/alerts", tags=["alerts"])
    def alerts(who: Reader) -> dict[str, Any]:
        scheduler = getattr(app.state, "scheduler", None)  # set by `assay serve --config`
        return {"alerts": [] if scheduler is None else scheduler.active(who.tenant)}

    return app


async def _read_body(request: Request, limits: IngestLimits) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body of {declared} bytes exceeds the limit of {limits.max_body_bytes}",
            field="body",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise PayloadTooLargeError(
                f"body exceeds the limit of {limits.max_body_bytes} bytes", field="body"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _check_media_type(content_type: str) -> None:
    """JSON (also when no type is given), Arrow IPC or Parquet; anything else is a 415."""
    media = content_type.split(";")[0].strip().lower()
    if (
        media
        and media not in JSON_TYPES
        and not media.endswith("+json")
        and (not media.startswith(ARROW_TYPES))
    ):
        raise UnsupportedMediaTypeError(
            f"cannot read a body of type {media!r}",
            field="Content-Type",
            hint="send application/json, " + ", ".join(ARROW_TYPES),
        )


def _prepare(spec: ModelSpec, kind: str, body: bytes, content_type: str,
             limits: IngestLimits) -> PreparedBatch:  # fmt: skip
    _check_media_type(content_type)
    if content_type.startswith(ARROW_TYPES):
        table = ingest.read_arrow_body(body, content_type, limits)
        if kind == "predictions":
            return ingest.predictions_from_arrow(spec, table, limits)
        return ingest.labels_from_arrow(spec, table, limits)
    if kind == "predictions":
        return ingest.predictions_from_json(spec, body, limits)
    return ingest.labels_from_json(spec, body, limits)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as err:
        raise InputError(f"the body is not valid JSON: {err}", field="body") from err
    if not isinstance(value, dict):
        raise InputError("the body must be a JSON object", field="body")
    return value


def _time(body: dict[str, Any], key: str) -> datetime:
    value = body.get(key)
    if not isinstance(value, str):
        raise InputError(f'"{key}" is required (ISO-8601 time)', field=key)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InputError(f'"{key}" is not an ISO-8601 time: {value!r}', field=key) from err


def _fingerprint(result: dict[str, Any]) -> str:
    import hashlib

    summary = [(w["start"], w["rows"], w["labeled"]) for w in result["windows"]]
    return hashlib.sha256(orjson.dumps(summary)).hexdigest()[:16]
