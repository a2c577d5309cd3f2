"""The monitor schedule: evaluate every model's windows, judge its monitors, notify.

One pass (:meth:`MonitorScheduler.run_once`) refreshes the dirty rollups — so windows whose
labels arrived late are judged again —, evaluates the windows each model's monitors judge
(see :mod:`assay.monitors.passes`), judges the model's registered rollouts (a rollback
decision raises a critical alert), turns the signals into alert transitions and hands the
notifications to the sinks. The alert book is saved after every pass, and the restated
hours a pass takes are saved before it rebuilds them, so a restart neither re-fires nor
forgets an incident. With ``engine: ray`` in ``assay.yaml`` a pass hands the buckets of a
large refresh to Ray (see :mod:`assay.service.ray_rollups`). ``assay serve --config`` runs
passes on a background thread; ``assay run-monitors --once`` runs one pass for cron,
Airflow or Prefect.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.errors import AssayError
from assay.monitors.config import MonitoringConfig, parse_duration
from assay.monitors.signals import Notification, Signal
from assay.store.base import Store

if TYPE_CHECKING:
    from assay.service.rollups import RollupExecutor

STATE_FILE = "monitor-state.json"
log = logging.getLogger("assay.monitors")


class MonitorScheduler:
    """Runs monitor passes over a store and keeps the alert book on disk."""

    def __init__(
        self,
        store: Store,
        config: MonitoringConfig,
        state_dir: str | Path,
        *,
        deliver: Callable[[list[Notification]], None] | None = None,
        on_evaluation: Callable[[str, str, dict[str, Any]], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_pass: Callable[[], None] | None = None,
        rollups: RollupExecutor | None = None,
    ):
        from assay.monitors.lifecycle import AlertBook

        self.store = store
        self.config = config
        self.state_path = Path(state_dir) / STATE_FILE
        self.deliver = deliver or (lambda notes: None)
        self.on_evaluation = on_evaluation or (lambda tenant, model, result: None)
        self.clock = clock
        self.after_pass = after_pass or (lambda: None)  # e.g. save the gauges of /metrics
        self.rollups = rollups  # builds rebuilt buckets' states (default: in process)
        resend = parse_duration(config.sinks.alertmanager.resend_interval) if (
            config.sinks.alertmanager) else 300.0  # fmt: skip
        saved = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.book = (
            AlertBook.from_dict(saved, resend_interval=resend)
            if saved
            else AlertBook(resend_interval=resend)
        )
        # hours late labels restated, taken by a pass that has not finished (per model)
        self.pending: dict[str, set[datetime]] = {
            key: {datetime.fromisoformat(h) for h in hours}
            for key, hours in saved.get("restated", {}).items()
        }
        self.last_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Notification]:
        """One pass over every configured model; returns the notifications sent."""
        from assay.monitors.passes import model_signals, restated_hours

        with self._lock:
            now = self.clock()
            signals = []
            for model in self.config.models:
                key = f"{model.tenant}/{model.name}"
                try:
                    hours = restated_hours(self.store, model, now, self.pending.get(key, set()),
                                           lambda h, key=key: self._remember(key, h),
                                           executor=self.rollups)  # fmt: skip
                    active = self.book.active()
                    signals.extend(model_signals(self.store, model, now, self.on_evaluation,
                                                 restated=hours, active=active))  # fmt: skip
                    self.pending.pop(key, None)  # saved with the alert book below
                    signals.extend(self._rollout_signals(model.tenant, model.name, now))
                    self.last_errors.pop(model.name, None)
                except AssayError as err:  # a missing model must not stop the others
                    self.last_errors[model.name] = str(err)
                    log.warning("monitoring %s/%s: %s", model.tenant, model.name, err)
            notifications = self.book.observe(signals, now)
            self._save()
            self.after_pass()
        if notifications:
            self.deliver(notifications)
        return notifications

    def _rollout_signals(self, tenant: str, model: str, now: datetime) -> list[Signal]:
        """A critical alert for each of the model's rollouts whose decision is to roll back."""
        from assay.service.rollouts import rollout_status

        signals = []
        for name in self.store.get_rollouts(tenant, model):
            status = rollout_status(self.store, tenant, model, name, now=now)
            spec = status["rollout"]
            failed = [_check_label(c) for c in status["checks"] if c["outcome"] == "fail"]
            why = ("failed: " + ", ".join(failed)) if failed else status["reasons"][0]
            signals.append(
                Signal(
                    labels={"tenant": tenant, "model": model, "monitor": "rollout-rollback",
                            "rollout": name, "champion": spec["champion"],
                            "challenger": spec["challenger"], "severity": "critical"},
                    value=None,
                    threshold=None,
                    breached=status["decision"] == "reject",
                    recovered=status["decision"] != "reject",
                    window_start=_moment(spec.get("start")) or now,
                    window_end=now,
                    summary=f"roll back {model} {spec['challenger']} to {spec['champion']} "
                    f"(rollout {name}): {why}"[:500],
                    annotations={"description": "; ".join(status["reasons"])[:4000]},
                    severity="critical",
                )
            )  # fmt: skip
        return signals

    def active(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Current alerts (pending and firing), optionally of one tenant."""
        with self._lock:
            alerts = self.book.active()
        return [a for a in alerts if tenant is None or a["labels"].get("tenant") == tenant]

    def _remember(self, key: str, hours: set[datetime]) -> None:
        self.pending[key] = hours
        self._save()

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        restated = {k: sorted(h.isoformat() for h in v) for k, v in self.pending.items() if v}
        tmp.write_text(json.dumps({**self.book.to_dict(), "restated": restated}))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(self.state_path)

    def start(self) -> None:
        """Run passes every ``schedule_interval`` on a daemon thread."""
        interval = parse_duration(self.config.schedule_interval)

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # keep the schedule alive; the error is logged
                    log.exception("monitor pass failed")
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="assay-monitors", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until the schedule thread ends (after :meth:`stop`)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(1.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the schedule thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the schedule thread and release the rollup executor (a Ray runtime it
        started is shut down)."""
        self.stop(timeout)
        close = getattr(self.rollups, "close", None)
        if close is not None:
            with self._lock:  # not while a pass still uses it
                close()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _check_label(check: dict[str, Any]) -> str:
    segment = check.get("segment")
    return check["metric"] + (f"[{segment['column']}={segment['value']}]" if segment else "")
