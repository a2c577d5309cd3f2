"""The Store protocol: what the service layer needs from any storage backend.

Events arrive as Arrow tables in the canonical layout below; scans return Arrow. Two
implementations pass one contract test suite: DuckDB (embedded, the default) and
PostgreSQL (several server replicas).

Canonical prediction columns: ``id`` (string), ``version`` (string), ``timestamp``
(timestamp[us, UTC]), ``score`` (float64, nullable), ``prediction`` (float64 for binary and
regression, string for multiclass; nullable), then ``feature.<name>`` (float64 or string)
and ``segment.<name>`` (string), then the serving call's ``latency_ms`` and ``error``
(1.0 for a failed call; both nullable), then for multiclass models ``scores.<class>`` (the
class probability, float64, nullable) per registered class. Label columns: ``id``,
``label`` (float64 or string), ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import pyarrow as pa

from assay.store.model import ModelSpec

FEATURE_PREFIX = "feature."
SEGMENT_PREFIX = "segment."
SCORES_PREFIX = "scores."


@dataclass(frozen=True)
class AppendResult:
    """Outcome of one committed batch."""

    accepted: int
    duplicates: int
    unmatched: int | None = None  # labels only: labels whose prediction is not stored yet

    def to_dict(self) -> dict[str, int]:
        """JSON body of the HTTP answer."""
        out = {"accepted": self.accepted, "duplicates": self.duplicates}
        if self.unmatched is not None:
            out["unmatched"] = self.unmatched
        return out


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` to record with a batch, and the answer's extra fields."""

    key: str
    body_hash: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """The answer recorded earlier under a batch's ``Idempotency-Key``: the batch is not
    applied again (the caller compares ``body_hash`` with its own body's)."""

    body_hash: str
    answer: dict[str, Any]


EventKind = Literal["predictions", "labels"]


@dataclass(frozen=True)
class DirtyBucket:
    """A (version, hour bucket) to roll up again; ``mark`` orders re-dirtying."""

    version: str
    bucket: datetime
    mark: int


@dataclass(frozen=True)
class VersionInfo:
    """A model version seen in the predictions."""

    version: str
    predictions: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Rollup:
    """The states of one (version, hour bucket, segment value)."""

    version: str
    bucket: datetime
    segment_column: str  # "" for the whole version
    segment_value: str
    rows: int
    labeled: int
    states: bytes


class Store(Protocol):
    """Storage of models, events, rollups, references and evaluation runs."""

    def register_model(self, tenant: str, spec: ModelSpec) -> tuple[ModelSpec, bool]:
        """Register ``spec``; returns (spec, created). The same spec again is a no-op."""

    def get_model(self, tenant: str, name: str) -> ModelSpec:
        """The model, or :class:`~assay.errors.NotFoundError` (also for other tenants)."""

    def list_models(self, tenant: str) -> list[ModelSpec]:
        """The tenant's models, by name."""

    def list_versions(self, tenant: str, model: str) -> list[VersionInfo]:
        """Versions seen in the model's predictions."""

    def append_predictions(
        self, tenant: str, model: str, events: pa.Table, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Store new predictions atomically; re-sent ids are counted as duplicates.

        Marks the (version, hour) buckets of the new events dirty. With ``idempotency``,
        records (key, body hash, answer) in the same transaction.
        """

    def append_labels(
        self, tenant: str, model: str, labels: pa.Table, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Store new labels atomically; marks the matched predictions' buckets dirty."""

    def append_many(
        self,
        tenant: str,
        model: str,
        kind: EventKind,
        batches: Sequence[tuple[pa.Table, Idempotency | None]],
    ) -> list[AppendResult | Recorded]:
        """Apply several batches of one kind in order, sharing one transaction and commit.

        Each outcome is what :meth:`append_predictions` / :meth:`append_labels` would
        answer had the batches been sent one after the other, except that a batch whose
        ``Idempotency-Key`` is already recorded (before, or by an earlier batch of the
        call) is not applied: its outcome is the :class:`Recorded` answer. If the call
        raises, none of its batches is stored.
        """

    def idempotent_answer(self, tenant: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(body hash, answer) recorded for an ``Idempotency-Key``, if any."""

    def prune_idempotency(self, before: datetime) -> int:
        """Forget the ``Idempotency-Key`` answers recorded before ``before``; how many."""

    def scan(
        self,
        tenant: str,
        model: str,
        *,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Predictions joined with their labels (``label`` null when missing) in [start, end)."""

    def dirty_buckets(self, tenant: str, model: str) -> list[DirtyBucket]:
        """Buckets whose rollups are out of date, with the mark they were dirtied at."""

    def replace_rollups(
        self, tenant: str, model: str, dirty: DirtyBucket, rollups: list[Rollup]
    ) -> None:
        """Replace one bucket's rollups; clear its dirty mark unless it was re-marked since."""

    def replace_rollups_many(
        self, tenant: str, model: str, updates: list[tuple[DirtyBucket, list[Rollup]]]
    ) -> None:
        """:meth:`replace_rollups` for several buckets in one transaction."""

    def note_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Record ``hours`` as rebuilt outside a monitor pass, for the next pass to judge."""

    def restated(self, tenant: str, model: str) -> set[datetime]:
        """The hours noted (by any process) and not forgotten yet."""

    def forget_restated(self, tenant: str, model: str, hours: Iterable[datetime]) -> None:
        """Forget ``hours`` once a monitor pass has saved them (hours noted since stay)."""

    def load_rollups(
        self,
        tenant: str,
        model: str,
        *,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        segment_column: str = "",
    ) -> list[Rollup]:
        """Rollups of the buckets in [start, end) for one segment column ("" = overall)."""

    def save_reference(self, tenant: str, model: str, states: bytes, meta: dict[str, Any]) -> None:
        """Store the model's drift reference (packed feature states)."""

    def load_reference(self, tenant: str, model: str) -> tuple[bytes, dict[str, Any]] | None:
        """The model's reference, if any."""

    def put_rollout(self, tenant: str, model: str, name: str, spec: dict[str, Any]) -> bool:
        """Register or replace the model's rollout ``name``; True when it is new."""

    def get_rollouts(self, tenant: str, model: str) -> dict[str, dict[str, Any]]:
        """The model's rollouts by name."""

    def delete_rollout(self, tenant: str, model: str, name: str) -> bool:
        """Remove a rollout; True when it existed."""

    def ping(self) -> None:
        """Raise if the store cannot answer (for ``/readyz``)."""

    def close(self) -> None:
        """Release connections."""


def empty_prediction_table(spec: ModelSpec) -> pa.Schema:
    """The canonical Arrow schema of a model's predictions."""
    label_type = pa.string() if spec.task == "multiclass" else pa.float64()
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("prediction", label_type),
    ]
    for name, kind in spec.features.items():
        fields.append(
            pa.field(FEATURE_PREFIX + name, pa.float64() if kind == "numeric" else pa.string())
        )
    fields.extend(pa.field(SEGMENT_PREFIX + s, pa.string()) for s in spec.segments)
    fields += [pa.field("latency_ms", pa.float64()), pa.field("error", pa.float64())]
    fields.extend(pa.field(SCORES_PREFIX + c, pa.float64()) for c in score_classes(spec))
    return pa.schema(fields)


def score_classes(spec: ModelSpec) -> list[str]:
    """The classes whose probabilities a model's prediction events carry (multiclass)."""
    return list(spec.classes or []) if spec.task == "multiclass" else []


def label_schema(spec: ModelSpec) -> pa.Schema:
    """The canonical Arrow schema of a model's labels."""
    label_type = pa.string() if spec.task == "multiclass" else pa.float64()
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("label", label_type, nullable=False),
            pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )
