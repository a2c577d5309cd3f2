"""EvaluationResult: what one evaluation found, as JSON, as text and as a report.

>>> r = EvaluationResult(task="binary", rows={"current": 2}, metrics={"overall": {}})
>>> r.to_dict()["task"]
'binary'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADLINE = {
    "binary": (
        "roc_auc",
        "average_precision",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "log_loss",
        "brier",
        "ece",
    ),
    "multiclass": (
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "log_loss",
        "roc_auc",
    ),
    "regression": ("mae", "rmse", "mape", "r2", "mean_error", "median_absolute_error"),
}


@dataclass
class EvaluationResult:
    """Metrics (overall, per segment, on the reference), drift per feature, run record."""

    task: str
    rows: dict[str, int]
    metrics: dict[str, Any]
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction_drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_rule: dict[str, Any] | None = None
    labeled: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON structure of ARCHITECTURE.md's public contract (plus extras)."""
        return {
            "task": self.task,
            "rows": dict(self.rows),
            "labeled": dict(self.labeled),
            "metrics": self.metrics,
            "drift": self.drift,
            "prediction_drift": self.prediction_drift,
            "drift_rule": self.drift_rule,
            "warnings": list(self.warnings),
            "run": self.run,
        }

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """Serialise to strict JSON (no NaN); also write it to ``path`` when given.

        The file is written to a temporary name and renamed, so a reader never sees a
        half-written file.
        """
        text = json.dumps(_finite(self.to_dict()), indent=indent, allow_nan=False)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    @property
    def drifted_features(self) -> list[str]:
        """Features flagged as drifted, largest effect first."""
        effect = (self.drift_rule or {}).get("effect", "psi")
        flagged = [n for n, r in self.drift.items() if r.get("drifted")]
        return sorted(flagged, key=lambda n: -(self.drift[n].get(effect) or 0.0))

    def write_report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report."""
        from assay.report.html import render_report

        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(render_report(self.to_dict()), encoding="utf-8")
        tmp.replace(target)
        return target

    def summary(self) -> str:
        """A short plain-text summary (the CLI renders a richer one)."""
        lines = [
            f"task: {self.task}   rows: " + ", ".join(f"{k}={v}" for k, v in self.rows.items())
        ]
        overall = self.metrics.get("overall", {})
        for name in HEADLINE[self.task]:
            if name in overall:
                lines.append(
                    f"  {name:<22} {format_value(overall[name], overall.get(name + '_ci'))}"
                )
        drifted = self.drifted_features
        lines.append(f"drifted features: {', '.join(drifted) if drifted else 'none'}")
        return "\n".join(lines)


def format_value(value: float | None, ci: list[float] | None = None) -> str:
    """``0.8123 [0.8011, 0.8230]`` or ``n/a``."""
    if value is None:
        return "n/a"
    text = f"{value:.4f}"
    if ci:
        text += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
    return text


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename it into place."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
