"""Building the monitoring pieces from ``assay.yaml`` (at the edge, once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.monitors.config import MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.store.base import Store


def build_scheduler(
    store: Store, config: MonitoringConfig, state_dir: str | Path, *, telemetry: Any = None
) -> tuple[MonitorScheduler, Any]:
    """A scheduler delivering through a background dispatcher; returns both."""
    from assay.integrations.delivery import Dispatcher, sinks_from_config

    dispatcher = Dispatcher(sinks_from_config(config.sinks))
    record = getattr(telemetry, "record_evaluation", None)
    scheduler = MonitorScheduler(store, config, state_dir, deliver=dispatcher.submit,
                                 on_evaluation=record)  # fmt: skip
    return scheduler, dispatcher
