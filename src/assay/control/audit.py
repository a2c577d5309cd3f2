"""The hash-chained audit log: records, their hashes and the verification of a chain.

Every record names the hash of the record before it (``prev_hash``; the first names
:data:`GENESIS_HASH`, 64 zeros) and carries its own ``hash``: the SHA-256 of the canonical
JSON (sorted keys, no spaces, UTF-8) of all its other fields. Changing, removing,
inserting or reordering a record therefore breaks the chain at that record, and
:func:`verify_chain` names the first record where it breaks.

What the chain cannot show on its own: records cut off **at the end** leave a shorter
chain that is still valid, and someone who may write the database can recompute every
hash after a change. Both are caught by comparing with an **anchor** — a ``(seq, hash)``
pair taken earlier (:meth:`~assay.control.ControlStore.audit_head`) and kept somewhere the
database's writers cannot change (a ticket, a signed commit, another system's log).

>>> first = AuditRecord.build(1, "2026-01-01T00:00:00.000000Z", "acme", "cli:alice",
...                           "key.create", "00112233445566aa", {"role": "read"}, GENESIS_HASH)
>>> second = AuditRecord.build(2, "2026-01-01T00:00:01.000000Z", None, "server",
...                            "server.start", "-", {}, first.hash)
>>> verify_chain([first, second])
AuditVerification(ok=True, records=2, first_bad_seq=None, reason=None)
>>> verify_chain([second]).first_bad_seq
1
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from assay.errors import ConfigError

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string with microseconds and a ``Z``.

    >>> ts = utc_now()
    >>> len(ts), ts[10], ts[-1]
    (27, 'T', 'Z')
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; NaN and infinity are refused.

    >>> canonical_json({"b": 1, "a": [1.5, None, "é"]})
    '{"a":[1.5,null,"é"],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def normalise_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check that ``details`` is a JSON object and return it as JSON would give it back.

    Dates and datetimes become ISO-8601 strings and enums their values; anything else
    that JSON cannot hold (sets, bytes, NaN) is refused with :class:`ConfigError`.

    >>> from datetime import datetime, timezone
    >>> normalise_details({"ids": ("a", "b"), "at": datetime(2026, 1, 2, tzinfo=timezone.utc)})
    {'ids': ['a', 'b'], 'at': '2026-01-02T00:00:00+00:00'}
    """
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise ConfigError("audit details must be a mapping", field="details")
    try:
        text = json.dumps(dict(details), allow_nan=False, default=_json_default)
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"audit details are not JSON: {err}", field="details") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log. ``hash`` covers every other field."""

    seq: int
    timestamp: str
    tenant: str | None
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str

    @classmethod
    def build(
        cls,
        seq: int,
        timestamp: str,
        tenant: str | None,
        actor: str,
        action: str,
        target: str,
        details: Mapping[str, Any] | None,
        prev_hash: str,
    ) -> AuditRecord:
        """A new record with its hash computed.

        >>> rec = AuditRecord.build(1, "t", None, "a", "x", "y", {}, GENESIS_HASH)
        >>> rec.hash == rec.computed_hash()
        True
        """
        clean = normalise_details(details)
        body = _body(seq, timestamp, tenant, actor, action, target, clean, prev_hash)
        return cls(seq, timestamp, tenant, actor, action, target, clean, prev_hash, _sha(body))

    def computed_hash(self) -> str:
        """The hash this record's fields call for (differs from ``hash`` if tampered with)."""
        body = _body(
            self.seq,
            self.timestamp,
            self.tenant,
            self.actor,
            self.action,
            self.target,
            self.details,
            self.prev_hash,
        )
        return _sha(body)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (all fields, hashes included)."""
        return {
            "seq": self.seq,
            "timestamp": self.timestamp,
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _body(
    seq: int,
    timestamp: str,
    tenant: str | None,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    return canonical_json(
        {
            "seq": seq,
            "timestamp": timestamp,
            "tenant": tenant,
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
            "prev_hash": prev_hash,
        }
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_to_row(record: AuditRecord) -> tuple[Any, ...]:
    """The record as stored: its fields in order, ``details`` as canonical JSON text."""
    return (
        record.seq,
        record.timestamp,
        record.tenant,
        record.actor,
        record.action,
        record.target,
        canonical_json(record.details),
        record.prev_hash,
        record.hash,
    )


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    """A record from a stored row; unreadable details are kept so that verification fails.

    >>> rec = AuditRecord.build(1, "t", None, "a", "x", "y", {"k": [1]}, GENESIS_HASH)
    >>> record_from_row(record_to_row(rec)) == rec
    True
    """
    seq, timestamp, tenant, actor, action, target, details_text, prev_hash, digest = row
    try:
        details = json.loads(details_text)
    except (TypeError, ValueError):
        details = None
    if not isinstance(details, dict):
        details = {"unreadable_details": str(details_text)}
    return AuditRecord(
        int(seq), timestamp, tenant, actor, action, target, details, prev_hash, digest
    )


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of checking an audit chain.

    ``records`` counts the records found intact before the first bad one (all of them
    when ``ok``); ``first_bad_seq`` is the seq where the chain first breaks.
    """

    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str | None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.records} records"
        return f"audit log broken at record {self.first_bad_seq}: {self.reason}"


def verify_chain(
    records: Iterable[AuditRecord], anchor: tuple[int, str] | None = None
) -> AuditVerification:
    """Check a whole chain, given in seq order, and name the first record where it breaks.

    Checks, record by record: the seq is the next one (a gap means a removed record), the
    stored hash matches the content (else the record was changed), and ``prev_hash``
    matches the previous record's hash (else a record was inserted, removed or moved
    here, or the one before was changed and rehashed). With ``anchor=(seq, hash)`` the
    chain must also reach ``seq`` and have ``hash`` there, which catches records cut off
    the end and a log rewritten up to the anchor.

    >>> a = AuditRecord.build(1, "t1", None, "a", "x", "-", {}, GENESIS_HASH)
    >>> b = AuditRecord.build(2, "t2", None, "a", "y", "-", {}, a.hash)
    >>> print(verify_chain([b, a]))
    audit log broken at record 1: record 1 is missing (the next stored record is 2)
    >>> verify_chain([a], anchor=(2, b.hash)).first_bad_seq
    2
    """
    expected = 1
    prev_hash = GENESIS_HASH
    for rec in records:
        if rec.seq != expected:
            if rec.seq > expected:
                why = f"record {expected} is missing (the next stored record is {rec.seq})"
            else:
                why = f"records out of order (record {rec.seq} found where {expected} belongs)"
            return AuditVerification(False, expected - 1, expected, why)
        if rec.computed_hash() != rec.hash:
            why = "the stored hash does not match the record's content (record modified)"
            return AuditVerification(False, expected - 1, rec.seq, why)
        if rec.prev_hash != prev_hash:
            if rec.seq == 1:
                why = "the first record's prev_hash is not the genesis hash"
            else:
                why = (
                    f"prev_hash does not match the hash of record {rec.seq - 1} (a record "
                    "was inserted, removed or moved here, or the one before was rewritten)"
                )
            return AuditVerification(False, expected - 1, rec.seq, why)
        if anchor is not None and rec.seq == anchor[0] and rec.hash != anchor[1]:
            why = "the hash differs from the anchor (the log was rewritten up to here)"
            return AuditVerification(False, expected - 1, rec.seq, why)
        prev_hash = rec.hash
        expected += 1
    count = expected - 1
    if anchor is not None and anchor[0] > count:
        why = (
            f"the log ends at record {count} but the anchor names record {anchor[0]} "
            "(records removed from the end)"
        )
        return AuditVerification(False, count, count + 1, why)
    return AuditVerification(True, count, None, None)


def parse_anchor(text: str) -> tuple[int, str]:
    """Parse an anchor written as ``SEQ:HASH`` (as printed by ``assay audit head``).

    >>> parse_anchor("12:" + "ab" * 32)[0]
    12
    """
    seq_text, _, digest = text.strip().partition(":")
    try:
        seq = int(seq_text)
    except ValueError:
        seq = -1
    if seq < 0 or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise ConfigError(
            f"invalid anchor {text!r}", field="anchor", hint="write it as SEQ:HASH (64 hex digits)"
        )
    return seq, digest
