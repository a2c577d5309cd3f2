"""The drift section of the report: decision table and reference-vs-current distributions.

Features are listed drifted first (largest effect first), then stable, then undecided;
each drifted feature and the model output get a bar chart of their bins.

>>> page = drift_section({"drift": {"a": {"type": "numeric", "psi": 0.01, "drifted": False}}})
>>> "stable" in page
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from assay.report import svg
from assay.report.markup import figure, fmt_number, fmt_share, fmt_sig, plots, table
from assay.report.svg import CURRENT, REFERENCE, Bars, finite

MAX_CATEGORIES = 20  # categorical plots show the categories with the largest shares


def drift_order(drift: Mapping[str, Mapping[str, Any]], effect: str = "psi") -> list[str]:
    """Feature names: drifted first, then stable, then undecided; larger effect first.

    >>> drift_order({"a": {"drifted": False, "psi": 0.3}, "b": {"drifted": True, "psi": 0.2},
    ...              "c": {"drifted": None}})
    ['b', 'a', 'c']
    """
    rank = {True: 0, False: 1}

    def key(name: str) -> tuple[int, float]:
        size = drift[name].get(effect)
        return rank.get(drift[name].get("drifted"), 2), -(size if finite(size) else 0.0)

    return sorted(drift, key=key)


_BADGES = {True: ("yes", "drifted"), False: ("no", "stable")}
_DRIFT_HEAD = ("type", "drifted", "statistic", "p (adjusted)", "psi", "jensen-shannon")
_DRIFT_HEAD += ("wasserstein (normed)", "nulls ref → cur", "reason")


def _drift_row(name: str, r: Mapping[str, Any]) -> str:
    numeric = r.get("type") == "numeric"
    css, flag = _BADGES.get(r.get("drifted"), ("unknown", "n/a"))
    test = (r.get("ks") if numeric else r.get("chi2")) or {}
    nulls = r.get("null_share") or {}
    undefined = "; ".join(f"{k}: {v}" for k, v in (r.get("undefined") or {}).items())
    cells = [
        f"{'KS' if numeric else 'χ²'} {fmt_sig(test.get('statistic'))}",
        fmt_sig(r.get("p_value_adjusted")),
        fmt_number(r.get("psi")),
        fmt_number(r.get("jensen_shannon")),
        fmt_number(r.get("wasserstein_normed")) if numeric else "",
        f"{fmt_share(nulls.get('reference'))} → {fmt_share(nulls.get('current'))}",
    ]
    return (
        f"<tr><td>{escape(name)}</td><td>{escape(str(r.get('type', '')))}</td>"
        f'<td><span class="badge {css}">{flag}</span></td>'
        + "".join(f'<td class="num">{c}</td>' for c in cells)
        + f'<td class="note">{escape(str(r.get("reason") or undefined))}</td></tr>'
    )


def _drift_table(drift: Mapping[str, Mapping[str, Any]], effect: str, label: str) -> str:
    rows = [_drift_row(str(name), drift[name]) for name in drift_order(drift, effect)]
    return table([label, *_DRIFT_HEAD], rows, [False] * 3 + [True] * 6)


def edge_labels(edges: Sequence[float]) -> list[str]:
    """Bin edges with just enough decimals to tell neighbours apart.

    >>> edge_labels([-1.3059, -0.8667, 0.0004, 1.2781])
    ['-1.31', '-0.87', '0.00', '1.28']
    """
    gaps = [b - a for a, b in itertools.pairwise(edges) if b > a]
    gap = min(gaps, default=abs(edges[0]) if edges else 1.0) or 1.0
    decimals = max(0, 1 - math.floor(math.log10(gap)))
    return [f"{round(e, decimals) + 0.0:,.{decimals}f}" for e in edges]


def _distribution(name: str, r: Mapping[str, Any], what: str) -> str:
    """Reference-vs-current bar chart of one feature's bins, in a captioned figure."""
    bins = r.get("bins") or {}
    ref, cur = list(bins.get("reference") or []), list(bins.get("current") or [])
    if not ref:
        return ""
    boundaries = None
    if "edges" in bins:
        labels = [f"bin {i + 1}" for i in range(len(ref))]
        boundaries = edge_labels(bins["edges"])
        x_label = f"{name} (bins between reference deciles; outer bins open)"
    else:
        labels = ["(null)" if c is None else str(c) for c in bins.get("categories", [])]
        keep = sorted(range(len(labels)), key=lambda i: -max(ref[i], cur[i]))[:MAX_CATEGORIES]
        keep.sort()
        hidden = len(labels) - len(keep)
        labels = [labels[i] for i in keep]
        ref, cur = [ref[i] for i in keep], [cur[i] for i in keep]
        x_label = f"{name} (category)"
        if hidden:
            x_label += f"; {hidden} smaller categories not shown"
    chart = svg.bar_plot(
        labels,
        [Bars("reference", ref, REFERENCE), Bars("current", cur, CURRENT)],
        title=f"{what}: {name}",
        x_label=x_label,
        boundaries=boundaries,
    )
    return figure(chart, escape(str(r.get("reason") or "")))


def drift_section(result: Mapping[str, Any]) -> str:
    """The drift ``<section>`` of a result dict (tables, rule and distribution plots)."""
    drift = result.get("drift") or {}
    prediction = result.get("prediction_drift") or {}
    rule = result.get("drift_rule") or {}
    parts = ['<section id="drift"><h2>Drift</h2>']
    if not drift and not prediction:
        parts.append("<p>Not measured: no reference window was given.</p>")
        return "".join(parts) + "</section>"
    effect = str(rule.get("effect", "psi"))
    if rule.get("description"):
        parts.append(f"<p>Rule: {escape(str(rule['description']))}.</p>")
    if drift:
        parts.append(f'<div id="drift-table">{_drift_table(drift, effect, "feature")}</div>')
    if prediction:
        parts.append("<h3>Prediction drift</h3>" + _drift_table(prediction, effect, "output"))
    drifted = [n for n in drift_order(drift, effect) if drift[n].get("drifted")]
    figures = [_distribution(str(n), drift[n], "drifted feature") for n in drifted]
    figures += [_distribution(str(n), r, "model output") for n, r in prediction.items()]
    if any(figures):
        parts.append(
            "<h3>Distributions, reference vs current</h3><p>Share of rows per bin for each "
            "drifted feature and for the model output.</p>" + plots(figures)
        )
    return "".join(parts) + "</section>"
