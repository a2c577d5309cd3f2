"""The self-contained HTML report of one evaluation.

:func:`render_report` turns ``EvaluationResult.to_dict()`` into a single HTML page: inline
CSS, charts as inline SVG (:mod:`assay.report.svg`; the drift part comes from
:mod:`assay.report.drift`), no script, no font, no image and no
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
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from assay.report import svg
from assay.report.drift import drift_section
from assay.report.markup import figure, fmt_interval, fmt_number, plots, table, value_cell
from assay.report.svg import CURRENT, REFERENCE, Estimate, Line, finite
from assay.result import HEADLINE

SEGMENT_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "accuracy"),
    "multiclass": ("accuracy", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}
_UNIT = "roc_auc average_precision accuracy precision recall f1 specificity fpr fnr prevalence"
_POSITIVE = "log_loss mae mse rmse mape median_absolute_error"
# axis bounds of metrics with a known range; f1_macro and the like use the entry of f1
LIMITS: dict[str, tuple[float | None, float | None]] = {
    **dict.fromkeys([*_UNIT.split(), "predicted_positive_rate", "brier", "ece"], (0.0, 1.0)),
    **dict.fromkeys(_POSITIVE.split(), (0.0, None)),
    "r2": (None, 1.0),
}

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
th { background: #eef1f5; font-weight: 600; font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { text-align: right; }
tr.headline td:first-child { font-weight: 600; }
tr.overall td { background: #f8fafc; font-style: italic; }
td.note { min-width: 14em; font-size: 12px; }
.scroll { max-width: 100%; overflow-x: auto; }
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
        drift_section(result),
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


def _metric_names(task: str, group: Mapping[str, Any]) -> list[str]:
    """Scalar metrics of a group: headline metrics first, then the others in order."""
    scalar = [k for k in group if f"{k}_ci" in group]
    headline = [k for k in HEADLINE.get(task, ()) if k in group]
    return headline + [k for k in scalar if k not in headline]


def _metric_cells(group: Mapping[str, Any], name: str) -> str:
    """Value cell and interval cell of one metric."""
    return value_cell(group, name) + f'<td class="num">{fmt_interval(group.get(name + "_ci"))}</td>'


def _interval_chart(estimates: Sequence[Estimate], name: str, marker: Any = None) -> str:
    """A dot-and-whisker figure, or "" when no estimate is defined."""
    if not any(finite(e.value) for e in estimates):
        return ""
    chart = svg.interval_plot(
        estimates,
        title=name,
        x_label="value, 95% interval",
        marker=marker if finite(marker) else None,
        limits=LIMITS.get(name, LIMITS.get(name.rsplit("_", 1)[0], (None, None))),
    )
    return figure(chart)


# -- sections ------------------------------------------------------------------------------


def _header(result: Mapping[str, Any]) -> str:
    run = result.get("run") or {}
    rows, labeled = result.get("rows") or {}, result.get("labeled") or {}
    facts = [("task", str(result.get("task", "")))]
    for window in ("current", "reference"):
        if window in rows:
            text = fmt_number(rows[window], 0)
            if window in labeled:
                text += f" ({fmt_number(labeled[window], 0)} labeled)"
            facts.append((f"{window} rows", text))
    for key, label in (
        ("started_at", "run at (UTC)"),
        ("assay_version", "assay version"),
        ("config_hash", "config hash"),
    ):
        if run.get(key):
            facts.append((label, str(run[key])))
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
        cells = _metric_cells(overall, name)
        if reference is not None:
            cells += _metric_cells(reference, name)
        css = ' class="headline"' if name in headline else ""
        rows.append(f"<tr{css}><td>{escape(name)}</td>{cells}</tr>")
    charts = []
    for name in (n for n in HEADLINE.get(task, ()) if n in overall):
        estimates = [Estimate("current", overall.get(name), overall.get(name + "_ci"), CURRENT)]
        if reference is not None:
            ci = reference.get(name + "_ci")
            estimates.append(Estimate("reference", reference.get(name), ci, REFERENCE))
        charts.append(_interval_chart(estimates, name))
    notes = "".join(f'<p class="note">{escape(str(n))}</p>' for n in overall.get("notes", []))
    against = " and on the reference window" if reference is not None else ""
    return (
        '<section id="metrics"><h2>Metrics</h2>'
        f"<p>Values on the current window{against}, with 95% intervals. "
        "Headline metrics are in bold.</p>"
        + table(head, rows, [False, True, True, True, True])
        + notes
        + plots(charts)
        + _confusion(overall)
        + "</section>"
    )


def _confusion(overall: Mapping[str, Any]) -> str:
    matrix = overall.get("confusion_matrix")
    if not matrix:
        return ""
    classes = [str(c) for c in overall.get("classes", ["0 (negative)", "1 (positive)"])]
    rows = []
    for label, counts in zip(classes, matrix, strict=False):
        cells = "".join(
            f'<td class="num">{fmt_number(v, 0 if float(v).is_integer() else 2)}</td>'
            for v in counts
        )
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
    at = f" at threshold {overall['threshold']}" if "threshold" in overall else ""
    return (
        f"<h3>Confusion matrix{escape(at)}</h3><p>Rows: true class; columns: predicted class.</p>"
        + table(["true \\ predicted", *classes], rows, [False] + [True] * len(classes))
    )


def _segment_row(label: str, group: Mapping[str, Any], names: Sequence[str], css: str) -> str:
    cells = "".join(_metric_cells(group, n) for n in names)
    count = fmt_number(group.get("n"), 0)
    return f'<tr{css}><td>{escape(label)}</td><td class="num">{count}</td>{cells}</tr>'


def _segments_section(task: str, metrics: Mapping[str, Any]) -> str:
    by_segment = metrics.get("by_segment") or {}
    if not by_segment:
        return ""
    overall = metrics.get("overall") or {}
    names = [n for n in SEGMENT_METRICS.get(task, ()) if n in overall]
    parts = [
        '<section id="segments"><h2>Segments</h2><p>Headline metrics per segment value, with '
        "95% intervals; the dashed line in each plot is the value over all rows.</p>"
    ]
    for column, groups in by_segment.items():
        head = [str(column), "rows"] + [h for n in names for h in (n, "95% interval")]
        rows = [_segment_row("overall", overall, names, ' class="overall"')]
        rows += [_segment_row(str(value), group, names, "") for value, group in groups.items()]
        charts = [
            _interval_chart(
                [Estimate(str(v), g.get(name), g.get(name + "_ci")) for v, g in groups.items()],
                name,
                marker=overall.get(name),
            )
            for name in names
        ]
        parts.append(f"<h3>By {escape(str(column))}</h3>")
        parts.append(table(head, rows, [False] + [True] * (1 + 2 * len(names))))
        parts.append(plots(charts))
    return "".join(parts) + "</section>"


def _curves_section(task: str, metrics: Mapping[str, Any]) -> str:
    if task != "binary":
        return ""
    windows = [("current", metrics.get("overall") or {}, CURRENT)]
    if metrics.get("reference"):
        windows.append(("reference", metrics["reference"], REFERENCE))
    figures, notes = [], ""
    roc = [
        Line(f"{label} (AUC {fmt_number(g.get('roc_auc'))})", c["fpr"], c["tpr"], color)
        for label, g, color in windows
        if (c := g.get("roc_curve"))
    ]
    if roc:
        chart = svg.line_plot(
            roc,
            title="ROC curve",
            x_label="false positive rate",
            y_label="true positive rate",
            diagonal="chance",
        )
        figures.append(figure(chart))
    else:
        reason = (windows[0][1].get("undefined") or {}).get("roc_auc", "no curve in the result")
        notes = f'<p class="note">ROC curve not available: {escape(str(reason))}</p>'
    reliability = [
        Line(label, r["mean_predicted"], r["fraction_positive"], color, markers=True)
        for label, g, color in windows
        if (r := g.get("reliability"))
    ]
    if reliability:
        chart = svg.line_plot(
            reliability,
            title="Reliability (calibration)",
            x_label="mean predicted probability (per bin)",
            y_label="fraction of positives",
            diagonal="perfect calibration",
        )
        caption = "Bins of equal width in predicted probability; empty bins are left out."
        figures.append(figure(chart, caption))
    return f'<section id="curves"><h2>Curves</h2>{notes}{plots(figures)}</section>'


_RUN_FIELDS = (
    ("started_at", "started at (UTC)"),
    ("duration_seconds", "duration (s)"),
    ("assay_version", "assay version"),
    ("engine", "engine"),
    ("config_hash", "configuration hash"),
)


def _run_section(run: Mapping[str, Any]) -> str:
    if not run:
        return ""
    rows = [
        f"<tr><th>{escape(label)}</th><td>{escape(str(run[key]))}</td></tr>"
        for key, label in _RUN_FIELDS
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
