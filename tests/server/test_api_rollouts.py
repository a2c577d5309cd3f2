"""Rollouts over HTTP: register, status (Argo's web metric), Flagger webhook, scoping.

Each arm's metric in the status is checked against scikit-learn on the events sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from .conftest import BASE, Api, ApiFactory, assert_problem, iso

URL = "/v1/models/fraud/rollouts"


def events(version: str, ids: list[str], y: np.ndarray, score: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"id": i, "version": version, "timestamp": iso(BASE + timedelta(minutes=k)),
         "score": float(s), "features": {"amount": 1.0, "country": "DE"},
         "segments": {"channel": "web"}}
        for k, (i, s) in enumerate(zip(ids, score, strict=True))
    ]  # fmt: skip


def send(api: Api, headers: dict[str, str], preds: list[dict[str, Any]]) -> None:
    for start in range(0, len(preds), 2000):
        response = api.client.post(
            "/v1/models/fraud/predictions",
            json={"events": preds[start : start + 2000]},
            headers=headers,
        )
        assert response.status_code == 200, response.text


def label(api: Api, headers: dict[str, str], ids: list[str], y: np.ndarray) -> None:
    body = {"labels": [{"id": i, "label": int(v), "timestamp": iso(BASE + timedelta(days=1))}
                       for i, v in zip(ids, y, strict=True)]}  # fmt: skip
    response = api.client.post("/v1/models/fraud/labels", json=body, headers=headers)
    assert response.status_code == 200, response.text


def scored(rng: np.random.Generator, y: np.ndarray, strength: float) -> np.ndarray:
    return np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.2, y.size), 0, 1)


def register(api: Api, headers: dict[str, str], **spec: Any) -> Any:
    body = {"name": "r1", "champion": "v1", "challenger": "v2", "mode": "shadow", **spec}
    return api.client.post(URL, json=body, headers=headers)


def test_shadow_rollout_promotes_a_better_challenger(api: Api, admin: dict[str, str]) -> None:
    rng = np.random.default_rng(0)
    n = 1500
    ids = [f"e-{i}" for i in range(n)]
    y = rng.integers(0, 2, n)
    champion, challenger = scored(rng, y, 0.2), scored(rng, y, 0.6)
    send(api, admin, events("v1", ids, y, champion))
    send(api, admin, events("v2", ids, y, challenger))  # the same events, scored again
    assert register(api, admin).status_code == 201
    assert register(api, admin).status_code == 200  # the same again: not new
    reader = api.key("acme", "read")
    status = api.client.get(f"{URL}/r1/status", headers=reader).json()
    assert status["decision"] == "continue" and status["checks"] == []  # no labels yet
    label(api, admin, ids, y)
    status = api.client.get(f"{URL}/r1/status", headers=reader).json()
    assert status["decision"] == "promote" and status["promote"] and not status["rollback"]
    assert status["mode"] == "paired" and status["rows"]["paired"] == n
    [auc] = status["checks"]
    assert auc["test"] == "delong_paired"
    assert auc["baseline"] == pytest.approx(roc_auc_score(y, champion), rel=1e-9)
    assert auc["candidate"] == pytest.approx(roc_auc_score(y, challenger), rel=1e-9)
    listed = api.client.get(URL, headers=reader).json()["rollouts"]
    assert [r["name"] for r in listed] == ["r1"]
    # per-segment checks read the stored segment values
    policy = {"metrics": [{"metric": "roc_auc", "segment": "channel"}]}
    assert register(api, admin, name="r2", policy=policy).status_code == 201
    status = api.client.get(f"{URL}/r2/status", headers=reader).json()
    assert [(c["metric"], c["segment"]) for c in status["checks"]] == [
        ("roc_auc", None), ("roc_auc", {"column": "channel", "value": "web"})
    ]  # fmt: skip
    assert status["checks"][1]["candidate"] == pytest.approx(auc["candidate"], rel=1e-12)


def test_canary_rollback_through_the_flagger_webhook(api: Api, admin: dict[str, str]) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.integers(0, 2, 2 * n)
    ids = [f"e-{i}" for i in range(2 * n)]
    good, bad = scored(rng, y[:n], 0.7), scored(rng, y[n:], 0.05)
    send(api, admin, events("v1", ids[:n], y[:n], good))
    send(api, admin, events("v2", ids[n:], y[n:], bad))
    label(api, admin, ids, y)
    policy = {"metrics": [{"metric": "accuracy", "margin": 0.01}]}
    assert register(api, admin, name="c", mode="canary", policy=policy).status_code == 201
    reader = api.key("acme", "read")
    status = api.client.get(f"{URL}/c/status", headers=reader).json()
    assert status["decision"] == "reject" and status["rollback"]
    [acc] = status["checks"]
    assert acc["test"] == "confidence_sequence"
    assert acc["baseline"] == pytest.approx(accuracy_score(y[:n], good >= 0.5), rel=1e-9)
    assert acc["candidate"] == pytest.approx(accuracy_score(y[n:], bad >= 0.5), rel=1e-9)
    # Flagger sends its payload without headers: the key rides in the metadata
    token = reader["Authorization"].split()[1]
    hook = {"name": "fraud", "namespace": "prod", "phase": "Progressing",
            "metadata": {"assay_key": token}}  # fmt: skip
    response = api.client.post(f"{URL}/c/flagger", json=hook)
    assert response.status_code == 412 and response.json()["decision"] == "reject"
    response = api.client.post(f"{URL}/c/flagger", json={"metadata": {"assay_key": "nope"}})
    assert_problem(response, 401)
    assert_problem(api.client.post(f"{URL}/c/flagger", json={}), 401)


def test_rollout_errors_and_tenant_scoping(api: Api, admin: dict[str, str]) -> None:
    body = assert_problem(register(api, admin, challenger="v1"), 422)
    assert "different versions" in body["detail"]
    assert_problem(register(api, admin, mode="blue-green"), 422)
    canary_auc = {"metrics": [{"metric": "roc_auc"}]}
    body = assert_problem(register(api, admin, mode="canary", policy=canary_auc), 400)
    assert "sequential (canary) metric 'roc_auc'" in body["detail"]
    policy = {"guardrails": [{"metric": "fpr", "segment": "country"}]}
    body = assert_problem(register(api, admin, policy=policy), 400)
    assert "segment 'country'" in body["detail"] and "channel" in body["detail"]
    assert_problem(api.client.get(f"{URL}/missing/status", headers=admin), 404)
    assert register(api, admin).status_code == 201
    other = api.key("globex", "admin")
    assert_problem(api.client.get(f"{URL}/r1/status", headers=other), 404)
    assert_problem(register(api, api.key("acme", "read")), 403)
    assert api.client.delete(f"{URL}/r1", headers=admin).status_code == 204
    assert_problem(api.client.delete(f"{URL}/r1", headers=admin), 404)


def test_a_horizon_fixes_the_decision_on_the_first_labeled_events(
    api: Api, admin: dict[str, str]
) -> None:
    """Shadow with horizon 600: the decision rests on the first 600 paired labeled events."""
    rng = np.random.default_rng(3)
    n = 1500
    ids = [f"e-{i}" for i in range(n)]
    y = rng.integers(0, 2, n)
    champion, challenger = scored(rng, y, 0.3), scored(rng, y, 0.5)
    send(api, admin, events("v1", ids, y, champion))
    send(api, admin, events("v2", ids, y, challenger))
    assert register(api, admin, name="h", horizon=600).status_code == 201
    label(api, admin, ids[:400], y[:400])
    status = api.client.get(f"{URL}/h/status", headers=admin).json()
    assert status["decision"] == "continue" and status["rows"]["paired"] == 400
    label(api, admin, ids[400:], y[400:])
    status = api.client.get(f"{URL}/h/status", headers=admin).json()
    assert status["rows"]["paired"] == 600  # events arrive a minute apart: the first 600
    [auc] = status["checks"]
    assert auc["baseline"] == pytest.approx(roc_auc_score(y[:600], champion[:600]), rel=1e-9)
    assert auc["candidate"] == pytest.approx(roc_auc_score(y[:600], challenger[:600]), rel=1e-9)
    body = assert_problem(register(api, admin, name="h2", mode="canary", horizon=600), 422)
    assert "horizon applies to shadow and ab" in body["detail"]


def test_a_segment_named_target_is_a_segment_not_the_labels(make_api: ApiFactory) -> None:
    """Segments may take any name but the core ones; 'target' is not one (it once replaced
    the labels in a rollout's arms)."""
    api = make_api()
    headers = api.key("acme", "admin")
    spec = {"name": "fraud", "task": "binary", "segments": ["target"]}
    api.register(headers, spec)
    rng = np.random.default_rng(8)
    n = 600
    ids = [f"e-{i}" for i in range(n)]
    y = rng.integers(0, 2, n)
    groups = np.where(np.arange(n) % 2, "retail", "corporate")
    champion, challenger = scored(rng, y, 0.3), scored(rng, y, 0.5)
    for version, score in (("v1", champion), ("v2", challenger)):
        preds = [{"id": i, "version": version, "timestamp": iso(BASE + timedelta(minutes=k)),
                  "score": float(s), "segments": {"target": str(g)}}
                 for k, (i, s, g) in enumerate(zip(ids, score, groups, strict=True))]  # fmt: skip
        send(api, headers, preds)
    label(api, headers, ids, y)
    policy = {"metrics": [{"metric": "roc_auc", "segment": "target"}]}
    assert register(api, headers, policy=policy).status_code == 201
    status = api.client.get(f"{URL}/r1/status", headers=headers).json()
    by_segment = {c["segment"]["value"]: c for c in status["checks"] if c["segment"]}
    assert {c["segment"]["column"] for c in status["checks"] if c["segment"]} == {"target"}
    for value in ("retail", "corporate"):
        rows = groups == value
        assert by_segment[value]["baseline"] == pytest.approx(
            roc_auc_score(y[rows], champion[rows]), rel=1e-9
        )
        assert by_segment[value]["candidate"] == pytest.approx(
            roc_auc_score(y[rows], challenger[rows]), rel=1e-9
        )
