"""Building the monitoring pieces from ``assay.yaml`` (at the edge, once)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assay.monitors.config import EngineSettings, MonitoringConfig
from assay.monitors.scheduler import MonitorScheduler
from assay.service.rollups import InProcess, RollupExecutor
from assay.store.base import Store

GAUGES_FILE = "metric-gauges.json"


def rollup_executor(engine: EngineSettings) -> RollupExecutor:
    """Where a pass builds the buckets it rebuilds, as ``engine:`` in ``assay.yaml`` says.

    ``ray`` needs Ray installed (:class:`~assay.errors.MissingDependencyError` with the
    install hint otherwise); its runtime is started on first use, not here.

    >>> type(rollup_executor(EngineSettings())).__name__
    'InProcess'
    """
    if engine.name == "local":
        return InProcess()
    from assay.service.ray_rollups import RayRollupExecutor

    address = engine.ray_address or os.environ.get("RAY_ADDRESS") or None  # as ray.init reads it
    return RayRollupExecutor(address=address, min_rows=engine.ray_min_rows,
                             cpus=engine.ray_cpus)  # fmt: skip


def build_scheduler(
    store: Store,
    config: MonitoringConfig,
    state_dir: str | Path,
    *,
    telemetry: Any = None,
    rollups: RollupExecutor | None = None,
) -> tuple[MonitorScheduler, Any]:
    """A scheduler delivering through a background dispatcher; returns both.

    With ``telemetry`` (the server's), each pass's evaluations become the gauges of
    ``/metrics``, which are saved in ``state_dir`` after every pass and loaded here, so
    they survive a restart. ``rollups``: where passes build rebuilt buckets (default:
    built from ``config.engine``); :meth:`MonitorScheduler.close` releases it.
    """
    from assay.integrations.delivery import Dispatcher, sinks_from_config

    rollups = rollup_executor(config.engine) if rollups is None else rollups

    dispatcher = Dispatcher(sinks_from_config(config.sinks))
    record = getattr(telemetry, "record_evaluation", None)
    after_pass = None
    if telemetry is not None:
        gauges = Path(state_dir) / GAUGES_FILE
        telemetry.load_gauges(gauges)

        def after_pass() -> None:
            telemetry.save_gauges(gauges)

    scheduler = MonitorScheduler(store, config, state_dir, deliver=dispatcher.submit,
                                 on_evaluation=record, after_pass=after_pass,
                                 rollups=rollups)  # fmt: skip
    return scheduler, dispatcher
