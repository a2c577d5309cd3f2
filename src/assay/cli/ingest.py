"""``assay ingest``: import a Parquet, CSV or JSONL file of predictions or labels.

The file is streamed in batches of ``--batch-size`` rows (Parquet row-group batches,
CSV blocks, JSONL lines), so memory stays bounded whatever the file's size; each batch is
sent with :class:`assay.Client` (own ``Idempotency-Key``, retried on 429/503). A progress
bar is drawn on stderr when it is a terminal; the summed answer is printed at the end.

Files hold the columns of the HTTP bodies:

* Parquet and CSV: flat columns ``id``, ``version``, ``timestamp``, ``score``,
  ``prediction`` and one column per feature and segment, named by it (labels: ``id``,
  ``label``, ``timestamp``);
* JSONL: one event per line, in the JSON event shape (``features`` and ``segments`` as
  objects) or flat as above.

Exit codes: 0 success, 2 usage or input error (one line on stderr). If an error stops the
import midway, the batches before it are stored; running the same import again is safe
(stored ids count as duplicates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from assay.errors import AssayError, ConfigError, InputError

KINDS = ("predictions", "labels")
FORMATS = ("arrow", "json")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz")
BASE_KEYS = frozenset({"id", "version", "timestamp", "score", "prediction"})


def file_type(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` by the file name.

    >>> file_type(Path("events.csv.gz")), file_type(Path("labels.JSONL"))
    ('csv', 'jsonl')
    """
    name = path.name.lower()
    for kind, suffixes in (
        ("parquet", PARQUET_SUFFIXES),
        ("csv", CSV_SUFFIXES),
        ("jsonl", JSONL_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    raise ConfigError(
        f"cannot tell the format of {path.name!r}",
        field="file",
        hint="use a .parquet, .csv or .jsonl file",
    )


def ingest(
    file: Annotated[Path, typer.Argument(help="Parquet, CSV or JSONL file of events.")],
    model: Annotated[str, typer.Option(help="Registered model the events belong to.")],
    kind: Annotated[str, typer.Option(help="predictions or labels.")] = "predictions",
    url: Annotated[
        str | None, typer.Option(envvar="ASSAY_URL", help="Server URL (env ASSAY_URL).")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(envvar="ASSAY_KEY", help="API key, ingest role (env ASSAY_KEY)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events per request.")] = 1000,
    format: Annotated[str, typer.Option("--format", help="Request bodies: arrow or json.")] = (
        "arrow"
    ),
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summed answer as JSON.")
    ] = False,
) -> None:
    """Import a file of prediction or label events into a model, in batches."""
    from assay.cli.main import err_console, user_errors
    from assay.client import Client, IngestResult

    with user_errors():
        if kind not in KINDS:
            raise ConfigError(f"--kind must be predictions or labels, got {kind!r}", field="kind")
        if format not in FORMATS:
            raise ConfigError(f"--format must be arrow or json, got {format!r}", field="format")
        if not url:
            raise ConfigError(
                "the server URL is required", field="url", hint="pass --url or set ASSAY_URL"
            )
        if not key:
            raise ConfigError(
                "an API key is required", field="key", hint="pass --key or set ASSAY_KEY"
            )
        if batch_size < 1:
            raise ConfigError("--batch-size must be at least 1", field="batch_size")
        source = file_type(file)
        if not file.is_file():
            raise InputError(f"no such file: {str(file)!r}", field="file")
        body: Literal["arrow", "json"] = "json" if format == "json" else "arrow"
        with Client(url, key, batch_size=batch_size, format=body) as client:
            spec = client.get_model(model)  # fails fast on a wrong model, URL or key
            data, total = _open(file, source, kind, spec, batch_size)
            if (
                total is None
                and err_console.is_terminal
                and not file.name.endswith((".gz", ".bz2"))
            ):
                total = _count_lines(file) - (source == "csv")
            result = IngestResult()
            try:
                with _progress(err_console, total, f"{kind} from {file.name}") as advance:
                    log = client.log_predictions if kind == "predictions" else client.log_labels
                    result = log(model, data, progress=advance)
            except AssayError as err:
                done: IngestResult = getattr(err, "partial", result)
                if done.batches:
                    err.args = (
                        f"{err} (stopped after {done.events} events; the "
                        f"{done.batches} batch(es) before were stored: {_counts(done)}; "
                        "re-running the import is safe)",
                    )
                raise
    if json_out:
        typer.echo(json.dumps({"kind": kind, "model": model, **result.to_dict()}))
    else:
        typer.echo(f"{kind}: {result.events} sent in {result.batches} batch(es): {_counts(result)}")


def _counts(result: Any) -> str:
    return ", ".join(
        f"{name} {value}"
        for name, value in result.to_dict().items()
        if name not in ("events", "batches")
    )


# -- reading files in batches -----------------------------------------------------------


def _open(
    path: Path, source: str, kind: str, spec: dict[str, Any], batch_size: int
) -> tuple[Iterator[Any], int | None]:
    """A stream of record batches (or event dicts) and its row count, when cheap to know."""
    if source == "parquet":
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several kinds for a corrupt file
            raise InputError(
                f"cannot read {path.name!r} as Parquet: {_first_line(err)}", field="file"
            ) from err
        total = handle.metadata.num_rows
        return _guarded(path, handle.iter_batches(batch_size=batch_size)), total
    if source == "csv":
        return _guarded(path, _csv_batches(path, kind, spec)), None
    return _guarded(path, _jsonl_events(path, kind, spec)), None


def _guarded(path: Path, items: Iterator[Any]) -> Iterator[Any]:
    """Re-raise read errors met midway through a file as one-line input errors."""
    import pyarrow as pa

    try:
        yield from items
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path.name!r}: {_first_line(err)}", field="file") from err


def _csv_batches(path: Path, kind: str, spec: dict[str, Any]) -> Iterator[Any]:
    """CSV blocks as record batches, the model's columns read with their declared types."""
    import pyarrow as pa
    from pyarrow import csv

    text, number = pa.string(), pa.float64()
    multiclass = spec.get("task") == "multiclass"
    types: dict[str, pa.DataType] = {"id": text}
    if kind == "labels":
        types["label"] = text if multiclass else number
    else:
        types.update(version=text, score=number, prediction=text if multiclass else number)
        for name, feature_kind in (spec.get("features") or {}).items():
            declared = number if feature_kind == "numeric" else text
            types[name] = types[f"feature.{name}"] = declared
        for name in spec.get("segments") or []:
            types[name] = types[f"segment.{name}"] = text
        for name in spec.get("classes") or [] if multiclass else []:
            types[f"scores.{name}"] = number
    try:
        reader = csv.open_csv(path, convert_options=csv.ConvertOptions(column_types=types))
        yield from reader
    except (pa.ArrowException, OSError) as err:
        raise _csv_error(path, err) from err


def _csv_error(path: Path, err: BaseException) -> InputError:
    """A CSV read error naming the column (pyarrow gives only its number)."""
    import csv as stdlib_csv
    import re

    text, field = _first_line(err), "file"
    found = re.search(r"column #(\d+)", text)
    if found:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                header = next(stdlib_csv.reader(handle), [])
            field = header[int(found.group(1))]
            text = text.replace(found.group(0), f"{found.group(0)} ({field!r})")
        except (OSError, UnicodeDecodeError, IndexError, stdlib_csv.Error):
            field = "file"
    return InputError(f"cannot read {path.name!r} as CSV: {text}", field=field)


def _jsonl_events(path: Path, kind: str, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One event per non-empty line; flat prediction lines are nested by the model spec."""
    import gzip

    import orjson

    features = set(spec.get("features") or {})
    segments = set(spec.get("segments") or [])
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise InputError(
                    f"line {number} of {path.name!r} is not valid JSON: {err}", field="file"
                ) from err
            if not isinstance(event, dict):
                raise InputError(
                    f"line {number} of {path.name!r} is not a JSON object", field="file"
                )
            if kind == "predictions" and "features" not in event and "segments" not in event:
                event = _nest(event, features, segments)
            yield event


def _nest(row: dict[str, Any], features: set[str], segments: set[str]) -> dict[str, Any]:
    """A flat JSON row in the event shape: features and segments into their objects.

    >>> _nest({"id": "e-1", "amount": 3.0, "channel": "web"}, {"amount"}, {"channel"})
    {'id': 'e-1', 'features': {'amount': 3.0}, 'segments': {'channel': 'web'}}
    """
    event: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in row.items():
        bare = name.split(".", 1)[1] if name.startswith(("feature.", "segment.")) else name
        if name in BASE_KEYS:
            event[name] = value
        elif name.startswith("scores.") and value is not None:  # a class probability
            nested.setdefault("scores", {})[name.split(".", 1)[1]] = value
        elif bare in features and not name.startswith("segment."):
            nested.setdefault("features", {})[bare] = value
        elif bare in segments:
            nested.setdefault("segments", {})[bare] = value
        else:
            event[name] = value  # unknown: the client names it in its error
    return {**event, **nested}


@contextmanager
def _progress(console: Any, total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; else a no-op callback."""
    if not console.is_terminal:
        yield lambda rows: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda rows: bar.update(task, advance=rows)


def _count_lines(path: Path) -> int:
    """Lines in a text file (for the progress bar's total), reading 1 MiB at a time."""
    count, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(2**20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
