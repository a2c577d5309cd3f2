"""Multiclass models over HTTP: class probabilities in events, metrics equal scikit-learn's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from .conftest import ARROW_STREAM, BASE, RTOL, Api, ApiFactory, arrow_stream, assert_problem, iso

CLASSES = ["cat", "dog", "bird"]
ANIMALS: dict[str, Any] = {
    "name": "animals",
    "task": "multiclass",
    "classes": CLASSES,
    "features": {"size": "numeric"},
}
URL = "/v1/models/animals"


def _events(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Events with class probabilities (a fifth without a predicted class), their true
    classes, and the probability matrix."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    events = []
    for i in range(n):
        event: dict[str, Any] = {
            "id": f"e-{i}",
            "version": "v1",
            "timestamp": iso(BASE + timedelta(minutes=i)),
            "features": {"size": float(rng.normal())},
            "scores": dict(zip(CLASSES, proba[i].tolist(), strict=True)),
        }
        if i % 5:  # the others are evaluated on their most probable class
            event["prediction"] = CLASSES[int(np.argmax(proba[i]))]
        events.append(event)
    return events, y, proba


def _labels(y: np.ndarray) -> list[dict[str, Any]]:
    return [{"id": f"e-{i}", "label": CLASSES[int(c)], "timestamp": iso(BASE + timedelta(days=2))}
            for i, c in enumerate(y)]  # fmt: skip


def _whole_range(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    params = {"start": iso(BASE), "end": iso(BASE + timedelta(days=1)), "window": "1d"}
    response = api.client.get(f"{URL}/evaluations", params=params, headers=headers)
    assert response.status_code == 200, response.text
    (window,) = response.json()["windows"]
    return window


def _check_against_sklearn(window: dict[str, Any], y: np.ndarray, proba: np.ndarray) -> None:
    pred = np.argmax(proba, axis=1)
    got = window["metrics"]
    assert window["labeled"] == y.size
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=RTOL)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]), rel=RTOL)
    auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert got["roc_auc"] == pytest.approx(auc, rel=RTOL)
    assert got["roc_auc_ci"][0] <= got["roc_auc"] <= got["roc_auc_ci"][1]


@pytest.fixture
def animals(make_api: ApiFactory) -> tuple[Api, dict[str, str]]:
    api = make_api()
    headers = api.key("acme", "admin")
    api.register(headers, ANIMALS)
    return api, headers


def test_json_scores_give_log_loss_and_roc_auc(animals: tuple[Api, dict[str, str]]) -> None:
    api, headers = animals
    events, y, proba = _events(240, seed=3)
    answer = api.client.post(f"{URL}/predictions", json={"events": events}, headers=headers)
    assert answer.json() == {"accepted": 240, "duplicates": 0, "coerced_to_null": 0}
    assert api.client.post(f"{URL}/labels", json={"labels": _labels(y)},
                           headers=headers).status_code == 200  # fmt: skip
    _check_against_sklearn(_whole_range(api, headers), y, proba)


def test_arrow_scores_columns(animals: tuple[Api, dict[str, str]]) -> None:
    api, headers = animals
    events, y, proba = _events(150, seed=4)
    table = pa.table({
        "id": [e["id"] for e in events],
        "timestamp": [e["timestamp"] for e in events],
        "version": ["v1"] * len(events),
        "size": [e["features"]["size"] for e in events],
        **{f"scores.{c}": proba[:, k] for k, c in enumerate(CLASSES)},
    })  # fmt: skip
    answer = api.client.post(f"{URL}/predictions", content=arrow_stream(table),
                             headers={**headers, "Content-Type": ARROW_STREAM})  # fmt: skip
    assert answer.status_code == 200, answer.text
    api.client.post(f"{URL}/labels", json={"labels": _labels(y)}, headers=headers)
    _check_against_sklearn(_whole_range(api, headers), y, proba)


def test_events_without_scores_still_count_for_the_class_metrics(
    animals: tuple[Api, dict[str, str]],
) -> None:
    """Probability metrics cover the labeled events that carry scores; accuracy covers all."""
    api, headers = animals
    events, y, proba = _events(120, seed=5)
    plain = [dict(e, scores=None, prediction=CLASSES[int(np.argmax(proba[i]))])
             for i, e in enumerate(events[:40])]  # fmt: skip
    api.client.post(f"{URL}/predictions", json={"events": plain + events[40:]}, headers=headers)
    api.client.post(f"{URL}/labels", json={"labels": _labels(y)}, headers=headers)
    window = _whole_range(api, headers)
    got = window["metrics"]
    assert got["accuracy"] == pytest.approx(
        skm.accuracy_score(y, np.argmax(proba, axis=1)), rel=RTOL
    )
    scored = slice(40, None)
    want = skm.log_loss(y[scored], proba[scored], labels=[0, 1, 2])
    assert got["log_loss"] == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        ({"cat": 1.5, "dog": 0.0, "bird": 0.0}, "scores.cat"),
        ({"cat": 0.5, "dog": 0.5}, "scores"),
        ({"cat": 0.5, "dog": 0.5, "bird": 0.0, "cow": 0.0}, "scores.cow"),
        ({"cat": True, "dog": 0.0, "bird": 0.0}, "scores.cat"),
        ([0.5, 0.5, 0.0], "scores"),
    ],
)
def test_bad_scores_are_422_and_nothing_is_stored(
    animals: tuple[Api, dict[str, str]], scores: Any, field: str
) -> None:
    api, headers = animals
    events, _, _ = _events(3, seed=6)
    events[1]["scores"] = scores
    body = assert_problem(
        api.client.post(f"{URL}/predictions", json={"events": events}, headers=headers), 422
    )
    assert {"index": 1, "field": field} in [
        {"index": p["index"], "field": p["field"]} for p in body["errors"]
    ]
    assert api.rows("acme", "animals").num_rows == 0


def test_a_binary_model_refuses_class_scores(api: Api, admin: dict[str, str]) -> None:
    event = {"id": "x", "version": "v1", "score": 0.5, "scores": {"a": 1.0}}
    body = assert_problem(
        api.client.post("/v1/models/fraud/predictions", json={"events": [event]}, headers=admin),
        422,
    )
    assert body["errors"][0]["field"] == "scores"


def _version(events: list[dict[str, Any]], version: str, proba: np.ndarray) -> list[dict[str, Any]]:
    """The same events as scored by another version: its own probabilities and classes
    (a fifth without a predicted class, as in :func:`_events`)."""
    out = []
    for i, event in enumerate(events):
        again = {**event, "version": version,
                 "scores": dict(zip(CLASSES, proba[i].tolist(), strict=True))}  # fmt: skip
        again.pop("prediction", None)
        if i % 5:
            again["prediction"] = CLASSES[int(np.argmax(proba[i]))]
        out.append(again)
    return out


def test_a_shadow_rollout_of_a_multiclass_model(animals: tuple[Api, dict[str, str]]) -> None:
    """Accuracy (McNemar) and log_loss (paired bootstrap) of the stored events, each
    version's numbers equal to scikit-learn's; the weaker challenger is rolled back."""
    api, headers = animals
    events, y, strong = _events(1_200, seed=31)
    rng = np.random.default_rng(32)
    logits = rng.normal(size=(y.size, 3)) + 0.4 * np.eye(3)[y]  # a weaker model
    weak = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for batch in (events, _version(events, "v2", weak)):
        answer = api.client.post(f"{URL}/predictions", json={"events": batch}, headers=headers)
        assert answer.status_code == 200, answer.text
    assert api.client.post(f"{URL}/labels", json={"labels": _labels(y)},
                           headers=headers).status_code == 200  # fmt: skip
    policy = {"metrics": [{"metric": "accuracy"}, {"metric": "log_loss"}]}
    body = {"name": "r1", "champion": "v1", "challenger": "v2", "mode": "shadow",
            "policy": policy}  # fmt: skip
    answer = api.client.post(f"{URL}/rollouts", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    status = api.client.get(f"{URL}/rollouts/r1/status", headers=headers).json()
    assert status["decision"] == "reject" and status["rollback"], status["reasons"]
    accuracy, loss = status["checks"]
    assert accuracy["test"].startswith("mcnemar") and loss["test"] == "paired_bootstrap"
    for proba, side in ((strong, "baseline"), (weak, "candidate")):
        pred = np.argmax(proba, axis=1)  # given or not, each event's class is the argmax
        assert accuracy[side] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
        assert loss[side] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]), rel=1e-9)
    assert status["rows"]["paired"] == y.size
