"""Rules: every condition type at and around its boundaries, by hand-worked windows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from assay.monitors.config import Condition, ModelMonitoring, Monitor
from assay.monitors.rules import evaluate_all, evaluate_monitor

DAY = ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")


def model(**kw: Any) -> ModelMonitoring:
    base: dict[str, Any] = {"name": "fraud", "tenant": "acme", "min_rows": 100}
    return ModelMonitoring(**{**base, **kw})


def window(
    auc: float | None = 0.85,
    ci: list[float] | None = None,
    rows: int = 1000,
    completeness: float | None = 1.0,
    start: str = DAY[0],
    end: str = DAY[1],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "version": None,
        "rows": rows,
        "labeled": rows,
        "label_completeness": completeness,
        "metrics": {"roc_auc": auc, "roc_auc_ci": ci},
        **extra,
    }


def metric(condition: dict[str, Any], **kw: Any) -> Monitor:
    fields: dict[str, Any] = {"name": "auc", "kind": "metric", "metric": "roc_auc"}
    return Monitor(**{**fields, **kw, "condition": Condition(**condition)})


def judge(mon: Monitor, win: dict[str, Any], previous=None, reference=None, **model_kw: Any):
    signals = evaluate_monitor(model(**model_kw), mon, "acme", win, previous, reference)
    return signals


def one(mon: Monitor, win: dict[str, Any], previous=None, reference=None, **model_kw: Any):
    [signal] = judge(mon, win, previous, reference, **model_kw)
    return signal


# -- absolute ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "breached"),
    [
        ("<", 0.79, True),
        ("<", 0.80, False),  # exactly at the threshold is not below it
        ("<", 0.81, False),
        ("<=", 0.80, True),
        ("<=", 0.81, False),
        (">", 0.80, False),
        (">", 0.81, True),
        (">=", 0.80, True),
        (">=", 0.79, False),
    ],
)
def test_absolute_boundaries(op: str, value: float, breached: bool) -> None:
    signal = one(metric({"op": op, "value": 0.80}), window(auc=value))
    assert signal.breached is breached
    assert signal.threshold == 0.80
    assert signal.value == value


@pytest.mark.parametrize(
    ("value", "breached", "recovered"),
    [
        (0.79, True, False),
        (0.80, False, False),  # inside the band: neither breached nor recovered
        (0.805, False, False),
        (0.8099, False, False),
        (0.81, False, True),  # 0.80 + 0.01: recovered
        (0.90, False, True),
    ],
)
def test_hysteresis_band_below(value: float, breached: bool, recovered: bool) -> None:
    mon = metric({"op": "<", "value": 0.80}, resolve_hysteresis=0.01)
    signal = one(mon, window(auc=value))
    assert (signal.breached, signal.recovered) == (breached, recovered)


@pytest.mark.parametrize(
    ("value", "breached", "recovered"),
    [(0.21, True, False), (0.20, False, False), (0.16, False, False), (0.15, False, True)],
)
def test_hysteresis_band_above(value: float, breached: bool, recovered: bool) -> None:
    mon = metric({"op": ">", "value": 0.20}, resolve_hysteresis=0.05)
    signal = one(mon, window(auc=value))
    assert (signal.breached, signal.recovered) == (breached, recovered)


def test_no_hysteresis_recovers_as_soon_as_not_breached() -> None:
    mon = metric({"op": "<", "value": 0.80})
    assert one(mon, window(auc=0.80)).recovered is True
    assert one(mon, window(auc=0.7999)).recovered is False


# -- statistical ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "ci", "breached"),
    [
        ("<", [0.70, 0.79], True),  # upper bound below
        ("<", [0.70, 0.80], False),  # upper bound at the threshold
        ("<", [0.70, 0.85], False),  # point 0.76 is below, but the interval straddles
        ("<=", [0.70, 0.80], True),
        (">", [0.81, 0.90], True),  # lower bound above
        (">", [0.80, 0.90], False),
        (">", [0.75, 0.90], False),
        (">=", [0.80, 0.90], True),
    ],
)
def test_statistical_uses_the_interval_bound(op: str, ci: list[float], breached: bool) -> None:
    signal = one(metric({"type": "statistical", "op": op, "value": 0.80}), window(0.76, ci))
    assert signal.breached is breached
    assert signal.threshold == 0.80
    assert signal.value == 0.76


def test_statistical_recovery_uses_the_point_value_and_hysteresis() -> None:
    mon = metric({"type": "statistical", "op": "<", "value": 0.80}, resolve_hysteresis=0.01)
    assert one(mon, window(0.805, [0.70, 0.90])).recovered is False
    assert one(mon, window(0.81, [0.70, 0.92])).recovered is True


def test_statistical_without_interval_is_not_judged() -> None:
    signal = one(metric({"type": "statistical", "op": "<", "value": 0.8}), window(0.5, None))
    assert signal.breached is None
    assert "no interval" in signal.summary


def test_statistical_summary_names_the_bound() -> None:
    mon = metric({"type": "statistical", "op": "<", "value": 0.8})
    signal = one(mon, window(0.74, [0.70, 0.78]))
    assert signal.summary == (
        "roc_auc 0.74 < 0.8 on fraud, window 2026-11-20..2026-11-21 (95% interval upper bound 0.78)"
    )


# -- relative ---------------------------------------------------------------------------


def relative(op: str, compare_to: str, pct: float, **kw: Any) -> Monitor:
    cond = {"type": "relative", "op": op, "compare_to": compare_to, "change_pct": pct}
    return metric(cond, **kw)


@pytest.mark.parametrize(
    ("value", "breached"),
    [(0.71, True), (0.72, False), (0.73, False)],  # 0.80 * (1 - 10%) = 0.72
)
def test_relative_drop_against_reference(value: float, breached: bool) -> None:
    signal = one(relative("<", "reference", 10), window(auc=value), reference={"roc_auc": 0.80})
    assert signal.breached is breached
    assert signal.threshold == pytest.approx(0.72)


@pytest.mark.parametrize(
    ("value", "breached"),
    [(0.061, True), (0.06, False), (0.059, False)],  # 0.04 * (1 + 50%) = 0.06
)
def test_relative_rise_against_previous(value: float, breached: bool) -> None:
    mon = relative(">", "previous", 50)
    signal = one(mon, window(auc=value), previous=window(auc=0.04))
    assert signal.breached is breached
    assert signal.threshold == pytest.approx(0.06)


def test_relative_uses_the_size_of_a_negative_base() -> None:
    # r2 of -0.20 dropping by 10% is -0.22, not -0.18
    signal = one(relative("<", "previous", 10), window(auc=-0.23), previous=window(auc=-0.20))
    assert signal.threshold == pytest.approx(-0.22)
    assert signal.breached is True


def test_relative_hysteresis_is_around_the_moved_threshold() -> None:
    mon = relative("<", "reference", 10, resolve_hysteresis=0.02)
    ref = {"roc_auc": 0.80}
    assert one(mon, window(auc=0.735), reference=ref).recovered is False
    assert one(mon, window(auc=0.74), reference=ref).recovered is True


def test_relative_without_base_is_not_judged() -> None:
    assert one(relative("<", "reference", 10), window(), reference=None).breached is None
    assert one(relative("<", "reference", 10), window(), reference={}).breached is None
    signal = one(relative("<", "previous", 10), window(), previous=None)
    assert signal.breached is None
    assert "no previous window" in signal.summary
    # a previous window that is itself too small is not a base
    signal = one(relative("<", "previous", 10), window(), previous=window(rows=5))
    assert signal.breached is None
    assert "previous window is not judged" in signal.summary


def test_relative_summary() -> None:
    signal = one(relative("<", "reference", 10), window(auc=0.70), reference={"roc_auc": 0.8})
    assert signal.summary == (
        "roc_auc 0.7 < 0.72 on fraud, window 2026-11-20..2026-11-21 (10% below reference 0.8)"
    )


# -- not enough data --------------------------------------------------------------------


def test_too_few_rows_is_not_judged() -> None:
    mon = metric({"op": "<", "value": 0.8})
    assert one(mon, window(auc=0.1, rows=99)).breached is None
    assert one(mon, window(auc=0.1, rows=100)).breached is True  # min_rows is inclusive
    signal = one(mon, window(auc=0.1, rows=99))
    assert signal.recovered is False
    assert "99 rows, fewer than min_rows 100" in signal.summary


def test_too_few_labels_is_not_judged() -> None:
    mon = metric({"op": "<", "value": 0.8})
    kw = {"min_label_completeness": 0.5}
    assert one(mon, window(auc=0.1, completeness=0.49), **kw).breached is None
    assert one(mon, window(auc=0.1, completeness=0.50), **kw).breached is True
    assert one(mon, window(auc=0.1, completeness=None), **kw).breached is None


def test_undefined_metric_is_not_judged() -> None:
    win = window(auc=None)
    win["metrics"]["undefined"] = {"roc_auc": "only one class"}
    signal = one(metric({"op": "<", "value": 0.8}), win)
    assert signal.breached is None
    assert signal.value is None
    assert "only one class" in signal.summary
    missing = one(metric({"op": "<", "value": 0.8}, metric="f1"), window())
    assert missing.breached is None


# -- segments ---------------------------------------------------------------------------


def segmented_window() -> dict[str, Any]:
    def seg(rows: int, auc: float) -> dict[str, Any]:
        return {"rows": rows, "labeled": rows, "label_completeness": 1.0,
                "metrics": {"roc_auc": auc, "roc_auc_ci": None}}  # fmt: skip

    return window(segments={"web": seg(500, 0.90), "partner": seg(150, 0.74), "app": seg(50, 0.5)})


def test_segment_fan_out() -> None:
    mon = metric({"op": "<", "value": 0.80}, segment="channel")
    signals = judge(mon, segmented_window())
    by_segment = {s.labels["segment"]: s for s in signals}
    assert sorted(by_segment) == ["channel=app", "channel=partner", "channel=web"]
    assert by_segment["channel=partner"].breached is True
    assert by_segment["channel=web"].breached is False
    assert by_segment["channel=app"].breached is None  # 50 rows < min_rows 100
    assert by_segment["channel=partner"].summary == (
        "roc_auc 0.74 < 0.8 on fraud (channel=partner), window 2026-11-20..2026-11-21"
    )
    assert len({s.key for s in signals}) == 3


def test_segment_relative_to_previous_uses_the_same_value() -> None:
    mon = metric(
        {"type": "relative", "op": "<", "compare_to": "previous", "change_pct": 10},
        segment="channel",
    )
    before = segmented_window()
    before["segments"]["partner"]["metrics"]["roc_auc"] = 0.90  # 0.90 * 0.9 = 0.81 > 0.74
    signals = {s.labels["segment"]: s for s in judge(mon, segmented_window(), before)}
    assert signals["channel=partner"].breached is True
    assert signals["channel=web"].breached is False  # 0.90 vs 0.90


def test_segment_monitor_on_unsegmented_window_is_not_judged() -> None:
    mon = metric({"op": "<", "value": 0.80}, segment="channel")
    [signal] = judge(mon, window())
    assert signal.breached is None
    assert "without the segment column 'channel'" in signal.summary


# -- drift ------------------------------------------------------------------------------


def drift_window(rows: int = 1000) -> dict[str, Any]:
    return window(
        rows=rows,
        drift={
            "amount": {"type": "numeric", "psi": 0.25, "jensen_shannon": 0.05,
                       "wasserstein_normed": 0.3, "drifted": True,
                       "null_share": {"reference": 0.0, "current": 0.02}},
            "age": {"type": "numeric", "psi": 0.2, "jensen_shannon": 0.01,
                    "wasserstein_normed": 0.1, "drifted": False,
                    "null_share": {"reference": 0.0, "current": 0.10}},
            "country": {"type": "categorical", "psi": 0.4, "jensen_shannon": 0.08,
                        "drifted": None, "unseen_share": 0.12,
                        "null_share": {"reference": 0.0, "current": 0.0}},
            "(output) score": {"type": "numeric", "psi": 0.05, "jensen_shannon": 0.11,
                               "wasserstein_normed": 0.2, "drifted": False,
                               "null_share": {"reference": 0.0, "current": 0.0}},
        },
    )  # fmt: skip


def drift(feature: str, metric: str | None = "psi", value: float | None = 0.2, **kw: Any):
    cond = {"op": ">", "value": value}
    return Monitor(name="drift", kind="drift", metric=metric, feature=feature,
                   condition=Condition(**cond), **kw)  # fmt: skip


def test_drift_one_feature_at_threshold() -> None:
    [amount] = judge(drift("amount"), drift_window())
    assert (amount.value, amount.breached, amount.labels["feature"]) == (0.25, True, "amount")
    [age] = judge(drift("age"), drift_window())
    assert age.breached is False  # psi 0.2 is not > 0.2
    [age_ge] = judge(
        Monitor(name="d", kind="drift", feature="age",
                condition=Condition(op=">=", value=0.2)), drift_window())  # fmt: skip
    assert age_ge.breached is True  # metric defaults to psi
    assert age_ge.summary == "psi 0.2 >= 0.2 on fraud (age), window 2026-11-20..2026-11-21"


def test_drift_all_features_fans_out_without_the_output() -> None:
    signals = judge(drift("*", "jensen_shannon", 0.04), drift_window())
    got = {s.labels["feature"]: s.breached for s in signals}
    assert got == {"age": False, "amount": True, "country": True}


def test_drift_of_the_score() -> None:
    [signal] = judge(drift("score", "jensen_shannon", 0.1), drift_window())
    assert signal.labels["feature"] == "score"
    assert (signal.value, signal.breached) == (0.11, True)


def test_drift_wasserstein_is_undefined_for_categorical() -> None:
    [signal] = judge(drift("country", "wasserstein_normed", 0.2), drift_window())
    assert signal.breached is None


def test_drift_uses_the_rules_verdict() -> None:
    mon = Monitor(name="d", kind="drift", metric="drifted", feature="*")
    got = {s.labels["feature"]: (s.breached, s.recovered) for s in judge(mon, drift_window())}
    assert got == {"amount": (True, False), "age": (False, True), "country": (None, False)}


def test_drift_without_reference_or_rows_is_not_judged() -> None:
    [signal] = judge(drift("*"), window(drift={}))
    assert signal.breached is None
    assert "reference" in signal.summary
    [small] = judge(drift("amount"), drift_window(rows=10))
    assert small.breached is None
    [missing] = judge(drift("tenure_years"), drift_window())
    assert missing.breached is None


# -- data quality -----------------------------------------------------------------------


def quality(metric: str, op: str, value: float, feature: str | None = None, **kw: Any):
    return Monitor(name="dq", kind="data_quality", metric=metric, feature=feature,
                   condition=Condition(op=op, value=value), **kw)  # fmt: skip


def test_null_rate() -> None:
    [age] = judge(quality("null_rate", ">", 0.05, "age"), drift_window())
    assert (age.value, age.breached) == (0.10, True)
    signals = judge(quality("null_rate", ">", 0.02, "*"), drift_window())
    assert {s.labels["feature"]: s.breached for s in signals} == {
        "age": True, "amount": False, "country": False}  # fmt: skip


def test_unseen_share_only_for_categorical() -> None:
    [country] = judge(quality("unseen_share", ">", 0.10, "country"), drift_window())
    assert (country.value, country.breached) == (0.12, True)
    [amount] = judge(quality("unseen_share", ">", 0.10, "amount"), drift_window())
    assert amount.breached is None
    signals = judge(quality("unseen_share", ">", 0.10, "*"), drift_window())
    assert [s.labels["feature"] for s in signals] == ["country"]


@pytest.mark.parametrize(
    ("rows", "breached", "recovered"),
    [(1999, True, False), (2000, False, False), (2399, False, False), (2400, False, True)],
)
def test_volume(rows: int, breached: bool, recovered: bool) -> None:
    mon = quality("volume", "<", 0.5, resolve_hysteresis=0.1)
    signal = one(mon, window(rows=rows), expected_rows_per_window=4000)
    assert (signal.breached, signal.recovered) == (breached, recovered)
    assert signal.value == rows / 4000


def test_volume_is_judged_below_min_rows_and_needs_an_expectation() -> None:
    mon = quality("volume", "<", 0.5)
    assert one(mon, window(rows=0), expected_rows_per_window=4000).breached is True
    signal = one(mon, window(rows=0))
    assert signal.breached is None
    assert "expected_rows_per_window" in signal.summary


def test_volume_per_segment() -> None:
    mon = quality("volume", "<", 0.5, segment="channel")
    signals = judge(mon, segmented_window(), expected_rows_per_window=200)
    got = {s.labels["segment"]: s.breached for s in signals}
    assert got == {"channel=web": False, "channel=partner": False, "channel=app": True}


def ranged_window(rows: int = 1000) -> dict[str, Any]:
    def entry(quantiles: list[float], share: float | None) -> dict[str, Any]:
        return {"quantiles": quantiles, "bounds": [0.0, 1.0], "below": 0, "above": 0,
                "count": rows, "share": share}  # fmt: skip

    return window(
        rows=rows,
        data_quality={
            "amount": {"out_of_range": [entry([0.0, 1.0], 0.01), entry([0.001, 0.999], 0.06)]},
            "age": {"out_of_range": [entry([0.0, 1.0], 0.05), entry([0.001, 0.999], 0.05)]},
            "tenure_years": {"out_of_range": [entry([0.0, 1.0], None)]},
        },
    )


def test_out_of_range_reads_the_entry_of_its_bounds() -> None:
    [minmax] = judge(quality("out_of_range", ">", 0.05, "amount"), ranged_window())
    assert (minmax.value, minmax.breached) == (0.01, False)
    wide = quality("out_of_range", ">", 0.05, "amount", bounds=(0.001, 0.999))
    [signal] = judge(wide, ranged_window())
    assert (signal.value, signal.breached, signal.labels["feature"]) == (0.06, True, "amount")
    [age] = judge(quality("out_of_range", ">", 0.05, "age"), ranged_window())
    assert age.breached is False  # 0.05 is not > 0.05
    [age_ge] = judge(quality("out_of_range", ">=", 0.05, "age"), ranged_window())
    assert age_ge.breached is True


def test_out_of_range_of_every_feature_and_what_is_not_judged() -> None:
    signals = judge(quality("out_of_range", ">", 0.02, "*"), ranged_window())
    got = {s.labels["feature"]: s.breached for s in signals}
    assert got == {"age": True, "amount": False, "tenure_years": None}
    [unevaluated] = judge(quality("out_of_range", ">", 0.02, "age", bounds=(0.01, 0.99)),
                          ranged_window())  # fmt: skip
    assert unevaluated.breached is None and "without bounds [0.01, 0.99]" in unevaluated.summary
    [few] = judge(quality("out_of_range", ">", 0.02, "age"), ranged_window(rows=10))
    assert few.breached is None and "min_rows" in few.summary
    [categorical] = judge(quality("out_of_range", ">", 0.02, "country"), ranged_window())
    assert categorical.breached is None and "numeric feature" in categorical.summary
    [no_reference] = judge(quality("out_of_range", ">", 0.02, "*"), window())
    assert no_reference.breached is None and "reference" in no_reference.summary


def test_unreported_latency_and_errors_are_not_judged() -> None:
    cond = Condition(op=">", value=1.0)
    for kind, metric, text in [
        ("latency", None, "latency_ms"),
        ("error_rate", None, "error"),
    ]:
        mon = Monitor(name="x", kind=kind, metric=metric, condition=cond)  # type: ignore[arg-type]
        [signal] = judge(mon, window())
        assert signal.breached is None
        assert signal.recovered is False
        assert text in signal.summary


@pytest.mark.parametrize(
    ("kind", "metric_name", "threshold", "breached"),
    [
        ("latency", None, 250.0, True),  # p95 300 ms > 250
        ("latency", "p50", 250.0, False),  # p50 120 ms
        ("latency", "p99", 400.0, True),  # p99 480 ms > 400
        ("error_rate", None, 0.01, True),  # 2% > 1%
        ("error_rate", None, 0.05, False),
    ],
)
def test_latency_and_error_rate_read_the_windows_operations(
    kind: str, metric_name: str | None, threshold: float, breached: bool
) -> None:
    ops = {"latency_p50_ms": 120.0, "latency_p95_ms": 300.0, "latency_p99_ms": 480.0,
           "error_rate": 0.02}  # fmt: skip
    mon = Monitor(name="ops", kind=kind, metric=metric_name,  # type: ignore[arg-type]
                  condition=Condition(op=">", value=threshold))  # fmt: skip
    signal = one(mon, window(operations=ops))
    assert signal.breached is breached


# -- labels and annotations -------------------------------------------------------------


def test_labels_annotations_severity_for() -> None:
    mon = metric(
        {"op": "<", "value": 0.8},
        severity="critical",
        labels={"team": "risk", "tenant": "spoofed"},
        annotations={"runbook_url": "https://runbooks.example.com/auc"},
        window="1d",
        **{"for": "2h"},
    )
    win = window(auc=0.74)
    win["version"] = "v2"
    signal = one(mon, win)
    assert signal.labels == {
        "tenant": "acme",  # a monitor's own label cannot override the identity
        "model": "fraud",
        "monitor": "auc",
        "severity": "critical",
        "window": "1d",
        "version": "v2",
        "team": "risk",
    }
    assert signal.annotations == {
        "runbook_url": "https://runbooks.example.com/auc",
        "summary": "roc_auc 0.74 < 0.8 on fraud, window 2026-11-20..2026-11-21",
    }
    assert signal.severity == "critical"
    assert signal.for_seconds == 7200.0
    assert signal.window_start == datetime(2026, 11, 20, tzinfo=UTC)
    assert signal.window_end == datetime(2026, 11, 21, tzinfo=UTC)


def test_hourly_summary_shows_times_and_ok_values() -> None:
    win = window(auc=0.9, start="2026-11-20T10:00:00Z", end="2026-11-20T11:00:00Z")
    signal = one(metric({"op": "<", "value": 0.8}, window="1h"), win)
    assert signal.summary == (
        "roc_auc 0.9 not < 0.8 on fraud, window 2026-11-20T10:00Z..2026-11-20T11:00Z"
    )


# -- evaluate_all: the latest closed window ---------------------------------------------


def day(d: int, auc: float, end: str | None = None) -> dict[str, Any]:
    return window(
        auc=auc, start=f"2026-11-{d:02d}T00:00:00Z", end=end or f"2026-11-{d + 1:02d}T00:00:00Z"
    )


def test_latest_closed_window_and_previous() -> None:
    mon = relative("<", "previous", 10, window="1d")
    mod = model(monitors=[mon])
    windows = [day(21, 0.10), day(19, 0.90), day(20, 0.70)]  # unordered; the 21st is open
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    [signal] = evaluate_all(mod, {"1d": windows}, None, now=now)
    assert signal.window_start == datetime(2026, 11, 20, tzinfo=UTC)
    assert signal.value == 0.70
    assert signal.threshold == pytest.approx(0.81)  # previous (the 19th) 0.90 - 10%
    assert signal.breached is True
    # at exactly midnight the 21st has closed
    [later] = evaluate_all(mod, {"1d": windows}, None, now=datetime(2026, 11, 22, tzinfo=UTC))
    assert later.window_start == datetime(2026, 11, 21, tzinfo=UTC)


def test_clipped_window_is_not_closed() -> None:
    mod = model(monitors=[metric({"op": "<", "value": 0.8}, window="1d")])
    windows = [day(20, 0.9), day(21, 0.1, end="2026-11-21T06:00:00Z")]
    now = datetime(2026, 11, 30, tzinfo=UTC)
    [signal] = evaluate_all(mod, {"1d": windows}, None, now=now)
    assert signal.window_start.day == 20


def test_each_monitor_uses_its_window_size_and_reference() -> None:
    hourly = metric({"op": "<", "value": 0.8}, name="hourly", window="1h")
    daily = relative("<", "reference", 10, name="daily", window="1d")
    missing = metric({"op": "<", "value": 0.8}, name="weekly", window="1w")
    mod = model(monitors=[hourly, daily, missing])
    hours = [window(auc=0.5, start=f"2026-11-21T{h:02d}:00:00Z",
                    end=f"2026-11-21T{h + 1:02d}:00:00Z") for h in range(3)]  # fmt: skip
    now = datetime(2026, 11, 21, 2, 30, tzinfo=UTC)
    signals = evaluate_all(mod, {"1h": hours, "1d": [day(20, 0.70)]}, {"roc_auc": 0.8}, now=now)
    by_name = {s.labels["monitor"]: s for s in signals}
    assert sorted(by_name) == ["daily", "hourly"]  # no 1w windows: nothing to judge
    assert by_name["hourly"].window_start == datetime(2026, 11, 21, 1, tzinfo=UTC)
    assert by_name["daily"].breached is True  # 0.70 < 0.72
    assert by_name["hourly"].labels["tenant"] == "acme"
