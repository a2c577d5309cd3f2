"""``assay`` — evaluate models in production from the command line.

Exit codes: 0 success, 2 usage or input error (one line on stderr, no traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from assay import __version__
from assay.errors import AssayError

app = typer.Typer(
    name="assay",
    help="Continuous evaluation of machine-learning models in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

from assay.cli.admin import audit_app, keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")

from assay.cli.serve import run_monitors, serve  # noqa: E402

app.command()(serve)
app.command("run-monitors")(run_monitors)
from assay.cli.ingest import ingest  # noqa: E402

app.command()(ingest)
from assay.cli.monitoring import monitoring_commands  # noqa: E402

monitoring_commands(app)
from assay.cli.gate import gate  # noqa: E402

app.command()(gate)
from assay.cli.sample_size import sample_size_command  # noqa: E402

app.command("sample-size")(sample_size_command)

EXIT_USAGE = 2


def run() -> None:
    """Console-script entry point."""
    app()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`AssayError` into one line on stderr and exit code 2."""
    try:
        yield
    except AssayError as err:
        line = Text("error: ", style="red")
        line.append(str(err) + (f" [field: {err.field}]" if err.field else ""))
        err_console.print(line, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int], Callable[[str], None]] | None]:
    """A rich progress bar factory when stderr is a terminal, else ``None``."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:

        def factory(total: int) -> Callable[[str], None]:
            task = bar.add_task("evaluating", total=total)
            return lambda name: bar.update(task, advance=1, description=f"evaluating: {name}")

        yield factory


@app.command()
def version() -> None:
    """Print the Assay version."""
    typer.echo(__version__)


@app.command()
def evaluate(
    current: Annotated[
        str,
        typer.Option(
            help="Current window: Parquet/CSV file, Parquet folder, glob, or URI (s3://…)."
        ),
    ],
    task: Annotated[str, typer.Option(help="binary, multiclass or regression.")],
    target: Annotated[str, typer.Option(help="Column with the true label or value.")],
    reference: Annotated[
        str | None, typer.Option(help="Reference window for drift (same forms).")
    ] = None,
    score: Annotated[
        str | None,
        typer.Option(
            help="Score column (binary: positive-class probability; multiclass: "
            "comma-separated probability columns)."
        ),
    ] = None,
    prediction: Annotated[str | None, typer.Option(help="Predicted label or value column.")] = None,
    threshold: Annotated[float, typer.Option(help="Binary decision threshold (score >= t).")] = 0.5,
    segment: Annotated[list[str] | None, typer.Option(help="Segment column (repeatable).")] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated features, optionally name:numeric|categorical. "
            "Default: every column without a role."
        ),
    ] = None,
    weight: Annotated[str | None, typer.Option(help="Sample-weight column.")] = None,
    engine: Annotated[str, typer.Option(help="local or ray.")] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (--engine ray); default: a local Ray runtime."),
    ] = None,
    approx: Annotated[
        bool,
        typer.Option(
            "--approx",
            help="--engine ray: fixed-size sketches (stated error bounds) for scores and "
            "numeric features.",
        ),
    ] = False,
    alpha: Annotated[
        float, typer.Option(help="Drift significance after Benjamini-Hochberg.")
    ] = 0.05,
    min_effect: Annotated[float, typer.Option(help="Minimum drift effect size.")] = 0.1,
    effect: Annotated[str, typer.Option(help="psi, jensen_shannon or wasserstein_normed.")] = "psi",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report.")] = None,
    mlflow_experiment: Annotated[
        str | None, typer.Option(help="Log the run to this MLflow experiment.")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow server (or MLFLOW_TRACKING_URI)."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Model name, tagged on the MLflow run (assay.model).")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Model version, tagged on the MLflow run (assay.version).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Evaluate a model's predictions (and drift against a reference)."""
    from assay.service.evaluate import evaluate as run_evaluation
    from assay.stats import DriftRule

    with user_errors(), progress_bar(not quiet) as factory:
        result = run_evaluation(
            current,
            reference=reference,
            task=task,
            target=target,
            score=score,
            prediction=prediction,
            threshold=threshold,
            segments=segment or (),
            features=None if features is None else [f for f in features.split(",") if f.strip()],
            engine=engine,
            ray_address=ray_address,
            approximate=approx,
            weight=weight,
            drift_rule=DriftRule(alpha=alpha, min_effect=min_effect, effect=effect),  # type: ignore[arg-type]
            progress=factory,
        )
        if json_out is not None:
            result.to_json(json_out)
        if report is not None:
            result.write_report(report)
    run_id = None
    if mlflow_experiment:
        from assay.integrations.mlflow import MlflowTracker

        with user_errors():
            tracker = MlflowTracker(mlflow_experiment, tracking_uri=mlflow_tracking_uri)
            run_id = tracker.log_evaluation(
                result.to_dict(),
                model=model_name,
                version=model_version,
                json_path=json_out,
                report_path=report,
            )
    if not quiet:
        from assay.cli.render import print_result

        print_result(result, Console())
        for label, path in (("json", json_out), ("report", report), ("mlflow run", run_id)):
            if path is not None:
                typer.echo(f"{label}: {path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
