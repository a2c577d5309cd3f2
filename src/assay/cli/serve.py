"""``assay serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from assay.errors import ConfigError

DEFAULT_DATA_DIR = "assay-data"


def load_server_config(path: Path | None) -> dict[str, Any]:
    """The ``server:`` section of an ``assay.yaml`` (empty without a file)."""
    if path is None:
        return {}
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {str(path)!r}: {err}", field="config") from err
    section = document.get("server", {}) if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise ConfigError("the config's 'server' key must be a mapping", field="server")
    unknown = sorted(set(section) - set(SERVER_SETTINGS))
    if unknown:
        raise ConfigError(
            f"unknown server setting {unknown[0]!r}",
            field=f"server.{unknown[0]}",
            hint="the server: section takes " + ", ".join(SERVER_SETTINGS),
        )
    return section


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (``host``, ``port``) for the server, or a ConfigError naming
    the port when it cannot be (in use, or a host that is not this machine's).

    >>> with socket.socket() as busy:
    ...     busy.bind(("127.0.0.1", 0)); busy.listen()
    ...     try:
    ...         bind_listener("127.0.0.1", busy.getsockname()[1])
    ...     except ConfigError as err:
    ...         print(err.field, "in use" in str(err))
    port True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as err:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            field="port",
            hint="another process may listen there: choose another --port, or stop it",
        ) from err
    return listener


SERVER_SETTINGS = (
    "data_dir", "store", "log_level", "metrics_public", "max_body_bytes", "max_events",
    "max_string_length", "max_future_seconds", "queue_capacity", "idempotency_hours",
    "idempotency_prune_seconds",
)  # fmt: skip


def serve(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env ASSAY_DATA_DIR).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    config: Annotated[Path | None, typer.Option(help="assay.yaml with a server: section.")] = None,
    store: Annotated[
        str | None, typer.Option(help="postgresql://... URL (env ASSAY_STORE); default DuckDB.")
    ] = None,
    metrics_public: Annotated[
        bool, typer.Option(help="Serve /metrics (all tenants) without a key.")
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    from assay.cli.main import user_errors

    with user_errors():
        listener = bind_listener(host, port)  # before anything opens: a busy port fails here
        monitoring = rollups = None
        if config is not None:
            from assay.monitors.config import load_config
            from assay.monitors.wiring import rollup_executor

            monitoring = load_config(config)
            rollups = rollup_executor(monitoring.engine)  # engine: ray without Ray fails here
        settings = load_server_config(config)
        directory = Path(
            data_dir or os.environ.get("ASSAY_DATA_DIR") or settings.get("data_dir")
            or DEFAULT_DATA_DIR
        )  # fmt: skip
        url = store or os.environ.get("ASSAY_STORE") or settings.get("store")
        app = build_app(directory, url, settings, metrics_public)
        app.state.rollups = rollups  # GET /evaluations rebuilds with the same engine
        scheduler = dispatcher = None
        if monitoring is not None and monitoring.models:
            from assay.monitors.wiring import build_scheduler

            scheduler, dispatcher = build_scheduler(
                app.state.store, monitoring, directory, telemetry=app.state.telemetry,
                rollups=rollups,
            )  # fmt: skip
            app.state.scheduler = scheduler
    import uvicorn

    typer.echo(f"assay {app.version} serving on http://{host}:{port} (data: {directory})")
    if scheduler is not None:
        scheduler.start()
        typer.echo(f"monitoring {len(monitoring.models)} model(s)")  # type: ignore[union-attr]
    try:
        level = settings.get("log_level", "warning")
        uvicorn.Server(uvicorn.Config(app, log_level=level)).run(sockets=[listener])
    finally:  # after a graceful stop: finish deliveries, checkpoint and release the stores
        if scheduler is not None:
            scheduler.close()  # also shuts down a Ray runtime it started
            dispatcher.close()  # type: ignore[union-attr]
        app.state.store.close()
        app.state.control.close()


def build_app(directory: Path, url: str | None, settings: dict[str, Any],
              metrics_public: bool) -> Any:  # fmt: skip
    """Open the stores and build the FastAPI app."""
    from assay.control import open_control_store
    from assay.server.app import ServerOptions, create_app
    from assay.service.ingest import IngestLimits
    from assay.store import open_store

    known = ("max_body_bytes", "max_events", "max_string_length")
    limits = IngestLimits(**{k: _whole(settings, k) for k in known if k in settings})
    if "max_future_seconds" in settings:
        limits = replace(
            limits, max_future=timedelta(seconds=_setting(settings, "max_future_seconds", 0))
        )
    options = ServerOptions(
        limits=limits,
        queue_capacity=_whole(settings, "queue_capacity", 64),
        metrics_public=metrics_public or bool(settings.get("metrics_public", False)),
        idempotency_ttl=timedelta(hours=_setting(settings, "idempotency_hours", 24)),
        prune_every_seconds=_setting(settings, "idempotency_prune_seconds", 600),
    )
    data_store = open_store(directory, url)
    control = open_control_store(url if url else directory)
    return create_app(data_store, control, options)


def _setting(settings: dict[str, Any], key: str, default: float) -> float:
    """A positive number of the ``server:`` section, or a ConfigError naming it."""
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"server.{key} must be a positive number, got {value!r}", field=f"server.{key}"
        )
    return float(value)


def _whole(settings: dict[str, Any], key: str, default: int = 1) -> int:
    """A positive whole number of the ``server:`` section, or a ConfigError naming it."""
    value = _setting(settings, key, default)
    if not value.is_integer():
        raise ConfigError(f"server.{key} must be a whole number, got {settings[key]!r}",
                          field=f"server.{key}")  # fmt: skip
    return int(value)


def run_monitors(
    config: Annotated[Path, typer.Option(help="assay.yaml with models, monitors and sinks.")],
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env ASSAY_DATA_DIR).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="postgresql://... URL (env ASSAY_STORE); default DuckDB.")
    ] = None,
) -> None:
    """Evaluate every monitor's windows and send the alerts (for cron, Airflow, Prefect).

    On the embedded DuckDB store run it while no `assay serve` holds the data directory
    (the server runs the same schedule itself when started with --config).
    """
    from assay.cli.main import user_errors
    from assay.monitors.config import load_config
    from assay.monitors.wiring import build_scheduler, rollup_executor
    from assay.store import open_store

    with user_errors():
        cfg = load_config(config)
        rollups = rollup_executor(cfg.engine)  # engine: ray without Ray fails here
        directory = Path(
            data_dir or os.environ.get("ASSAY_DATA_DIR") or cfg.server.get("data_dir")
            or DEFAULT_DATA_DIR
        )  # fmt: skip
        url = store or os.environ.get("ASSAY_STORE") or cfg.server.get("store")
        data_store = open_store(directory, url)
        scheduler, dispatcher = build_scheduler(data_store, cfg, directory, rollups=rollups)
        try:
            if once:
                notes = scheduler.run_once()
                typer.echo(f"{len(notes)} notification(s); "
                           f"{len(scheduler.active())} alert(s) pending or firing")  # fmt: skip
                for model, error in scheduler.last_errors.items():
                    typer.echo(f"warning: {model}: {error}", err=True)
            else:
                scheduler.start()
                typer.echo("running monitors; Ctrl-C to stop")
                try:
                    scheduler.wait()
                except KeyboardInterrupt:
                    scheduler.stop()
        finally:
            scheduler.close()  # also shuts down a Ray runtime it started
            dispatcher.close()
            data_store.close()
