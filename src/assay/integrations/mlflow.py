"""MLflow: log evaluations and gate decisions to an experiment; resolve and move model aliases.

Needs the optional extra ``pip install 'assay[mlflow]'``; MLflow is imported only when one of
these functions runs. Every call uses an explicit ``MlflowClient(tracking_uri=...)``:
nothing here sets MLflow's global tracking URI or active run. ``tracking_uri=None`` leaves
the choice to MLflow (its ``MLFLOW_TRACKING_URI`` environment variable, else its default).

An evaluation run holds every number of the evaluation's JSON as a metric (names in
:mod:`assay.integrations.mlflow_names`), its configuration as params, the tags
``assay.kind=evaluation``, ``assay.model``, ``assay.version``, ``assay.segments`` (and
``assay.undefined``, the reasons of metrics left undefined) and the JSON and HTML report as
artifacts. A gate run holds each check's difference, interval, p-value and the two models'
values, the decision and margins as params, the tags ``assay.kind=gate``,
``assay.decision``, ``assay.model``, ``assay.baseline_version`` and
``assay.candidate_version``, and the decision JSON plus the given files as artifacts.

With a server at hand (the tests start a real ``mlflow server``)::

    tracker = MlflowTracker("fraud-eval", tracking_uri="http://127.0.0.1:5000")
    run_id = tracker.log_evaluation(result.to_dict(), model="fraud", version="7")
    resolve_alias("fraud", "champion").version   # '7'
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from assay.errors import (
    AssayError,
    ConflictError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    StoreUnavailableError,
)
from assay.integrations.mlflow_names import (
    check_names,
    evaluation_numbers,
    evaluation_params,
    gate_metrics,
    gate_params,
)

# MLflow's limits per log_batch call and per value (mlflow.utils.validation)
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
# param and tag characters per call, well under MLflow's 1 MB request limit
MAX_TEXT_PER_BATCH = 500_000
CONNECT_TIMEOUT = 5.0

T = TypeVar("T")


class MlflowUnavailableError(StoreUnavailableError):
    """The MLflow tracking server cannot be reached."""


class MlflowRequestError(AssayError, RuntimeError):
    """MLflow answered a request with an error."""

    http_status = 502


class RegisteredModelNotFoundError(NotFoundError):
    """No registered model of that name exists in the MLflow model registry."""


class ModelAliasNotFoundError(NotFoundError):
    """The registered model has no such alias."""


class ModelVersionNotFoundError(NotFoundError):
    """The registered model has no such version."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of an MLflow registered model (and the alias it was found by)."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        """The ``models:/`` URI that loads this version.

        >>> RegisteredVersion("fraud", "7", "champion", None, None).model_uri
        'models:/fraud/7'
        """
        return f"models:/{self.name}/{self.version}"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as err:
        raise MissingDependencyError("mlflow", "mlflow") from err
    return mlflow


def _redact(uri: str) -> str:
    """``uri`` without a user name or password."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _client(tracking_uri: str | None) -> Any:
    """An explicit MlflowClient, after checking that an HTTP tracking server answers at all.

    MLflow retries a refused connection for minutes; the check fails in seconds instead.
    """
    mlflow = _mlflow()
    uri = tracking_uri or mlflow.get_tracking_uri()
    if str(uri).startswith(("http://", "https://")):
        import httpx

        try:
            httpx.get(str(uri).rstrip("/") + "/health", timeout=CONNECT_TIMEOUT)
        except httpx.TransportError as err:
            raise MlflowUnavailableError(
                f"the MLflow tracking server at {_redact(str(uri))} cannot be reached: {err}",
                field="tracking_uri",
                hint="start it, or pass another --mlflow-tracking-uri / MLFLOW_TRACKING_URI",
            ) from None
    return mlflow.MlflowClient(tracking_uri=uri)


def _call(
    what: str,
    fn: Callable[..., T],
    *args: Any,
    missing: Callable[[], AssayError] | None = None,
    **kwargs: Any,
) -> T:
    """``fn(*args)``, with MLflow's errors turned into Assay's."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except MlflowException as err:
        if missing is not None and err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise missing() from None
        raise MlflowRequestError(f"MLflow could not {what}: {err.message}") from None


class MlflowTracker:
    """Logs evaluations and gate decisions as runs of one MLflow experiment.

    The experiment is created when it does not exist yet.
    """

    def __init__(self, experiment: str, *, tracking_uri: str | None = None) -> None:
        if not experiment or not experiment.strip():
            raise InputError("the MLflow experiment name is empty", field="experiment")
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self._client = _client(tracking_uri)
        self.experiment_id = self._experiment_id(experiment)

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = _call("read the experiment", self._client.get_experiment_by_name, name)
        if found is None:
            try:
                return str(self._client.create_experiment(name))
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":  # else: created meanwhile
                    raise MlflowRequestError(
                        f"MLflow could not create the experiment {name!r}: {err.message}",
                        field="experiment",
                    ) from None
                found = _call("read the experiment", self._client.get_experiment_by_name, name)
        if found.lifecycle_stage == "deleted":
            raise ConflictError(
                f"the MLflow experiment {name!r} is deleted",
                field="experiment",
                hint="restore it (mlflow experiments restore) or choose another name",
            )
        return str(found.experiment_id)

    def log_evaluation(
        self,
        result: Mapping[str, Any] | Any,
        *,
        model: str | None = None,
        version: str | None = None,
        json_path: Path | None = None,
        report_path: Path | None = None,
        run_name: str | None = None,
    ) -> str:
        """Log one evaluation (``EvaluationResult.to_dict()``) as a run; return its run id.

        Without ``json_path`` the mapping itself is logged as ``evaluation.json``; without
        ``report_path`` the HTML report is rendered and logged as ``report.html``.
        """
        data = _as_mapping(result, "result")
        files = _existing({"json_path": json_path, "report_path": report_path})
        values, undefined = evaluation_numbers(data)
        config = (data.get("run") or {}).get("config") or {}
        tags = {
            "assay.kind": "evaluation",
            "assay.task": str(data.get("task", "")),
            "assay.segments": ",".join(str(s) for s in config.get("segments") or ()),
            "assay.model": model,
            "assay.version": version,
        }
        inputs = (data.get("run") or {}).get("inputs") or {}
        for window, record in inputs.items():
            if isinstance(record, Mapping) and record.get("fingerprint"):
                tags[f"assay.input.{window}.fingerprint"] = str(record["fingerprint"])
        drifted = [name for name, d in (data.get("drift") or {}).items() if d.get("drifted")]
        tags["assay.drifted_features"] = ",".join(drifted)
        if undefined:
            tags["assay.undefined"] = json.dumps(undefined, sort_keys=True)
        if data.get("warnings"):
            tags["assay.warnings"] = "\n".join(str(w) for w in data["warnings"])
        name = run_name or " ".join(["evaluate", *(p for p in (model, version) if p)])

        def artifacts(run_id: str) -> None:
            if "json_path" in files:
                self._upload(run_id, files["json_path"])
            else:
                self._upload_text(run_id, _json_text(data), "evaluation.json")
            if "report_path" in files:
                self._upload(run_id, files["report_path"])
            elif isinstance(data.get("metrics"), Mapping):
                from assay.report.html import render_report

                self._upload_text(run_id, render_report(dict(data)), "report.html")

        return self._run(name, values, evaluation_params(data), tags, artifacts)

    def log_gate(
        self,
        decision: Mapping[str, Any] | Any,
        *,
        model: str | None = None,
        baseline_version: str | None = None,
        candidate_version: str | None = None,
        artifacts: Sequence[Path] = (),
        run_name: str | None = None,
    ) -> str:
        """Log one gate decision as a run; return its run id.

        The decision is logged as ``decision.json``, with each file of ``artifacts``
        (Markdown summary, JUnit XML, ...) beside it under its own name.
        """
        data = _as_mapping(decision, "decision")
        files = _existing({f"artifacts[{i}]": p for i, p in enumerate(artifacts)})
        tags = {
            "assay.kind": "gate",
            "assay.decision": _text(data.get("decision")),
            "assay.mode": _text(data.get("mode")),
            "assay.model": model,
            "assay.baseline_version": baseline_version,
            "assay.candidate_version": candidate_version,
        }
        checks = [c for c in data.get("checks") or () if isinstance(c, Mapping)]
        for check_name, check in zip(check_names(checks), checks, strict=True):
            if check.get("outcome") is not None:
                tags[f"assay.gate.{check_name}.outcome"] = str(check["outcome"])
        if data.get("reasons"):
            tags["assay.reasons"] = "\n".join(str(r) for r in data["reasons"])
        name = run_name or " ".join(
            ["gate", *(p for p in (model, baseline_version, candidate_version) if p)]
        )

        def upload(run_id: str) -> None:
            self._upload_text(run_id, _json_text(data), "decision.json")
            for path in files.values():
                self._upload(run_id, path)

        return self._run(name, gate_metrics(data), gate_params(data), tags, upload)

    def _run(
        self,
        name: str,
        metrics: Mapping[str, float],
        params: Mapping[str, str],
        tags: Mapping[str, str | None],
        artifacts: Callable[[str], None],
    ) -> str:
        """Create a run, log everything in batches and the artifacts, and finish it."""
        from mlflow.entities import Metric, Param, RunTag

        run = _call("create a run", self._client.create_run, self.experiment_id, run_name=name)
        run_id = str(run.info.run_id)
        try:
            now = int(time.time() * 1000)
            batches = split_batches(
                [Metric(k, v, now, 0) for k, v in metrics.items()],
                [Param(k, _cut(v, MAX_PARAM_LENGTH)) for k, v in params.items()],
                [RunTag(k, _cut(v, MAX_TAG_LENGTH)) for k, v in tags.items() if v is not None],
            )
            for m, p, t in batches:
                _call("log a batch", self._client.log_batch, run_id, metrics=m, params=p, tags=t)
            artifacts(run_id)
        except BaseException:
            with contextlib.suppress(Exception), contextlib.redirect_stdout(sys.stderr):
                self._client.set_terminated(run_id, "FAILED")  # the first error is reported
            raise
        # MLflow writes a link to the run on stdout when it ends; keep stdout for the caller
        with contextlib.redirect_stdout(sys.stderr):
            _call("finish the run", self._client.set_terminated, run_id, "FINISHED")
        return run_id

    def _upload(self, run_id: str, path: Path) -> None:
        _call("upload an artifact", self._client.log_artifact, run_id, str(path))

    def _upload_text(self, run_id: str, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory(prefix="assay-mlflow-") as tmp:
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            self._upload(run_id, path)


def split_batches(
    metrics: Sequence[T], params: Sequence[Any], tags: Sequence[Any]
) -> Iterator[tuple[list[T], list[Any], list[Any]]]:
    """``(metrics, params, tags)`` per ``log_batch`` call, each within MLflow's limits.

    At most 1000 metrics, 100 params and 100 tags, 1000 entities in all, per call.

    >>> [tuple(map(len, b)) for b in split_batches(range(1500), range(150), range(30))]
    [(870, 100, 30), (630, 50, 0)]
    """
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        p, params = _take(params)
        t, tags = _take(tags)
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield m, p, t


def _take(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Up to 100 params or tags whose text fits half of a batch's text budget."""
    size = 0
    for i, item in enumerate(items[:MAX_PARAMS_TAGS_PER_BATCH]):
        size += len(str(getattr(item, "key", ""))) + len(str(getattr(item, "value", "")))
        if size > MAX_TEXT_PER_BATCH // 2 and i > 0:
            return items[:i], items[i:]
    return items[:MAX_PARAMS_TAGS_PER_BATCH], items[MAX_PARAMS_TAGS_PER_BATCH:]


def resolve_alias(
    registered_model: str, alias: str, *, tracking_uri: str | None = None
) -> RegisteredVersion:
    """The version of ``registered_model`` that ``alias`` (e.g. ``champion``) points at."""
    client = _client(tracking_uri)
    found = _registered_model(client, registered_model)
    aliases = dict(getattr(found, "aliases", None) or {})
    if alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise ModelAliasNotFoundError(
            f"registered model {registered_model!r} has no alias {alias!r}",
            field="alias",
            hint=f"its aliases: {known}; set one with set_alias() or the MLflow UI",
        )
    version = _model_version(client, registered_model, str(aliases[alias]))
    return RegisteredVersion(
        name=str(version.name),
        version=str(version.version),
        alias=alias,
        run_id=version.run_id or None,
        source=version.source or None,
        tags={str(k): str(v) for k, v in (version.tags or {}).items()},
    )


def set_alias(
    registered_model: str, alias: str, version: str, *, tracking_uri: str | None = None
) -> None:
    """Point ``alias`` of ``registered_model`` at ``version`` (moving it if it exists)."""
    client = _client(tracking_uri)
    _registered_model(client, registered_model)
    _model_version(client, registered_model, str(version))
    _call(
        f"set alias {alias!r} of {registered_model!r}",
        client.set_registered_model_alias,
        registered_model,
        alias,
        str(version),
    )


def _registered_model(client: Any, name: str) -> Any:
    def missing() -> AssayError:
        return RegisteredModelNotFoundError(
            f"no registered model {name!r} in the MLflow model registry",
            field="registered_model",
            hint="check the name, or register the model first",
        )

    return _call("read the registered model", client.get_registered_model, name, missing=missing)


def _model_version(client: Any, name: str, version: str) -> Any:
    def missing() -> AssayError:
        return ModelVersionNotFoundError(
            f"registered model {name!r} has no version {version!r}", field="version"
        )

    return _call("read the model version", client.get_model_version, name, version, missing=missing)


def _as_mapping(value: Any, name: str) -> Mapping[str, Any]:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise InputError(f"{name} must be a mapping (its to_dict())", field=name)
    return value


def _existing(paths: Mapping[str, Path | None]) -> dict[str, Path]:
    out = {}
    for name, path in paths.items():
        if path is None:
            continue
        if not Path(path).is_file():
            raise InputError(f"{name}: no file at {path}", field=name)
        out[name] = Path(path)
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(_finite(data), indent=2, allow_nan=False, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; anything else JSON cannot hold as text."""
    item = getattr(value, "item", None)
    return _finite(item()) if callable(item) else str(value)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
