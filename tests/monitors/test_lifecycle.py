"""The alert lifecycle: for:, hysteresis, resend, resolve, not-enough-data, restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from assay.errors import ConfigError
from assay.monitors.lifecycle import AlertBook
from assay.monitors.signals import Signal

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LABELS = {"alertname": "roc_auc_low", "tenant": "acme", "model": "fraud", "severity": "critical"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def signal(
    value: float | None,
    *,
    threshold: float = 0.80,
    band: float = 0.02,
    for_seconds: float = 0.0,
    labels: dict[str, str] | None = None,
) -> Signal:
    """A rule ``value < threshold`` resolving only at ``value >= threshold + band``."""
    breached = None if value is None else value < threshold
    recovered = value is not None and value >= threshold + band
    return Signal(
        labels=dict(labels or LABELS),
        value=value,
        threshold=threshold,
        breached=breached,
        recovered=recovered,
        window_start=T0 - timedelta(days=1),
        window_end=T0,
        summary=f"AUC {value} < {threshold}",
        severity="critical",
        for_seconds=for_seconds,
        annotations={"runbook_url": "https://runbooks.example/auc"},
    )


def test_fires_at_exactly_for_seconds_not_one_second_before() -> None:
    book = AlertBook(resend_interval=3600)
    assert book.observe([signal(0.7, for_seconds=300)], at(0)) == []
    assert book.active()[0]["state"] == "pending"
    assert book.observe([signal(0.7, for_seconds=300)], at(299)) == []
    assert book.active()[0]["state"] == "pending"
    notes = book.observe([signal(0.7, for_seconds=300)], at(300))
    assert [n.status for n in notes] == ["firing"]
    note = notes[0]
    assert note.labels == LABELS
    assert note.starts_at == at(300)
    assert note.ends_at is None
    assert note.value == 0.7
    assert note.annotations["runbook_url"] == "https://runbooks.example/auc"
    assert note.annotations["summary"] == "AUC 0.7 < 0.8"
    (row,) = book.active()
    assert row["state"] == "firing"
    assert row["since"] == at(300).isoformat()
    assert row["active_at"] == at(0).isoformat()
    assert row["value"] == 0.7
    assert row["labels"] == LABELS


def test_for_zero_fires_at_once() -> None:
    book = AlertBook()
    assert [n.status for n in book.observe([signal(0.7)], at(0))] == ["firing"]
    assert book.observe([signal(0.7)], at(1)) == []


def test_pending_that_recovers_goes_back_to_inactive_silently() -> None:
    book = AlertBook()
    assert book.observe([signal(0.7, for_seconds=600)], at(0)) == []
    # not breached (inside the band even): pending is dropped, nothing notified
    assert book.observe([signal(0.805, for_seconds=600)], at(300)) == []
    assert book.active() == []
    # a new breach starts the for: clock again
    assert book.observe([signal(0.7, for_seconds=600)], at(400)) == []
    assert book.observe([signal(0.7, for_seconds=600)], at(999)) == []
    assert [n.status for n in book.observe([signal(0.7, for_seconds=600)], at(1000))] == ["firing"]


def test_flapping_inside_the_hysteresis_band_does_not_notify() -> None:
    book = AlertBook(resend_interval=3600)
    assert len(book.observe([signal(0.79)], at(0))) == 1
    # flips around the 0.80 threshold, never reaching the 0.82 recovery level
    for i, value in enumerate([0.801, 0.79, 0.815, 0.799, 0.81, 0.78, 0.8199], start=1):
        assert book.observe([signal(value)], at(60 * i)) == [], value
        assert book.active()[0]["state"] == "firing"
    notes = book.observe([signal(0.83)], at(600))
    assert [n.status for n in notes] == ["resolved"]
    assert notes[0].starts_at == at(0)
    assert notes[0].ends_at == at(600)
    assert book.active() == []
    # after resolution, nothing more until the next breach
    assert book.observe([signal(0.9)], at(700)) == []


def test_resend_interval() -> None:
    book = AlertBook(resend_interval=300)
    assert len(book.observe([signal(0.7)], at(0))) == 1
    assert book.observe([signal(0.7)], at(299)) == []
    notes = book.observe([signal(0.71)], at(300))
    assert [n.status for n in notes] == ["firing"]
    assert notes[0].starts_at == at(0)  # the same incident
    assert notes[0].value == 0.71
    # re-sent even in a pass without a signal for it (in the band or not evaluated)
    assert book.observe([], at(599)) == []
    assert [n.status for n in book.observe([], at(600))] == ["firing"]
    # in the band still re-sends
    assert book.observe([signal(0.81)], at(899)) == []
    assert [n.status for n in book.observe([signal(0.81)], at(900))] == ["firing"]


def test_not_enough_data_changes_nothing() -> None:
    book = AlertBook(resend_interval=3600)
    book.observe([signal(0.7, for_seconds=60)], at(0))
    assert book.observe([signal(None, for_seconds=60)], at(30)) == []
    assert book.active()[0]["state"] == "pending"
    # the pending clock kept running through the unjudged window
    assert [n.status for n in book.observe([signal(0.7, for_seconds=60)], at(60))] == ["firing"]
    assert book.observe([signal(None)], at(120)) == []
    assert book.active()[0]["state"] == "firing"
    # None never starts an alert either
    other = {**LABELS, "model": "churn"}
    assert book.observe([signal(None, labels=other)], at(130)) == []
    assert len(book.active()) == 1


def test_deduplication_by_label_set() -> None:
    book = AlertBook(resend_interval=3600)
    same_labels_reordered = dict(reversed(list(LABELS.items())))
    notes = book.observe([signal(0.7), signal(0.6, labels=same_labels_reordered)], at(0))
    assert len(notes) == 1
    assert len(book.active()) == 1
    other = {**LABELS, "segment": "country=DE"}
    notes = book.observe([signal(0.7), signal(0.7, labels=other)], at(10))
    assert [n.labels for n in notes] == [other]
    assert len(book.active()) == 2


def test_restart_mid_incident_sends_no_duplicate() -> None:
    book = AlertBook(resend_interval=300, generator_url="http://assay.example/alerts")
    assert len(book.observe([signal(0.7)], at(0))) == 1
    book.observe([signal(0.7, labels={**LABELS, "model": "churn"}, for_seconds=400)], at(100))
    saved = json.loads(json.dumps(book.to_dict()))  # JSON-safe round trip

    restored = AlertBook.from_dict(saved)
    assert restored.active() == book.active()
    assert restored.to_dict() == book.to_dict()
    # still firing after the restart: not re-notified before the resend interval
    assert restored.observe([signal(0.7)], at(200)) == []
    assert restored.observe([signal(0.7)], at(299)) == []
    resent = restored.observe([signal(0.7)], at(300))
    assert [(n.status, n.starts_at) for n in resent] == [("firing", at(0))]
    assert resent[0].generator_url == "http://assay.example/alerts"
    # the pending alert kept its for: clock
    churn = {**LABELS, "model": "churn"}
    assert restored.observe([signal(0.7, labels=churn, for_seconds=400)], at(499)) == []
    fired = restored.observe([signal(0.7, labels=churn, for_seconds=400)], at(500))
    assert [n.labels["model"] for n in fired] == ["churn"]
    # the incident is not lost: it resolves once, with its original start
    again = AlertBook.from_dict(json.loads(json.dumps(restored.to_dict())))
    resolved = again.observe([signal(0.9)], at(799))
    assert [(n.status, n.starts_at, n.ends_at) for n in resolved] == [("resolved", at(0), at(799))]


def test_state_is_json_safe_with_non_finite_values() -> None:
    book = AlertBook()
    nan = signal(float("nan"))
    book.observe([Signal(**{**nan.__dict__, "breached": True})], at(0))
    text = json.dumps(book.to_dict(), allow_nan=False)
    assert AlertBook.from_dict(json.loads(text)).active()[0]["value"] is None


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        AlertBook(resend_interval=0)
    with pytest.raises(ConfigError):
        AlertBook.from_dict({"version": 99, "alerts": []})
