"""Serving latency and error rate as gauges, and the Prometheus rules that watch them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from assay.integrations.prometheus_rules import monitor_expr
from assay.monitors.config import Condition, ModelMonitoring, Monitor
from assay.server.telemetry import Telemetry


def test_operations_become_gauges_of_the_tenant() -> None:
    telemetry = Telemetry()
    evaluation = {"window": "1h", "version": None, "segment": None, "windows": [{
        "rows": 10, "label_completeness": 0.0, "metrics": {},
        "operations": {"latency_p50_ms": 12.0, "latency_p95_ms": 40.0,
                       "latency_p99_ms": 90.5, "error_rate": 0.1}}]}  # fmt: skip
    telemetry.record_evaluation("acme", "fraud", evaluation)

    def serving(tenant: str) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("quantile", "")): s.value
            for family in text_string_to_metric_families(telemetry.render(tenant).decode())
            for s in family.samples
            if s.name.startswith("assay_serving")
        }

    assert serving("acme") == {
        ("assay_serving_latency_ms", "p50"): 12.0,
        ("assay_serving_latency_ms", "p95"): 40.0,
        ("assay_serving_latency_ms", "p99"): 90.5,
        ("assay_serving_error_rate", ""): 0.1,
    }
    assert serving("other") == {}


def test_latency_and_error_monitors_have_rules() -> None:
    model = ModelMonitoring(name="fraud", tenant="acme")
    latency = Monitor(name="lat", kind="latency", metric="p99", window="1h",
                      condition=Condition(op=">", value=250))  # fmt: skip
    errors = Monitor(name="err", kind="error_rate", window="1h",
                     condition=Condition(op=">", value=0.01))  # fmt: skip
    assert monitor_expr(model, latency) == (
        'assay_serving_latency_ms{tenant="acme", model="fraud", window="1h", segment="", '
        'version="", quantile="p99"} > 250'
    )
    assert monitor_expr(model, errors) == (
        'assay_serving_error_rate{tenant="acme", model="fraud", window="1h", segment="", '
        'version=""} > 0.01'
    )
