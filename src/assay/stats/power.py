"""How many labeled events a comparison needs to detect an effect (``assay sample-size``).

* proportions, split traffic (two-proportion z test, pooled variance under "no
  difference"; Fleiss, *Statistical Methods for Rates and Proportions*, 3rd ed., 4.2,
  without continuity correction), with ``n_candidate = ratio · n_baseline``:
  ``n_b = (z_a·sqrt(p̄q̄(1 + 1/k)) + z_b·sqrt(p_b q_b + p_c q_c / k))² / effect²``;
* means (Welch, with the normal approximation and Guenther's ``z_a²/4`` correction for
  the t distribution): ``n_b = (z_a + z_b)²·sd²·(1 + 1/k) / effect² + z_a²/4``;
* paired proportions (McNemar; Connor 1987), with ``discordance`` the share of events on
  which the two models disagree about the metric's event:
  ``n = (z_a·sqrt(d) + z_b·sqrt(d − effect²))² / effect²`` events scored by both;
* ``sequential=True`` (split traffic, two-sided): the size at which the confidence
  sequence of :func:`~assay.stats.sequential.sequential_difference` reaches ``power``
  when its mixture is tuned for that size — obtained by inverting its boundary, whose
  width at the tuned size is a fixed multiple of the standard error:
  ``n_b = (b_α + z_b)²·(p_b q_b + p_c q_c / k) / effect²`` (means: ``sd²·(1 + 1/k)``).
  The chance of stopping earlier only adds power, so this is a conservative size.

``z_a`` is the normal quantile of ``1 − α/2`` (two-sided) or ``1 − α`` (one-sided),
``z_b`` that of ``power``. For recall and fnr the events counted are positive-labeled
ones, for specificity and fpr negative-labeled ones.

>>> r = sample_size(metric="accuracy", baseline=0.80, effect=0.05)
>>> r["per_arm"], r["total"], r["method"]
(906, 1812, 'two-proportion z test (pooled), Fleiss 4.2 without continuity correction')
"""

from __future__ import annotations

import math
from typing import Any

from assay.errors import InputError
from assay.stats.compare import MEAN_LOSSES, ROW_SETS, check_alpha
from assay.stats.scipy_stats import scipy_stats
from assay.stats.sequential import boundary

PROPORTIONS = frozenset(ROW_SETS)
MEANS = MEAN_LOSSES | {"mean", "latency"}
ALTERNATIVES = ("two-sided", "one-sided", "greater", "less")


def sample_size(
    *,
    metric: str = "accuracy",
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    sd: float | None = None,
    paired: bool = False,
    discordance: float | None = None,
    alternative: str = "two-sided",
    ratio: float = 1.0,
    sequential: bool = False,
) -> dict[str, Any]:
    """Labeled events per arm (and in total) to detect ``effect`` = candidate − baseline.

    Returns ``{"per_arm", "total", "method", ...}`` with the inputs; ``per_arm`` is the
    baseline arm's size (``n_candidate`` = ``ratio`` times it, rounded up), and for
    ``paired`` the number of events both models score (``total`` is the same number).

    >>> sample_size(metric="accuracy", baseline=0.8, effect=0.05, paired=True,
    ...             discordance=0.15)["per_arm"]
    469
    >>> sample_size(metric="mae", baseline=3.0, effect=-0.2, sd=1.5)["per_arm"]
    884
    """
    alpha = check_alpha(alpha)
    power = check_alpha(power, "power")
    if metric not in PROPORTIONS | MEANS:
        raise InputError(
            f"no sample-size formula for metric {metric!r}",
            field="metric",
            hint="supported: " + ", ".join(sorted(PROPORTIONS | MEANS)),
        )
    effect, baseline = _number(effect, "effect"), _number(baseline, "baseline")
    if effect == 0:
        raise InputError(
            "effect must not be 0: no sample size detects no difference",
            field="effect",
            hint="the smallest difference worth detecting",
        )
    ratio = _number(ratio, "ratio")
    if ratio <= 0:
        raise InputError(
            f"ratio must be positive, got {ratio}",
            field="ratio",
            hint="candidate events per baseline event, e.g. 0.25",
        )
    if alternative not in ALTERNATIVES:
        raise InputError(
            f"unknown alternative {alternative!r}",
            field="alternative",
            hint="one of " + ", ".join(ALTERNATIVES),
        )
    if (alternative == "greater" and effect < 0) or (alternative == "less" and effect > 0):
        raise InputError(
            f"alternative {alternative!r} contradicts the sign of effect {effect}",
            field="alternative",
            hint="use 'one-sided' or flip the sign",
        )
    two_sided = alternative == "two-sided"
    if sequential and (paired or not two_sided):
        raise InputError(
            "the sequential size is for split traffic and a two-sided test",
            field="sequential",
            hint="drop --paired / use --alternative two-sided",
        )
    norm = scipy_stats().norm

    z_a = float(norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha))
    z_b = float(norm.ppf(power))
    inputs = {
        "metric": metric,
        "baseline": baseline,
        "effect": effect,
        "alpha": alpha,
        "power": power,
        "alternative": alternative,
        "paired": paired,
        "sequential": sequential,
    }
    if metric in PROPORTIONS:
        p_b, p_c = baseline, baseline + effect
        for name, p in (("baseline", p_b), ("baseline + effect", p_c)):
            if not 0.0 < p < 1.0:
                raise InputError(
                    f"{name} = {p:g} is not a proportion strictly between 0 and 1",
                    field="baseline" if name == "baseline" else "effect",
                )
        if paired:
            return _paired(inputs, effect, discordance, z_a, z_b)
        var_b, var_c = p_b * (1 - p_b), p_c * (1 - p_c)
        if sequential:
            n, method = _sequential(var_b + var_c / ratio, effect, alpha, z_b)
        else:
            pooled = (p_b + ratio * p_c) / (1 + ratio)
            null_sd = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
            n = ((z_a * null_sd + z_b * math.sqrt(var_b + var_c / ratio)) / effect) ** 2
            method = "two-proportion z test (pooled), Fleiss 4.2 without continuity correction"
    else:
        if sd is None or not _number(sd, "sd") > 0:
            raise InputError(
                f"metric {metric!r} is a mean: the sample size needs its sd",
                field="sd",
                hint="the per-event standard deviation, e.g. --sd 1.5",
            )
        if paired:
            raise InputError(
                "paired sizes are for proportions (McNemar)",
                field="paired",
                hint="for a paired mean give the sd of the per-event differences "
                "and drop --paired; the size is then for one sample",
            )
        inputs["sd"] = float(sd)
        if sequential:
            n, method = _sequential(sd * sd * (1 + 1 / ratio), effect, alpha, z_b)
        else:
            n = ((z_a + z_b) * sd / effect) ** 2 * (1 + 1 / ratio) + z_a * z_a / 4
            method = "Welch t test (normal approximation with Guenther's correction)"
    per_arm = math.ceil(n - 1e-9)
    n_candidate = math.ceil(per_arm * ratio - 1e-9)
    out = {
        "per_arm": per_arm,
        "total": per_arm + n_candidate,
        "n_baseline": per_arm,
        "n_candidate": n_candidate,
        "method": method,
        "ratio": ratio,
        **inputs,
    }
    if sequential:
        out["tuning_rows"] = per_arm
    return out


def _number(value: Any, field: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if not math.isfinite(out):
        raise InputError(f"{field} must be a finite number, got {value!r}", field=field)
    return out


def _sequential(unit_var: float, effect: float, alpha: float, z_b: float) -> tuple[float, str]:
    """Rows per arm for the confidence sequence tuned at that size (the width, in standard
    errors, is then the same at every size: ``boundary(1, 1, alpha)``)."""
    width = boundary(1.0, 1.0, alpha)
    n = (width + z_b) ** 2 * unit_var / effect**2
    return n, (
        f"confidence sequence (normal mixture tuned at the answer; boundary "
        f"{width:.3f} standard errors), inverted"
    )


def _paired(
    inputs: dict[str, Any], effect: float, discordance: float | None, z_a: float, z_b: float
) -> dict[str, Any]:
    if discordance is None:
        raise InputError(
            "a paired size needs the share of discordant events",
            field="discordance",
            hint="e.g. --discordance 0.1 when the models disagree on 10% of events",
        )
    d = _number(discordance, "discordance")
    if not abs(effect) < d <= 1.0:
        raise InputError(
            f"discordance must be in (|effect|, 1], got {d:g}",
            field="discordance",
            hint="the share of events where exactly one model is right; it must exceed the effect",
        )
    n = ((z_a * math.sqrt(d) + z_b * math.sqrt(d - effect * effect)) / effect) ** 2
    per_arm = math.ceil(n - 1e-9)
    return {
        "per_arm": per_arm,
        "total": per_arm,
        "n_baseline": per_arm,
        "n_candidate": per_arm,
        "method": "McNemar (Connor 1987), events scored by both models",
        "discordance": d,
        "ratio": 1.0,
        **inputs,
    }
