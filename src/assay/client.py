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
batches are summed into one :class:`IngestResult`. Dict events keep the JSON meaning
either way: with ``format="arrow"`` a batch becomes typed Arrow columns only when every
value has the type its field takes in JSON (per the model's spec, read once); otherwise
that batch goes as JSON, and the server names each bad event (see
:mod:`assay.client_data`). Keys outside the event shape, which the server would ignore,
are refused before anything is sent.

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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import httpx
import orjson
import pyarrow as pa

from assay import __version__
from assay import client_data as bodies
from assay.client_data import Kind
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

RETRY_STATUSES = frozenset({429, 502, 503, 504})
JSON = "application/json"
_STATUS_ERRORS: dict[int, type[AssayError]] = {
    400: ConfigError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InputError,
}

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
        ``score``, ``prediction``, ``features``, ``segments``; ``scores`` of every class
        for a multiclass model), or a pandas / polars DataFrame, pyarrow Table /
        RecordBatch or iterable of record batches with flat columns (``scores.<class>``).
        ``progress`` is called with the number of events of each committed batch.

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
            table = bodies.reference_table(data)
            import pyarrow.parquet as pq

            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            body = sink.getvalue().to_pybytes()
            return self._request("POST", path, content=body, content_type=bodies.PARQUET).json()
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
        first, items = bodies.peek(data)
        if first is None:
            return
        if isinstance(first, Mapping):
            yield from self._dict_batches(model, kind, items)
        else:
            yield from self._table_batches(model, kind, items)

    def _spec(self, model: str) -> dict[str, Any]:
        """The model's registered spec (read once per client)."""
        return self._specs.get(model) or self.get_model(model)

    def _dict_batches(self, model: str, kind: Kind, events: Iterable[Any]) -> Iterator[_Batch]:
        key = "events" if kind == "predictions" else "labels"
        offset = 0
        for chunk in bodies.chunks(events, self.batch_size):
            bodies.check_events(chunk, kind, offset)
            table = None
            if self.format == "arrow":
                table = bodies.table_from_events(chunk, kind, self._spec(model))
            if table is not None:
                yield _Batch(bodies.arrow_body(table), bodies.ARROW_STREAM, len(chunk), offset)
            else:  # JSON asked for, or values JSON reads differently: the server judges them
                yield _Batch(bodies.json_body(key, chunk), JSON, len(chunk), offset)
            offset += len(chunk)

    def _table_batches(self, model: str, kind: Kind, tables: Iterable[Any]) -> Iterator[_Batch]:
        layout: bodies.Layout | None = None
        offset = 0
        for table in bodies.rebatch(bodies.tables(tables), self.batch_size):
            if self.format == "arrow":
                body, content_type = bodies.arrow_body(table), bodies.ARROW_STREAM
            elif kind == "labels":
                bodies.check_columns(table.column_names, bodies.LABEL_KEYS, "label")
                body, content_type = bodies.json_body("labels", table.to_pylist()), JSON
            else:
                layout = layout or bodies.layout_of(self._spec(model), table)
                events = bodies.events_from_rows(table.to_pylist(), layout)
                body, content_type = bodies.json_body("events", events), JSON
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
            content = orjson.dumps(json_body, default=bodies.json_default)
            content_type = JSON
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
