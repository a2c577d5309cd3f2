"""The Python client of the Assay HTTP API: batching, retries with idempotency, typed errors.

:class:`Client` logs prediction and label events to a running ``assay serve``::

    import assay

    with assay.Client("http://127.0.0.1:8080", key) as client:
        client.register_model("fraud", "binary",
                              features={"amount": "numeric", "country": "categorical"},
                              segments=["channel"])
        result = client.log_predictions("fraud", [
            {"id": "e-1", "version": "v7", "timestamp": "2026-11-01T12:00:00Z",
             "score": 0.93, "prediction": 1,
             "features": {"amount": 12.5, "country": "DE"},
             "segments": {"channel": "web"}},
        ])
        result.accepted, result.duplicates        # (1, 0)
        client.log_labels("fraud", [{"id": "e-1", "label": 1}])
        client.evaluations("fraud", window="1d")   # {"windows": [...]}

Data may be a list (or any iterable) of dicts in the JSON event shape, a pandas or polars
DataFrame, a pyarrow Table or RecordBatch, or an iterable of record batches (streamed with
bounded memory). DataFrames and tables use *flat* columns: ``id``, ``version``,
``timestamp``, ``score``, ``prediction``, one column per feature and per segment, named
by the feature or segment (or canonically ``feature.<name>`` / ``segment.<name>``);
labels use ``id``, ``label``, ``timestamp``.

**Batching.** Events go out ``batch_size`` at a time, as Arrow IPC stream bodies
(``format="arrow"``, the default) or JSON bodies (``format="json"``). The answers of all
batches are summed into one :class:`IngestResult`.

**Retries.** Each batch carries its own ``Idempotency-Key`` (a uuid4), the same on every
retry of that batch, so a batch the server committed before its answer was lost is never
counted twice. The client retries on 429 and 503 (and 502/504 from a proxy in front of
the server) and on connection errors and timeouts, waiting as long as ``Retry-After``
says, or else a capped, jittered exponential backoff; it gives up after ``max_retries``
retries. Any other 4xx is never retried: it raises at once.

**Errors.** A problem+json answer becomes the matching :class:`~assay.errors.AssayError`,
carrying the server's ``detail`` as its message and its ``field``:

====== =========================================================================
status raises
====== =========================================================================
400    :class:`~assay.errors.ConfigError`
401    :class:`~assay.errors.AuthenticationError`
403    :class:`~assay.errors.PermissionDeniedError`
404    :class:`~assay.errors.NotFoundError`
409    :class:`~assay.errors.ConflictError`
413    :class:`~assay.errors.PayloadTooLargeError`
422    :class:`~assay.errors.BatchValidationError` (with ``problems``: index, field,
       reason of each bad event, indexes counted from the first event passed) or
       :class:`~assay.errors.InputError`
429    :class:`~assay.errors.OverloadedError` (after the retries)
503    :class:`~assay.errors.StoreUnavailableError` (after the retries; also when the
       server cannot be reached at all)
====== =========================================================================

Every such error also has ``problem`` (the answer's body as a dict) and, when raised by
``log_predictions`` / ``log_labels``, ``partial``: the :class:`IngestResult` of the
batches committed before the failing one (a re-run is safe: stored ids count as
duplicates).

>>> IngestResult(accepted=3, duplicates=1, events=4, batches=1).to_dict()
{'accepted': 3, 'duplicates': 1, 'coerced_to_null': 0, 'events': 4, 'batches': 1}
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import httpx
import numpy as np
import orjson
import pyarrow as pa

from assay import __version__
from assay.errors import (
    AssayError,
    AuthenticationError,
    BatchValidationError,
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    StoreUnavailableError,
)

__all__ = ["Client", "IngestResult"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BASE_FIELDS = ("id", "version", "timestamp", "score", "prediction")
PREDICTION_KEYS = frozenset({*BASE_FIELDS, "features", "segments"})
LABEL_KEYS = frozenset({"id", "label", "timestamp"})
FEATURE_PREFIX, SEGMENT_PREFIX = "feature.", "segment."
TIMESTAMP = pa.timestamp("us", tz="UTC")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_STATUS_ERRORS: dict[int, type[AssayError]] = {
    400: ConfigError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InputError,
}

Kind = Literal["predictions", "labels"]
Progress = Callable[[int], None]


@dataclass
class IngestResult:
    """The summed answers of the batches of one ``log_predictions`` / ``log_labels`` call.

    ``accepted`` events were new and are stored; ``duplicates`` were stored before (or
    repeated within a batch); ``unmatched`` (labels only) are labels whose prediction is
    not stored yet; ``coerced_to_null`` (predictions only) counts NaN/±inf feature values
    stored as null. ``events`` and ``batches`` count what was sent, ``retries`` the
    requests repeated after a 429/503 or a connection error.

    >>> total = IngestResult()
    >>> total.add({"accepted": 2, "duplicates": 0, "unmatched": 1}, rows=2)
    >>> total.add({"accepted": 1, "duplicates": 1, "unmatched": 0}, rows=2)
    >>> total.accepted, total.duplicates, total.unmatched, total.batches
    (3, 1, 1, 2)
    """

    accepted: int = 0
    duplicates: int = 0
    unmatched: int | None = None
    coerced_to_null: int = 0
    events: int = 0
    batches: int = 0
    retries: int = 0

    def add(self, answer: Mapping[str, Any], rows: int) -> None:
        """Add one batch's answer (``rows`` events sent in it)."""
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        if answer.get("unmatched") is not None:
            self.unmatched = (self.unmatched or 0) + int(answer["unmatched"])
        self.coerced_to_null += int(answer.get("coerced_to_null", 0))
        self.events += rows
        self.batches += 1

    def to_dict(self) -> dict[str, int]:
        """The counts as a dict (``unmatched`` only for labels)."""
        out = {"accepted": self.accepted, "duplicates": self.duplicates}
        if self.unmatched is not None:
            out["unmatched"] = self.unmatched
        out.update(coerced_to_null=self.coerced_to_null, events=self.events, batches=self.batches)
        if self.retries:
            out["retries"] = self.retries
        return out


@dataclass(frozen=True)
class _Batch:
    body: bytes
    content_type: str
    rows: int
    offset: int  # index of the batch's first event among all events passed


@dataclass
class _Layout:
    """Which flat column carries which field of a model's events."""

    features: dict[str, str] = field(default_factory=dict)  # column -> feature name
    segments: dict[str, str] = field(default_factory=dict)  # column -> segment name


class Client:
    """A client of one Assay server, authenticated with one API key.

    Args:
        url: Base URL of the server, such as ``http://127.0.0.1:8080``.
        key: The API key (``assay keys create`` prints it).
        batch_size: Events per request (the server accepts up to 10,000 by default).
        format: Body of event batches: ``"arrow"`` (Arrow IPC stream; fastest) or
            ``"json"`` (``{"events": [...]}``).
        timeout: Seconds to wait for connecting, sending and each answer.
        max_retries: Retries of one request after a 429/502/503/504 or a connection
            error; then the error is raised.
        backoff: First delay (seconds) of the exponential backoff used when the server
            gives no ``Retry-After``; it doubles per retry, up to ``max_backoff``.
        max_backoff: Cap of the exponential backoff (``Retry-After`` is honoured as is).
        sleep: How to wait between retries (tests inject a recorder).
        transport: An httpx transport (tests inject ``httpx.MockTransport``).

    The client is not thread-safe; use one per thread. Close it (or use it as a
    context manager) to release its connections.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        batch_size: int = 1000,
        format: Literal["arrow", "json"] = "arrow",
        timeout: float = 30,
        max_retries: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}", field="url")
        if not key:
            raise ConfigError(
                "an API key is required", field="key", hint="create one with: assay keys create"
            )
        if format not in ("arrow", "json"):
            raise ConfigError(f"format must be 'arrow' or 'json', got {format!r}", field="format")
        if int(batch_size) < 1:
            raise ConfigError("batch_size must be at least 1", field="batch_size")
        if int(max_retries) < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigError(
                "max_retries, backoff and max_backoff must not be negative", field="max_retries"
            )
        self.url = url.rstrip("/")
        self.batch_size = int(batch_size)
        self.format = format
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._sleep = sleep
        self._specs: dict[str, dict[str, Any]] = {}
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"assay-client/{__version__}"},
            timeout=timeout,
            transport=transport,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, batch_size={self.batch_size}, format={self.format!r})"

    # -- models ---------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        task: Literal["binary", "multiclass", "regression"],
        features: Mapping[str, Literal["numeric", "categorical"]],
        segments: Sequence[str] = (),
        threshold: float = 0.5,
        classes: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Register a model and its columns; the same spec again is a no-op.

        ``features`` maps each feature to ``"numeric"`` or ``"categorical"``. Returns the
        registered spec; a different spec under an existing name raises
        :class:`~assay.errors.ConflictError`.

        Example::

            client.register_model("fraud", "binary",
                                  {"amount": "numeric", "country": "categorical"},
                                  segments=["channel"])
        """
        body: dict[str, Any] = {
            "name": name,
            "task": task,
            "features": dict(features),
            "segments": list(segments),
            "threshold": threshold,
        }
        if classes is not None:
            body["classes"] = list(classes)
        spec = self._request("POST", "/v1/models", json_body=body).json()
        self._specs[name] = spec
        return spec

    def get_model(self, name: str) -> dict[str, Any]:
        """The registered spec of model ``name`` (:class:`~assay.errors.NotFoundError`)."""
        spec = self._request("GET", f"/v1/models/{_segment(name)}").json()
        self._specs[name] = spec
        return spec

    def list_models(self) -> list[dict[str, Any]]:
        """The specs of the key's tenant's models."""
        return self._request("GET", "/v1/models").json()["models"]

    # -- events ---------------------------------------------------------------------------
    def log_predictions(
        self, model: str, data: Any, *, progress: Progress | None = None
    ) -> IngestResult:
        """Send prediction events in batches; returns the summed answer.

        ``data``: dicts in the JSON event shape (``id``, ``version``, ``timestamp``,
        ``score``, ``prediction``, ``features``, ``segments``), or a pandas / polars
        DataFrame, pyarrow Table / RecordBatch or iterable of record batches with flat
        columns. ``progress`` is called with the number of events of each committed batch.

        Example::

            df = pd.DataFrame({"id": ["e-1"], "version": ["v7"], "score": [0.93],
                               "prediction": [1], "amount": [12.5], "country": ["DE"],
                               "channel": ["web"]})
            client.log_predictions("fraud", df).accepted   # 1
        """
        return self._log(model, "predictions", data, progress)

    def log_labels(
        self, model: str, data: Any, *, progress: Progress | None = None
    ) -> IngestResult:
        """Send label events (``id``, ``label``, ``timestamp``) in batches.

        Labels join the predictions by id whenever they arrive; ``unmatched`` in the
        answer counts those whose prediction is not stored yet (they join later).

        Example::

            client.log_labels("fraud", [{"id": "e-1", "label": 1,
                                         "timestamp": "2026-11-03T08:00:00Z"}])
        """
        return self._log(model, "labels", data, progress)

    # -- evaluations and references -------------------------------------------------------
    def evaluations(self, model: str, **params: Any) -> dict[str, Any]:
        """Metrics, drift and label completeness per window.

        ``params``: ``version``, ``start`` / ``end`` (datetime or ISO-8601 text),
        ``window`` (``1h``, ``6h``, ``1d``, ``7d`` ...), ``segment``.

        Example::

            client.evaluations("fraud", version="v7", window="1d", segment="channel")
        """
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        return self._request(
            "GET", f"/v1/models/{_segment(model)}/evaluations", params=query
        ).json()

    def set_reference(
        self,
        model: str,
        data: Any = None,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Set the data set drift is measured against.

        Either upload ``data`` (flat columns named by feature, as a DataFrame, Arrow
        table or list of dicts; sent as Parquet), or make the stored predictions of
        ``[start, end)`` (of one ``version``, or all) the reference.

        Example::

            client.set_reference("fraud", training_df)
            client.set_reference("fraud", start="2026-11-01", end="2026-11-08", version="v7")
        """
        path = f"/v1/models/{_segment(model)}/reference"
        if data is not None:
            if start is not None or end is not None or version is not None:
                raise ConfigError("pass either data or start/end/version, not both", field="data")
            table = _reference_table(data)
            import pyarrow.parquet as pq

            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            body = sink.getvalue().to_pybytes()
            return self._request("POST", path, content=body, content_type=PARQUET).json()
        if start is None or end is None:
            raise ConfigError("pass data, or start and end of stored predictions", field="start")
        body_json = {"start": _query_value(start), "end": _query_value(end), "version": version}
        return self._request("POST", path, json_body=body_json).json()

    # -- batching -------------------------------------------------------------------------
    def _log(self, model: str, kind: Kind, data: Any, progress: Progress | None) -> IngestResult:
        path = f"/v1/models/{_segment(model)}/{kind}"
        result = IngestResult()
        try:
            for batch in self._batches(model, kind, data):
                # one key per batch, the same on each retry: a batch committed before its
                # answer was lost is answered from the server's record, not stored twice
                headers = {"Idempotency-Key": str(uuid.uuid4())}
                response = self._request(
                    "POST",
                    path,
                    content=batch.body,
                    content_type=batch.content_type,
                    headers=headers,
                    offset=batch.offset,
                    stats=result,
                )
                result.add(response.json(), batch.rows)
                if progress is not None:
                    progress(batch.rows)
        except AssayError as err:
            err.partial = result  # type: ignore[attr-defined]
            raise
        return result

    def _batches(self, model: str, kind: Kind, data: Any) -> Iterator[_Batch]:
        first, items = _peek(data)
        if first is None:
            return
        if isinstance(first, Mapping):
            yield from self._dict_batches(model, kind, items)
        else:
            yield from self._table_batches(model, kind, items)

    def _dict_batches(self, model: str, kind: Kind, events: Iterable[Any]) -> Iterator[_Batch]:
        allowed = PREDICTION_KEYS if kind == "predictions" else LABEL_KEYS
        key = "events" if kind == "predictions" else "labels"
        offset = 0
        for chunk in _chunks(events, self.batch_size):
            for i, event in enumerate(chunk):
                if not isinstance(event, Mapping):
                    raise InputError(
                        f"event {offset + i} is a {type(event).__name__}, not a dict", field="event"
                    )
                extra = event.keys() - allowed
                if extra:
                    name = sorted(map(str, extra))[0]
                    raise InputError(
                        f"event {offset + i} has unknown key {name!r}",
                        field=name,
                        hint=f"{kind} events have the keys {sorted(allowed)}"
                        + (
                            "; features and segments go in their own dicts"
                            if kind == "predictions"
                            else ""
                        ),
                    )
            body = None
            if self.format == "arrow":
                spec = self._specs.get(model) or self.get_model(model)
                table = _table_from_events(chunk, kind, spec)
                if table is not None:
                    body = _arrow_body(table)
            if body is not None:
                yield _Batch(body, ARROW_STREAM, len(chunk), offset)
            else:  # JSON asked for, or values Arrow cannot type: the server reports them
                yield _Batch(_json_body(key, chunk), "application/json", len(chunk), offset)
            offset += len(chunk)

    def _table_batches(self, model: str, kind: Kind, tables: Iterable[Any]) -> Iterator[_Batch]:
        layout: _Layout | None = None
        offset = 0
        for table in _rebatch(_tables(tables), self.batch_size):
            if self.format == "arrow":
                body, content_type = _arrow_body(table), ARROW_STREAM
            elif kind == "labels":
                _check_columns(table.column_names, LABEL_KEYS, "label")
                body, content_type = _json_body("labels", table.to_pylist()), "application/json"
            else:
                if layout is None:
                    layout = _layout(self._specs.get(model) or self.get_model(model), table)
                events = _events_from_rows(table.to_pylist(), layout)
                body, content_type = _json_body("events", events), "application/json"
            yield _Batch(body, content_type, table.num_rows, offset)
            offset += table.num_rows

    # -- HTTP -----------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        offset: int = 0,
        stats: IngestResult | None = None,
    ) -> httpx.Response:
        """Send one request, retrying it as documented; a 2xx answer or a typed error."""
        send_headers = dict(headers or {})
        if json_body is not None:
            content = orjson.dumps(json_body, default=_json_default)
            content_type = "application/json"
        if content_type is not None:
            send_headers["Content-Type"] = content_type
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, content=content, params=params, headers=send_headers
                )
            except httpx.UnsupportedProtocol as err:
                raise ConfigError(f"unsupported URL {self.url!r}: {err}", field="url") from err
            except httpx.TransportError as err:  # refused, reset, timed out ...
                if attempt >= self.max_retries:
                    raise StoreUnavailableError(
                        f"cannot reach the Assay server at {self.url}: {type(err).__name__}: {err}",
                        hint=f"gave up after {attempt + 1} attempt(s)",
                    ) from err
                delay = self._backoff_delay(attempt)
            else:
                if response.is_success:
                    return response
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise error_from_response(response, offset=offset, attempts=attempt + 1)
                delay = _retry_after(response)
                if delay is None:
                    delay = self._backoff_delay(attempt)
                response.close()
            self._sleep(delay)
            attempt += 1
            if stats is not None:
                stats.retries += 1

    def _backoff_delay(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: in [d/2, d], d = backoff·2^attempt."""
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling * (0.5 + 0.5 * random.random())


# -- answers to errors --------------------------------------------------------------------


def error_from_response(
    response: httpx.Response, *, offset: int = 0, attempts: int = 1
) -> AssayError:
    """The typed :class:`~assay.errors.AssayError` of a non-2xx (problem+json) answer.

    ``offset`` shifts the event indexes of a 422's ``problems`` so that they count from
    the first event of the whole call rather than of the batch.

    >>> answer = httpx.Response(404, json={"status": 404, "detail": "model 'x' not found",
    ...                                    "field": "model"})
    >>> err = error_from_response(answer)
    >>> type(err).__name__, str(err), err.field
    ('NotFoundError', "model 'x' not found", 'model')
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip().replace("\n", " ")[:300]
        body = {"status": status, "detail": text or response.reason_phrase}
    detail = str(
        body.get("detail") or body.get("title") or response.reason_phrase or f"HTTP {status}"
    )
    field_name = body.get("field")
    field_name = None if field_name is None else str(field_name)
    listed = body.get("errors")
    err: AssayError
    if (
        status == 422
        and isinstance(listed, list)
        and listed
        and all(isinstance(p, dict) and isinstance(p.get("index"), int) for p in listed)
    ):
        problems = [{**p, "index": p["index"] + offset} for p in listed]
        err = BatchValidationError(problems, total=len(problems))
        if offset:
            detail += f" (event indexes from the batch starting at event {offset})"
        err.args = (detail,)
        err.field = field_name or err.field
    elif status == 429:
        retry = _retry_after(response)
        err = OverloadedError(
            f"{detail} (gave up after {attempts} attempt(s))",
            retry_after=1.0 if retry is None else retry,
        )
        err.field = field_name
    elif status in (502, 503, 504):
        err = StoreUnavailableError(
            f"{detail} (HTTP {status}; gave up after {attempts} attempt(s))", field=field_name
        )
    elif status in _STATUS_ERRORS:
        err = _STATUS_ERRORS[status](detail, field=field_name)
        if isinstance(listed, list):
            err.problems = listed  # type: ignore[attr-defined]
    else:
        err = AssayError(f"HTTP {status}: {detail}", field=field_name)
        err.http_status = status
    err.problem = body  # type: ignore[attr-defined]
    return err


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


# -- data to bodies -----------------------------------------------------------------------


def _segment(name: str) -> str:
    """A model name as one URL path segment."""
    from urllib.parse import quote

    return quote(name, safe="")


def _query_value(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _json_default(value: Any) -> Any:
    """orjson fallback: numpy scalars, pandas timestamps, decimals."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def _json_body(key: str, events: list[Any]) -> bytes:
    try:
        return orjson.dumps({key: events}, default=_json_default, option=_JSON_OPTIONS)
    except TypeError as err:
        raise InputError(f"an event cannot be sent as JSON: {err}", field=key) from err


def _arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _peek(data: Any) -> tuple[Any, Iterable[Any]]:
    """The first item of ``data`` (None when empty) and an iterable of all its items."""
    if data is None:
        raise InputError("no data given", field="data")
    if isinstance(data, pa.Table | pa.RecordBatch):
        return (data if data.num_rows else None), [data]
    module = type(data).__module__.split(".")[0]
    if module in ("pandas", "polars") and hasattr(data, "columns"):
        return (data if len(data) else None), [data]
    if isinstance(data, Mapping | str | bytes):
        raise InputError(
            f"data must be a list of events or a table, not a {type(data).__name__}", field="data"
        )
    if isinstance(data, pa.RecordBatchReader):
        data = iter(data)
    if isinstance(data, Sequence):
        return (data[0] if data else None), data
    iterator = iter(data)
    for first in iterator:
        return first, _prepend(first, iterator)
    return None, ()


def _prepend(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
        return
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def to_table(data: Any) -> pa.Table:
    """A pandas / polars DataFrame, Arrow table or record batch as an Arrow table.

    >>> to_table(pa.record_batch({"id": ["a"]})).num_rows
    1
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        # zone-aware columns as UTC wall time (read back as UTC by _normalize): pyarrow's
        # own conversion of them goes through an API pandas deprecates
        aware = {
            name: data[name].dt.tz_convert("UTC").dt.tz_localize(None)
            for name, dtype in data.dtypes.items()
            if isinstance(dtype, pd.DatetimeTZDtype) and isinstance(name, str)
        }
        return pa.Table.from_pandas(data.assign(**aware) if aware else data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    raise InputError(
        f"cannot read a {type(data).__name__} as a table of events",
        field="data",
        hint="pass dicts, a pandas or polars DataFrame, or a pyarrow Table",
    )


def _tables(items: Iterable[Any]) -> Iterator[pa.Table]:
    for item in items:
        table = to_table(item)
        if table.num_rows:
            yield _normalize(table)


def _normalize(table: pa.Table) -> pa.Table:
    """Plain types the server reads everywhere: string, UTC timestamps, no dictionaries."""
    table = table.replace_schema_metadata(None)
    for i, column in enumerate(table.schema):
        kind = column.type
        target = None
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            target = kind
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            target = pa.string()
        if pa.types.is_timestamp(kind) and (kind.unit != "us" or kind.tz != "UTC"):
            target = TIMESTAMP
        if pa.types.is_date(kind) and column.name == "timestamp":
            target = TIMESTAMP
        if target is not None:
            try:
                cast = table.column(i).cast(target, safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise InputError(
                    f"column {column.name!r} cannot be sent as {target}: {err}", field=column.name
                ) from err
            table = table.set_column(i, pa.field(column.name, target), cast)
    return table


def _rebatch(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last may be shorter), zero-copy where possible."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            take = min(size - held, table.num_rows - start)
            pending.append(table.slice(start, take))
            held += take
            start += take
            if held == size:
                yield _concat(pending)
                pending, held = [], 0
    if held:
        yield _concat(pending)


def _concat(parts: list[pa.Table]) -> pa.Table:
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"record batches disagree on their columns: {err}", field="data") from err


def _table_from_events(
    events: list[Mapping[str, Any]], kind: Kind, spec: Mapping[str, Any]
) -> pa.Table | None:
    """Flat, typed Arrow columns of dict events, read exactly as the server reads JSON.

    Returns None when some value is not of the type its field takes in JSON (a string
    score, a numeric id, a boolean label, an unparsable timestamp, an unknown feature):
    such a batch goes as JSON, so the server names each bad event and field.
    """
    multiclass = spec.get("task") == "multiclass"
    kinds: dict[str, str]
    columns: dict[str, list[Any]] = {}
    if kind == "labels":
        kinds = {
            "id": "string",
            "label": "string" if multiclass else "number",
            "timestamp": "timestamp",
        }
        names = list(kinds)
        for name in names:
            if any(name in e for e in events):
                columns[name] = [e.get(name) for e in events]
    else:
        kinds = {
            "id": "string",
            "version": "string",
            "timestamp": "timestamp",
            "score": "number",
            "prediction": "string" if multiclass else "prediction",
        }
        for name in BASE_FIELDS:
            if any(name in e for e in events):
                columns[name] = [e.get(name) for e in events]
        declared = (
            ("features", FEATURE_PREFIX, dict(spec.get("features") or {})),
            ("segments", SEGMENT_PREFIX, dict.fromkeys(spec.get("segments") or [], "categorical")),
        )
        for key, prefix, fields in declared:
            nested = [e.get(key) or {} for e in events]
            if not all(isinstance(d, Mapping) for d in nested):
                return None
            if any(d.keys() - fields.keys() for d in nested):
                return None
            for name, field_kind in fields.items():
                if any(name in d for d in nested):
                    columns[prefix + name] = [d.get(name) for d in nested]
                    kinds[prefix + name] = "number" if field_kind == "numeric" else "string"
    arrays = {}
    for name, values in columns.items():
        array = _typed_array(values, kinds[name])
        if array is None:
            return None
        arrays[name] = array
    return pa.table(arrays) if arrays else None


def _typed_array(values: list[Any], kind: str) -> pa.Array | None:
    """``values`` as the server's JSON reader takes them, or None if it would not."""
    if kind == "timestamp":
        stamps = []
        for value in values:
            if value is None:
                stamps.append(None)
                continue
            if isinstance(value, str):
                try:
                    value = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return None
            if not isinstance(value, datetime):
                return None
            stamps.append(value.replace(tzinfo=UTC) if value.tzinfo is None else value)
        return pa.array(stamps, TIMESTAMP)
    present = set(map(type, values)) - {type(None)}
    if not present:
        return pa.nulls(len(values))
    if kind == "string":
        target, ok = pa.string(), all(issubclass(t, str) for t in present)
    else:
        target, ok = pa.float64(), all(_is_number(t) for t in present)
        if (
            not ok
            and kind == "prediction"
            and all(_is_number(t) or issubclass(t, bool | np.bool_) for t in present)
        ):  # JSON true/false are predictions 1/0
            values = [float(v) if isinstance(v, bool | np.bool_) else v for v in values]
            ok = True
    if not ok:
        return None
    try:
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None


def _is_number(kind: type) -> bool:
    """A number type as JSON has them: ints and floats, not booleans."""
    return issubclass(kind, int | float | np.integer | np.floating) and not issubclass(
        kind, bool | np.bool_
    )


def _check_columns(names: Iterable[str], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise InputError(f"unknown {what} column(s) {unknown[:5]}", field=unknown[0])


def _layout(spec: Mapping[str, Any], table: pa.Table) -> _Layout:
    """Map a flat table's columns to the model's features and segments."""
    layout = _Layout()
    names = set(table.column_names)
    used = set(BASE_FIELDS)
    for prefix, declared, target in (
        (FEATURE_PREFIX, spec.get("features") or {}, layout.features),
        (SEGMENT_PREFIX, spec.get("segments") or [], layout.segments),
    ):
        for name in declared:
            for candidate in (prefix + name, name):
                if candidate in names:
                    target[candidate] = name
                    used.add(candidate)
                    break
    unknown = sorted(names - used)
    if unknown:
        raise InputError(
            f"column(s) {unknown[:5]} are not fields of model {spec.get('name')!r}",
            field=unknown[0],
            hint="send id, version, timestamp, score, prediction and the registered "
            "features and segments",
        )
    return layout


def _events_from_rows(rows: list[dict[str, Any]], layout: _Layout) -> list[dict[str, Any]]:
    """JSON events (features and segments nested) of flat rows."""
    base = [name for name in BASE_FIELDS if rows and name in rows[0]]
    features, segments = list(layout.features.items()), list(layout.segments.items())
    events = []
    for row in rows:
        event = {name: row[name] for name in base}
        if features:
            event["features"] = {name: row[col] for col, name in features}
        if segments:
            event["segments"] = {name: row[col] for col, name in segments}
        events.append(event)
    return events


def _reference_table(data: Any) -> pa.Table:
    """A reference data set as a flat table (event dicts have their features flattened)."""
    first, items = _peek(data)
    if first is None:
        raise InputError("the reference has no rows", field="reference")
    if isinstance(first, Mapping):
        rows = []
        for event in items:
            row = {k: v for k, v in event.items() if k not in ("features", "segments")}
            row.update(event.get("features") or {})
            row.update(event.get("segments") or {})
            rows.append(row)
        return _normalize(pa.Table.from_pylist(rows))
    return pa.concat_tables(list(_tables(items)), promote_options="permissive")
