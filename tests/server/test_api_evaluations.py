"""Window evaluations over HTTP, checked against scikit-learn and scipy on the events sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from .conftest import (
    BASE,
    PARQUET,
    RTOL,
    Api,
    Events,
    assert_metrics,
    assert_problem,
    iso,
    make_events,
    parquet_bytes,
    sklearn_binary,
)

DAYS = 3
URL = "/v1/models/fraud/evaluations"


@dataclass
class Loaded:
    api: Api
    headers: dict[str, str]
    ev: Events
    labeled: np.ndarray  # which events have a label stored

    def get(self, **params: Any) -> dict[str, Any]:
        response = self.api.client.get(URL, params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def send_labels(self, idx: np.ndarray) -> None:
        response = self.api.client.post(
            "/v1/models/fraud/labels", json={"labels": self.ev.labels(idx)}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        self.labeled[idx] = True


@pytest.fixture
def loaded(api: Api, admin: dict[str, str]) -> Loaded:
    """900 events over three days, 60% of them labeled."""
    ev = make_events(50, 900, days=DAYS)
    response = api.client.post(
        "/v1/models/fraud/predictions", json={"events": ev.predictions()}, headers=admin
    )
    assert response.json()["accepted"] == ev.n
    data = Loaded(api, admin, ev, np.zeros(ev.n, bool))
    rng = np.random.default_rng(51)
    data.send_labels(np.flatnonzero(rng.random(ev.n) < 0.6))
    return data


def expected(data: Loaded, mask: np.ndarray) -> dict[str, Any]:
    """rows, labeled, completeness and sklearn metrics of the events in ``mask``."""
    ev = data.ev
    labeled = mask & data.labeled
    return {
        "rows": int(mask.sum()),
        "labeled": int(labeled.sum()),
        "label_completeness": labeled.sum() / mask.sum(),
        "metrics": sklearn_binary(ev.y[labeled], ev.score[labeled], ev.pred()[labeled]),
    }


def check(window: dict[str, Any], want: dict[str, Any]) -> None:
    assert window["rows"] == want["rows"]
    assert window["labeled"] == want["labeled"]
    assert window["label_completeness"] == pytest.approx(want["label_completeness"], rel=RTOL)
    assert_metrics(window["metrics"], want["metrics"])


def day_bounds(day: int) -> tuple[str, str]:
    start = BASE + timedelta(days=day)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), (start + timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


# -- metrics per window and segment ----------------------------------------------------------


def test_daily_windows_and_segments_equal_sklearn(loaded: Loaded) -> None:
    result = loaded.get(window="1d", segment="channel")
    windows = result["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [day_bounds(d) for d in range(DAYS)]
    ev = loaded.ev
    for day, window in enumerate(windows):
        in_day = ev.day == day
        check(window, expected(loaded, in_day))
        assert sorted(window["segments"]) == sorted(set(ev.channel[in_day]))
        for value, part in window["segments"].items():
            check(part, expected(loaded, in_day & (ev.channel == value)))
        # metrics come with intervals around them
        low, high = window["metrics"]["roc_auc_ci"]
        assert low <= window["metrics"]["roc_auc"] <= high


def test_version_and_time_range_filter_the_rows(loaded: Loaded) -> None:
    start, _ = day_bounds(1)
    _, end = day_bounds(2)
    result = loaded.get(window="1d", version="v1", start=start, end=end)
    windows = result["windows"]
    assert [w["start"] for w in windows] == [day_bounds(1)[0], day_bounds(2)[0]]
    ev = loaded.ev
    for day, window in zip((1, 2), windows, strict=True):
        assert window["version"] == "v1"
        check(window, expected(loaded, (ev.day == day) & (ev.version == "v1")))


def test_a_whole_range_window_and_half_days(loaded: Loaded) -> None:
    ev = loaded.ev
    whole = loaded.get(window="1w", start=day_bounds(0)[0], end=day_bounds(DAYS - 1)[1])
    (window,) = whole["windows"]
    assert (window["start"], window["end"]) == (day_bounds(0)[0], day_bounds(DAYS - 1)[1])
    check(window, expected(loaded, np.ones(ev.n, bool)))
    halves = loaded.get(window="12h")["windows"]
    half = np.array([d * 2 + (t.hour >= 12) for d, t in zip(ev.day, ev.ts, strict=True)])
    assert len(halves) == 2 * DAYS
    for i, window in enumerate(halves):
        check(window, expected(loaded, half == i))


def test_a_start_inside_an_hour_covers_whole_hours_and_says_so(loaded: Loaded) -> None:
    start = BASE + timedelta(hours=6, minutes=30)
    end = BASE + timedelta(hours=17, minutes=10)
    (window,) = loaded.get(window="1d", start=iso(start), end=iso(end))["windows"]
    first, last = BASE + timedelta(hours=6), BASE + timedelta(hours=18)
    assert (window["start"], window["end"]) == (
        first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    ts = np.array(loaded.ev.ts)
    check(window, expected(loaded, (ts >= first) & (ts < last)))


def test_extreme_time_ranges(loaded: Loaded) -> None:
    result = loaded.get(start="0001-01-01T00:00:00Z", end="9999-12-31T23:59:59Z", window="1w")
    assert sum(w["rows"] for w in result["windows"]) == loaded.ev.n
    assert loaded.get(start="2099-01-01T00:00:00Z")["windows"] == []


def test_naive_and_aware_times_mix(loaded: Loaded) -> None:
    start, end = day_bounds(1)
    result = loaded.get(start=start, end=end.rstrip("Z"))  # end without a zone: UTC
    (window,) = result["windows"]
    check(window, expected(loaded, loaded.ev.day == 1))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "1x"}, "window"),
        ({"window": "0d"}, "window"),
        ({"window": "d"}, "window"),
        ({"window": ""}, "window"),
        ({"window": "99999999999999999999d"}, "window"),
        ({"window": "100000000h"}, "window"),
        ({"segment": "region"}, "segment"),
        ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "end"),
        ({"start": "2026-03-03T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "end"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_bad_queries_are_422(loaded: Loaded, params: dict[str, str], field: str) -> None:
    response = loaded.api.client.get(URL, params=params, headers=loaded.headers)
    body = assert_problem(response, 422)
    assert body["field"].split(".")[-1] == field


def test_unknown_model_is_404(loaded: Loaded) -> None:
    response = loaded.api.client.get("/v1/models/ghost/evaluations", headers=loaded.headers)
    assert_problem(response, 404)


# -- late labels ------------------------------------------------------------------------------


def test_late_labels_restate_their_window_only(loaded: Loaded) -> None:
    before = loaded.get(window="1d", segment="channel")["windows"]
    ev = loaded.ev
    late = np.flatnonzero((ev.day == 0) & ~loaded.labeled)[::2]
    assert late.size > 20
    loaded.send_labels(late)
    after = loaded.get(window="1d", segment="channel")["windows"]
    check(after[0], expected(loaded, ev.day == 0))
    assert after[0]["labeled"] > before[0]["labeled"]
    assert after[0]["metrics"]["accuracy"] != before[0]["metrics"]["accuracy"]
    for value, part in after[0]["segments"].items():
        check(part, expected(loaded, (ev.day == 0) & (ev.channel == value)))
    assert after[1:] == before[1:]


# -- drift against a reference ----------------------------------------------------------------


def _numeric(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def chi2_expected(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, int]:
    """chi2 test of homogeneity, nulls as a category, by scipy."""
    key = np.vectorize(lambda v: "\0null" if v is None else v, otypes=[object])
    ref_k, cur_k = key(ref), key(cur)
    cats = sorted(set(ref_k) | set(cur_k))
    table = np.array([[np.sum(ref_k == c) for c in cats], [np.sum(cur_k == c) for c in cats]])
    stat, p, dof, _ = sps.chi2_contingency(table, correction=False)
    return stat, p, dof


def check_drift(
    drift: dict[str, Any], ref: Events, ref_mask: np.ndarray, ev: Events, mask: np.ndarray
) -> None:
    ks = sps.ks_2samp(_numeric(ref.amount[ref_mask]), _numeric(ev.amount[mask]))
    assert drift["amount"]["ks"]["statistic"] == pytest.approx(ks.statistic, rel=RTOL)
    assert drift["amount"]["ks"]["p_value"] == pytest.approx(ks.pvalue, rel=RTOL, abs=1e-300)
    stat, p, dof = chi2_expected(ref.country[ref_mask], ev.country[mask])
    assert drift["country"]["chi2"]["statistic"] == pytest.approx(stat, rel=RTOL)
    assert drift["country"]["chi2"]["p_value"] == pytest.approx(p, rel=RTOL, abs=1e-300)
    assert drift["country"]["chi2"]["dof"] == dof
    assert isinstance(drift["amount"]["drifted"], bool)


def test_uploaded_reference_drift_equals_scipy(loaded: Loaded) -> None:
    ref = make_events(60, 700, days=1)
    ref.amount[:7] = np.nan  # nulls in the reference too
    table = ref.table().select(["amount", "country", "score"])
    response = loaded.api.client.post(
        "/v1/models/fraud/reference",
        content=parquet_bytes(table),
        headers={**loaded.headers, "Content-Type": PARQUET},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == ref.n
    result = loaded.get(window="1d")
    assert result["reference"] is True and result["drift_rule"]
    everything = np.ones(ref.n, bool)
    for day, window in enumerate(result["windows"]):
        mask = loaded.ev.day == day
        check_drift(window["drift"], ref, everything, loaded.ev, mask)
        ks = sps.ks_2samp(ref.score, loaded.ev.score[mask])
        output = window["drift"]["(output) score"]
        assert output["ks"]["statistic"] == pytest.approx(ks.statistic, rel=RTOL)
    # the amounts drift upwards day by day (lognormal mean + 0.2 per day)
    stats = [w["drift"]["amount"]["ks"]["statistic"] for w in result["windows"]]
    assert stats == sorted(stats)


def test_reference_from_a_stored_time_range(loaded: Loaded) -> None:
    start, end = day_bounds(0)
    body = {"start": start, "end": end, "version": "v1"}
    response = loaded.api.client.post(
        "/v1/models/fraud/reference", json=body, headers=loaded.headers
    )
    assert response.status_code == 200, response.text
    ev = loaded.ev
    ref_mask = (ev.day == 0) & (ev.version == "v1")
    assert response.json()["rows"] == int(ref_mask.sum())
    for day, window in enumerate(loaded.get(window="1d")["windows"]):
        check_drift(window["drift"], ev, ref_mask, ev, ev.day == day)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}, None, 422),
        ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, None, 422),
        ({"start": "2026-03-01T00:00:00Z"}, None, 422),
        ({"start": "soon", "end": "2026-03-01T00:00:00Z"}, None, 422),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "version": 7}, None, 422),
        (b"[1]", "application/json", 422),
        ("no_country", PARQUET, 422),
        ("amount_as_text", PARQUET, 422),
    ],
)
def test_bad_references_are_rejected(
    loaded: Loaded, body: Any, content_type: str | None, status: int
) -> None:
    headers = dict(loaded.headers)
    kwargs: dict[str, Any] = {"json": body}
    if content_type is not None:
        headers["Content-Type"] = content_type
        table = make_events(61, 30).table()
        if body == "no_country":
            raw = parquet_bytes(table.select(["amount"]))
        elif body == "amount_as_text":
            raw = parquet_bytes(table.select(["country"]).append_column("amount", table["id"]))
        else:
            raw = body
        kwargs = {"content": raw}
    response = loaded.api.client.post("/v1/models/fraud/reference", headers=headers, **kwargs)
    assert_problem(response, status)
    assert loaded.get()["reference"] is False


def test_reference_from_range_after_an_idempotent_replay(loaded: Loaded) -> None:
    """A replay leaves a fetched row pending on the writer's cursor; the scan still works."""
    headers = {**loaded.headers, "Idempotency-Key": "replay-then-reference"}
    events = make_events(62, 3, prefix="r").predictions()
    for _ in range(2):
        response = loaded.api.client.post(
            "/v1/models/fraud/predictions", json={"events": events}, headers=headers
        )
        assert response.status_code == 200
    start, end = day_bounds(0)
    response = loaded.api.client.post(
        "/v1/models/fraud/reference", json={"start": start, "end": end}, headers=loaded.headers
    )
    assert response.status_code == 200, response.text
