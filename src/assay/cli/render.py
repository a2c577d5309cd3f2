"""Rendering an EvaluationResult for the terminal with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from assay.result import HEADLINE, EvaluationResult, format_value


def print_result(result: EvaluationResult, console: Console) -> None:
    """Metrics overall and per segment, then drift (drifted features first)."""
    data = result.to_dict()
    rows = ", ".join(f"{k} {v:,}" for k, v in data["rows"].items())
    console.print(f"[bold]Assay evaluation[/bold] — task {result.task}, rows: {rows}")
    overall = data["metrics"]["overall"]
    reference = data["metrics"].get("reference")
    table = Table(title="Metrics (95% intervals)", title_justify="left")
    table.add_column("metric")
    table.add_column("current")
    if reference:
        table.add_column("reference")
    for name in HEADLINE[result.task]:
        if name not in overall:
            continue
        cells = [name, format_value(overall[name], overall.get(f"{name}_ci"))]
        if reference:
            cells.append(format_value(reference.get(name), reference.get(f"{name}_ci")))
        table.add_row(*cells)
    console.print(table)
    _print_segments(data["metrics"].get("by_segment", {}), result.task, console)
    if data["drift"]:
        _print_drift(result, console)
    for message in data["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {message}")


def _print_segments(by_segment: dict[str, Any], task: str, console: Console) -> None:
    names = HEADLINE[task][:3]
    for column, groups in by_segment.items():
        table = Table(title=f"By segment: {column}", title_justify="left")
        table.add_column(column)
        table.add_column("rows", justify="right")
        for name in names:
            table.add_column(name)
        for value, metrics in groups.items():
            table.add_row(
                value,
                f"{metrics.get('n', 0):,}",
                *(format_value(metrics.get(n), metrics.get(f"{n}_ci")) for n in names),
            )
        console.print(table)


def _print_drift(result: EvaluationResult, console: Console) -> None:
    drift = result.drift
    order = result.drifted_features + [n for n in drift if n not in result.drifted_features]
    table = Table(title="Drift (drifted first)", title_justify="left")
    for col in ("feature", "type", "drifted", "p (adjusted)", "psi", "js", "w (normed)"):
        table.add_column(col)
    for name in order:
        r = drift[name]
        flag = {True: "[red]yes[/red]", False: "no", None: "n/a"}[r.get("drifted")]
        table.add_row(
            name,
            r["type"],
            flag,
            _num(r.get("p_value_adjusted")),
            _num(r.get("psi")),
            _num(r.get("jensen_shannon")),
            _num(r.get("wasserstein_normed")) if r["type"] == "numeric" else "",
        )
    console.print(table)
    rule = result.drift_rule or {}
    console.print(f"rule: {rule.get('description', '')}")
    for name, r in result.prediction_drift.items():
        console.print(
            f"prediction drift ({name}): psi {_num(r.get('psi'))}, drifted: {r.get('drifted')}"
        )


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
