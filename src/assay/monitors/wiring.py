"""Building the monitoring pieces from ``assay.yaml`` (at the edge, once)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from assay.monitors.config import MonitoringConfig, Sinks
from assay.monitors.scheduler import MonitorScheduler
from assay.store.base import Store


def build_sinks(config: Sinks) -> list[Any]:
    """The configured sinks (console, Alertmanager, webhook)."""
    from assay.integrations.alertmanager import AlertmanagerSink
    from assay.integrations.delivery import ConsoleSink
    from assay.integrations.webhook import WebhookSink

    sinks: list[Any] = []
    if config.console:
        sinks.append(ConsoleSink(sys.stdout))
    if config.alertmanager is not None:
        sinks.append(AlertmanagerSink(config.alertmanager.url))
    if config.webhook is not None:
        secret = None
        if config.webhook.secret_env:
            secret = os.environ.get(config.webhook.secret_env)
            if not secret:
                raise ConfigError(
                    f"environment variable {config.webhook.secret_env!r} is not set",
                    field="sinks.webhook.secret_env",
                )
        sinks.append(WebhookSink(config.webhook.url, secret=secret))
    return sinks


def build_scheduler(
    store: Store, config: MonitoringConfig, state_dir: str | Path, *, telemetry: Any = None
) -> tuple[MonitorScheduler, Any]:
    """A scheduler delivering through a background dispatcher; returns both."""
    from assay.integrations.delivery import Dispatcher

    dispatcher = Dispatcher(build_sinks(config.sinks))
    record = getattr(telemetry, "record_evaluation", None)
    scheduler = MonitorScheduler(store, config, state_dir, deliver=dispatcher.submit,
                                 on_evaluation=record)  # fmt: skip
    return scheduler, dispatcher
