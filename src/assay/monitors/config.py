"""``assay.yaml``: models, windows and monitors, validated at start.

An error names the key path and the fix, for example
``models[0].monitors[2].condition.op: must be one of <, <=, >, >=``.

>>> cfg = MonitoringConfig.model_validate({"models": [{"name": "fraud", "tenant": "acme",
...     "monitors": [{"name": "auc", "kind": "metric", "metric": "roc_auc",
...                   "condition": {"op": "<", "value": 0.8}}]}]})
>>> cfg.models[0].monitors[0].severity, cfg.models[0].windows[0].size
('warning', '1d')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from assay import configfile
from assay.errors import ConfigError

Op = Literal["<", "<=", ">", ">="]
DRIFT_METRICS = ("psi", "jensen_shannon", "wasserstein_normed", "drifted")
QUALITY_METRICS = ("null_rate", "unseen_share", "volume", "out_of_range")
DURATION_PATTERN = r"^\d+(s|m|h|d|w)$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """When a monitor's value is bad.

    ``absolute``: ``value op threshold``. ``relative``: a drop (or rise) of more than
    ``change_pct`` percent against ``compare_to`` (the reference window or the previous
    window). ``statistical``: the whole 95% interval is on the bad side of the threshold
    (for ``<``: the interval's upper bound is below it), so noise alone does not page.
    """

    type: Literal["absolute", "relative", "statistical"] = "absolute"
    op: Op = "<"
    value: float | None = None
    compare_to: Literal["reference", "previous"] | None = None
    change_pct: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Condition:
        if self.type == "relative" and (self.compare_to is None or self.change_pct is None):
            raise ValueError(
                "a relative condition needs compare_to (reference or previous) and change_pct"
            )
        return self


class Window(_Strict):
    """An evaluation window: tumbling (aligned to UTC) or sliding (ending now).

    A tumbling window is judged once it has closed; a sliding one, the ``size`` of hourly
    buckets up to the one holding the pass's time, is judged every pass.
    """

    size: str = Field("1d", pattern=r"^\d+[hdw]$")
    kind: Literal["tumbling", "sliding"] = "tumbling"

    @property
    def label(self) -> str:
        """The ``window`` label of its alerts and gauges: ``1d``, or ``7d sliding``.

        >>> Window(size="1d").label, Window(size="7d", kind="sliding").label
        ('1d', '7d sliding')
        """
        return self.size if self.kind == "tumbling" else f"{self.size} sliding"


class Monitor(_Strict):
    """One rule, its severity, and how its alert behaves."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    kind: Literal["metric", "drift", "data_quality", "latency", "error_rate"]
    metric: str | None = Field(None, description="metric name, drift effect or quality check")
    feature: str | None = Field(None, description="drift/data quality: one feature; '*' = all")
    bounds: tuple[float, float] | None = Field(
        None, description="out_of_range: reference quantiles bounding the expected range"
    )
    condition: Condition = Field(default_factory=Condition)
    window: str = Field("1d", pattern=r"^\d+[hdw]( (tumbling|sliding))?$")
    segment: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    for_: str = Field("0s", alias="for", pattern=DURATION_PATTERN)
    resolve_hysteresis: float = Field(0.0, ge=0.0)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> Monitor:
        kind, metric, cond = self.kind, self.metric, self.condition
        if kind == "metric" and not metric:
            raise ValueError("metric: a metric monitor names its metric, e.g. roc_auc")
        if kind == "drift" and metric is not None and metric not in DRIFT_METRICS:
            raise ValueError(
                f"metric: a drift monitor's metric is one of {', '.join(DRIFT_METRICS)}"
            )
        if kind == "latency" and metric not in (None, "p50", "p95", "p99"):
            raise ValueError("metric: a latency monitor reads p50, p95 or p99 (default p95)")
        if kind == "data_quality" and metric not in QUALITY_METRICS:
            raise ValueError(f"metric: a data_quality check is one of {', '.join(QUALITY_METRICS)}")
        if self.bounds is not None:
            low, high = self.bounds
            if metric != "out_of_range":
                raise ValueError("bounds: only an out_of_range check has bounds")
            if not 0.0 <= low < high <= 1.0:
                raise ValueError("bounds: two reference quantiles, 0 <= low < high <= 1")
        if cond.type == "statistical" and kind != "metric":
            raise ValueError("condition.type: statistical conditions need a metric's interval")
        if self.segment is not None and not (kind == "metric" or metric == "volume"):
            raise ValueError("segment: only metric and volume monitors can be segmented")
        if cond.type != "relative" and cond.value is None and metric != "drifted":
            raise ValueError("condition.value: an absolute or statistical condition needs a value")
        return self

    @property
    def range_quantiles(self) -> tuple[float, float]:
        """``out_of_range``: the reference quantiles bounding the expected range.

        >>> Monitor(name="r", kind="data_quality", metric="out_of_range", feature="x",
        ...         condition=Condition(op=">", value=0.05)).range_quantiles
        (0.0, 1.0)
        """
        return self.bounds if self.bounds is not None else (0.0, 1.0)


class ModelMonitoring(_Strict):
    """The monitoring of one registered model."""

    name: str
    tenant: str
    windows: list[Window] = Field(default_factory=lambda: [Window()])
    min_rows: int = Field(100, ge=0)
    min_label_completeness: float = Field(0.0, ge=0.0, le=1.0)
    expected_rows_per_window: int | None = Field(None, ge=0)
    late_label_horizon: str = Field(
        "7d",
        pattern=DURATION_PATTERN,
        description="how long after a window ends late labels still have it judged again",
    )
    monitors: list[Monitor] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unambiguous_windows(self) -> ModelMonitoring:
        for i, monitor in enumerate(self.monitors):
            size = monitor.window.split()[0]
            kinds = {w.kind for w in self.windows if w.size == size}
            if " " not in monitor.window and len(kinds) > 1:
                raise ValueError(
                    f"monitors[{i}].window: {size} is declared both tumbling and sliding; "
                    f"write '{size} tumbling' or '{size} sliding'"
                )
        return self

    def window_of(self, monitor: Monitor) -> Window:
        """The window ``monitor`` is judged on.

        ``window: 7d sliding`` (or ``7d tumbling``) says the kind; a bare ``7d`` takes the
        kind the model's ``windows`` declare for that size, tumbling when none does.

        >>> m = ModelMonitoring(name="m", tenant="t", windows=[{"size": "7d", "kind": "sliding"}])
        >>> mon = Monitor(name="n", kind="metric", metric="roc_auc", window="7d",
        ...               condition=Condition(value=0.8))
        >>> m.window_of(mon).label, m.window_of(mon.model_copy(update={"window": "1d"})).label
        ('7d sliding', '1d')
        """
        size, _, kind = monitor.window.partition(" ")
        if not kind:
            kind = next((w.kind for w in self.windows if w.size == size), "tumbling")
        return Window(size=size, kind=kind)  # type: ignore[arg-type]


class AlertmanagerSink(_Strict):
    """Alertmanager v2 API."""

    url: str
    resend_interval: str = Field("5m", pattern=DURATION_PATTERN)


class WebhookSink(_Strict):
    """A generic JSON webhook, optionally signed (HMAC-SHA256 of the body)."""

    url: str
    secret_env: str | None = Field(None, description="environment variable holding the secret")


class Sinks(_Strict):
    """Where notifications go."""

    alertmanager: AlertmanagerSink | None = None
    webhook: WebhookSink | None = None
    console: bool = False


class EngineSettings(_Strict):
    """Where the monitor schedule builds the states of the hourly buckets it rebuilds.

    ``local`` (the default): in the server process. ``ray``: a refresh's buckets go to Ray
    tasks once it has read ``ray_min_rows`` rows (the rows are read by the server either
    way); ``ray_address`` names a cluster, else a local runtime of ``ray_cpus`` CPUs is
    started on first use. ``engine: ray`` is short for ``engine: {name: ray}``.

    >>> EngineSettings.model_validate("ray").ray_min_rows
    1000000
    """

    name: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, min_length=1)
    ray_min_rows: int = Field(1_000_000, ge=0)
    ray_cpus: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("ray_address", "ray_min_rows", "ray_cpus")
    @classmethod
    def _ray_keys_need_ray(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("name") != "ray":  # only keys given are checked
            raise ValueError("only with the ray engine (engine: {name: ray, ...})")
        if info.field_name == "ray_cpus" and info.data.get("ray_address") is not None:
            raise ValueError("sizes a local runtime; a cluster (ray_address) has its own")
        return value


class MonitoringConfig(_Strict):
    """The whole ``assay.yaml`` (the ``server:`` section is read by ``assay serve``)."""

    server: dict[str, Any] = Field(default_factory=dict)
    models: list[ModelMonitoring] = Field(default_factory=list)
    sinks: Sinks = Field(default_factory=Sinks)
    schedule_interval: str = Field("60s", pattern=DURATION_PATTERN)
    engine: EngineSettings = Field(default_factory=EngineSettings)


def load_config(path: str | Path) -> MonitoringConfig:
    """Read and validate ``assay.yaml``; errors name the key path and the problem."""
    return configfile.load_config(MonitoringConfig, path, hint="see examples/assay.yaml")


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``5m``, ``2h``, ``1d``, ``1w``.

    >>> parse_duration("5m"), parse_duration("2h")
    (300.0, 7200.0)
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        return float(int(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError) as err:
        raise ConfigError(f"{text!r} is not a duration such as 30s, 5m or 2h",
                          field="duration") from err  # fmt: skip
