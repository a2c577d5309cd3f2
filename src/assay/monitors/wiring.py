"""Building the monitoring pieces from ``assay.yaml`` (at the edge, once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.store.base import Store

GAUGES_FILE = "metric-gauges.json"


def build_scheduler(
    store: Store, config: MonitoringConfig, state_dir: str | Path, *, telemetry: Any = None
) -> tuple[MonitorScheduler, Any]:
    """A scheduler delivering through a background dispatcher; returns both.

    With ``telemetry`` (the server's), each pass's evaluations become the gauges of
    ``/metrics``, which are saved in ``state_dir`` after every pass and loaded here, so
    they survive a restart.
    """
    from assay.integrations.delivery import Dispatcher, sinks_from_config

    dispatcher = Dispatcher(sinks_from_config(config.sinks))
    record = getattr(telemetry, "record_evaluation", None)
    after_pass = None
    if telemetry is not None:
        gauges = Path(state_dir) / GAUGES_FILE
        telemetry.load_gauges(gauges)

        def after_pass() -> None:
            telemetry.save_gauges(gauges)

    scheduler = MonitorScheduler(store, config, state_dir, deliver=dispatcher.submit,
                                 on_evaluation=record, after_pass=after_pass)  # fmt: skip
    return scheduler, dispatcher
