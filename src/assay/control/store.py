"""The control store: tenants, API keys and the audit log in one small database.

It lives apart from the data store on purpose: the embedded data store is a DuckDB file
that only the server process may write, while ``assay keys create`` must work while the
server runs. SQLite (``<data dir>/control.sqlite``) lets several processes write one file;
PostgreSQL serves deployments with several server replicas.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
...     info, token = store.create_key("acme", "ingest", actor="cli:alice", name="uploader")
...     key = store.authenticate(token)
...     print(key.tenant, key.role, key.can("ingest", "acme"), store.verify_audit())
acme ingest True ok: 2 records
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from assay.control.audit import (
    GENESIS_HASH,
    AuditRecord,
    AuditVerification,
    record_from_row,
    record_to_row,
    utc_now,
    verify_chain,
)
from assay.control.backend import CONTROL_FILE, Database, Session, open_database
from assay.control.keys import (
    KeyInfo,
    TenantInfo,
    hash_secret,
    new_key_id,
    new_secret,
    new_token,
    parse_token,
    validate_actor,
    validate_key_name,
    validate_role,
    validate_tenant,
)
from assay.errors import ConfigError, NotFoundError

__all__ = ["CONTROL_FILE", "ControlStore", "open_control_store"]

_KEY_COLUMNS = "key_id, tenant, role, name, created_at, revoked_at"
_AUDIT_COLUMNS = "seq, timestamp, tenant, actor, action, target, details, prev_hash, hash"
# Compared against when a token names an unknown key, so that both paths do the same work.
_DUMMY_DIGEST = hash_secret("assay-no-such-key")
_PAGE = 1000


def open_control_store(location: str | Path) -> ControlStore:
    """Open (creating or upgrading it) the control store at ``location``.

    ``location`` is a data directory — the store is ``<dir>/control.sqlite``, and the
    directory is created if missing — or a ``postgresql://`` URL.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
    ...     print(store.backend, store.list_keys())
    sqlite []
    """
    db = open_database(location)
    return ControlStore(db, db.description)


class ControlStore:
    """Tenants, API keys and the hash-chained audit log; safe to share between threads.

    Use :func:`open_control_store` to get one. Every change (a tenant, a key, a
    revocation) is written in the same transaction as its audit record.
    """

    def __init__(self, db: Database, location: str):
        self._db = db
        self.location = location

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._db.dialect.name

    def close(self) -> None:
        """Release the store's connections."""
        self._db.close()

    def __enter__(self) -> ControlStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ControlStore({self.location!r})"

    # -- tenants -----------------------------------------------------------------------

    def create_tenant(self, name: str, *, actor: str) -> TenantInfo:
        """Create tenant ``name`` if it does not exist yet, and return it.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     print(store.create_tenant("acme", actor="docs").name, len(store.list_tenants()))
        acme 1
        """
        validate_tenant(name)
        validate_actor(actor)
        with self._db.write() as s:
            return self._ensure_tenant(s, name, actor)

    def list_tenants(self) -> list[TenantInfo]:
        """All tenants, by name.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     _ = store.create_key("beta", "read", actor="docs")
        ...     print([t.name for t in store.list_tenants()])
        ['beta']
        """
        with self._db.read() as s:
            rows = s.rows("SELECT name, created_at FROM control_tenants ORDER BY name")
        return [TenantInfo(*row) for row in rows]

    def _ensure_tenant(self, s: Session, name: str, actor: str) -> TenantInfo:
        row = s.one("SELECT name, created_at FROM control_tenants WHERE name = ?", (name,))
        if row is not None:
            return TenantInfo(*row)
        now = utc_now()
        s.run("INSERT INTO control_tenants (name, created_at) VALUES (?, ?)", (name, now))
        self._append(s, actor, "tenant.create", name, {}, tenant=name, timestamp=now)
        return TenantInfo(name, now)

    # -- keys --------------------------------------------------------------------------

    def create_key(
        self, tenant: str, role: str, *, actor: str, name: str | None = None
    ) -> tuple[KeyInfo, str]:
        """Create an API key; return its info and the token, which is shown only here.

        The tenant is created if it does not exist yet. Only the SHA-256 of the secret is
        stored.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     info, token = store.create_key("acme", "read", actor="docs")
        ...     print(info.role, token.startswith(f"assay_{info.key_id}_"))
        read True
        """
        validate_tenant(tenant)
        validate_role(role)
        validate_actor(actor)
        validate_key_name(name)
        secret = new_secret()
        with self._db.write() as s:
            self._ensure_tenant(s, tenant, actor)
            key_id = new_key_id()
            while s.one("SELECT 1 FROM control_keys WHERE key_id = ?", (key_id,)) is not None:
                key_id = new_key_id()  # 64 random bits: practically never taken
            now = utc_now()
            s.run(
                "INSERT INTO control_keys (key_id, tenant, role, name, secret_sha256, "
                "created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key_id, tenant, role, name, hash_secret(secret), now),
            )
            details = {"role": role, "name": name}
            self._append(s, actor, "key.create", key_id, details, tenant=tenant, timestamp=now)
        return KeyInfo(key_id, tenant, role, name, now, None), new_token(key_id, secret)

    def authenticate(self, token: object) -> KeyInfo | None:
        """The key a token belongs to, or ``None`` if it is unknown, malformed or revoked.

        The secret's digest is compared in constant time (:func:`hmac.compare_digest`),
        also when the key id is unknown.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     info, token = store.create_key("acme", "read", actor="docs")
        ...     print(store.authenticate(token) == info, store.authenticate(token + "x"))
        True None
        """
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._db.read() as s:
            row = s.one(
                f"SELECT {_KEY_COLUMNS}, secret_sha256 FROM control_keys WHERE key_id = ?",
                (key_id,),
            )
        stored = _DUMMY_DIGEST if row is None else bytes(row[6])
        matches = hmac.compare_digest(hash_secret(secret), stored)
        if row is None or not matches:
            return None
        info = KeyInfo(*row[:6])
        return info if info.active else None

    def get_key(self, key_id: str) -> KeyInfo:
        """The key ``key_id`` (revoked or not); :class:`NotFoundError` if there is none.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     info, _ = store.create_key("acme", "read", actor="docs")
        ...     print(store.get_key(info.key_id).tenant)
        acme
        """
        with self._db.read() as s:
            row = s.one(f"SELECT {_KEY_COLUMNS} FROM control_keys WHERE key_id = ?", (key_id,))
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}", field="key_id")
        return KeyInfo(*row)

    def revoke_key(self, key_id: str, *, actor: str) -> KeyInfo:
        """Revoke a key (at once, for every process); :class:`NotFoundError` if unknown.

        Revoking a revoked key changes nothing and writes no second audit record.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     info, token = store.create_key("acme", "read", actor="docs")
        ...     revoked = store.revoke_key(info.key_id, actor="docs")
        ...     print(revoked.active, store.authenticate(token))
        False None
        """
        validate_actor(actor)
        with self._db.write() as s:
            row = s.one(f"SELECT {_KEY_COLUMNS} FROM control_keys WHERE key_id = ?", (key_id,))
            if row is None:
                raise NotFoundError(f"no API key {key_id!r}", field="key_id")
            info = KeyInfo(*row)
            if not info.active:
                return info
            now = utc_now()
            s.run("UPDATE control_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id))
            details = {"role": info.role, "name": info.name}
            self._append(s, actor, "key.revoke", key_id, details, tenant=info.tenant, timestamp=now)
        return KeyInfo(info.key_id, info.tenant, info.role, info.name, info.created_at, now)

    def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        """All keys (of ``tenant``, when given), oldest first, revoked ones included.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     _ = store.create_key("acme", "read", actor="docs")
        ...     _ = store.create_key("beta", "admin", actor="docs")
        ...     print([k.role for k in store.list_keys()], len(store.list_keys("beta")))
        ['read', 'admin'] 1
        """
        query = f"SELECT {_KEY_COLUMNS} FROM control_keys"
        params: tuple[Any, ...] = ()
        if tenant is not None:
            query, params = query + " WHERE tenant = ?", (tenant,)
        with self._db.read() as s:
            rows = s.rows(query + " ORDER BY created_at, key_id", params)
        return [KeyInfo(*row) for row in rows]

    # -- audit log ---------------------------------------------------------------------

    def append_audit(
        self,
        actor: str,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> AuditRecord:
        """Append a record to the audit log and return it (with its seq and hash).

        ``details`` must be a JSON object. Appends are serialised across processes.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     rec = store.append_audit("server", "model.register", "fraud", {"task": "binary"})
        ...     print(rec.seq, rec.prev_hash == "0" * 64, len(rec.hash))
        1 True 64
        """
        validate_actor(actor)
        for field, value in (("action", action), ("target", target)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"the audit {field} must be a non-empty string", field=field)
        if tenant is not None:
            validate_tenant(tenant)
        with self._db.write() as s:
            return self._append(s, actor, action, target, details, tenant=tenant)

    def _append(
        self,
        s: Session,
        actor: str,
        action: str,
        target: str,
        details: Mapping[str, Any] | None,
        *,
        tenant: str | None,
        timestamp: str | None = None,
    ) -> AuditRecord:
        """Append inside the caller's write transaction (which holds the writers' lock)."""
        head = s.one("SELECT seq, hash FROM control_audit ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = (1, GENESIS_HASH) if head is None else (int(head[0]) + 1, head[1])
        record = AuditRecord.build(
            seq, timestamp or utc_now(), tenant, actor, action, target, details, prev_hash
        )
        s.run(
            f"INSERT INTO control_audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*record_to_row(record),),
        )
        return record

    def audit_records(
        self,
        tenant: str | None = None,
        since_seq: int | None = None,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """Audit records in seq order (of ``tenant``; after ``since_seq``; at most ``limit``).

        ``since_seq`` is exclusive, so passing the last seq seen fetches what is new.
        With ``newest_first`` the order is reversed and ``limit`` keeps the latest.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     _ = store.create_key("acme", "read", actor="docs")
        ...     print([r.action for r in store.audit_records(tenant="acme")])
        ...     print([r.seq for r in store.audit_records(since_seq=1)])
        ['tenant.create', 'key.create']
        [2]
        """
        clauses, params = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if since_seq is not None:
            clauses.append("seq > ?")
            params.append(int(since_seq))
        query = f"SELECT {_AUDIT_COLUMNS} FROM control_audit"
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit is not None:
            if int(limit) < 0:
                raise ConfigError("limit must be at least 0", field="limit")
            query += f" LIMIT {int(limit)}"
        with self._db.read() as s:
            rows = s.rows(query, params)
        return [record_from_row(row) for row in rows]

    def audit_head(self) -> tuple[int, str]:
        """The last record's ``(seq, hash)`` — ``(0, GENESIS_HASH)`` when empty.

        Keep it outside the database as an anchor for :meth:`verify_audit`.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     print(store.audit_head()[0])
        ...     _ = store.append_audit("docs", "note", "-", {})
        ...     print(store.audit_head()[0])
        0
        1
        """
        with self._db.read() as s:
            head = s.one("SELECT seq, hash FROM control_audit ORDER BY seq DESC LIMIT 1")
        return (0, GENESIS_HASH) if head is None else (int(head[0]), head[1])

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Check the whole audit chain and name the first bad record.

        Detects changed, removed, inserted and reordered records. Records cut off the end,
        or a log rewritten with recomputed hashes, are detected only against an
        ``anchor=(seq, hash)`` taken earlier with :meth:`audit_head`.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, open_control_store(tmp) as store:
        ...     _ = store.append_audit("docs", "note", "-", {"n": 1})
        ...     print(store.verify_audit(), store.verify_audit(anchor=(2, "0" * 64)).ok)
        ok: 1 records False
        """
        return verify_chain(self._iter_audit(), anchor)

    def _iter_audit(self) -> Iterator[AuditRecord]:
        last = 0
        while True:
            with self._db.read() as s:
                rows = s.rows(
                    f"SELECT {_AUDIT_COLUMNS} FROM control_audit WHERE seq > ? "
                    f"ORDER BY seq LIMIT {_PAGE}",
                    (last,),
                )
            for row in rows:
                yield record_from_row(row)
            if len(rows) < _PAGE:
                return
            last = int(rows[-1][0])
