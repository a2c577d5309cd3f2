"""A Grafana dashboard over Assay's Prometheus gauges (see :mod:`assay.server.telemetry`).

Import it in Grafana (it asks for the Prometheus data source ``DS_PROMETHEUS``). The
template variables ``tenant``, ``model``, ``version`` and ``segment`` filter every panel.
One row per model of the config: its monitored metrics over time per version and segment
with the 95% interval as a filled band, a drift heatmap (feature x time, PSI), label
completeness and rows, and its alerts (Grafana's alert list and Prometheus' ``ALERTS``).

>>> from assay.monitors.config import MonitoringConfig
>>> cfg = MonitoringConfig.model_validate({"models": [{"name": "fraud", "tenant": "acme",
...     "monitors": [{"name": "auc", "kind": "metric", "metric": "roc_auc",
...                   "condition": {"op": "<", "value": 0.8}}]}]})
>>> board = grafana_dashboard(cfg)
>>> board["schemaVersion"], [v["name"] for v in board["templating"]["list"]]
(39, ['DS_PROMETHEUS', 'tenant', 'model', 'version', 'segment'])
"""

from __future__ import annotations

import json
from typing import Any

from assay.integrations.prometheus_rules import quote
from assay.monitors.config import ModelMonitoring, MonitoringConfig

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
DEFAULT_METRICS = ("roc_auc", "accuracy")
WIDTH = 24


def _filters(model: ModelMonitoring, *, version: bool = True, segment: bool = True) -> str:
    parts = [f"tenant={quote(model.tenant)}", f"model={quote(model.name)}",
             'tenant=~"$tenant"', 'model=~"$model"']  # fmt: skip
    if version:
        parts.append('version=~"$version"')
    if segment:
        parts.append('segment=~"$segment"')
    return ", ".join(parts)


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref,
            "range": True}  # fmt: skip


def _variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": name != "segment", "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"}, "sort": 1,
    }  # fmt: skip


def _monitored_metrics(model: ModelMonitoring) -> list[str]:
    names = [m.metric for m in model.monitors if m.kind == "metric" and m.metric]
    return list(dict.fromkeys(names)) or list(DEFAULT_METRICS)


def _metric_panel(model: ModelMonitoring, metric: str, pos: dict[str, int]) -> dict[str, Any]:
    where = f"{_filters(model)}, metric={quote(metric)}"
    legend = "{{window}} {{version}} {{segment}}"  # 1d and "7d sliding" series apart
    return {
        "type": "timeseries", "title": f"{model.name}: {metric} (95% interval band)",
        "datasource": DATASOURCE, "gridPos": pos,
        "targets": [
            _target(f"assay_model_metric{{{where}}}", legend, "A"),
            _target(f"assay_model_metric_lower{{{where}}}", "lower", "B"),
            _target(f"assay_model_metric_upper{{{where}}}", "upper", "C"),
        ],
        "fieldConfig": {
            "defaults": {"custom": {"lineWidth": 2, "fillOpacity": 0, "spanNulls": True}},
            "overrides": [
                {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [
                    {"id": "custom.lineWidth", "value": 0},
                    {"id": "custom.hideFrom",
                     "value": {"legend": True, "tooltip": False, "viz": False}}]},
                {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [
                    {"id": "custom.lineWidth", "value": 0},
                    {"id": "custom.fillOpacity", "value": 20},
                    {"id": "custom.fillBelowTo", "value": "lower"},
                    {"id": "custom.hideFrom",
                     "value": {"legend": True, "tooltip": False, "viz": False}}]},
            ],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
    }  # fmt: skip


def _drift_panel(model: ModelMonitoring, pos: dict[str, int]) -> dict[str, Any]:
    expr = (
        f'assay_feature_drift{{{_filters(model, version=False, segment=False)}, statistic="psi"}}'
    )
    return {
        "type": "heatmap", "title": f"{model.name}: drift (PSI) by feature",
        "datasource": DATASOURCE, "gridPos": pos,
        "targets": [_target(expr, "{{feature}}", "A")],
        "options": {
            "calculate": False, "rowsFrame": {"layout": "auto"},
            "yAxis": {"axisPlacement": "left"}, "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange",
                      "scale": "exponential", "exponent": 0.5, "steps": 64},
            "tooltip": {"show": True, "yHistogram": False},
            "legend": {"show": True},
        },
    }  # fmt: skip


def _completeness_panel(model: ModelMonitoring, pos: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "timeseries", "title": f"{model.name}: label completeness and rows",
        "datasource": DATASOURCE, "gridPos": pos,
        "targets": [
            _target(f"assay_label_completeness{{{_filters(model)}}}",
                    "completeness {{window}} {{version}} {{segment}}", "A"),
            _target(f"assay_window_rows{{{_filters(model)}}}", "rows {{version}} {{segment}}",
                    "B"),
        ],
        "fieldConfig": {"defaults": {"unit": "percentunit", "min": 0}, "overrides": [
            {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [
                {"id": "unit", "value": "short"},
                {"id": "custom.axisPlacement", "value": "right"}]}]},
    }  # fmt: skip


def _alert_panels(model: ModelMonitoring, y: int) -> list[dict[str, Any]]:
    labels = f"tenant={quote(model.tenant)}, model={quote(model.name)}"
    return [
        {
            "type": "alertlist", "title": f"{model.name}: alerts",
            "gridPos": {"x": 0, "y": y, "w": 12, "h": 8},
            "options": {"viewMode": "list", "groupMode": "default", "maxItems": 20,
                        "sortOrder": 1, "dashboardAlerts": False, "alertName": "",
                        "alertInstanceLabelFilter": f"{{{labels}}}",
                        "datasource": "${DS_PROMETHEUS}",
                        "stateFilter": {"firing": True, "pending": True, "normal": False}},
        },
        {
            "type": "table", "title": f"{model.name}: Prometheus ALERTS",
            "datasource": DATASOURCE, "gridPos": {"x": 12, "y": y, "w": 12, "h": 8},
            "targets": [{**_target(f"ALERTS{{{labels}}}", "{{alertname}}", "A"),
                         "instant": True, "range": False, "format": "table"}],
        },
    ]  # fmt: skip


def grafana_dashboard(config: MonitoringConfig) -> dict[str, Any]:
    """A Grafana dashboard (JSON model, schema 39) for every model of ``config``."""
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for model in config.models:
        panels.append({"type": "row", "title": f"{model.tenant} / {model.name}",
                       "collapsed": False, "gridPos": {"x": 0, "y": y, "w": WIDTH, "h": 1},
                       "panels": []})  # fmt: skip
        y += 1
        for i, metric in enumerate(_monitored_metrics(model)):
            pos = {"x": (i % 2) * 12, "y": y + (i // 2) * 8, "w": 12, "h": 8}
            panels.append(_metric_panel(model, metric, pos))
        y += ((len(_monitored_metrics(model)) + 1) // 2) * 8
        panels.append(_drift_panel(model, {"x": 0, "y": y, "w": 12, "h": 8}))
        panels.append(_completeness_panel(model, {"x": 12, "y": y, "w": 12, "h": 8}))
        y += 8
        panels.extend(_alert_panels(model, y))
        y += 8
    for panel in panels:
        panel["id"] = next_id
        next_id += 1
    templating = [
        {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0},
        _variable("tenant", "label_values(assay_model_metric, tenant)", "Tenant"),
        _variable("model", 'label_values(assay_model_metric{tenant=~"$tenant"}, model)', "Model"),
        _variable("version", 'label_values(assay_model_metric{model=~"$model"}, version)',
                  "Version"),
        _variable("segment", 'label_values(assay_model_metric{model=~"$model"}, segment)',
                  "Segment"),
    ]  # fmt: skip
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "datasource", "id": "prometheus", "name": "Prometheus",
                        "version": "1.0.0"}],
        "uid": "assay-models", "title": "Assay: models in production",
        "tags": ["assay", "ml-monitoring"], "timezone": "utc", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": templating},
        "annotations": {"list": []},
        "panels": panels,
    }  # fmt: skip


def dashboard_json(config: MonitoringConfig) -> str:
    """The dashboard as indented JSON text."""
    return json.dumps(grafana_dashboard(config), indent=2) + "\n"


__all__ = ["dashboard_json", "grafana_dashboard"]
