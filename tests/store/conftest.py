"""Fixtures of the store contract suite: every test runs on DuckDB and on PostgreSQL.

PostgreSQL comes from ``ASSAY_TEST_POSTGRES_URL`` (default ``postgresql:///postgres``, the
local server as the current user). The suite creates a database ``assay_store_<random>``
for the session and drops it at the end; each test gets a schema of its own in it. Without
a reachable server the PostgreSQL tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from assay.store.duckdb_store import DB_FILE, DuckDBStore

URL_ENV = "ASSAY_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql:///postgres"
HINT = (
    f"start one with: bash scripts/start-postgres.sh (or point {URL_ENV} at a server, "
    "as a role allowed to create databases)"
)


def _unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (in CI) the PostgreSQL tests."""
    message = f"PostgreSQL tests need a server: {reason}; {HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Connection string of a fresh database, dropped when the session ends."""
    try:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'assay[postgres]')")
    base = os.environ.get(URL_ENV, DEFAULT_URL)
    name = f"assay_store_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        _unavailable(f"cannot create a database ({str(err).strip()})")
    try:
        yield make_conninfo(base, dbname=name)
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> str:
    """Connection string whose ``search_path`` is a new, empty schema of the test database."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return make_conninfo(postgres_url, options=f"-c search_path={schema}")


@dataclass
class Backend:
    """One store backend under test: open it (again), or run SQL on its database directly."""

    name: str
    factory: Callable[[], Any]
    execute: Callable[[str], None]  # one statement, while no store is open
    opened: list[Any] = field(default_factory=list)

    def open(self) -> Any:
        """A new store on the same data (the previous one should be closed first)."""
        store = self.factory()
        self.opened.append(store)
        return store


def _duckdb_backend(folder: Path) -> Backend:
    import duckdb

    def execute(statement: str) -> None:
        con = duckdb.connect(str(folder / DB_FILE))
        try:
            con.execute(statement)
        finally:
            con.close()

    return Backend("duckdb", lambda: DuckDBStore(folder), execute)


def _postgres_backend(url: str) -> Backend:
    import psycopg

    from assay.store.postgres_store import PostgresStore

    def execute(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)

    return Backend("postgres", lambda: PostgresStore(url), execute)


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, on empty storage; every store it opened is closed after."""
    if request.param == "duckdb":
        chosen = _duckdb_backend(tmp_path)
    else:
        chosen = _postgres_backend(request.getfixturevalue("postgres_schema_url"))
    yield chosen
    for store in chosen.opened:
        with contextlib.suppress(Exception):  # already closed, or left half-open
            store.close()


@pytest.fixture
def store(backend: Backend) -> Any:
    """An open store of the backend under test."""
    return backend.open()
