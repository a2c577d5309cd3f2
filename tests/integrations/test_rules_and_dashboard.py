"""``prometheus_rules`` / ``grafana_dashboard`` and their CLI commands."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from assay.cli.main import app
from assay.integrations.grafana import grafana_dashboard
from assay.integrations.prometheus_rules import prometheus_rules, unsupported_monitors
from assay.monitors.config import MonitoringConfig, load_config
from assay.server.telemetry import GAUGES

from .conftest import EXAMPLE, SMALL_CONFIG, require_binary

KNOWN_SERIES = {*GAUGES, "ALERTS"}
METRIC_NAME = re.compile(r"\b(assay_[a-z_]+|ALERTS)\{")


def alerts_by_name(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_each_expressible_monitor_becomes_an_alert(small_config: MonitoringConfig) -> None:
    rules = prometheus_rules(small_config)
    assert [g["name"] for g in rules["groups"]] == ["assay/acme/fraud"]
    alerts = alerts_by_name(rules)
    assert set(alerts) == {"auc_low", "auc_surely_low", "precision_drop", "amount_drift",
                           "any_drift", "volume_low"}  # fmt: skip
    assert unsupported_monitors(small_config) == ["fraud/null-rate"]

    auc = alerts["auc_low"]
    assert auc["expr"] == ('assay_model_metric{tenant="acme", model="fraud", window="1d", '
                           'segment="", metric="roc_auc"} < 0.8')  # fmt: skip
    assert auc["for"] == "1h"
    assert auc["labels"] == {"team": "risk", "severity": "critical", "tenant": "acme",
                             "model": "fraud", "monitor": "auc-low", "source": "assay"}  # fmt: skip
    assert auc["annotations"]["runbook_url"] == "https://runbooks.example/auc"
    assert "summary" in auc["annotations"]

    surely = alerts["auc_surely_low"]["expr"]  # the interval's upper bound, every segment
    assert surely.startswith("assay_model_metric_upper{") and surely.endswith("< 0.75")
    assert 'segment=~"channel=.+"' in surely
    drop = alerts["precision_drop"]["expr"]
    assert "< 0.95 * (assay_model_metric{" in drop and drop.endswith("offset 1d)")
    assert alerts["amount_drift"]["expr"].endswith('feature="amount", statistic="psi"} > 0.2')
    assert alerts["amount_drift"]["for"] == "30m"
    assert alerts["any_drift"]["expr"].endswith('statistic="drifted"} == 1')
    assert alerts["volume_low"]["expr"].startswith("assay_window_rows{")
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert set(METRIC_NAME.findall(rule["expr"])) <= KNOWN_SERIES
    records = [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]
    assert records and all(re.fullmatch(r"[a-z_:]+", r) for r in records)


def test_rules_yaml_passes_promtool(small_config: MonitoringConfig, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prometheus_rules(small_config), sort_keys=False))
    assert yaml.safe_load(path.read_text()) == prometheus_rules(small_config)
    promtool = require_binary("promtool", "prometheus")
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_dashboard_panels_reference_existing_series(small_config: MonitoringConfig) -> None:
    board = grafana_dashboard(small_config)
    assert board["schemaVersion"] == 39
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["DS_PROMETHEUS", "tenant", "model", "version", "segment"]
    assert board["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    types = [p["type"] for p in panels]
    assert {"row", "timeseries", "heatmap", "alertlist", "table"} <= set(types)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = {name for e in exprs for name in METRIC_NAME.findall(e)}
    assert used <= KNOWN_SERIES
    assert {"assay_model_metric", "assay_model_metric_lower", "assay_model_metric_upper",
            "assay_feature_drift", "assay_label_completeness"} <= used  # fmt: skip
    titles = [p["title"] for p in panels]
    for metric in ("roc_auc", "precision"):  # one panel per monitored metric
        assert any(metric in t for t in titles)
    band = next(p for p in panels if "roc_auc" in p["title"])
    fills = [prop for o in band["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "custom.fillBelowTo"]  # fmt: skip
    assert fills == [{"id": "custom.fillBelowTo", "value": "lower"}]
    for p in panels:
        if "datasource" in p:
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        for t in p.get("targets", []):
            assert "$version" in t["expr"] or "ALERTS" in t["expr"] or "drift" in t["expr"]
    json.dumps(board)  # serialisable


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "assay.yaml"
    path.write_text(yaml.safe_dump(SMALL_CONFIG))
    return path


def test_cli_writes_rules_and_dashboard(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["prometheus-rules", "--config", str(config)])
    assert result.exit_code == 0, result.output
    start = result.stdout.index("groups:")
    assert yaml.safe_load(result.stdout[start:]) == prometheus_rules(load_config(config))
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["prometheus-rules", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0 and "groups" in yaml.safe_load(out.read_text())
    result = runner.invoke(app, ["grafana-dashboard", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["schemaVersion"] == 39
    board = tmp_path / "board.json"
    result = runner.invoke(app, ["grafana-dashboard", "--config", str(config), "--out", str(board)])
    assert result.exit_code == 0 and json.loads(board.read_text())["panels"]


@pytest.mark.parametrize("command", ["prometheus-rules", "grafana-dashboard"])
def test_cli_errors_exit_2(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: fraud\n    tenant: acme\n    monitors:\n"
                   "      - {name: x, kind: metric, condition: {op: '!', value: 1}}\n")  # fmt: skip
    for args in (["--config", str(bad)], ["--config", str(tmp_path / "missing.yaml")]):
        result = CliRunner().invoke(app, [command, *args])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/assay.yaml is not there yet")
def test_the_example_config_generates_valid_rules(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    rules = prometheus_rules(config)
    assert len(rules["groups"]) == len(config.models)
    assert grafana_dashboard(config)["panels"]
    promtool = require_binary("promtool", "prometheus")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_sliding_window_rules_name_the_sliding_series(tmp_path: Path) -> None:
    config = MonitoringConfig.model_validate({"models": [{"name": "fraud", "tenant": "acme",
        "windows": [{"size": "7d", "kind": "sliding"}],
        "monitors": [
            {"name": "auc-7d", "kind": "metric", "metric": "roc_auc", "window": "7d",
             "condition": {"op": "<", "value": 0.8}},
            {"name": "auc-7d-drop", "kind": "metric", "metric": "roc_auc", "window": "7d",
             "condition": {"type": "relative", "op": "<", "compare_to": "previous",
                           "change_pct": 5}},
            {"name": "auc-1d", "kind": "metric", "metric": "roc_auc", "window": "1d",
             "condition": {"op": "<", "value": 0.8}}]}]})  # fmt: skip
    alerts = alerts_by_name(prometheus_rules(config))
    assert 'window="7d sliding"' in alerts["auc_7d"]["expr"]
    # the previous sliding window is the series 7 days earlier
    drop = alerts["auc_7d_drop"]["expr"]
    assert drop.endswith("offset 7d)") and drop.count('window="7d sliding"') == 2
    assert 'window="1d"' in alerts["auc_1d"]["expr"]
    assert "(window 7d sliding)" in alerts["auc_7d"]["annotations"]["summary"]
    promtool = require_binary("promtool", "prometheus")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(prometheus_rules(config), sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


# -- the dashboard against Grafana's JSON model and a real PromQL parser ------------------

CORE_PANELS = {"row", "timeseries", "heatmap", "alertlist", "table", "stat", "gauge", "text"}
VARIABLE_TYPES = {"query", "datasource", "custom", "constant", "interval", "textbox", "adhoc"}
MATCHERS = {"byName", "byRegexp", "byFrameRefID", "byType", "byValue"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, with the variables set to "All".

    Grafana replaces a multi-value variable set to All by its ``allValue`` (``.*``) inside
    the ``=~`` matchers these queries use; a query naming an unknown variable fails here.
    """
    values = {v["name"]: v.get("allValue", ".*") for v in board["templating"]["list"]}

    def substitute(expr: str) -> str:
        unknown = [name for name in VARIABLE.findall(expr) if name not in values]
        assert not unknown, f"unknown dashboard variables {unknown} in {expr}"
        return VARIABLE.sub(lambda m: values[m.group(1)], expr)

    return [(p["title"], substitute(t["expr"])) for p in board["panels"]
            for t in p.get("targets", [])]  # fmt: skip


def test_dashboard_follows_grafanas_json_model(small_config: MonitoringConfig) -> None:
    board = grafana_dashboard(small_config)
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"]) and board["title"]
    assert board["time"] == {"from": "now-7d", "to": "now"}
    inputs = {i["name"]: i for i in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    assert {"type": "datasource", "id": "prometheus"}.items() <= board["__requires"][0].items()
    variables = board["templating"]["list"]
    assert len({v["name"] for v in variables}) == len(variables)
    for variable in variables:
        assert variable["type"] in VARIABLE_TYPES
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert re.fullmatch(r"label_values\((.+, )?\w+\)", variable["query"]["query"])
    boxes = []
    for panel in board["panels"]:
        assert panel["type"] in CORE_PANELS, panel["type"]
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h"))
        assert pos["x"] >= 0 and pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] + pos["w"] <= 24
        boxes.append((pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]))
        if panel["type"] == "row":
            assert pos["h"] == 1 and pos["w"] == 24 and panel["panels"] == []
            continue
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(set(refs)) == len(refs) and all(re.fullmatch(r"[A-Z]", r) for r in refs)
        if refs:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        legends = {t.get("legendFormat") for t in panel.get("targets", [])}
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            assert override["matcher"]["id"] in MATCHERS
            if override["matcher"]["id"] == "byFrameRefID":
                assert override["matcher"]["options"] in refs
            for prop in override["properties"]:
                if prop["id"] == "custom.fillBelowTo":  # names another series of the panel
                    assert prop["value"] in legends
    for i, a in enumerate(boxes):  # no two panels overlap on the grid
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_dashboard_queries_pass_promtool(small_config: MonitoringConfig, tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    queries = dashboard_queries(grafana_dashboard(small_config))
    assert len(queries) >= 8
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"assay:dashboard_query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(queries)]}]}  # fmt: skip
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout
