"""The self-contained HTML report of one evaluation.

:func:`render_report` turns ``EvaluationResult.to_dict()`` into a single HTML page: inline
CSS, charts as inline SVG (:mod:`assay.report.svg`), no script, no font, no image and no
link to anything outside the file, so it opens offline and can be archived as is. Every
string that comes from the data (column names, category and segment values, reasons) is
escaped.

>>> page = render_report({"task": "binary", "rows": {"current": 4},
...                       "metrics": {"overall": {"roc_auc": 0.75, "roc_auc_ci": [0.5, 1.0]}}})
>>> page.startswith("<!DOCTYPE html>"), "0.7500" in page
(True, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from assay.report import svg
from assay.report.svg import CURRENT, REFERENCE, Bars, Estimate, Line, finite
from assay.result import HEADLINE

SEGMENT_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "accuracy"),
    "multiclass": ("accuracy", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}
MAX_CATEGORIES = 30  # categorical plots show the categories with the largest shares

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
       "Liberation Sans", "DejaVu Sans", Arial, sans-serif; color: #1f2933; background: #f5f7fa;
       margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d9dee5; }
h3 { font-size: 15px; margin: 20px 0 6px; }
section > p, .note { color: #52606d; margin: 4px 0 10px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 10px 0 0; padding: 0; }
.facts div { display: flex; flex-direction: column; }
.facts dt { font-size: 12px; color: #7b8794; text-transform: uppercase; letter-spacing: .04em; }
.facts dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; background: white; margin: 6px 0 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.06); }
th, td { padding: 5px 12px; border-bottom: 1px solid #e4e7eb; text-align: left;
         vertical-align: top; }
th { background: #eef1f5; font-weight: 600; font-size: 13px; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { text-align: right; }
tr.headline td:first-child { font-weight: 600; }
tr.overall td { background: #f8fafc; font-style: italic; }
.na { color: #9aa5b1; }
.reason { display: block; font-size: 12px; color: #7b8794; white-space: normal; }
.badge { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: 12px;
         font-weight: 600; }
.badge.yes { background: #fde2e1; color: #b42318; }
.badge.no { background: #e3f4ea; color: #1e7b45; }
.badge.unknown { background: #eef1f5; color: #7b8794; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; padding: 8px; background: white; border: 1px solid #e4e7eb;
         border-radius: 6px; }
figcaption { font-size: 12px; color: #52606d; max-width: 660px; padding: 4px 4px 0; }
svg.plot { display: block; max-width: 100%; height: auto; font-family: inherit; }
.warnings { background: #fff8e6; border-left: 4px solid #e08a1e; padding: 8px 16px 8px 32px; }
pre { background: white; border: 1px solid #e4e7eb; padding: 10px; overflow-x: auto;
      font-size: 12px; }
code { font-size: 12px; }
"""


def render_report(result: Mapping[str, Any]) -> str:
    """The whole report as one HTML document (``result`` as ``EvaluationResult.to_dict()``).

    >>> page = render_report({"task": "regression", "rows": {"current": 3},
    ...                       "metrics": {"overall": {"mae": 0.25, "mae_ci": [0.1, 0.4]}}})
    >>> "0.2500" in page and "<script" not in page
    True
    """
    task = str(result.get("task", "binary"))
    metrics = result.get("metrics") or {}
    sections = [
        _header(result),
        _warnings(result.get("warnings") or []),
        _metrics_section(task, metrics),
        _segments_section(task, metrics),
        _curves_section(task, metrics),
        _drift_section(result),
        _run_section(result.get("run") or {}),
    ]
    title = f"Assay report · {task}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + "\n</main>\n</body>\n</html>\n"
    )


# -- formatting ---------------------------------------------------------------------------


def fmt_number(value: Any, digits: int = 4) -> str:
    """A metric value with ``digits`` decimals, or ``n/a``.

    >>> fmt_number(0.83571), fmt_number(None), fmt_number(12345.678, 2)
    ('0.8357', 'n/a', '12,345.68')
    """
    return f"{value:,.{digits}f}" if finite(value) else "n/a"


def _g(value: Any) -> str:
    """Three significant digits, for test statistics and p-values."""
    return f"{value:.3g}" if finite(value) else "n/a"


def _interval(ci: Any) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2 and all(finite(v) for v in ci):
        return f"[{ci[0]:.4f}, {ci[1]:.4f}]"
    return '<span class="na">—</span>'


def _value_cell(group: Mapping[str, Any] | None, name: str) -> str:
    """``<td>`` with the value, or n/a and the reason the metric is undefined."""
    if group is None or name not in group:
        return '<td class="num na">—</td>'
    value = group.get(name)
    if finite(value):
        return f'<td class="num">{fmt_number(value)}</td>'
    reason = (group.get("undefined") or {}).get(name)
    why = f'<span class="reason">{escape(str(reason))}</span>' if reason else ""
    return f'<td class="num"><span class="na">n/a</span>{why}</td>'


def _table(head: Sequence[str], rows: Sequence[str], numeric: Sequence[bool] = ()) -> str:
    """A table from header texts (escaped here) and finished ``<tr>`` rows."""
    cells = "".join(
        f'<th class="num">{escape(h)}</th>' if i < len(numeric) and numeric[i] else
        f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )  # fmt: skip
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(chart: str, caption: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{chart}{cap}</figure>"


def _metric_names(task: str, group: Mapping[str, Any]) -> list[str]:
    """Scalar metrics of a group: headline metrics first, then the others in order."""
    scalar = [k for k in group if f"{k}_ci" in group]
    headline = [k for k in HEADLINE.get(task, ()) if k in group]
    return headline + [k for k in scalar if k not in headline]


# -- sections ------------------------------------------------------------------------------


def _header(result: Mapping[str, Any]) -> str:
    run = result.get("run") or {}
    rows, labeled = result.get("rows") or {}, result.get("labeled") or {}
    facts = [("task", str(result.get("task", "")))]
    for window in ("current", "reference"):
        if window in rows:
            text = f"{rows[window]:,}"
            if window in labeled:
                text += f" ({labeled[window]:,} labeled)"
            facts.append((f"{window} rows", text))
    for key, label in (("started_at", "run at"), ("assay_version", "assay version")):
        if run.get(key):
            facts.append((label, str(run[key])))
    if run.get("config_hash"):
        facts.append(("config hash", str(run["config_hash"])))
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return f'<header><h1>Assay evaluation report</h1><dl class="facts">{items}</dl></header>'


def _warnings(messages: Sequence[str]) -> str:
    if not messages:
        return '<section id="warnings"><h2>Warnings</h2><p>No warnings.</p></section>'
    items = "".join(f"<li>{escape(str(m))}</li>" for m in messages)
    return f'<section id="warnings"><h2>Warnings</h2><ul class="warnings">{items}</ul></section>'


def _metrics_section(task: str, metrics: Mapping[str, Any]) -> str:
    overall = metrics.get("overall") or {}
    reference = metrics.get("reference")
    head = ["metric", "current", "95% interval"]
    if reference is not None:
        head += ["reference", "95% interval"]
    headline = set(HEADLINE.get(task, ()))
    rows = []
    for name in _metric_names(task, overall):
        cells = _value_cell(overall, name) + f'<td class="num">{_interval(overall.get(name + "_ci"))}</td>'  # fmt: skip
        if reference is not None:
            ci = reference.get(name + "_ci")
            cells += _value_cell(reference, name) + f'<td class="num">{_interval(ci)}</td>'
        css = ' class="headline"' if name in headline else ""
        rows.append(f"<tr{css}><td>{escape(name)}</td>{cells}</tr>")
    table = _table(head, rows, [False, True, True, True, True])
    plots = []
    for name in (n for n in HEADLINE.get(task, ()) if n in overall):
        rows_ = [Estimate("current", overall.get(name), overall.get(name + "_ci"), CURRENT)]
        if reference is not None:
            rows_.append(Estimate("reference", reference.get(name), reference.get(name + "_ci"), REFERENCE))  # fmt: skip
        if any(finite(e.value) for e in rows_):
            plots.append(_figure(svg.interval_plot(rows_, title=name, x_label="value, 95% interval")))  # fmt: skip
    notes = "".join(f'<p class="note">{escape(str(n))}</p>' for n in overall.get("notes", []))
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        "<p>Values on the current window with 95% intervals"
        + (" and on the reference window" if reference is not None else "")
        + ". Headline metrics are in bold.</p>"
        + table
        + notes
        + _confusion(task, overall)
        + f'<div class="plots">{"".join(plots)}</div></section>'
    )


def _confusion(task: str, overall: Mapping[str, Any]) -> str:
    matrix = overall.get("confusion_matrix")
    if not matrix:
        return ""
    classes = [str(c) for c in overall.get("classes", ["0 (negative)", "1 (positive)"])]
    rows = [
        f"<tr><th>{escape(c)}</th>"
        + "".join(f'<td class="num">{fmt_number(v, 0 if float(v).is_integer() else 2)}</td>' for v in row)  # fmt: skip
        + "</tr>"
        for c, row in zip(classes, matrix, strict=False)
    ]
    at = f" at threshold {overall['threshold']}" if task == "binary" and "threshold" in overall else ""  # fmt: skip
    return (
        f"<h3>Confusion matrix{escape(at)}</h3><p>Rows: true class; columns: predicted class.</p>"
        + _table(["true \\ predicted", *classes], rows, [False] + [True] * len(classes))
    )


def _segments_section(task: str, metrics: Mapping[str, Any]) -> str:
    by_segment = metrics.get("by_segment") or {}
    if not by_segment:
        return ""
    overall = metrics.get("overall") or {}
    names = [n for n in SEGMENT_METRICS.get(task, ()) if n in overall]
    parts = ['<section id="segments"><h2>Segments</h2>'
             "<p>Headline metrics per segment value, with 95% intervals; the dashed line in "
             "each plot is the overall value.</p>"]  # fmt: skip
    for column, groups in by_segment.items():
        head = [str(column), "rows"] + [h for n in names for h in (n, "95% interval")]
        numeric = [False] + [True] * (1 + 2 * len(names))

        def row(label: str, group: Mapping[str, Any], css: str = "") -> str:
            cells = "".join(
                _value_cell(group, n) + f'<td class="num">{_interval(group.get(n + "_ci"))}</td>'
                for n in names
            )
            count = fmt_number(group.get("n"), 0)
            return f"<tr{css}><td>{escape(label)}</td><td class='num'>{count}</td>{cells}</tr>"

        rows = [row("overall", overall, ' class="overall"')]
        rows += [row(str(value), group) for value, group in groups.items()]
        plots = []
        for name in names:
            est = [Estimate(str(v), g.get(name), g.get(name + "_ci")) for v, g in groups.items()]
            if any(finite(e.value) for e in est):
                chart = svg.interval_plot(est, title=name, x_label="value, 95% interval",
                                          marker=overall.get(name))  # fmt: skip
                plots.append(_figure(chart))
        parts.append(f"<h3>By {escape(str(column))}</h3>" + _table(head, rows, numeric))
        parts.append(f'<div class="plots">{"".join(plots)}</div>')
    return "".join(parts) + "</section>"


def _curves_section(task: str, metrics: Mapping[str, Any]) -> str:
    if task != "binary":
        return ""
    overall = metrics.get("overall") or {}
    reference = metrics.get("reference") or {}
    figures = []
    roc_lines = [
        Line(f"{label} (AUC {fmt_number(group.get('roc_auc'))})", curve["fpr"], curve["tpr"], color)
        for label, group, color in (("current", overall, CURRENT), ("reference", reference, REFERENCE))  # fmt: skip
        if (curve := group.get("roc_curve"))
    ]
    if roc_lines:
        chart = svg.line_plot(roc_lines, title="ROC curve", x_label="false positive rate",
                              y_label="true positive rate", diagonal="chance")  # fmt: skip
        figures.append(_figure(chart))
    else:
        reason = (overall.get("undefined") or {}).get("roc_auc", "no ROC curve in the result")
        figures.append(f'<p class="note">ROC curve not available: {escape(str(reason))}</p>')
    rel_lines = [
        Line(label, rel["mean_predicted"], rel["fraction_positive"], color, markers=True)
        for label, group, color in (("current", overall, CURRENT), ("reference", reference, REFERENCE))  # fmt: skip
        if (rel := group.get("reliability"))
    ]
    if rel_lines:
        chart = svg.line_plot(rel_lines, title="Reliability (calibration)",
                              x_label="mean predicted probability (per bin)",
                              y_label="fraction of positives", diagonal="perfect calibration")  # fmt: skip
        figures.append(_figure(chart, "Points are bins of equal width in predicted probability; empty bins are omitted."))  # fmt: skip
    return f'<section id="curves"><h2>Curves</h2><div class="plots">{"".join(figures)}</div></section>'  # fmt: skip


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


def _drift_table(drift: Mapping[str, Mapping[str, Any]], effect: str, label: str) -> str:
    rows = []
    for name in drift_order(drift, effect):
        r = drift[name]
        flag = {True: ("yes", "drifted"), False: ("no", "stable")}.get(r.get("drifted"), ("unknown", "n/a"))  # fmt: skip
        test = r.get("ks") if r.get("type") == "numeric" else r.get("chi2")
        stat = f"{'KS' if r.get('type') == 'numeric' else 'χ²'} {_g((test or {}).get('statistic'))}"
        nulls = r.get("null_share") or {}
        null_text = f"{_pct(nulls.get('reference'))} → {_pct(nulls.get('current'))}"
        reason = r.get("reason") or "; ".join(f"{k}: {v}" for k, v in (r.get("undefined") or {}).items())  # fmt: skip
        rows.append(
            f"<tr><td>{escape(str(name))}</td><td>{escape(str(r.get('type', '')))}</td>"
            f'<td><span class="badge {flag[0]}">{flag[1]}</span></td>'
            f'<td class="num">{stat}</td><td class="num">{_g(r.get("p_value_adjusted"))}</td>'
            f'<td class="num">{fmt_number(r.get("psi"))}</td>'
            f'<td class="num">{fmt_number(r.get("jensen_shannon"))}</td>'
            f'<td class="num">{fmt_number(r.get("wasserstein_normed")) if r.get("type") == "numeric" else ""}</td>'  # fmt: skip
            f'<td class="num">{null_text}</td><td class="note">{escape(reason)}</td></tr>'
        )
    head = [label, "type", "drifted", "statistic", "p (adjusted)", "psi", "jensen-shannon",
            "wasserstein (normed)", "nulls ref → cur", "reason"]  # fmt: skip
    return _table(head, rows, [False, False, False, True, True, True, True, True, True, False])


def _pct(value: Any) -> str:
    return f"{value:.1%}" if finite(value) else "n/a"


def edge_labels(edges: Sequence[float]) -> list[str]:
    """Bin edges with just enough decimals to tell neighbours apart.

    >>> edge_labels([-1.3059, -0.8667, 0.0004, 1.2781])
    ['-1.31', '-0.87', '0.00', '1.28']
    """
    gaps = [b - a for a, b in zip(edges, edges[1:], strict=False) if b > a]
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
        edges = edge_labels(bins["edges"])
        labels = [f"bin {i + 1}" for i in range(len(ref))]
        boundaries, x_label = edges, f"{name} (bins between reference deciles; outer bins open)"
    else:
        labels = ["(null)" if c is None else str(c) for c in bins.get("categories", [])]
        order = sorted(range(len(labels)), key=lambda i: -max(ref[i], cur[i]))[:MAX_CATEGORIES]
        order.sort()
        hidden = len(labels) - len(order)
        labels, ref, cur = [labels[i] for i in order], [ref[i] for i in order], [cur[i] for i in order]  # fmt: skip
        x_label = f"{name} (category)" + (f"; {hidden} smaller categories not shown" if hidden else "")  # fmt: skip
    chart = svg.bar_plot(labels, [Bars("reference", ref, REFERENCE), Bars("current", cur, CURRENT)],
                         title=f"{what}: {name}", x_label=x_label, boundaries=boundaries)  # fmt: skip
    caption = escape(r.get("reason") or "")
    return _figure(chart, caption)


def _drift_section(result: Mapping[str, Any]) -> str:
    drift = result.get("drift") or {}
    prediction = result.get("prediction_drift") or {}
    rule = result.get("drift_rule") or {}
    if not drift and not prediction:
        return ('<section id="drift"><h2>Drift</h2><p>Not measured: no reference window was '
                "given, or it has no features in common with the current window.</p></section>")  # fmt: skip
    effect = str(rule.get("effect", "psi"))
    parts = ['<section id="drift"><h2>Drift</h2>']
    if rule.get("description"):
        parts.append(f"<p>Rule: {escape(str(rule['description']))}.</p>")
    if drift:
        parts.append(f'<div id="drift-table">{_drift_table(drift, effect, "feature")}</div>')
    if prediction:
        parts.append("<h3>Prediction drift</h3>" + _drift_table(prediction, effect, "output"))
    drifted = [n for n in drift_order(drift, effect) if drift[n].get("drifted")]
    plots = [_distribution(str(n), drift[n], "drifted feature") for n in drifted]
    plots += [_distribution(str(n), r, "prediction") for n, r in prediction.items()]
    if any(plots):
        parts.append("<h3>Distributions (reference vs current)</h3>"
                     "<p>Share of rows per bin, for each drifted feature and the model output.</p>"
                     f'<div class="plots">{"".join(plots)}</div>')  # fmt: skip
    return "".join(parts) + "</section>"


def _run_section(run: Mapping[str, Any]) -> str:
    if not run:
        return ""
    rows = [
        f"<tr><th>{escape(label)}</th><td>{escape(str(run[key]))}</td></tr>"
        for key, label in (("started_at", "started at (UTC)"), ("duration_seconds", "duration (s)"),
                           ("assay_version", "assay version"), ("engine", "engine"),
                           ("config_hash", "configuration hash"))  # fmt: skip
        if key in run
    ]
    for window, info in (run.get("inputs") or {}).items():
        text = f"{info.get('source', '')} (fingerprint {info.get('fingerprint', 'n/a')})"
        rows.append(f"<tr><th>{escape(str(window))} input</th><td>{escape(text)}</td></tr>")
    config = json.dumps(run.get("config", {}), indent=2, sort_keys=True, default=str)
    return (
        '<section id="run"><h2>Run</h2><table><tbody>' + "".join(rows) + "</tbody></table>"
        f"<details><summary>Configuration</summary><pre>{escape(config)}</pre></details></section>"
    )
