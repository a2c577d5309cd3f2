"""assay.yaml: the shipped example loads; mistakes name their key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.errors import ConfigError
from assay.monitors.config import load_config, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assay.yaml"

GOOD_MONITOR = """\
      - name: auc
        kind: metric
        metric: roc_auc
        condition: {op: "<", value: 0.8}
"""


def write(tmp_path: Path, monitors: str, extra: str = "") -> Path:
    path = tmp_path / "assay.yaml"
    path.write_text(f"models:\n  - name: fraud\n    tenant: demo\n    monitors:\n{monitors}{extra}")
    return path


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    [fraud] = config.models
    assert (fraud.name, fraud.tenant) == ("fraud", "demo")
    assert [w.label for w in fraud.windows] == ["1h", "1d", "7d sliding"]
    weekly = [m for m in fraud.monitors if m.window == "7d"]
    assert weekly and all(fraud.window_of(m).kind == "sliding" for m in weekly)
    kinds = {m.kind for m in fraud.monitors}
    assert kinds == {"metric", "drift", "data_quality", "latency", "error_rate"}
    types = {m.condition.type for m in fraud.monitors}
    assert types == {"absolute", "relative", "statistical"}
    assert {m.condition.compare_to for m in fraud.monitors} >= {"reference", "previous"}
    assert {m.feature for m in fraud.monitors if m.kind == "drift"} == {"amount", "*", "score"}
    checks = {m.metric for m in fraud.monitors if m.kind == "data_quality"}
    assert checks == {"null_rate", "unseen_share", "volume", "out_of_range"}
    [ranged] = [m for m in fraud.monitors if m.metric == "out_of_range"]
    assert ranged.range_quantiles == (0.001, 0.999)
    assert all("runbook_url" in m.annotations for m in fraud.monitors)
    assert all(m.condition.op in (">", ">=") for m in fraud.monitors
               if m.kind == "drift" and m.metric != "drifted")  # fmt: skip
    assert any(m.for_ != "0s" and m.resolve_hysteresis > 0 for m in fraud.monitors)
    assert config.sinks.console is True
    assert config.sinks.alertmanager is None  # commented out in the example
    assert config.sinks.console and config.sinks.webhook is None  # the webhook is an example
    assert config.server["data_dir"] == "assay-data"
    for monitor in fraud.monitors:
        parse_duration(monitor.for_)


def test_minimal_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD_MONITOR))
    assert config.models[0].monitors[0].condition.value == 0.8


@pytest.mark.parametrize(
    ("monitors", "field", "words"),
    [
        (GOOD_MONITOR + "        colour: red\n", "models[0].monitors[0].colour", "Extra inputs"),
        (
            GOOD_MONITOR.replace('op: "<"', 'op: "=="'),
            "models[0].monitors[0].condition.op",
            "'<', '<=', '>' or '>='",
        ),
        (GOOD_MONITOR + "        for: 5 minutes\n", "models[0].monitors[0].for", "pattern"),
        (GOOD_MONITOR + "        window: 90m\n", "models[0].monitors[0].window", "pattern"),
        (
            GOOD_MONITOR + GOOD_MONITOR.replace("kind: metric", "kind: magic"),
            "models[0].monitors[1].kind",
            "'metric'",
        ),
        (
            GOOD_MONITOR.replace("{op", "{type: relative, op"),
            "models[0].monitors[0].condition",
            "compare_to",
        ),
        (GOOD_MONITOR.replace(", value: 0.8", ""), "models[0].monitors[0]", "condition.value"),
        (
            GOOD_MONITOR.replace("metric: roc_auc", "metric: null"),
            "models[0].monitors[0]",
            "metric",
        ),
        (
            GOOD_MONITOR.replace("kind: metric", "kind: data_quality"),
            "models[0].monitors[0]",
            "null_rate",
        ),
        (
            GOOD_MONITOR.replace("kind: metric", "kind: drift").replace("roc_auc", "psi")
            + "        segment: channel\n",
            "models[0].monitors[0]",
            "segment",
        ),
        (
            GOOD_MONITOR + "        bounds: [0.01, 0.99]\n",
            "models[0].monitors[0]",
            "only an out_of_range check has bounds",
        ),
        (
            GOOD_MONITOR.replace("kind: metric", "kind: data_quality").replace(
                "roc_auc", "out_of_range"
            )
            + "        bounds: [0.9, 0.1]\n",
            "models[0].monitors[0]",
            "0 <= low < high <= 1",
        ),
    ],
)
def test_bad_config_names_the_key_path(
    tmp_path: Path, monitors: str, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, monitors))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert words in str(info.value)
    assert "examples/assay.yaml" in str(info.value)


def test_bad_top_level_key_and_sink(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD_MONITOR, "sinks:\n  pager: true\n"))
    assert info.value.field == "sinks.pager"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD_MONITOR, "schedule_interval: soon\n"))
    assert info.value.field == "schedule_interval"


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert info.value.field == "config"
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError):
        load_config(bad)


def test_parse_duration_rejects_nonsense() -> None:
    assert parse_duration("1w") == 604800.0
    with pytest.raises(ConfigError):
        parse_duration("5y")
