"""``assay prometheus-rules`` and ``assay grafana-dashboard``: monitoring integrations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[Path, typer.Option("--config", help="assay.yaml with the monitors.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write to this file (default: stdout).")
]


def _emit(text: str, out: Path | None) -> None:
    from assay.errors import ConfigError

    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as err:
        raise ConfigError(f"cannot write {str(out)!r}: {err}", field="out") from err


def prometheus_rules_command(config: ConfigOption, out: OutOption = None) -> None:
    """Write Prometheus recording and alerting rules equivalent to the monitors."""
    from assay.cli.main import err_console, user_errors
    from assay.integrations.prometheus_rules import rules_yaml, unsupported_monitors
    from assay.monitors.config import load_config

    with user_errors():
        settings = load_config(config)
        _emit(rules_yaml(settings), out)
    skipped = unsupported_monitors(settings)
    if skipped:
        err_console.print(f"note: no Prometheus rule for {', '.join(skipped)} "
                          "(Assay alerts on these itself)", highlight=False)  # fmt: skip


def grafana_dashboard_command(config: ConfigOption, out: OutOption = None) -> None:
    """Write a Grafana dashboard JSON for the models of the config."""
    from assay.cli.main import user_errors
    from assay.integrations.grafana import dashboard_json
    from assay.monitors.config import load_config

    with user_errors():
        _emit(dashboard_json(load_config(config)), out)


def monitoring_commands(app: typer.Typer) -> None:
    """Register the commands on the ``assay`` app."""
    app.command("prometheus-rules")(prometheus_rules_command)
    app.command("grafana-dashboard")(grafana_dashboard_command)
