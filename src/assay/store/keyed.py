"""Which batches of a group to apply, given their ``Idempotency-Key`` s (both stores).

A batch whose key is recorded already is not applied (its outcome is the recorded
answer); of several batches of one call with the same key only the first is applied, and
the others answer with its answer, as if they had arrived after it was committed.

>>> from assay.store.base import AppendResult, Idempotency
>>> idems = [Idempotency("k1", "h1", {}), None, Idempotency("k1", "h2", {}),
...          Idempotency("k0", "h0", {})]
>>> plan = KeyedPlan(idems, {"k0": Recorded("h0", {"accepted": 3, "duplicates": 0})})
>>> plan.applied
[0, 1]
>>> plan.finish([AppendResult(2, 0), AppendResult(1, 1)])
[AppendResult(accepted=2, duplicates=0, unmatched=None), \
AppendResult(accepted=1, duplicates=1, unmatched=None), \
Recorded(body_hash='h1', answer={'accepted': 2, 'duplicates': 0}), \
Recorded(body_hash='h0', answer={'accepted': 3, 'duplicates': 0})]
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from assay.errors import ConflictError
from assay.store.base import AppendResult, EventKind, Idempotency, Recorded


class KeyedPlan:
    """The batches to apply (``applied``, indices in order) and how to answer the rest."""

    def __init__(self, idems: Sequence[Idempotency | None], recorded: dict[str, Recorded]):
        self.idems = list(idems)
        self.outcomes: list[AppendResult | Recorded | None] = [None] * len(self.idems)
        self._owner: dict[str, int] = {}  # key -> the batch of this call that records it
        self.applied: list[int] = []
        for j, idem in enumerate(self.idems):
            if idem is not None and idem.key in recorded:
                self.outcomes[j] = recorded[idem.key]
            elif idem is None or idem.key not in self._owner:
                self.applied.append(j)
                if idem is not None:
                    self._owner[idem.key] = j

    def finish(self, results: Sequence[AppendResult]) -> list[AppendResult | Recorded]:
        """Every batch's outcome, given the results of the applied ones (in order)."""
        for j, result in zip(self.applied, results, strict=True):
            self.outcomes[j] = result
        done: list[AppendResult | Recorded] = []
        for j, idem in enumerate(self.idems):
            outcome = self.outcomes[j]
            if outcome is None and idem is not None:  # a key repeated within the call
                first = self._owner[idem.key]
                owner_idem, owner_result = self.idems[first], self.outcomes[first]
                assert owner_idem is not None and isinstance(owner_result, AppendResult)
                outcome = Recorded(owner_idem.body_hash, answer(owner_result, owner_idem))
            assert outcome is not None
            done.append(outcome)
        return done


def answer(result: AppendResult, idem: Idempotency) -> dict[str, object]:
    """The answer recorded with a key: the counts and the request's extra fields.

    >>> answer(AppendResult(3, 1), Idempotency("k", "h", {"coerced_to_null": 0}))
    {'accepted': 3, 'duplicates': 1, 'coerced_to_null': 0}
    """
    return {**result.to_dict(), **idem.extra}


def only(outcomes: list[AppendResult | Recorded]) -> AppendResult:
    """The outcome of a single batch; a batch whose key is recorded already is refused.

    >>> only([AppendResult(2, 0)])
    AppendResult(accepted=2, duplicates=0, unmatched=None)
    >>> only([Recorded("h", {"accepted": 2, "duplicates": 0})])
    Traceback (most recent call last):
    ...
    assay.errors.ConflictError: this Idempotency-Key is recorded already (ask idempotent_answer() \
for the recorded answer)
    """
    [outcome] = outcomes
    if isinstance(outcome, Recorded):
        raise ConflictError(
            "this Idempotency-Key is recorded already", field="Idempotency-Key",
            hint="ask idempotent_answer() for the recorded answer",
        )  # fmt: skip
    return outcome


class SingleBatchAppends:
    """``append_predictions`` / ``append_labels``: one batch through ``append_many``."""

    def append_many(
        self,
        tenant: str,
        model: str,
        kind: EventKind,
        batches: Sequence[tuple[pa.Table, Idempotency | None]],
    ) -> list[AppendResult | Recorded]:
        raise NotImplementedError  # pragma: no cover - each store implements it

    def append_predictions(
        self, tenant: str, model: str, events: pa.Table, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Insert the batch's new events in one transaction; mark their buckets dirty.

        Events must be unique by (id, version) within ``events`` (the service removes
        repeats first). A key already recorded with ``idempotency`` raises.
        """
        return only(self.append_many(tenant, model, "predictions", [(events, idempotency)]))

    def append_labels(
        self, tenant: str, model: str, labels: pa.Table, idempotency: Idempotency | None = None
    ) -> AppendResult:
        """Insert new labels in one transaction; mark the matched predictions' buckets dirty."""
        return only(self.append_many(tenant, model, "labels", [(labels, idempotency)]))
