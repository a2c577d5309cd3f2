"""Database plumbing of the control store: SQLite or PostgreSQL behind one small shim.

The store's SQL is written once, with ``?`` placeholders and ``{blob}`` / ``{bigint}``
in the DDL; :class:`Dialect` adapts it. :class:`Database` keeps a small pool of
connections so that one store may be shared by the threads of a server, and offers two
kinds of transaction:

- :meth:`Database.read` — autocommit reads;
- :meth:`Database.write` — one transaction that is serialised with every other writer in
  every process: ``BEGIN IMMEDIATE`` on SQLite (the file's write lock, waited for up to
  the busy timeout), a transaction-level advisory lock on PostgreSQL. The audit chain
  relies on it: reading the head and appending the next record happen under that lock, so
  two processes can never fork the chain.

The schema is versioned in the table ``control_schema``; :meth:`Database.ensure_schema`
creates or upgrades it on open and refuses a database from a newer Assay.

>>> SQLITE.sql("SELECT 1 WHERE ? = ?"), POSTGRES.sql("SELECT 1 WHERE ? = ?")
('SELECT 1 WHERE ? = ?', 'SELECT 1 WHERE %s = %s')
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.errors import (
    ConfigError,
    MissingDependencyError,
    SchemaVersionError,
    StoreUnavailableError,
)

SCHEMA_VERSION = 1
"""The schema version this code writes and understands."""

CONTROL_FILE = "control.sqlite"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
BUSY_TIMEOUT_S = 30.0
# Key of the PostgreSQL advisory lock that serialises writers ("assay_ct" in ASCII).
ADVISORY_LOCK_KEY = 0x61737361795F6374

# DDL per schema version; each step upgrades from the version before it.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE control_tenants (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE control_keys (
            key_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL REFERENCES control_tenants (name),
            role TEXT NOT NULL,
            name TEXT,
            secret_sha256 {blob} NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT)""",
        "CREATE INDEX control_keys_tenant ON control_keys (tenant)",
        """CREATE TABLE control_audit (
            seq {bigint} PRIMARY KEY,
            timestamp TEXT NOT NULL,
            tenant TEXT,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL)""",
        "CREATE INDEX control_audit_tenant ON control_audit (tenant, seq)",
    ),
}


@dataclass(frozen=True)
class Dialect:
    """The few ways SQLite and PostgreSQL differ for this store."""

    name: str
    placeholder: str
    blob: str
    bigint: str

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders turned into this dialect's."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def ddl(self, statement: str) -> str:
        """``statement`` with ``{blob}`` and ``{bigint}`` filled in."""
        return statement.format(blob=self.blob, bigint=self.bigint)


SQLITE = Dialect("sqlite", "?", "BLOB", "INTEGER")
POSTGRES = Dialect("postgres", "%s", "BYTEA", "BIGINT")


class Session:
    """One connection for the length of a :meth:`Database.read` or ``write`` block."""

    def __init__(self, conn: Any, dialect: Dialect):
        self.conn = conn
        self.dialect = dialect

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows."""
        cur = self.conn.execute(self.dialect.sql(statement), tuple(params))
        return [tuple(row) for row in cur.fetchall()]

    def one(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query and return its first row, if any."""
        cur = self.conn.execute(self.dialect.sql(statement), tuple(params))
        row = cur.fetchone()
        return None if row is None else tuple(row)

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run a statement that returns nothing."""
        self.conn.execute(self.dialect.sql(statement), tuple(params))


class Database:
    """A pool of connections to one control database; safe to share between threads.

    Connections are made on demand, handed to one thread at a time and kept (up to
    ``max_idle``) for reuse. After a ``fork`` the child drops the parent's connections
    rather than share them.
    """

    def __init__(
        self, dialect: Dialect, connect: Callable[[], Any], *, description: str, max_idle: int = 8
    ):
        self.dialect = dialect
        self.description = description
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def _acquire(self) -> Any:
        with self._lock:
            if self._closed:
                raise StoreUnavailableError(f"the control store {self.description} is closed")
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _release(self, conn: Any, *, healthy: bool) -> None:
        with self._lock:
            keep = healthy and not self._closed and len(self._idle) < self._max_idle
            if keep and self._pid == os.getpid():
                self._idle.append(conn)
                return
        _close_quietly(conn)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        conn = self._acquire()
        healthy = True
        try:
            yield Session(conn, self.dialect)
        except BaseException:
            healthy = not (getattr(conn, "closed", False) or getattr(conn, "broken", False))
            raise
        finally:
            self._release(conn, healthy=healthy)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A connection in autocommit mode, for reads."""
        with self._session() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction, serialised with all other writers in all processes."""
        with self._session() as session:
            conn = session.conn
            if self.dialect is SQLITE:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield session
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                    yield session

    def ensure_schema(self) -> None:
        """Create or upgrade the tables; refuse a schema newer than :data:`SCHEMA_VERSION`."""
        with self.write() as s:
            s.run(
                "CREATE TABLE IF NOT EXISTS control_schema ("
                "id INTEGER PRIMARY KEY, version INTEGER NOT NULL, upgraded_at TEXT NOT NULL)"
            )
            row = s.one("SELECT version FROM control_schema WHERE id = 1")
            current = 0 if row is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the control store {self.description} has schema version {current}, "
                    f"newer than this Assay understands ({SCHEMA_VERSION})",
                    hint="upgrade Assay to use it",
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    s.run(self.dialect.ddl(statement))
            if current < SCHEMA_VERSION:
                from assay.control.audit import utc_now

                s.run(
                    "INSERT INTO control_schema (id, version, upgraded_at) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
                    "upgraded_at = excluded.upgraded_at",
                    (SCHEMA_VERSION, utc_now()),
                )

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with self.read() as s:
            row = s.one("SELECT version FROM control_schema WHERE id = 1")
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close every idle connection; connections in use close when they are released."""
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection may fail to close
        conn.close()


def open_database(location: str | Path) -> Database:
    """The database for a data directory (``<dir>/control.sqlite``) or a PostgreSQL URL.

    The directory is created if missing; the schema is created or upgraded.
    """
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        db = postgres_database(text)
    elif "://" in text:
        raise ConfigError(
            f"unsupported control store {redact_url(text)!r}",
            field="store",
            hint="give a data directory or a postgresql:// URL",
        )
    else:
        directory = Path(location)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"{directory} is not a directory", field="data_dir")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            message = f"cannot create {directory}: {err.strerror}"
            raise ConfigError(message, field="data_dir") from None
        db = sqlite_database(directory / CONTROL_FILE)
    try:
        db.ensure_schema()
    except BaseException:
        db.close()
        raise
    return db


def sqlite_database(path: Path) -> Database:
    """A :class:`Database` on the SQLite file ``path`` (WAL mode, busy timeout)."""

    def connect() -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as err:
            raise StoreUnavailableError(f"cannot open the control store {path}: {err}") from None
        return conn

    return Database(SQLITE, connect, description=str(path))


def postgres_database(url: str) -> Database:
    """A :class:`Database` on the PostgreSQL server named by ``url`` (needs psycopg)."""
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError("psycopg", "postgres") from None
    shown = redact_url(url)

    def connect() -> Any:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StoreUnavailableError(
                f"cannot connect to the control store {shown}: {reason}"
            ) from None

    return Database(POSTGRES, connect, description=shown)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs).

    >>> redact_url("postgresql://assay:hunter2@db:5432/assay")
    'postgresql://assay:***@db:5432/assay'
    >>> redact_url("postgresql:///assay")
    'postgresql:///assay'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}{at}{host}{slash}{tail}"
