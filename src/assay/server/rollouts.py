"""Rollout routes: register champion/challenger comparisons and answer their status.

``GET .../status`` answers the gate's decision as JSON (``$.decision`` is ``promote``,
``reject`` or ``continue``), the form Argo Rollouts' web metric provider reads.
``POST .../flagger`` is a Flagger webhook: 200 lets the canary go on, 412 stops it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from assay.errors import AuthenticationError
from assay.rollout.spec import RolloutSpec
from assay.server.auth import Admin, Caller, Reader, authorize, caller, key_caller
from assay.server.writer import WriteQueue
from assay.service import rollouts
from assay.store.base import Store

Audit = Callable[[Caller, str, str, dict[str, Any]], Awaitable[None]]


def add_rollout_routes(app: FastAPI, store: Store, writer: WriteQueue, audit: Audit) -> None:
    """Add the ``/v1/models/{model}/rollouts`` routes to ``app``."""

    @app.post("/v1/models/{model}/rollouts", tags=["rollouts"])
    async def register_rollout(model: str, spec: RolloutSpec, who: Admin) -> JSONResponse:
        created = await writer.submit(
            lambda: rollouts.register_rollout(store, who.tenant, model, spec)
        )
        await audit(who, "rollout.register", f"{model}/{spec.name}", spec.model_dump(mode="json"))
        return JSONResponse(spec.model_dump(mode="json"), status_code=201 if created else 200)

    @app.get("/v1/models/{model}/rollouts", tags=["rollouts"])
    def list_rollouts(model: str, who: Reader) -> dict[str, Any]:
        return {"rollouts": list(store.get_rollouts(who.tenant, model).values())}

    @app.get("/v1/models/{model}/rollouts/{name}", tags=["rollouts"])
    def get_rollout(model: str, name: str, who: Reader) -> dict[str, Any]:
        return rollouts.get_rollout(store, who.tenant, model, name).model_dump(mode="json")

    @app.delete("/v1/models/{model}/rollouts/{name}", tags=["rollouts"], status_code=204)
    async def delete_rollout(model: str, name: str, who: Admin) -> Response:
        rollouts.get_rollout(store, who.tenant, model, name)  # 404 when missing
        await writer.submit(lambda: store.delete_rollout(who.tenant, model, name))
        await audit(who, "rollout.delete", f"{model}/{name}", {})
        return Response(status_code=204)

    async def judged(who: Caller, model: str, name: str) -> dict[str, Any]:
        status = await run_in_threadpool(rollouts.rollout_status, store, who.tenant, model, name)
        await audit(who, "rollout.decision", f"{model}/{name}", {
            "decision": status["decision"], "rows": status["rows"],
            "fingerprint": status.get("run", {}).get("config_hash")})  # fmt: skip
        return status

    @app.get("/v1/models/{model}/rollouts/{name}/status", tags=["rollouts"])
    async def rollout_status(model: str, name: str, who: Reader) -> dict[str, Any]:
        return await judged(who, model, name)

    @app.post("/v1/models/{model}/rollouts/{name}/flagger", tags=["rollouts"])
    async def flagger_webhook(
        model: str,
        name: str,
        request: Request,
        gate: Literal["rollout", "promotion"] = "rollout",
    ) -> JSONResponse:
        who = await _webhook_caller(request)
        status = await judged(who, model, name)
        if gate == "promotion":
            ok = status["decision"] == "promote"
        else:
            ok = status["decision"] != "reject"
        body = {"decision": status["decision"], "reasons": status["reasons"]}
        return JSONResponse(body, status_code=200 if ok else 412)


async def _webhook_caller(request: Request) -> Caller:
    """The key from the Authorization header, or from the webhook's ``metadata.assay_key``.

    Flagger cannot send headers, so its webhook metadata may carry the (read) key.
    """
    if request.headers.get("authorization"):
        return authorize(caller(request), "read")
    try:
        payload = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        payload = {}
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    key = metadata.get("assay_key") if isinstance(metadata, dict) else None
    if not key:
        raise AuthenticationError(
            "missing API key",
            field="Authorization",
            hint="send 'Authorization: Bearer <key>' or metadata.assay_key in the webhook",
        )
    return authorize(key_caller(request, str(key), field="metadata.assay_key"), "read")
