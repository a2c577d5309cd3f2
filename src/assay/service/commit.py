"""Committing validated event batches: several requests per transaction, each answered alone.

The server's write queue hands over the batches queued back to back for one (tenant,
model, kind); :func:`commit_jobs` stores them with one call of the store (one transaction,
one durable commit) and answers each request as if it had been committed alone:

- a batch is all-or-nothing: if the shared transaction fails, nothing of it is stored and
  every batch is tried again on its own, so one failing batch fails alone;
- an ``Idempotency-Key`` recorded before (or by an earlier batch of the group) returns the
  recorded answer when the body is the same, and a 422 when it is not;
- repeats inside a request count as duplicates of its answer.

>>> import tempfile, pyarrow as pa
>>> from assay.store.duckdb_store import DuckDBStore
>>> from assay.store.model import ModelSpec
>>> from assay.service.ingest import IngestLimits, predictions_from_json
>>> store = DuckDBStore(tempfile.mkdtemp())
>>> spec, _ = store.register_model("acme", ModelSpec(name="m", task="binary"))
>>> def job(ids: str, key: str | None) -> IngestJob:
...     body = '{"events": [%s]}' % ", ".join(
...         '{"id": "%s", "version": "v1", "score": 0.5}' % i for i in ids)
...     batch = predictions_from_json(spec, body.encode(), IngestLimits())
...     return IngestJob("acme", "m", "predictions", batch, key, body_hash(body.encode()))
>>> [answer for answer, _ in commit_jobs(store, [job("ab", "k1"), job("bcc", None),
...                                              job("ab", "k1")])]
[({'accepted': 2, 'duplicates': 0, 'coerced_to_null': 0}, False), \
({'accepted': 1, 'duplicates': 2, 'coerced_to_null': 0}, False), \
({'accepted': 2, 'duplicates': 0, 'coerced_to_null': 0}, True)]
>>> store.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assay.errors import InputError
from assay.service.ingest import PreparedBatch, body_hash
from assay.store.base import AppendResult, EventKind, Idempotency, Recorded, Store

Answer = tuple[dict[str, Any], bool]  # (HTTP answer, replayed from an Idempotency-Key)
Outcome = tuple[Answer | None, BaseException | None]

__all__ = ["IngestJob", "body_hash", "commit_jobs"]


@dataclass(frozen=True)
class IngestJob:
    """One validated request on its way to the store.

    ``digest`` identifies the body (with its kind and model) for ``Idempotency-Key``.
    """

    tenant: str
    model: str
    kind: EventKind
    batch: PreparedBatch
    idem_key: str | None = None
    digest: str = ""

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields the store does not count (recorded with the key)."""
        extra: dict[str, Any] = {"duplicates_in_batch": self.batch.repeated_in_batch}
        if self.kind == "predictions":
            extra["coerced_to_null"] = self.batch.coerced_to_null
        return extra

    @property
    def idempotency(self) -> Idempotency | None:
        """What the store records with the batch, if the request carried a key."""
        return Idempotency(self.idem_key, self.digest, self.extra) if self.idem_key else None


def commit_jobs(store: Store, jobs: list[IngestJob]) -> list[Outcome]:
    """Store the jobs (one tenant, model and kind, in order); each one's answer or error."""
    first = jobs[0]
    if len(jobs) == 1 and first.idem_key is None:
        append = store.append_predictions if first.kind == "predictions" else store.append_labels
        try:
            return [(_answer(first, append(first.tenant, first.model, first.batch.table)), None)]
        except Exception as err:
            return [(None, err)]
    batches = [(job.batch.table, job.idempotency) for job in jobs]
    try:
        outcomes = store.append_many(first.tenant, first.model, first.kind, batches)
    except Exception as err:  # nothing of the group is stored
        if len(jobs) == 1:
            return [(None, err)]
        return [commit_jobs(store, [job])[0] for job in jobs]
    return [_settle(job, outcome) for job, outcome in zip(jobs, outcomes, strict=True)]


def _settle(job: IngestJob, outcome: AppendResult | Recorded) -> Outcome:
    if isinstance(outcome, AppendResult):
        return _answer(job, outcome), None
    if outcome.body_hash != job.digest:
        error = InputError("this Idempotency-Key was used with a different body",
                           field="Idempotency-Key")  # fmt: skip
        return None, error
    return (_merge(outcome.answer), True), None


def _answer(job: IngestJob, result: AppendResult) -> Answer:
    return _merge({**result.to_dict(), **job.extra}), False


def _merge(stored: dict[str, Any]) -> dict[str, Any]:
    """The HTTP answer: repeats inside the batch count as duplicates too."""
    answer = dict(stored)
    answer["duplicates"] += answer.pop("duplicates_in_batch", 0)
    return answer
