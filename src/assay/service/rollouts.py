"""Rollouts in the service: register one, and judge it from the stored events on demand.

The status is the gate's decision on the champion's and the challenger's labeled
predictions since the rollout's start: promote, reject (roll back) or continue. A
multiclass model's events are judged on their predicted class (the most probable one where
an event carries only probabilities) and, when every labeled event carries them, on its
class probabilities.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.errors import ConfigError, EmptyInputError, NotFoundError
from assay.rollout.decision import EXIT_CODES
from assay.rollout.spec import RolloutSpec
from assay.service.gate import check_policy, gate
from assay.service.rollups import class_scores
from assay.store.base import SEGMENT_PREFIX, Store, score_classes
from assay.store.model import ModelSpec


def register_rollout(store: Store, tenant: str, model: str, spec: RolloutSpec) -> bool:
    """Save ``spec`` for ``model``; True when the rollout is new."""
    model_spec = store.get_model(tenant, model)
    unknown = [c for c in spec.policy.segment_columns if c not in model_spec.segments]
    if unknown:
        raise ConfigError(
            f"the policy checks segment {unknown[0]!r}, which model {model!r} does not have",
            field="policy.segment",
            hint="use one of: " + (", ".join(model_spec.segments) or "(no segments registered)"),
        )
    check_policy(model_spec.task, spec.policy, sequential=spec.gate_mode == "sequential")
    return store.put_rollout(tenant, model, spec.name, spec.model_dump(mode="json"))


def get_rollout(store: Store, tenant: str, model: str, name: str) -> RolloutSpec:
    """The model's rollout ``name`` (404 when missing)."""
    found = store.get_rollouts(tenant, model).get(name)
    if found is None:
        raise NotFoundError(f"rollout {name!r} of model {model!r} not found", field="rollout")
    return RolloutSpec.model_validate(found)


def rollout_status(
    store: Store, tenant: str, model: str, name: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The gate decision for a rollout, with the numbers behind it.

    ``decision`` is ``promote``, ``reject`` (roll back) or ``continue``; ``rollback`` and
    ``promote`` are booleans for tools that read one flag.
    """
    spec = get_rollout(store, tenant, model, name)
    model_spec = store.get_model(tenant, model)
    end = spec.end or now or datetime.now(UTC)
    arms = [_arm(store.scan(tenant, model, version=v, start=spec.start, end=end), model_spec)
            for v in (spec.champion, spec.challenger)]  # fmt: skip
    probabilities = [c for c in arms[0].column_names if c.startswith(_PROBABILITY)]
    if any(c not in arm.column_names for arm in arms[1:] for c in probabilities):
        arms = [arm.drop_columns(probabilities) for arm in arms]  # not on every labeled event
        probabilities = []
    versions = {"champion": spec.champion, "challenger": spec.challenger}
    policy = spec.policy
    if spec.horizon is not None:
        arms = _first_labeled(arms, spec.horizon, paired=spec.gate_mode == "paired")
        policy = policy.model_copy(update={"min_rows": spec.horizon})
    try:
        decision = gate(
            arms[0],
            arms[1],
            task=model_spec.task,
            target="label",  # a core name: no segment can be called so
            score=("score" if model_spec.task == "binary" else ",".join(probabilities) or None),
            prediction=None if model_spec.task == "binary" else "prediction",
            threshold=model_spec.threshold,
            paired=spec.gate_mode == "paired",
            id_column="id",
            policy=policy,
            sequential=spec.gate_mode == "sequential",
            models=versions,
        ).to_dict()
    except EmptyInputError as err:  # a version with no (labeled) events yet
        decision = {
            "decision": "continue",
            "exit_code": EXIT_CODES["continue"],
            "mode": spec.gate_mode,
            "task": model_spec.task,
            "rows": {"baseline": arms[0].num_rows, "candidate": arms[1].num_rows},
            "checks": [],
            "srm": None,
            "reasons": [f"not enough data yet: {err}"],
            "policy": spec.policy.describe(),
            "models": versions,
            "run": {},
        }
    return {
        "rollout": spec.model_dump(mode="json"),
        **decision,
        "promote": decision["decision"] == "promote",
        "rollback": decision["decision"] == "reject",
        "evaluated_at": end.isoformat(),
    }


def _first_labeled(arms: list[pa.Table], horizon: int, *, paired: bool) -> list[pa.Table]:
    """Each arm cut to its first ``horizon`` labeled events (by time; scans are in time
    order); paired arms to the first ``horizon`` events labeled and scored by both."""
    labeled = [a.filter(pc.is_valid(a.column("label"))) for a in arms]
    if not paired:
        return [a.slice(0, horizon) for a in labeled]
    both = pc.is_in(labeled[0].column("id"), value_set=labeled[1].column("id").combine_chunks())
    ids = labeled[0].filter(both).column("id").slice(0, horizon).combine_chunks()
    return [a.filter(pc.is_in(a.column("id"), value_set=ids)) for a in labeled]


def _arm(scan: pa.Table, model: ModelSpec) -> pa.Table:
    """One version's events as the gate reads them: id, label, output(s), latency, segments
    (every name but the segments' is a core name, which no segment may take)."""
    columns: dict[str, Any] = {"id": scan.column("id"), "label": scan.column("label")}
    if model.task == "binary":
        columns["score"] = scan.column("score")
    elif model.task == "regression":
        columns["prediction"] = scan.column("prediction")
    else:
        columns.update(_multiclass_outputs(scan, model))
    columns["latency_ms"] = scan.column("latency_ms")
    columns.update({name: scan.column(SEGMENT_PREFIX + name) for name in model.segments})
    table = pa.table(columns)
    if model.task == "multiclass":  # an event with neither a class nor probabilities
        table = table.filter(pc.is_valid(table.column("prediction")))
    return table


_PROBABILITY = "probability_"  # + class: the gate pairs such columns with classes by name


def _multiclass_outputs(scan: pa.Table, model: ModelSpec) -> dict[str, Any]:
    """The predicted class (given, else the most probable one) and, when every labeled
    event carries them, the class probabilities."""
    classes = score_classes(model)
    given = scan.column("prediction")
    proba = class_scores(model, scan)  # NaN where an event carries none
    if proba.shape[1] == 0:
        return {"prediction": given}
    scored = ~np.isnan(proba).any(axis=1)
    best = np.asarray(classes, dtype=object)[np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1)]
    guess = pa.array(np.where(scored, best, None), type=pa.string())
    out: dict[str, Any] = {"prediction": pc.coalesce(given, guess)}
    labeled = np.asarray(pc.is_valid(scan.column("label")), dtype=bool)
    if scored[labeled].all():
        out.update({_PROBABILITY + c: pa.array(proba[:, i]) for i, c in enumerate(classes)})
    return out
