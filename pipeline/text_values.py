"""Values as text (文本形式): the form quarantined rows are kept in and replayed from, and CSV's.

A row that failed a check is kept with every value as text: a value that failed conversion survives as it was
read, and the provider corrects the exported rows in a spreadsheet. Replay reads the text back into the
published types. Most types go through Arrow's casts both ways; two kinds have no cast to text that comes back:

- binary values (bytea, BLOB) are not text: written as hex with PostgreSQL's ``\\x`` prefix
  (``\\xdeadbeef``), read back from that form;
- nested values (arrays, structs, maps: e.g. PostgreSQL ``int[]``) are written as JSON, read back from JSON
  (an array also from PostgreSQL's text of it, ``{1,NULL}``, as a quarantined row keeps a value its list form
  could not hold; connectors.pgarray_values.list_value);
- durations (MySQL ``TIME``) are written as MySQL shows them, ``[-]HH:MM:SS[.ffffff]`` (Arrow would write a
  count of microseconds), read back from that form.

Any other value Arrow cannot cast to text is written as Python prints it (read back only where Arrow can parse
it; replay then reports the value it cannot convert, row by row). CSV downloads and exports write binary,
nested and duration columns in the same form (``csv_ready``), and ``govshare verify`` reads them back from it.
"""

from __future__ import annotations

import json

import pyarrow as pa

from connectors.arrowconv import BINARY_PREFIX, parse_duration, value_text
from connectors.pgarray_values import list_value


def _binary(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _nested(kind: pa.DataType) -> bool:
    return pa.types.is_nested(kind)


def needs_text(kind: pa.DataType) -> bool:
    """Whether CSV must carry the type as text (``as_text``): binary, nested and duration values."""
    return _binary(kind) or _nested(kind) or pa.types.is_duration(kind)


def csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string(), f.nullable) if needs_text(f.type) else f for f in schema])


def csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its binary, nested and duration columns as text, for a CSV writer (which has no form
    for them)."""
    if not any(needs_text(f.type) for f in batch.schema):
        return batch
    return pa.RecordBatch.from_arrays([as_text(c) if needs_text(c.type) else c for c in batch.columns],
                                      schema=csv_schema(batch.schema))


def as_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The column's values as text (nulls stay null)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_string(kind):
        return column
    if not needs_text(kind):
        try:
            return column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array([None if v is None else value_text(v) for v in column.to_pylist()], pa.string())


def from_text(text: pa.Array, kind: pa.DataType) -> pa.Array:
    """Text back to ``kind``; raises pa.ArrowInvalid naming the first value that does not convert."""
    if needs_text(kind):
        values = []
        for value in text.to_pylist():
            try:
                values.append(None if value is None else _parsed(value, kind))
            except (ValueError, TypeError) as exc:
                raise pa.ArrowInvalid(f"{value!r}: {exc}") from exc
        try:
            return pa.array(values, kind)
        except (pa.ArrowTypeError, TypeError, OverflowError) as exc:
            raise pa.ArrowInvalid(str(exc)) from exc
    return text.cast(kind)


def _parsed(value: str, kind: pa.DataType) -> object:
    if _binary(kind):
        if not value.startswith(BINARY_PREFIX):
            raise ValueError(f"binary values are written as hex after {BINARY_PREFIX}, e.g. {BINARY_PREFIX}deadbeef")
        return bytes.fromhex(value[len(BINARY_PREFIX):])
    if pa.types.is_duration(kind):
        return parse_duration(value)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):  # JSON, or PostgreSQL's text of the array
        return list_value(value, kind)
    return json.loads(value)


def with_raw(rows: pa.RecordBatch, raw: pa.Array) -> pa.RecordBatch:
    """Text rows with the values a connector could not convert put back as it read them (``raw``: per row, a
    JSON object column -> text, or null; connectors.base.ROW_RAW_COLUMN)."""
    restored: dict[str, list] = {}
    for row, found in enumerate(raw.to_pylist()):
        for name, value in (json.loads(found) if found else {}).items():
            if name in rows.schema.names:
                restored.setdefault(name, rows.column(name).to_pylist())[row] = value
    if not restored:
        return rows
    return pa.RecordBatch.from_arrays([pa.array(restored[n], pa.string()) if n in restored else rows.column(n)
                                       for n in rows.schema.names], names=rows.schema.names)

