"""The drift decision: significance after false-discovery control AND a minimum effect.

A large sample makes every p-value tiny, so significance alone would flag every feature
of two million-row windows of the same distribution. A feature is flagged only when its
Benjamini–Hochberg adjusted p-value is below ``alpha`` and its effect size (PSI by
default) reaches ``min_effect``.

>>> rule = DriftRule()
>>> results = {"a": {"type": "numeric", "ks": {"p_value": 1e-9}, "psi": 0.4},
...            "b": {"type": "numeric", "ks": {"p_value": 1e-9}, "psi": 0.001}}
>>> _ = rule.apply(results)
>>> results["a"]["drifted"], results["b"]["drifted"]
(True, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from assay.errors import ConfigError

EffectName = Literal["psi", "jensen_shannon", "wasserstein_normed"]


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True)
class DriftRule:
    """Flag a feature when ``p_adjusted < alpha`` and ``effect >= min_effect``."""

    alpha: float = 0.05
    correction: Literal["bh", "none"] = "bh"
    effect: EffectName = "psi"
    min_effect: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}", field="alpha")
        if self.correction not in ("bh", "none"):
            raise ConfigError(
                f"unknown correction {self.correction!r}", field="correction", hint="use bh or none"
            )
        if self.effect not in ("psi", "jensen_shannon", "wasserstein_normed"):
            raise ConfigError(
                f"unknown effect {self.effect!r}",
                field="effect",
                hint="use psi, jensen_shannon or wasserstein_normed",
            )
        if self.min_effect < 0:
            raise ConfigError("min_effect must be >= 0", field="min_effect")

    def describe(self) -> dict[str, Any]:
        """The rule and its parameters, as reported in the output."""
        text = (
            f"drifted when the {'Benjamini-Hochberg adjusted ' if self.correction == 'bh' else ''}"
            f"p-value (ks for numeric, chi2 for categorical) < {self.alpha} "
            f"and {self.effect} >= {self.min_effect}"
        )
        return {**asdict(self), "description": text}

    def apply(self, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Add ``p_value_adjusted``, ``effect`` and ``drifted`` to each feature's result."""
        names = [n for n, r in results.items() if _p_value(r) is not None]
        raw = np.array([_p_value(results[n]) for n in names], dtype=np.float64)
        adjusted = benjamini_hochberg(raw) if self.correction == "bh" else raw
        adjusted_by_name = dict(zip(names, adjusted.tolist(), strict=True))
        for name, result in results.items():
            p_adj = adjusted_by_name.get(name)
            effect = result.get(self.effect)
            if self.effect == "wasserstein_normed" and result.get("type") == "categorical":
                effect = result.get("psi")
            result["p_value_adjusted"] = p_adj
            if p_adj is None or effect is None:
                result["drifted"] = None
                continue
            significant = p_adj < self.alpha
            large = effect >= self.min_effect
            result["drifted"] = bool(significant and large)
            result["reason"] = (
                f"p_adjusted={p_adj:.3g} {'<' if significant else '>='} {self.alpha}; "
                f"{self.effect}={effect:.3g} {'>=' if large else '<'} {self.min_effect}"
            )
        return results


def _p_value(result: dict[str, Any]) -> float | None:
    test = result.get("ks") if result.get("type") == "numeric" else result.get("chi2")
    p = None if not test else test.get("p_value")
    return None if p is None or not np.isfinite(p) else float(p)
