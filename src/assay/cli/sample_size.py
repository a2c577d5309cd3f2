"""``assay sample-size``: how many labeled events a comparison needs to detect an effect.

The last line printed is the number of labeled events per arm (for ``--paired``: the
events both models score), so scripts can take it with ``tail -n 1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

_KIND = {
    "recall": "positive-labeled events",
    "fnr": "positive-labeled events",
    "specificity": "negative-labeled events",
    "fpr": "negative-labeled events",
    "precision": "predicted-positive events",
}


def sample_size_command(
    baseline: Annotated[
        float, typer.Option(help="The metric on the baseline (champion), e.g. 0.80 accuracy.")
    ],
    effect: Annotated[
        float, typer.Option(help="Difference to detect, candidate − baseline (e.g. 0.02).")
    ],
    metric: Annotated[
        str, typer.Option(help="accuracy, recall, fpr, ... or a mean: log_loss, mae, mean.")
    ] = "accuracy",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance to detect the effect.")] = 0.8,
    sd: Annotated[
        float | None, typer.Option(help="Per-event standard deviation (means only).")
    ] = None,
    paired: Annotated[
        bool, typer.Option("--paired", help="Both models score the same events (shadow).")
    ] = False,
    discordance: Annotated[
        float | None,
        typer.Option(help="--paired: share of events on which exactly one model is right."),
    ] = None,
    alternative: Annotated[
        str, typer.Option(help="two-sided, one-sided, greater or less.")
    ] = "two-sided",
    ratio: Annotated[
        float, typer.Option(help="Candidate events per baseline event (0.25: a 20% canary).")
    ] = 1.0,
    sequential: Annotated[
        bool,
        typer.Option("--sequential", help="Size for the always-valid test (canary peeking)."),
    ] = False,
    json_flag: Annotated[
        bool, typer.Option("--json", help="Answer as JSON: to stdout, or to JSON_PATH.")
    ] = False,
    json_path: Annotated[
        Path | None,
        typer.Argument(metavar="JSON_PATH", help="With --json: write the JSON to this file."),
    ] = None,
) -> None:
    """How many labeled events detect EFFECT at POWER (two-proportion, Welch, McNemar)."""
    from assay.cli.main import user_errors
    from assay.errors import ConfigError
    from assay.stats import sample_size

    with user_errors():
        if json_path is not None and not json_flag:
            raise ConfigError(
                f"unexpected argument {str(json_path)!r}", hint="did you mean --json PATH?"
            )
        answer = sample_size(
            metric=metric,
            baseline=baseline,
            effect=effect,
            alpha=alpha,
            power=power,
            sd=sd,
            paired=paired,
            discordance=discordance,
            alternative=alternative,
            ratio=ratio,
            sequential=sequential,
        )
        if json_flag and json_path is None:
            typer.echo(json.dumps(answer, indent=2))
            return
        if json_path is not None:
            try:
                json_path.write_text(json.dumps(answer, indent=2) + "\n")
            except OSError as err:
                raise ConfigError(f"cannot write {str(json_path)!r}: {err}", field="json") from err
    typer.echo(_readable(answer))
    if json_path is not None:
        typer.echo(f"json: {json_path}")
    typer.echo("labeled events per arm:")
    typer.echo(str(answer["per_arm"]))


def _readable(a: dict[str, Any]) -> str:
    events = _KIND.get(a["metric"], "labeled events")
    sided = a["alternative"]
    lines = [
        f"{a['metric']}: baseline {a['baseline']:g}, effect {a['effect']:+g}, "
        f"alpha {a['alpha']:g} ({sided}), power {a['power']:g}",
        f"method: {a['method']}",
    ]
    if a["paired"]:
        lines.append(f"{events} scored by both models: {a['per_arm']:,}")
    else:
        lines.append(f"baseline arm: {a['n_baseline']:,} {events}")
        lines.append(f"candidate arm: {a['n_candidate']:,} {events}")
        lines.append(f"total: {a['total']:,}")
    if a.get("tuning_rows"):
        lines.append(f"sequential test: tune it with tuning_rows={a['tuning_rows']}")
    return "\n".join(lines)
