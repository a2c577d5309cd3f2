"""What Assay logs to MLflow, by name: evaluation and gate JSON flattened to metrics and params.

Pure functions (no MLflow import), used by :mod:`assay.integrations.mlflow`.

Metric names. An evaluation's overall metrics keep their names (``roc_auc``), with the
95% interval as ``roc_auc_ci_low`` / ``roc_auc_ci_high``; the other parts are prefixed:
``segment.<column>.<value>.<metric>``, ``reference.<metric>``, ``drift.<feature>.<stat>``,
``prediction_drift.<column>.<stat>``, ``rows.<window>`` and ``labeled.<window>``. Nested
numbers join with ``_`` (``drift.amount.ks_statistic``, ``drift.amount.null_share_current``)
and booleans log as 0/1 (``drift.amount.drifted``). A gate logs ``gate.<metric>.difference``,
``.ci_low``, ``.ci_high``, ``.p_value``, ``.baseline``, ``.candidate`` per check, plus
``gate.rows.<arm>`` and ``gate.srm.<stat>``.

Sanitising. MLflow accepts ``[A-Za-z0-9_-. /]`` in names. A name part taken from the data
(segment column or value, feature, metric) that holds any other character (or ``/``, which
MLflow reads as a path), is empty, or is longer than 48 characters has each offending
character replaced by ``_``, is cut to 48 characters and gets ``-`` plus the first 8 hex
digits of the SHA-1 of the original UTF-8 text appended; so ``app/store`` becomes
``app_store-<hash>`` and two different values never share a name.

Undefined values (``null`` in the JSON, or not finite) are not logged as numbers; their
reasons are returned separately (the tracker puts them in the tag ``assay.undefined``).

>>> metric_key("segment", "channel", "web", "roc_auc")
'segment.channel.web.roc_auc'
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

MAX_COMPONENT = 48
_BAD = re.compile(r"[^A-Za-z0-9_\-. ]")
# numbers of the metrics block that are configuration, logged as params instead
_NOT_METRICS = frozenset({"threshold"})
# fields of a gate check that are its configuration (params), not its numbers (metrics)
_CHECK_PARAMS = frozenset({"kind", "role", "margin", "higher_is_better", "test", "method"})
_CHECK_SKIP = frozenset({"metric", "segment", "outcome", "reason"})


def component(text: object) -> str:
    """One part of an MLflow name, sanitised as the module docstring describes.

    >>> component("web"), component("app/store")
    ('web', 'app_store-8948defe')
    """
    raw = str(text)
    clean = _BAD.sub("_", raw)
    if clean != raw or not raw or len(raw) > MAX_COMPONENT or raw in {".", ".."}:
        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
        clean = f"{clean[:MAX_COMPONENT]}-{digest}"
    return clean


def metric_key(*parts: object) -> str:
    """The ``.``-joined, sanitised MLflow name of ``parts``.

    >>> metric_key("drift", "country code", "psi")
    'drift.country code.psi'
    """
    return ".".join(component(p) for p in parts)


def number(value: object) -> float | None:
    """``value`` as a finite float (booleans as 0/1), else ``None``.

    >>> number(True), number(3), number(float("nan")), number("0.5")
    (1.0, 3.0, None, None)
    """
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        out = float(value)
        return out if math.isfinite(out) else None
    return None


def block_numbers(
    block: Mapping[str, Any], prefix: Sequence[str] = ()
) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers of one metrics/drift block: ``({name: value}, {name: reason undefined})``.

    An interval ``x_ci: [low, high]`` becomes ``x_ci_low`` and ``x_ci_high``; nested
    mappings join with ``_``; lists and strings are left out.

    >>> block_numbers({"auc": 0.8, "auc_ci": [0.7, 0.9], "ks": {"p_value": 0.2}, "r": None},
    ...               ["segment", "c", "a"])[0]
    {'segment.c.a.auc': 0.8, 'segment.c.a.auc_ci_low': 0.7, 'segment.c.a.auc_ci_high': 0.9, \
'segment.c.a.ks_p_value': 0.2}
    """
    values: dict[str, float] = {}
    undefined: dict[str, str] = {}
    reasons = block.get("undefined")
    reasons = reasons if isinstance(reasons, Mapping) else {}
    for name, leaf, value in _leaves(block):
        if leaf in _NOT_METRICS and name == leaf:
            continue
        key = ".".join([*(component(p) for p in prefix), name])
        if (leaf == "ci" or leaf.endswith("_ci")) and isinstance(value, list | tuple):
            ends = [number(v) for v in value]
            if len(ends) == 2 and None not in ends:
                values[key + "_low"], values[key + "_high"] = ends  # type: ignore[assignment]
            continue
        if value is None or isinstance(value, numbers.Real):
            out = number(value)
            if out is None:
                undefined[key] = str(reasons.get(leaf, "undefined (null or not finite)"))
            else:
                values[key] = out
    return values, undefined


def _leaves(block: Mapping[str, Any], joined: str = "") -> Iterator[tuple[str, str, Any]]:
    for raw, value in block.items():
        if raw == "undefined" and not joined:
            continue
        name = f"{joined}_{component(raw)}" if joined else component(raw)
        if isinstance(value, Mapping):
            yield from _leaves(value, name)
        else:
            yield name, str(raw), value


def evaluation_numbers(result: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Every number of an evaluation's JSON by MLflow name, and the undefined ones' reasons."""
    values: dict[str, float] = {}
    undefined: dict[str, str] = {}

    def add(block: Any, prefix: Sequence[str]) -> None:
        if isinstance(block, Mapping):
            found, missing = block_numbers(block, prefix)
            values.update(found)
            undefined.update(missing)

    metrics = result.get("metrics") or {}
    for part, block in metrics.items():
        if part == "overall":
            add(block, ())
        elif part == "by_segment" and isinstance(block, Mapping):
            for column, by_value in block.items():
                for value, seg_block in (by_value or {}).items():
                    add(seg_block, ("segment", column, value))
        else:
            add(block, (part,))
    for part in ("drift", "prediction_drift"):
        for feature, block in (result.get(part) or {}).items():
            add(block, (part, feature))
    for part in ("rows", "labeled"):
        add(result.get(part), (part,))
    return values, undefined


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The MLflow metrics of an evaluation (``EvaluationResult.to_dict()``).

    >>> evaluation_metrics({"task": "binary", "rows": {"current": 3},
    ...     "metrics": {"overall": {"roc_auc": 0.75, "roc_auc_ci": [0.6, 0.9]},
    ...                 "by_segment": {"channel": {"web": {"roc_auc": None}}}},
    ...     "drift": {"amount": {"psi": 0.3, "ks": {"statistic": 0.2}, "drifted": True}}})
    {'roc_auc': 0.75, 'roc_auc_ci_low': 0.6, 'roc_auc_ci_high': 0.9, 'drift.amount.psi': 0.3, \
'drift.amount.ks_statistic': 0.2, 'drift.amount.drifted': 1.0, 'rows.current': 3.0}
    """
    return evaluation_numbers(result)[0]


def evaluation_params(result: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params of an evaluation: its configuration and run record.

    >>> evaluation_params({"task": "binary", "run": {"engine": "local", "config": {
    ...     "threshold": 0.5, "segments": ["channel"], "features": {"amount": "numeric"},
    ...     "drift_rule": {"alpha": 0.05}, "prediction": None}}})
    {'task': 'binary', 'threshold': '0.5', 'segments': 'channel', 'features': 'amount:numeric', \
'drift_rule.alpha': '0.05', 'engine': 'local'}
    """
    params: dict[str, str] = {}
    if result.get("task") is not None:
        params["task"] = str(result["task"])
    run = result.get("run") or {}
    for key, value in (run.get("config") or {}).items():
        if key == "features" and isinstance(value, Mapping):
            params[key] = ",".join(f"{name}:{kind}" for name, kind in value.items())
        elif isinstance(value, Mapping):
            for sub, inner in value.items():
                if _scalar(inner):
                    params[metric_key(key, sub)] = str(inner)
        elif isinstance(value, list | tuple):
            params[component(key)] = ",".join(str(v) for v in value)
        elif _scalar(value):
            params[component(key)] = str(value)
    for key in ("engine", "assay_version", "config_hash"):
        if _scalar(run.get(key)):
            params[key] = str(run[key])
    return params


def _scalar(value: object) -> bool:
    return value is not None and isinstance(value, str | int | float | bool)


def check_names(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    """A distinct name per gate check: the metric (and segment), then role or index if needed.

    >>> check_names([{"metric": "roc_auc"}, {"metric": "fpr", "segment": "channel=web"},
    ...              {"metric": "fpr", "role": "guardrail"}])
    ['roc_auc', 'fpr.channel_web-fabe1f5d', 'fpr']
    """
    names: list[str] = []
    for index, check in enumerate(checks):
        name = component(check.get("metric", f"check{index}"))
        segment = check.get("segment")
        if isinstance(segment, Mapping):
            name += "." + metric_key(*(p for kv in segment.items() for p in kv))
        elif segment:
            name += "." + component(segment)
        if name in names:
            name = f"{name}.{component(check.get('role', index))}"
        if name in names:
            name = f"{name}.{index}"
        names.append(name)
    return names


def gate_metrics(decision: Mapping[str, Any]) -> dict[str, float]:
    """The MLflow metrics of a gate decision.

    >>> gate_metrics({"rows": {"baseline": 50, "candidate": 60}, "checks": [{"metric": "roc_auc",
    ...     "margin": 0.01, "difference": 0.02, "ci": [0.005, 0.035], "p_value": 0.01}]})
    {'gate.rows.baseline': 50.0, 'gate.rows.candidate': 60.0, 'gate.roc_auc.difference': 0.02, \
'gate.roc_auc.ci_low': 0.005, 'gate.roc_auc.ci_high': 0.035, 'gate.roc_auc.p_value': 0.01}
    """
    values: dict[str, float] = {}
    for part in ("rows", "srm"):
        if isinstance(decision.get(part), Mapping):
            values.update(block_numbers(decision[part], ("gate", part))[0])
    checks = [c for c in decision.get("checks") or () if isinstance(c, Mapping)]
    for name, check in zip(check_names(checks), checks, strict=True):
        numbers_only = {
            k: v for k, v in check.items() if k not in _CHECK_PARAMS and k not in _CHECK_SKIP
        }
        found, _ = block_numbers(numbers_only, ())
        values.update({f"gate.{name}.{k}": v for k, v in found.items()})
    return values


def gate_params(decision: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params of a gate decision: decision, mode, task, exit code, each check's setup.

    >>> gate_params({"decision": "promote", "exit_code": 0, "mode": "paired",
    ...     "checks": [{"metric": "roc_auc", "kind": "non_inferiority", "margin": 0.01}]})
    {'decision': 'promote', 'exit_code': '0', 'mode': 'paired', 'roc_auc.kind': \
'non_inferiority', 'roc_auc.margin': '0.01'}
    """
    params = {
        key: str(decision[key])
        for key in ("decision", "exit_code", "mode", "task")
        if _scalar(decision.get(key))
    }
    checks = [c for c in decision.get("checks") or () if isinstance(c, Mapping)]
    for name, check in zip(check_names(checks), checks, strict=True):
        for key, value in check.items():
            if key in _CHECK_PARAMS and _scalar(value):
                params[f"{name}.{component(key)}"] = str(value)
    run = decision.get("run") or {}
    for key in ("assay_version", "config_hash", "policy_hash"):
        if _scalar(run.get(key)):
            params[key] = str(run[key])
    return params
