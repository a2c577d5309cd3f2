"""Prometheus recording and alerting rules equivalent to the monitors of ``assay.yaml``.

The rules read the gauges of ``/metrics`` (see :mod:`assay.server.telemetry`). One group
per monitored model holds its recording rules and one alerting rule per monitor that
Prometheus can express:

- ``metric`` monitors: ``absolute`` compares ``assay_model_metric``; ``statistical``
  compares the interval bound on the good side (``assay_model_metric_upper`` for ``<``,
  ``assay_model_metric_lower`` for ``>``), so noise alone does not fire; ``relative``
  against the ``previous`` window compares with the series one window earlier
  (``offset``). A sliding window's series carry ``window="7d sliding"``.
- ``drift`` monitors: ``assay_feature_drift`` of the effect (``metric``, default
  ``psi``) against the threshold, or ``drifted == 1`` without a threshold; ``feature``
  ``'*'`` means every feature, none means the model's output.
- ``data_quality`` ``volume`` monitors: ``assay_window_rows`` (all versions).
- ``latency`` / ``error_rate`` monitors: ``assay_serving_latency_ms`` (by ``quantile``)
  and ``assay_serving_error_rate`` (all versions, the whole window).

Monitors without a Prometheus equivalent (relative to the reference, other data-quality
checks) are listed by :func:`unsupported_monitors`.

>>> from assay.monitors.config import MonitoringConfig
>>> cfg = MonitoringConfig.model_validate({"models": [{"name": "fraud", "tenant": "acme",
...     "monitors": [{"name": "auc-low", "kind": "metric", "metric": "roc_auc",
...                   "condition": {"op": "<", "value": 0.8}, "for": "1h"}]}]})
>>> alert = prometheus_rules(cfg)["groups"][0]["rules"][-1]
>>> alert["alert"], alert["for"]
('auc_low', '1h')
>>> print(alert["expr"])
assay_model_metric{tenant="acme", model="fraud", window="1d", segment="", metric="roc_auc"} < 0.8
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from assay.monitors.config import Condition, ModelMonitoring, Monitor, MonitoringConfig

OUTPUT_FEATURES = r"\(output\) .*"
_INVALID = re.compile(r"[^A-Za-z0-9_]")


def quote(value: str) -> str:
    """A PromQL string literal.

    >>> print(quote('a"b\\\\c'))
    "a\\"b\\\\c"
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(family: str, /, **matchers: str | tuple[str, str]) -> str:
    """``metric{label="value", ...}``; a ``(op, value)`` pair uses that matcher operator.

    >>> selector("up", job="x", instance=("=~", "a.*"))
    'up{job="x", instance=~"a.*"}'
    """
    parts = []
    for label, matcher in matchers.items():
        op, value = matcher if isinstance(matcher, tuple) else ("=", matcher)
        parts.append(f"{label}{op}{quote(value)}")
    return f"{family}{{{', '.join(parts)}}}"


def alert_name(monitor: str) -> str:
    """A valid Prometheus alert name for a monitor name.

    >>> alert_name("auc-low.v2"), alert_name("7d-drift")
    ('auc_low_v2', 'assay_7d_drift')
    """
    name = _INVALID.sub("_", monitor)
    return name if re.match(r"[A-Za-z_]", name) else f"assay_{name}"


def _segment_matcher(segment: str | None) -> str | tuple[str, str]:
    if segment is None:
        return ""
    if "=" in segment:  # one segment value: column=value
        return segment
    return ("=~", re.escape(segment) + "=.+")  # every value of a segment column


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def monitor_expr(model: ModelMonitoring, monitor: Monitor) -> str | None:
    """The PromQL condition of ``monitor`` (``None`` if Prometheus cannot express it).

    >>> m = ModelMonitoring(name="fraud", tenant="acme")
    >>> print(monitor_expr(m, Monitor(name="d", kind="drift", feature="amount",
    ...                               condition=Condition(op=">", value=0.2))))
    assay_feature_drift{tenant="acme", model="fraud", window="1d", feature="amount", \
statistic="psi"} > 0.2
    """
    shape = model.window_of(monitor)
    base = {"tenant": model.tenant, "model": model.name, "window": shape.label}
    cond = monitor.condition
    if monitor.kind == "metric" and monitor.metric:
        where = {**base, "segment": _segment_matcher(monitor.segment), "metric": monitor.metric}
        return _metric_expr(where, cond, shape.size)
    if monitor.kind == "drift":
        statistic = monitor.metric or "psi"
        feature: str | tuple[str, str]
        if monitor.feature is None:
            feature = ("=~", OUTPUT_FEATURES)
        elif monitor.feature == "*":
            feature = ("!~", OUTPUT_FEATURES)
        else:
            feature = monitor.feature
        if cond.type != "absolute":
            return None
        if cond.value is None:  # metric "drifted" without a threshold
            flag = selector("assay_feature_drift", **base, feature=feature, statistic="drifted")
            return f"{flag} == 1"
        series = selector("assay_feature_drift", **base, feature=feature, statistic=statistic)
        return f"{series} {cond.op} {_number(cond.value)}"
    if (
        monitor.kind in ("latency", "error_rate")
        and cond.type == "absolute"
        and (cond.value is not None)
    ):
        where = {**base, "segment": "", "version": ""}
        if monitor.kind == "latency":
            series = selector("assay_serving_latency_ms", **where, quantile=monitor.metric or "p95")
        else:
            series = selector("assay_serving_error_rate", **where)
        return f"{series} {cond.op} {_number(cond.value)}"
    if monitor.kind == "data_quality" and cond.type == "absolute" and cond.value is not None:
        if monitor.metric != "volume":  # null rate, unseen share, ...: not exposed as gauges
            return None
        segment = _segment_matcher(monitor.segment)
        series = selector("assay_window_rows", **base, segment=segment, version="")
        return f"{series} {cond.op} {_number(cond.value)}"
    return None


def _metric_expr(where: dict[str, Any], cond: Condition, window: str) -> str | None:
    value = selector("assay_model_metric", **where)
    if cond.type == "absolute" and cond.value is not None:
        return f"{value} {cond.op} {_number(cond.value)}"
    if cond.type == "statistical" and cond.value is not None:
        bound = "assay_model_metric_upper" if cond.op in ("<", "<=") else "assay_model_metric_lower"
        return f"{selector(bound, **where)} {cond.op} {_number(cond.value)}"
    if cond.type == "relative" and cond.compare_to == "previous" and cond.change_pct:
        factor = 1 - cond.change_pct / 100 if cond.op in ("<", "<=") else 1 + cond.change_pct / 100
        return f"{value} {cond.op} {_number(round(factor, 12))} * ({value} offset {window})"
    return None


def _describe(monitor: Monitor) -> str:
    cond = monitor.condition
    what = monitor.metric or ("drift" if monitor.kind == "drift" else monitor.kind)
    if monitor.kind == "drift":
        feature = {None: "the output", "*": "any feature"}.get(monitor.feature, monitor.feature)
        what = f"{monitor.metric or 'psi'} drift of {feature}"
        if cond.value is None:
            return f"{feature} flagged as drifted"
    if cond.type == "relative":
        change = "dropped" if cond.op in ("<", "<=") else "rose"
        return f"{what} {change} by more than {cond.change_pct}% vs the {cond.compare_to} window"
    if cond.value is None:
        return f"{what} flagged as drifted"
    prefix = "the whole 95% interval of " if cond.type == "statistical" else ""
    return f"{prefix}{what} {cond.op} {cond.value}"


def alert_rule(model: ModelMonitoring, monitor: Monitor) -> dict[str, Any] | None:
    """The alerting rule of one monitor (``None`` if Prometheus cannot express it)."""
    expr = monitor_expr(model, monitor)
    if expr is None:
        return None
    labels = {**monitor.labels, "severity": monitor.severity, "tenant": model.tenant,
              "model": model.name, "monitor": monitor.name, "source": "assay"}  # fmt: skip
    annotations = {
        "summary": f"{model.name}: {_describe(monitor)} (window {model.window_of(monitor).label})",
        "description": (
            f"Assay monitor {monitor.name!r} of model {model.name!r} (tenant {model.tenant!r}):"
            " {{ $labels.metric }}{{ $labels.feature }} is {{ $value }}"
            " (version {{ $labels.version }}, segment {{ $labels.segment }})."
        ),
        **monitor.annotations,
    }
    runbook = annotations.pop("runbook", None)
    if runbook is not None:
        annotations.setdefault("runbook_url", runbook)
    return {"alert": alert_name(monitor.name), "expr": expr, "for": monitor.for_,
            "labels": labels, "annotations": annotations}  # fmt: skip


def recording_rules(model: ModelMonitoring) -> list[dict[str, Any]]:
    """Recording rules of one model: interval widths and the count of drifted features."""
    mine = {"tenant": model.tenant, "model": model.name}
    upper = selector("assay_model_metric_upper", **mine)
    lower = selector("assay_model_metric_lower", **mine)
    value = selector("assay_model_metric", **mine)
    drifted = selector("assay_feature_drift", tenant=model.tenant, model=model.name,
                       statistic="drifted", feature=("!~", OUTPUT_FEATURES))  # fmt: skip
    return [
        {"record": "assay:model_metric:ci_width", "expr": f"{upper} - {lower}"},
        {"record": "assay:model_metric:min_over_versions",
         "expr": f"min without (version) ({value})"},
        {"record": "assay:feature_drift:drifted_features",
         "expr": f"sum by (tenant, model, window) ({drifted})"},
    ]  # fmt: skip


def prometheus_rules(config: MonitoringConfig) -> dict[str, Any]:
    """A Prometheus rules file (``groups``) for every model of ``config``."""
    groups = []
    for model in config.models:
        rules: list[dict[str, Any]] = recording_rules(model)
        rules += [r for m in model.monitors if (r := alert_rule(model, m)) is not None]
        groups.append({"name": f"assay/{model.tenant}/{model.name}", "rules": rules})
    return {"groups": groups}


def unsupported_monitors(config: MonitoringConfig) -> list[str]:
    """``model/monitor`` names that have no Prometheus rule (Assay alerts on them itself).

    >>> from assay.monitors.config import MonitoringConfig
    >>> unsupported_monitors(MonitoringConfig.model_validate({"models": [{"name": "m",
    ...     "tenant": "t", "monitors": [{"name": "nulls", "kind": "data_quality",
    ...     "metric": "null_rate", "feature": "x", "condition": {"op": ">", "value": 0.1}}]}]}))
    ['m/nulls']
    """
    return [f"{model.name}/{m.name}" for model in config.models for m in model.monitors
            if monitor_expr(model, m) is None]  # fmt: skip


def rules_yaml(config: MonitoringConfig) -> str:
    """The rules file as YAML text."""
    return yaml.safe_dump(prometheus_rules(config), sort_keys=False, allow_unicode=True,
                          width=1000)  # fmt: skip


__all__ = ["alert_rule", "monitor_expr", "prometheus_rules", "rules_yaml", "unsupported_monitors"]
