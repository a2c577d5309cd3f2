"""``gate.yaml``: what a challenger must show before it replaces the champion.

A policy names primary metrics (each a non-inferiority or superiority test with a margin),
guardrails (metrics that must not worsen beyond a stated amount, latency p95 among them),
optionally checked per value of a segment column too (Bonferroni across the values, so a
challenger that is worse in one segment is caught without many false alarms),
the confidence level, the labeled rows each arm needs before any verdict, whether the
canary is watched continuously (sequential, always-valid intervals), and an optional
sample-ratio-mismatch check of the traffic split.

>>> p = GatePolicy.model_validate({"metrics": [{"metric": "roc_auc", "margin": 0.01}],
...                                "guardrails": [{"metric": "fpr", "max_worsening": 0.02}]})
>>> p.metrics[0].kind, p.guardrails[0].max_worsening, p.alpha
('non_inferiority', 0.02, 0.05)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assay import configfile

LATENCY_GUARDRAILS = ("latency_p50", "latency_p90", "latency_p95", "latency_p99", "latency_mean")
POLICY_HINT = "see examples/gate.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricCheck(_Strict):
    """A primary metric and what the challenger must show on it.

    ``non_inferiority``: the challenger is at most ``margin`` worse (the whole interval of
    the difference lies above ``-margin``, in the metric's better direction).
    ``superiority``: the challenger is better by more than ``margin``.
    """

    metric: str
    kind: Literal["non_inferiority", "superiority"] = "non_inferiority"
    margin: float = Field(0.0, ge=0)
    segment: str | None = Field(
        None, description="Also check each value of this segment column on its own."
    )


class Guardrail(_Strict):
    """A metric that must not worsen by more than ``max_worsening`` (in its own units).

    Besides any metric name, ``latency_p50/p90/p95/p99`` and ``latency_mean`` read the
    per-event latency in ``column`` (``latency_ms`` unless given).
    """

    metric: str
    max_worsening: float = Field(0.0, ge=0)
    column: str | None = None
    segment: str | None = Field(
        None, description="Check each value of this segment column on its own."
    )

    @model_validator(mode="after")
    def _column_only_for_latency(self) -> Guardrail:
        if self.column is not None and self.metric not in LATENCY_GUARDRAILS:
            raise ValueError(f"column applies only to {', '.join(LATENCY_GUARDRAILS)}")
        if self.segment is not None and self.metric in LATENCY_GUARDRAILS:
            raise ValueError("latency guardrails are checked overall, not per segment")
        return self

    @property
    def latency_column(self) -> str:
        """The column a latency guardrail reads."""
        return self.column or "latency_ms"


class SampleRatioCheck(_Strict):
    """The expected traffic split (baseline, candidate) and the p-value below which it fails."""

    expected_shares: tuple[float, float] = (0.5, 0.5)
    threshold: float = Field(0.001, gt=0, lt=1)

    @model_validator(mode="after")
    def _shares(self) -> SampleRatioCheck:
        if min(self.expected_shares) <= 0:
            raise ValueError("expected_shares must both be positive, e.g. [0.9, 0.1]")
        return self


class GatePolicy(_Strict):
    """Everything a gate decision depends on, besides the data."""

    metrics: list[MetricCheck] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)
    alpha: float = Field(0.05, gt=0, lt=1)
    min_rows: int = Field(100, ge=1)
    segment_min_rows: int | None = Field(
        None, ge=1, description="Labeled rows per arm a segment value needs (default min_rows)."
    )
    sequential: bool = False
    srm: SampleRatioCheck | None = None
    n_boot: int = Field(2000, ge=100)
    seed: int = 0

    def with_metrics(self, metrics: list[str], margin: float) -> GatePolicy:
        """This policy with its primary metrics replaced by ``metrics`` at ``margin``."""
        checks = [MetricCheck(metric=m, margin=margin) for m in metrics]
        return self.model_copy(update={"metrics": checks})

    @property
    def segment_columns(self) -> list[str]:
        """The segment columns that per-segment checks read."""
        named = [c.segment for c in (*self.metrics, *self.guardrails) if c.segment]
        return list(dict.fromkeys(named))

    def describe(self) -> dict[str, object]:
        """The policy as JSON-able data (what the decision records)."""
        return self.model_dump(mode="json")


def default_metric(task: str, *, sequential: bool = False) -> str:
    """The primary metric when none is named: ROC AUC (accuracy for a sequential canary,
    whose test covers per-row means), accuracy for multiclass, or MAE for regression.

    >>> default_metric("binary"), default_metric("binary", sequential=True)
    ('roc_auc', 'accuracy')
    """
    if task == "regression":
        return "mae"
    if task == "multiclass":
        return "accuracy"
    return "accuracy" if sequential else "roc_auc"


def load_policy(path: str | Path) -> GatePolicy:
    """Read and validate a ``gate.yaml`` policy file."""
    return configfile.load_config(GatePolicy, path, hint=POLICY_HINT)
