"""Models, keys, roles and tenants over HTTP: nothing of one tenant is visible to another."""

from __future__ import annotations

import re
from typing import Any

import httpx
import numpy as np
import pytest

from .conftest import (
    FRAUD,
    PARQUET,
    Api,
    assert_problem,
    iso,
    make_events,
    parquet_bytes,
)

ROUTES = [  # (method, path, json body) of every route that needs a key
    ("GET", "/v1/models", None),
    ("POST", "/v1/models", FRAUD),
    ("GET", "/v1/models/fraud", None),
    ("GET", "/v1/models/fraud/versions", None),
    ("POST", "/v1/models/fraud/predictions", {"events": []}),
    ("POST", "/v1/models/fraud/labels", {"labels": []}),
    ("POST", "/v1/models/fraud/reference", {"start": "2026-03-01T00:00:00Z"}),
    ("GET", "/v1/models/fraud/evaluations", None),
    ("GET", "/v1/alerts", None),
    ("GET", "/metrics", None),
]


def call(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return api.client.request(method, path, json=body, headers=headers)


# -- models ------------------------------------------------------------------------------


def test_register_same_and_conflicting_specs(api: Api) -> None:
    admin = api.key()
    first = api.client.post("/v1/models", json=FRAUD, headers=admin)
    assert first.status_code == 201
    assert first.json() == {**FRAUD, "threshold": 0.5, "classes": None}
    again = api.client.post("/v1/models", json=FRAUD, headers=admin)
    assert again.status_code == 200
    assert again.json() == first.json()
    other = {**FRAUD, "features": {"amount": "categorical"}}
    body = assert_problem(api.client.post("/v1/models", json=other, headers=admin), 409)
    assert body["field"] == "name"
    assert api.client.get("/v1/models/fraud", headers=admin).json() == first.json()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**FRAUD, "name": "bad name!"}, "name"),
        ({**FRAUD, "task": "ranking"}, "task"),
        ({**FRAUD, "features": {"amount": "text"}}, "features.amount"),
        ({**FRAUD, "extra": 1}, "extra"),
        ({"name": "m", "task": "multiclass", "classes": ["a"]}, "body"),
        (b"{not json", "body"),
    ],
)
def test_invalid_model_specs_are_422(api: Api, spec: Any, field: str) -> None:
    payload = {"content": spec} if isinstance(spec, bytes) else {"json": spec}
    headers = {**api.key(), "Content-Type": "application/json"}
    body = assert_problem(api.client.post("/v1/models", headers=headers, **payload), 422)
    assert body["field"] == field
    assert api.client.get("/v1/models", headers=api.key()).json() == {"models": []}


def test_list_and_get_models_and_versions(api: Api) -> None:
    admin = api.key()
    api.register(admin)
    second = {"name": "churn", "task": "regression", "features": {"tenure": "numeric"}}
    api.register(admin, second)
    names = [m["name"] for m in api.client.get("/v1/models", headers=admin).json()["models"]]
    assert names == ["churn", "fraud"]
    got = api.client.get("/v1/models/churn", headers=admin).json()
    assert got == {**second, "segments": [], "threshold": 0.5, "classes": None}
    assert api.client.get("/v1/models/fraud/versions", headers=admin).json() == {"versions": []}
    ev = make_events(40, 60)
    api.client.post(
        "/v1/models/fraud/predictions", json={"events": ev.predictions()}, headers=admin
    )
    versions = api.client.get("/v1/models/fraud/versions", headers=admin).json()["versions"]
    expected = []
    for version in ("v1", "v2"):
        mask = ev.version == version
        ts = [t for t, m in zip(ev.ts, mask, strict=True) if m]
        expected.append((version, int(mask.sum()), min(ts), max(ts)))
    expected.sort(key=lambda e: e[2])  # ordered by first seen
    assert [
        (v["version"], v["predictions"], v["first_seen"], v["last_seen"]) for v in versions
    ] == [(v, n, first.isoformat(), last.isoformat()) for v, n, first, last in expected]
    assert_problem(api.client.get("/v1/models/nope", headers=admin), 404)


# -- keys ----------------------------------------------------------------------------------


def test_health_routes_need_no_key(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_other_route_needs_a_valid_key(api: Api, method: str, path: str, body: Any) -> None:
    admin = api.key()
    api.register(admin)
    info, token = api.control.create_key("acme", "admin", actor="test")
    api.control.revoke_key(info.key_id, actor="test")
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer assay_0123456789abcdef_notarealsecretnotarealsecret"},
        {"Authorization": admin["Authorization"] + "x"},
        {"Authorization": f"Bearer {token}"},  # revoked
    ):
        response = call(api, method, path, body, headers)
        problem = assert_problem(response, 401)
        assert problem["field"] == "Authorization"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.rows().num_rows == 0


def test_revoking_a_key_takes_effect_at_once(api: Api) -> None:
    info, token = api.control.create_key("acme", "admin", actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/models", headers=headers).status_code == 200
    api.control.revoke_key(info.key_id, actor="test")
    assert_problem(api.client.get("/v1/models", headers=headers), 401)


def test_roles(api: Api) -> None:
    admin, ingest, read = api.key(role="admin"), api.key(role="ingest"), api.key(role="read")
    assert_problem(api.client.post("/v1/models", json=FRAUD, headers=read), 403)
    assert_problem(api.client.post("/v1/models", json=FRAUD, headers=ingest), 403)
    api.register(admin)
    ev = make_events(41, 10)
    predictions = {"events": ev.predictions()}
    labels = {"labels": ev.labels()}
    path = "/v1/models/fraud"
    body = assert_problem(
        api.client.post(f"{path}/predictions", json=predictions, headers=read), 403
    )
    assert body["field"] == "Authorization"
    assert_problem(api.client.post(f"{path}/labels", json=labels, headers=read), 403)
    assert api.rows().num_rows == 0
    assert (
        api.client.post(f"{path}/predictions", json=predictions, headers=ingest).json()["accepted"]
        == 10
    )
    assert api.client.post(f"{path}/labels", json=labels, headers=ingest).json()["accepted"] == 10
    reference = {"start": iso(ev.ts[0]), "end": iso(ev.ts[-1])}
    for key in (read, ingest):
        assert_problem(api.client.post(f"{path}/reference", json=reference, headers=key), 403)
    for key in (read, ingest, admin):
        for route in ("", "/versions", "/evaluations"):
            assert api.client.get(path + route, headers=key).status_code == 200
        assert api.client.get("/v1/alerts", headers=key).json() == {"alerts": []}
        assert api.client.get("/metrics", headers=key).status_code == 200
    assert api.client.post(f"{path}/reference", json=reference, headers=admin).status_code == 200


# -- tenants ---------------------------------------------------------------------------------

SECRET_TENANT, SECRET_MODEL = "beta-corp", "secret-model"


def _shape(response: httpx.Response, name: str) -> tuple[int, str, Any]:
    """Status, content type and body of ``response`` with the model name blanked."""
    text = response.text.replace(name, "<model>")
    return response.status_code, response.headers["content-type"], text


def test_another_tenants_model_answers_exactly_like_a_missing_one(api: Api) -> None:
    alpha = api.key("acme", "admin")
    beta = api.key(SECRET_TENANT, "admin")
    api.register(beta, {**FRAUD, "name": SECRET_MODEL})
    ev = make_events(42, 40)
    base = f"/v1/models/{SECRET_MODEL}"
    assert (
        api.client.post(
            f"{base}/predictions", json={"events": ev.predictions()}, headers=beta
        ).status_code
        == 200
    )
    api.client.post(f"{base}/labels", json={"labels": ev.labels()}, headers=beta)
    reference = {"start": iso(ev.ts[0]), "end": iso(ev.ts[-1])}
    assert api.client.post(f"{base}/reference", json=reference, headers=beta).status_code == 200
    before = api.rows(SECRET_TENANT, SECRET_MODEL)

    ev2 = make_events(43, 5)
    requests = [
        ("GET", "", None, None),
        ("GET", "/versions", None, None),
        ("GET", "/evaluations", None, None),
        ("GET", "/evaluations?window=1d&segment=channel", None, None),
        ("POST", "/predictions", {"events": ev2.predictions()}, None),
        ("POST", "/labels", {"labels": ev.labels()}, None),
        ("POST", "/reference", reference, None),
        ("POST", "/reference", None, parquet_bytes(ev2.table().select(["amount", "country"]))),
    ]
    for method, route, body, raw in requests:
        seen = []
        for name in (SECRET_MODEL, "missing-model"):
            headers = dict(alpha)
            if raw is not None:
                headers["Content-Type"] = PARQUET
            response = api.client.request(
                method, f"/v1/models/{name}{route}", json=body, content=raw, headers=headers
            )
            assert_problem(response, 404)
            seen.append(_shape(response, name))
        assert seen[0] == seen[1], (method, route)
    assert api.rows(SECRET_TENANT, SECRET_MODEL).equals(before)
    # the same name is free in tenant acme, and the two models stay apart
    api.register(alpha, {**FRAUD, "name": SECRET_MODEL})
    assert api.rows("acme", SECRET_MODEL).num_rows == 0
    listed = api.client.get("/v1/models", headers=alpha).json()["models"]
    assert [m["name"] for m in listed] == [SECRET_MODEL]
    assert api.client.get(f"{base}/versions", headers=alpha).json() == {"versions": []}
    windows = api.client.get(f"{base}/evaluations", headers=alpha).json()["windows"]
    assert windows == []


def test_alerts_and_metrics_show_nothing_of_another_tenant(api: Api) -> None:
    alpha = api.key("acme", "read")
    alpha_admin = api.key("acme", "admin")
    api.register(alpha_admin)
    beta = api.key(SECRET_TENANT, "admin")
    api.register(beta, {**FRAUD, "name": SECRET_MODEL})
    ev = make_events(44, 20)
    api.client.post(
        f"/v1/models/{SECRET_MODEL}/predictions", json={"events": ev.predictions()}, headers=beta
    )
    api.client.post(
        f"/v1/models/{SECRET_MODEL}/labels", json={"labels": [{"x": 1}]}, headers=beta
    )  # a rejected batch is counted too
    api.client.post(
        "/v1/models/fraud/predictions", json={"events": ev.predictions()}, headers=alpha_admin
    )
    # tenant acme probes the other tenant's model name: 404, and no series for it
    probe = api.client.post(
        f"/v1/models/{SECRET_MODEL}/predictions",
        json={"events": ev.predictions()},
        headers=alpha_admin,
    )
    assert_problem(probe, 404)
    for key in (alpha, alpha_admin):
        text = api.client.get("/metrics", headers=key).text
        assert SECRET_TENANT not in text and SECRET_MODEL not in text
        assert 'tenant="acme"' in text and 'model="fraud"' in text
        tenants = set(re.findall(r'tenant="([^"]*)"', text))
        assert tenants == {"acme"}
        alerts = api.client.get("/v1/alerts", headers=key)
        assert SECRET_TENANT not in alerts.text and SECRET_MODEL not in alerts.text
    # the other tenant sees its own series, and not acme's
    text = api.client.get("/metrics", headers=beta).text
    assert set(re.findall(r'tenant="([^"]*)"', text)) == {SECRET_TENANT}
    assert 'model="fraud"' not in text


def test_public_metrics_need_no_key(make_api: Any) -> None:
    api = make_api(metrics_public=True)
    admin = api.key()
    api.register(admin)
    api.client.post(
        "/v1/models/fraud/predictions",
        json={"events": make_events(45, 3).predictions()},
        headers=admin,
    )
    text = api.client.get("/metrics").text
    assert (
        'assay_ingested_events_total{kind="predictions",model="fraud",outcome="accepted",'
        'tenant="acme"} 3.0' in text
    )
    assert_problem(api.client.get("/v1/models"), 401)


def test_readyz_is_503_when_the_store_does_not_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ConnectionError("database is gone")

    monkeypatch.setattr(api.store, "ping", broken)
    body = assert_problem(api.client.get("/readyz"), 503)
    assert "database is gone" in body["detail"]
    assert api.client.get("/healthz").status_code == 200


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    admin = api.key()
    assert_problem(api.client.get("/v1/nothing", headers=admin), 404)
    assert_problem(api.client.delete("/v1/models", headers=admin), 405)


def test_regression_labels_must_be_finite(api: Api) -> None:
    import pyarrow as pa

    from .conftest import ARROW_STREAM, arrow_stream

    admin = api.key()
    api.register(admin, {"name": "price", "task": "regression", "features": {}})
    events = [
        {
            "id": f"r{i}",
            "version": "v1",
            "prediction": float(i),
            "timestamp": iso(make_events(46, 1).ts[0]),
        }
        for i in range(3)
    ]
    assert (
        api.client.post(
            "/v1/models/price/predictions", json={"events": events}, headers=admin
        ).json()["accepted"]
        == 3
    )
    labels = pa.table({"id": ["r0", "r1", "r2"], "label": [1.0, np.inf, np.nan]})
    response = api.client.post(
        "/v1/models/price/labels",
        content=arrow_stream(labels),
        headers={**admin, "Content-Type": ARROW_STREAM},
    )
    body = assert_problem(response, 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "label"), (2, "label")]
    assert api.rows("acme", "price").column("label").null_count == 3


def test_admin_actions_and_evaluation_runs_are_audited(api: Api) -> None:
    info, token = api.control.create_key("acme", "admin", actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    api.register(headers)
    ev = make_events(47, 20)
    api.client.post(
        "/v1/models/fraud/predictions", json={"events": ev.predictions()}, headers=headers
    )
    reference = {"start": iso(ev.ts[0]), "end": iso(ev.ts[-1])}
    assert (
        api.client.post("/v1/models/fraud/reference", json=reference, headers=headers).status_code
        == 200
    )
    assert api.client.get("/v1/models/fraud/evaluations", headers=headers).status_code == 200
    records = [
        r for r in api.control.audit_records(tenant="acme") if r.actor == f"key:{info.key_id}"
    ]
    assert [(r.action, r.target) for r in records] == [
        ("model.register", "fraud"),
        ("reference.set", "fraud"),
        ("evaluation.run", "fraud"),
    ]
    assert records[-1].details["windows"] >= 1 and records[-1].details["fingerprint"]
    assert api.control.verify_audit().ok
