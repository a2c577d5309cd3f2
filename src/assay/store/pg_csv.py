"""Arrow tables in and out of PostgreSQL's CSV ``COPY`` format, vectorised in pyarrow.

PostgreSQL's CSV tells NULL (an empty unquoted field) from the empty string (``""``).
pyarrow writes every string quoted and nulls as empty unquoted fields, and reads with
``quoted_strings_can_be_null=False``: so both directions keep the difference, and
neither does Python work per value. Floats round-trip exactly when the session sets
``extra_float_digits = 3`` (shortest exact output).

Time-zone-aware timestamps travel as UTC wall-clock times without an offset (pyarrow
formats offsets twenty times slower); the SQL side converts with ``AT TIME ZONE 'UTC'``
and reads them with ``DateStyle = ISO``.

>>> import pyarrow as pa
>>> schema = pa.schema([("id", pa.string()), ("x", pa.float64())])
>>> data = to_csv(pa.table({"id": ["a,b", "", None], "x": [0.1, None, 2.0]}), schema)
>>> data
b'"a,b",0.1\\n"",\\n,2\\n'
>>> from_csv(data, schema).to_pylist()[1:]
[{'id': '', 'x': None}, {'id': None, 'x': 2.0}]
>>> from datetime import datetime, timezone
>>> moment = pa.table({"t": pa.array([datetime(2026, 11, 1, 10, tzinfo=timezone.utc)])})
>>> to_csv(moment, moment.schema)
b'2026-11-01 10:00:00.000000\\n'
>>> from_csv(to_csv(moment, moment.schema), moment.schema).equals(moment)
True
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv


def to_csv(table: pa.Table, schema: pa.Schema) -> bytes:
    """``table``'s columns named in ``schema``, cast to its types, as headerless CSV."""
    columns = [_wall_clock(table.column(f.name).cast(f.type)) for f in schema]
    names = [f"c{i}" for i in range(len(columns))]  # positional: user names may clash
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=names), sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


def from_csv(data: bytes, schema: pa.Schema) -> pa.Table:
    """Parse headerless CSV (``COPY ... TO STDOUT (FORMAT csv)``) into ``schema``."""
    if not data:
        return schema.empty_table()
    names = [f"c{i}" for i in range(len(schema))]
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={n: _wall_clock_type(f.type) for n, f in zip(names, schema, strict=True)},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    columns = [c.cast(f.type) for c, f in zip(table.columns, schema, strict=True)]
    return pa.Table.from_arrays(columns, schema=schema)


def _wall_clock_type(kind: pa.DataType) -> pa.DataType:
    """A zone-aware timestamp type as its UTC wall-clock (naive) type; others unchanged."""
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pa.timestamp(kind.unit)
    return kind


def _wall_clock(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(_wall_clock_type(column.type))
