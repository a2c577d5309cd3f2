"""``assay gate``: a deployment gate for CI/CD.

Exit 0 promote, 1 reject, 3 inconclusive (not enough data yet), 2 usage or input error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from assay.errors import ConfigError

EXIT_USAGE = 2


def gate(
    baseline: Annotated[
        str, typer.Option(help="Baseline (champion) predictions: file, folder, glob or URI.")
    ],
    candidate: Annotated[
        str, typer.Option(help="Candidate (challenger) predictions: file, folder, glob or URI.")
    ],
    task: Annotated[str, typer.Option(help="binary, multiclass or regression.")] = "binary",
    target: Annotated[str, typer.Option(help="Column with the true label or value.")] = "target",
    score: Annotated[
        str | None,
        typer.Option(
            help="Score column (binary: positive-class probability; multiclass: "
            "comma-separated probability columns, for log_loss)."
        ),
    ] = "score",
    prediction: Annotated[
        str | None,
        typer.Option(help="Predicted value (regression) or predicted class (multiclass) column."),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Binary decision threshold (score >= t).")] = 0.5,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Primary metric (repeatable); replaces the policy's metrics."),
    ] = None,
    margin: Annotated[
        float, typer.Option(help="Non-inferiority margin for --metric (how much worse is ok).")
    ] = 0.0,
    paired: Annotated[
        bool, typer.Option("--paired", help="Both models scored the same events (shadow).")
    ] = False,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Event id column that pairs the two files.")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file (gate.yaml).")] = None,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential", help="Always-valid intervals, for a canary checked again and again."
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the decision JSON.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML (one case per check).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary.")] = None,
    mlflow_experiment: Annotated[
        str | None, typer.Option(help="Log the decision to this MLflow experiment.")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow server (or MLFLOW_TRACKING_URI)."),
    ] = None,
    registered_model: Annotated[
        str | None,
        typer.Option(help="MLflow registered model whose aliases name champion and challenger."),
    ] = None,
    champion_alias: Annotated[str, typer.Option(help="Alias of the champion.")] = "champion",
    challenger_alias: Annotated[str, typer.Option(help="Alias of the challenger.")] = "challenger",
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="On promote, move the champion alias to the challenger's version.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the decision.")] = False,
) -> None:
    """Decide whether a candidate model may replace the baseline (exit 0/1/3)."""
    from assay.cli.main import user_errors
    from assay.report.gate import to_junit, to_markdown
    from assay.result import write_text_atomic
    from assay.service.gate import gate as run_gate

    with user_errors():
        if promote and not registered_model:
            raise ConfigError(
                "--promote moves an MLflow alias", field="promote", hint="pass --registered-model"
            )
        models = _resolve_models(
            registered_model, champion_alias, challenger_alias, mlflow_tracking_uri
        )
        decision = run_gate(
            baseline,
            candidate,
            task=task,
            target=target,
            score=score,
            prediction=prediction,
            threshold=threshold,
            metrics=metric or (),
            margin=margin,
            paired=paired,
            id_column=id_column,
            policy=policy,
            sequential=True if sequential else None,
            models=models,
        )
        if promote and decision.decision == "promote":
            _move_champion(models, mlflow_tracking_uri)
        data = decision.to_dict()
        summary = to_markdown(data)
        written = []
        if json_out is not None:
            write_text_atomic(json_out, json.dumps(data, indent=2, allow_nan=False) + "\n")
            written.append(json_out)
        if markdown is not None:
            write_text_atomic(markdown, summary)
            written.append(markdown)
        if junit is not None:
            write_text_atomic(junit, to_junit(data))
            written.append(junit)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(summary + "\n")
        if mlflow_experiment:
            from assay.integrations.mlflow import MlflowTracker

            tracker = MlflowTracker(mlflow_experiment, tracking_uri=mlflow_tracking_uri)
            run_id = tracker.log_gate(
                data,
                model=registered_model,
                baseline_version=_version(models, "champion"),
                candidate_version=_version(models, "challenger"),
                artifacts=[p for p in written if p != json_out],  # the decision is logged once
            )
            data["mlflow_run_id"] = run_id
    if not quiet:
        _print(data, Console())
    typer.echo(f"decision: {data['decision']}")
    raise typer.Exit(decision.exit_code)


def _resolve_models(
    registered_model: str | None, champion: str, challenger: str, tracking_uri: str | None
) -> dict[str, Any]:
    if not registered_model:
        return {}
    from assay.integrations.mlflow import resolve_alias

    out: dict[str, Any] = {"registered_model": registered_model}
    for role, alias in (("champion", champion), ("challenger", challenger)):
        found = resolve_alias(registered_model, alias, tracking_uri=tracking_uri)
        out[role] = {"alias": alias, "version": found.version, "run_id": found.run_id}
    return out


def _version(models: dict[str, Any], role: str) -> str | None:
    entry = models.get(role)
    return None if entry is None else str(entry["version"])


def _move_champion(models: dict[str, Any], tracking_uri: str | None) -> None:
    from assay.integrations.mlflow import set_alias

    version = _version(models, "challenger")
    assert version is not None
    set_alias(
        models["registered_model"], models["champion"]["alias"], version, tracking_uri=tracking_uri
    )
    models["promoted"] = {"alias": models["champion"]["alias"], "version": version}


def _print(data: dict[str, Any], console: Console) -> None:
    colour = {"promote": "green", "reject": "red", "continue": "yellow"}[data["decision"]]
    console.print(f"[bold {colour}]{data['decision'].upper()}[/] ({data['mode']})")
    for c in data["checks"]:
        mark = {"pass": "[green]pass[/]", "fail": "[red]fail[/]"}.get(
            c["outcome"], "[yellow]inconclusive[/]"
        )
        console.print(f"  {c['role']:9} {mark}  {escape(c['reason'])}", highlight=False)
    for reason in data["reasons"]:
        if reason.startswith(("sample ratio", "each arm")):
            console.print(f"  {escape(reason)}", highlight=False)
