"""Splitting a Parquet data set into partitions, and streaming one partition's batches.

A data set is a Parquet file, a folder of them, a glob (``data/2026-11-*/*.parquet``) or
a URI on any filesystem pyarrow reads (``s3://bucket/preds/``, ``gs://…``); other inputs
(CSV, DataFrames, Arrow tables) are held in memory and sliced. Partitions are runs of
Parquet row groups in file order, so folding them in order sees the rows in the order
the local engine does.

>>> import pyarrow as pa
>>> data = open_partitioned(pa.table({"x": list(range(10))}), role="current", partitions=3)
>>> [p.rows for p in data.partitions]
[4, 4, 2]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from assay.engine.sources import (
    _PARQUET_SUFFIXES,
    Source,
    fingerprint_files,
    is_listed,
    list_files,
    open_source,
)
from assay.errors import InputError


@dataclass(frozen=True)
class Piece:
    """Some row groups of one Parquet file (``None``: all of them)."""

    path: str
    row_groups: tuple[int, ...] | None
    rows: int


@dataclass(frozen=True)
class Partition:
    """One unit of work: Parquet pieces, or a slice of an in-memory table."""

    index: int
    rows: int
    pieces: tuple[Piece, ...] = ()
    offset: int = 0  # in-memory data: the slice [offset, offset + rows)


@dataclass
class Partitioned:
    """A data set opened for scale-out: its source (schema, fingerprint) and partitions."""

    source: Source
    partitions: list[Partition]
    filesystem: pafs.FileSystem | None  # None: the data is the in-memory ``table``
    table: pa.Table | None = None
    shipped: list[Any] = field(default_factory=list)  # the table's slices, once shipped


def open_partitioned(data: Any, *, role: str, partitions: int = 1) -> Partitioned:
    """Open ``data`` and split it into about ``partitions`` partitions (at least one per file)."""
    if is_listed(data):
        filesystem, files = list_files(data, role)
        if Path(files[0]).suffix.lower() in _PARQUET_SUFFIXES:
            return _split_files(filesystem, files, data, role, partitions)
    source = open_source(data, role=role)
    if isinstance(data, str | Path) and not is_listed(data) and source.description == str(data):
        path = Path(data)
        files = (
            sorted(p for p in path.rglob("*") if p.suffix.lower() in _PARQUET_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        if all(f.suffix.lower() in _PARQUET_SUFFIXES for f in files):
            split = _split_files(
                pafs.LocalFileSystem(), [str(f) for f in files], str(path), role, partitions
            )
            split.source = source  # the local engine's description and fingerprint
            return split
    table = source.dataset.to_table()
    size = max(1, math.ceil(table.num_rows / max(partitions, 1)))
    parts = [
        Partition(i, min(size, table.num_rows - lo), offset=lo)
        for i, lo in enumerate(range(0, table.num_rows, size))
    ]
    return Partitioned(source, parts, None, table)


def _split_files(
    filesystem: pafs.FileSystem, files: list[str], description: str, role: str, partitions: int
) -> Partitioned:
    units: list[tuple[str, int, int]] = []  # (file, row group, rows) in file order
    for path in files:
        try:
            with filesystem.open_input_file(path) as handle:
                meta = pq.ParquetFile(handle).metadata
        except (OSError, pa.ArrowInvalid) as err:
            raise InputError(f"cannot read {role} file {path!r}: {err}", field=role) from err
        units += [(path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    total = sum(rows for _, _, rows in units)
    target = max(1, math.ceil(total / max(partitions, len(files), 1)))
    parts: list[Partition] = []
    current: list[tuple[str, int, int]] = []
    for unit in units:
        current.append(unit)
        if sum(r for _, _, r in current) >= target:
            parts.append(_partition(len(parts), current))
            current = []
    if current or not parts:
        parts.append(_partition(len(parts), current))
    dataset = ds.dataset(files, filesystem=filesystem, format="parquet")
    source = Source(role, description, dataset, fingerprint_files(filesystem, files))
    return Partitioned(source, parts, filesystem)


def _partition(index: int, units: list[tuple[str, int, int]]) -> Partition:
    pieces: list[Piece] = []
    for path, group, rows in units:
        if pieces and pieces[-1].path == path:
            last = pieces[-1]
            pieces[-1] = Piece(path, (*(last.row_groups or ()), group), last.rows + rows)
        else:
            pieces.append(Piece(path, (group,), rows))
    return Partition(index, sum(p.rows for p in pieces), tuple(pieces))


def read_partition(
    data: Partitioned | tuple[pafs.FileSystem | None, pa.Table | None],
    partition: Partition,
    columns: list[str],
    batch_size: int = 131_072,
) -> Iterator[pa.RecordBatch]:
    """Stream the partition's ``columns`` as record batches of at most ``batch_size`` rows.

    Parquet is read one row group at a time with no read-ahead, so memory holds a row
    group's compressed columns and a batch, whatever the partition's size.
    """
    filesystem, table = (data.filesystem, data.table) if isinstance(data, Partitioned) else data
    if table is not None:
        part = table.slice(partition.offset, partition.rows).select(columns)
        yield from part.to_batches(max_chunksize=batch_size)
        return
    fmt = ds.ParquetFileFormat()
    for piece in partition.pieces:
        fragment = fmt.make_fragment(piece.path, filesystem=filesystem,
                                     row_groups=list(piece.row_groups or ()) or None)  # fmt: skip
        scanner = ds.Scanner.from_fragment(
            fragment,
            columns=columns,
            batch_size=batch_size,
            batch_readahead=0,
            fragment_readahead=0,
            use_threads=False,
        )
        yield from scanner.to_batches()
