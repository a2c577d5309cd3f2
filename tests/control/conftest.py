"""Fixtures for the control-store tests: every store test runs on SQLite and PostgreSQL.

PostgreSQL comes from ``ASSAY_TEST_POSTGRES_URL`` (default ``postgresql:///postgres``, the
local server over its unix socket; ``scripts/start-postgres.sh`` sets one up). The
session makes a fresh database ``assay_test_<random>`` there and drops it at the end;
each test gets its own schema in it (through ``search_path`` in the URL), so tests never
see each other's tables. If the server cannot be reached the PostgreSQL variants are
skipped — or fail, when ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest

from assay.control import CONTROL_FILE, ControlStore, open_control_store

PG_ENV = "ASSAY_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql:///postgres"
PG_HINT = "start one with: bash scripts/start-postgres.sh (or set ASSAY_TEST_POSTGRES_URL)"

RawSQL = Callable[..., list[tuple[Any, ...]]]


def _unavailable(message: str) -> NoReturn:
    message = " ".join(message.split())  # one line
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} — PostgreSQL is required in CI", pytrace=False)
    pytest.skip(f"{message}; {PG_HINT}")


def with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` instead (query string kept)."""
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{dbname}" + (f"?{query}" if query else "")


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` for every connection."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database made for this test session (dropped at the end)."""
    base = os.environ.get(PG_ENV, PG_DEFAULT)
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'assay[postgres]')")
    name = f"assay_test_{secrets.token_hex(5)}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as err:
        _unavailable(f"PostgreSQL is not reachable at {base}: {str(err).strip()}")
    yield with_database(base, name)
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A URL whose connections see only a schema of their own (made for this test)."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return with_search_path(pg_database, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's control store lives: a data directory or a PostgreSQL URL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "assay-data")


@pytest.fixture
def store(location: str) -> Iterator[ControlStore]:
    """An open control store on each backend."""
    with open_control_store(location) as control:
        yield control


def is_postgres(location: str) -> bool:
    return location.startswith("postgresql://")


@pytest.fixture
def raw(location: str) -> RawSQL:
    """Run SQL on the store's database behind its back (to tamper with it, or look).

    Statements use ``?`` placeholders on both backends; rows come back as tuples.
    """

    def run(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if is_postgres(location):
            import psycopg

            with psycopg.connect(location, autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), tuple(params))
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
        conn = sqlite3.connect(Path(location) / CONTROL_FILE, isolation_level=None)
        try:
            cur = conn.execute(statement, tuple(params))
            return [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()

    return run
