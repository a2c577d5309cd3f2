"""Sinks and the dispatcher against a real local HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import io
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from assay.errors import ConfigError
from assay.integrations.alertmanager import RESEND_FACTOR, AlertmanagerSink
from assay.integrations.delivery import ConsoleSink, DeliveryError, Dispatcher, sinks_from_config
from assay.integrations.webhook import WebhookSink
from assay.monitors.config import Sinks
from assay.monitors.signals import Notification

from . import Receiver

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def note(i: int = 0, status: str = "firing", value: float = 0.71) -> Notification:
    return Notification(
        labels={"alertname": "roc_auc_low", "model": "fraud", "n": str(i)},
        annotations={"summary": f"AUC low #{i}", "runbook_url": "https://runbooks.example/auc"},
        status=status,  # type: ignore[arg-type]
        starts_at=START,
        ends_at=START + timedelta(minutes=10) if status == "resolved" else None,
        generator_url="http://assay.example/v1/alerts",
        value=value,
    )


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alertmanager_sink_posts_v2_alerts() -> None:
    with Receiver() as rx:
        sink = AlertmanagerSink(rx.url + "/", timeout=5, resend_interval=60)
        before = datetime.now(UTC)
        sink.send([note(1), note(2, "resolved")])
        sink.close()
        (request,) = rx.requests
    assert request["path"] == "/api/v2/alerts"
    assert request["headers"]["content-type"] == "application/json"
    firing, resolved = request["json"]
    assert firing["labels"] == {"alertname": "roc_auc_low", "model": "fraud", "n": "1"}
    assert firing["annotations"]["runbook_url"] == "https://runbooks.example/auc"
    assert firing["startsAt"] == "2024-05-01T12:00:00Z"
    assert firing["generatorURL"] == "http://assay.example/v1/alerts"
    # firing: valid for a few resend intervals from now
    ends = parse_time(firing["endsAt"])
    horizon = timedelta(seconds=RESEND_FACTOR * 60)
    assert before + horizon - timedelta(seconds=1) <= ends <= datetime.now(UTC) + horizon
    assert resolved["endsAt"] == "2024-05-01T12:10:00Z"
    assert set(firing) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def test_alertmanager_sink_raises_on_error_status() -> None:
    with Receiver(fail_first=1, status=400) as rx:
        sink = AlertmanagerSink(rx.url, timeout=5)
        with pytest.raises(DeliveryError, match="400"):
            sink.send([note()])
        sink.close()


def test_webhook_body_and_hmac_signature() -> None:
    secret = "s3cret-shared"
    with Receiver() as rx:
        sink = WebhookSink(rx.url + "/hook", secret=secret)
        sink.send([note(1), note(2, "resolved")])
        sink.close()
        (request,) = rx.requests
    assert request["path"] == "/hook"
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["x-assay-signature"], expected)
    alerts = request["json"]["alerts"]
    assert [a["status"] for a in alerts] == ["firing", "resolved"]
    assert alerts[0]["labels"]["n"] == "1"
    assert alerts[0]["startsAt"] == "2024-05-01T12:00:00Z"
    assert alerts[0]["endsAt"] is None
    assert alerts[1]["endsAt"] == "2024-05-01T12:10:00Z"
    assert alerts[0]["value"] == 0.71
    assert alerts[0]["generatorURL"] == "http://assay.example/v1/alerts"


def test_webhook_without_secret_is_unsigned() -> None:
    with Receiver() as rx:
        sink = WebhookSink(rx.url)
        sink.send([note()])
        sink.close()
        assert "x-assay-signature" not in rx.requests[0]["headers"]


def test_dispatcher_retries_until_the_receiver_recovers() -> None:
    with Receiver(fail_first=2) as rx:
        dispatcher = Dispatcher([WebhookSink(rx.url)], max_attempts=5, backoff=0.05)
        dispatcher.submit([note(1), note(2)])
        assert dispatcher.flush(timeout=10)
        counters = dispatcher.counters()["webhook"]
        assert dispatcher.close(timeout=5)
        assert rx.attempts == 3
        assert len(rx.requests) == 1
        assert [a["labels"]["n"] for a in rx.requests[0]["json"]["alerts"]] == ["1", "2"]
    assert counters["delivered"] == 2
    assert counters["retried"] == 2
    assert counters["failed"] == 0
    assert counters["queued"] == 0


def test_dispatcher_gives_up_after_max_attempts_and_counts_failed() -> None:
    with Receiver(fail_first=100) as rx:
        dispatcher = Dispatcher([AlertmanagerSink(rx.url)], max_attempts=3, backoff=0.01)
        dispatcher.submit([note(1), note(2), note(3)])
        assert dispatcher.flush(timeout=10)
        counters = dispatcher.counters()["alertmanager"]
        dispatcher.close(timeout=5)
        assert rx.attempts == 3
    assert counters["failed"] == 3
    assert counters["retried"] == 2
    assert counters["delivered"] == 0
    assert "500" in counters["last_error"]


def test_dead_sink_does_not_block_submit_or_other_sinks() -> None:
    dead = WebhookSink(f"http://127.0.0.1:{closed_port()}/hook", timeout=1)
    out = io.StringIO()
    dispatcher = Dispatcher([dead, ConsoleSink(out)], max_attempts=50, backoff=0.2)
    started = time.monotonic()
    for i in range(200):
        dispatcher.submit([note(i)])
    assert time.monotonic() - started < 0.5
    # the console sink is not held up by the dead webhook
    deadline = time.monotonic() + 5
    while dispatcher.counters()["console"]["delivered"] < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    counters = dispatcher.counters()
    assert counters["console"]["delivered"] == 200
    assert len(out.getvalue().splitlines()) == 200
    assert counters["webhook"]["delivered"] == 0
    assert counters["webhook"]["queued"] > 0
    # close does not hang on the dead sink: it gives up after its timeout
    started = time.monotonic()
    assert dispatcher.close(timeout=0.5) is False
    assert time.monotonic() - started < 3
    assert dispatcher.counters()["webhook"]["dropped"] > 0
    assert "DeliveryError" in dispatcher.counters()["webhook"]["last_error"]


class GatedSink:
    """Blocks in send until released: lets the test fill the queue deterministically."""

    name = "gated"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.received: list[str] = []

    def send(self, notifications: Sequence[Notification]) -> None:
        self.entered.set()
        self.release.wait(10)
        self.received.extend(n.labels["n"] for n in notifications)


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    sink = GatedSink()
    dispatcher = Dispatcher([sink], capacity=5, batch_size=1)
    dispatcher.submit([note(0)])
    assert sink.entered.wait(5)  # notification 0 is in flight, the queue is empty
    dispatcher.submit([note(i) for i in range(1, 9)])  # 8 into a queue of 5
    counters = dispatcher.counters()["gated"]
    assert counters["dropped"] == 3
    assert counters["queued"] == 6  # 5 queued + 1 in flight
    sink.release.set()
    assert dispatcher.close(timeout=5)
    assert sink.received == ["0", "4", "5", "6", "7", "8"]  # 1, 2, 3 were the oldest
    final = dispatcher.counters()["gated"]
    assert (final["delivered"], final["dropped"], final["failed"]) == (6, 3, 0)


def test_submit_after_close_is_dropped_and_counted() -> None:
    dispatcher = Dispatcher([ConsoleSink(io.StringIO())])
    assert dispatcher.close(timeout=5)
    dispatcher.submit([note(1), note(2)])
    assert dispatcher.counters()["console"]["dropped"] == 2


def test_duplicate_sink_names_get_suffixes() -> None:
    dispatcher = Dispatcher([ConsoleSink(io.StringIO()), ConsoleSink(io.StringIO())])
    assert dispatcher.sink_names == ["console", "console-2"]
    dispatcher.close(timeout=5)


def test_console_sink_prints_one_line_per_notification() -> None:
    out = io.StringIO()
    ConsoleSink(out).send([note(1), note(2, "resolved")])
    lines = out.getvalue().splitlines()
    assert lines == [
        '2024-05-01T12:00:00Z FIRING {alertname="roc_auc_low",model="fraud",n="1"} AUC low #1',
        '2024-05-01T12:10:00Z RESOLVED {alertname="roc_auc_low",model="fraud",n="2"} AUC low #2',
    ]


def test_sinks_from_config() -> None:
    config = Sinks.model_validate(
        {
            "console": True,
            "alertmanager": {"url": "http://127.0.0.1:9093", "resend_interval": "2m"},
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"},
        }
    )
    sinks = sinks_from_config(config, environ={"HOOK_SECRET": "x"})
    assert [s.name for s in sinks] == ["console", "alertmanager", "webhook"]
    assert isinstance(sinks[1], AlertmanagerSink) and sinks[1].resend_interval == 120
    with pytest.raises(ConfigError, match="HOOK_SECRET"):
        sinks_from_config(config, environ={})
    for sink in sinks:
        getattr(sink, "close", lambda: None)()


def test_bad_dispatcher_arguments() -> None:
    with pytest.raises(ConfigError):
        Dispatcher([], capacity=0)
    with pytest.raises(ConfigError):
        Dispatcher([], max_attempts=0)


def test_webhook_sends_strict_json_for_a_nan_value() -> None:
    with Receiver() as rx:
        sink = WebhookSink(rx.url)
        sink.send([note(value=float("nan"))])
        sink.close()
        assert rx.requests[0]["json"]["alerts"][0]["value"] is None
