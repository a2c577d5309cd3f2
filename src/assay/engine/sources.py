"""Data sources: Parquet/CSV paths, folders of Parquet, globs and URIs on any filesystem
pyarrow reads (``s3://bucket/preds/``, ``gs://…``, ``file://…``), pandas, polars and
Arrow tables.

Every source answers its schema and row count without reading the data, and reads the
columns asked for as Arrow (column projection: Parquet never loads unrequested columns).

>>> import pyarrow as pa
>>> src = open_source(pa.table({"x": [1.0, 2.0]}), role="current")
>>> src.num_rows, src.column_names
(2, ['x'])
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from assay.errors import ConfigError, EmptyInputError, InputError

_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_GLOB = set("*?[")


@dataclass
class Source:
    """One input window: an Arrow dataset (lazy) or table (in memory)."""

    role: str
    description: str
    dataset: ds.Dataset
    fingerprint: str

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the data."""
        return self.dataset.schema

    @property
    def column_names(self) -> list[str]:
        """Column names in file order."""
        return list(self.schema.names)

    @property
    def num_rows(self) -> int:
        """Row count (from Parquet metadata where possible)."""
        if not hasattr(self, "_rows"):
            self._rows = int(self.dataset.count_rows())
        return self._rows

    def read(self, columns: list[str]) -> pa.Table:
        """Read only ``columns`` (multi-threaded, no Python objects)."""
        return self.dataset.to_table(columns=columns, use_threads=True)

    def column(self, name: str) -> pa.ChunkedArray:
        """Read one column."""
        return self.read([name]).column(0)


def open_source(data: Any, *, role: str) -> Source:
    """Open ``data`` (path, folder, DataFrame or Arrow table) as a :class:`Source`."""
    if data is None:
        raise InputError(f"no {role} data given", field=role)
    if is_listed(data):
        return _open_listed(data, role)
    if isinstance(data, str | os.PathLike):
        return _open_path(Path(data), role)
    table = _to_arrow_table(data, role)
    fingerprint = hashlib.sha256(
        f"{table.schema}|{table.num_rows}|{table.nbytes}".encode()
    ).hexdigest()[:16]
    return Source(role, f"in-memory table ({table.num_rows} rows)", ds.dataset(table), fingerprint)


def is_listed(data: Any) -> bool:
    """Whether ``data`` names its files by a URI or a glob (listed through pyarrow); a
    local path that exists as written (``runs[1].parquet``) is no glob."""
    if not isinstance(data, str):
        return False
    return "://" in data or (bool(_GLOB & set(data)) and not os.path.exists(data))


def list_files(uri: str, role: str) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the files, sorted, that a URI or glob names: the file itself,
    or the Parquet files under a folder (that match the glob).

    >>> import tempfile, pathlib, pyarrow.parquet as pq
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for day in ("01", "02"):
    ...     (root / day).mkdir(); pq.write_table(pa.table({"x": [1]}), root / day / "a.parquet")
    >>> _, files = list_files(f"{root}/0*/*.parquet", role="current")
    >>> [f[len(str(root)):] for f in files]
    ['/01/a.parquet', '/02/a.parquet']
    """
    path, query = uri.split("?", 1) if "://" in uri and "?" in uri else (uri, "")
    head, glob = path, None
    if _GLOB & set(path):
        parts = path.split("/")
        first = next(i for i, p in enumerate(parts) if _GLOB & set(p))
        head, glob = "/".join(parts[:first]) or ".", path
    try:
        if "://" in head:  # the query (s3://b/k?endpoint_override=…) configures the filesystem
            filesystem, base = pafs.FileSystem.from_uri(f"{head}?{query}" if query else head)
        else:
            filesystem, base = pafs.LocalFileSystem(), str(Path(head).resolve())
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.File:
            return filesystem, [base]
        if info.type == pafs.FileType.NotFound:
            raise InputError(f"{role} path {uri!r} does not exist", field=role)
        found = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"cannot list {role} data {uri!r}: {err}", field=role) from err
    files = sorted(
        f.path for f in found
        if f.type == pafs.FileType.File and Path(f.path).suffix.lower() in _PARQUET_SUFFIXES
    )  # fmt: skip
    if glob is not None:
        pattern = glob.split("://", 1)[-1] if "://" in glob else str(Path(glob).absolute())
        files = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
    if not files:
        raise EmptyInputError(f"{role} data {uri!r} holds no Parquet files", field=role)
    return filesystem, files


def fingerprint_files(filesystem: pafs.FileSystem, files: list[str]) -> str:
    """A short digest of the files' paths, sizes and modification times."""
    digest = hashlib.sha256()
    for info in filesystem.get_file_info(files):
        digest.update(f"{info.path}|{info.size}|{info.mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _open_listed(uri: str, role: str) -> Source:
    filesystem, files = list_files(uri, role)
    suffix = Path(files[0]).suffix.lower()
    try:
        if len(files) == 1 and suffix in _CSV_SUFFIXES:
            with filesystem.open_input_stream(files[0]) as stream:
                dataset: ds.Dataset = ds.dataset(_read_csv(stream, suffix))
        elif suffix in _PARQUET_SUFFIXES:
            dataset = ds.dataset(files, filesystem=filesystem, format="parquet")
        else:
            raise ConfigError(
                f"{role} file {uri!r} has an unknown extension {suffix!r}",
                field=role,
                hint="use .parquet or .csv",
            )
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"cannot read {role} data {uri!r}: {err}", field=role) from err
    return Source(role, uri, dataset, fingerprint_files(filesystem, files))


def _read_csv(source: Any, suffix: str) -> pa.Table:
    """A CSV (tab-separated for ``.tsv``) parsed once into Arrow; an empty field is null."""
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
    convert = csv.ConvertOptions(strings_can_be_null=True)
    return csv.read_csv(source, parse_options=parse, convert_options=convert)


def _to_arrow_table(data: Any, role: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        return data.to_arrow()
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InputError(
        f"cannot read {role} data of type {type(data).__name__}",
        field=role,
        hint="pass a Parquet or CSV path, a folder of Parquet files, "
        "a pandas or polars DataFrame, or a pyarrow Table",
    )


def _open_path(path: Path, role: str) -> Source:
    if not path.exists():
        raise InputError(f"{role} path {str(path)!r} does not exist", field=role)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in _PARQUET_SUFFIXES)
        if not files:
            raise EmptyInputError(f"{role} folder {str(path)!r} holds no Parquet files", field=role)
        fmt = "parquet"
    else:
        files = [path]
        suffix = path.suffix.lower()
        if suffix in _PARQUET_SUFFIXES:
            fmt = "parquet"
        elif suffix in _CSV_SUFFIXES:
            fmt = "csv"
        else:
            raise ConfigError(
                f"{role} file {str(path)!r} has an unknown extension {suffix!r}",
                field=role,
                hint="use .parquet or .csv",
            )
    try:
        if fmt == "csv":  # parsed once into Arrow memory; column projection needs Parquet
            dataset: ds.Dataset = ds.dataset(_read_csv(path, path.suffix.lower()))
        else:
            dataset = ds.dataset([str(f) for f in files], format="parquet")
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"cannot read {role} file {str(path)!r}: {err}", field=role) from err
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return Source(role, str(path), dataset, digest.hexdigest()[:16])


def to_float64(column: pa.ChunkedArray | pa.Array) -> Any:
    """Numeric column as a float64 numpy array, nulls as NaN."""
    import numpy as np

    cast = pc.cast(column, pa.float64())
    if isinstance(cast, pa.ChunkedArray):
        if cast.num_chunks == 1:
            cast = cast.chunk(0)
        elif cast.num_chunks == 0:
            return np.zeros(0)
        else:
            cast = cast.combine_chunks()
    return cast.to_numpy(zero_copy_only=False)
