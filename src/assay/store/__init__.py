"""Storage backends behind one :class:`~assay.store.base.Store` protocol."""

from __future__ import annotations

from pathlib import Path

from assay.store.base import Store


def open_store(data_dir: str | Path, url: str | None = None) -> Store:
    """The PostgreSQL store for a ``postgresql://`` URL, else DuckDB under ``data_dir``."""
    if url and url.startswith(("postgresql://", "postgres://")):
        from assay.store.postgres_store import PostgresStore

        return PostgresStore(url)
    from assay.store.duckdb_store import DuckDBStore

    return DuckDBStore(data_dir)


__all__ = ["Store", "open_store"]
