"""Published parts as DuckDB reads them exactly (DuckDB does the hub's out-of-core sorts and joins).

DuckDB (1.4) reads a Parquet decimal of more than 38 digits (Arrow's decimal256, e.g. MySQL DECIMAL(50,6) or
PostgreSQL numeric(50,6)) as a wrong double: -0.01 came back as -167755.38. A records page of such a version
failed (the sorted copy could not cast the values back), and a full refresh compared garbage. Where a query
needs such a column, each part is copied once into the caller's scratch folder, row for row and in order, with
those columns as their exact text: row numbers and deletion vectors stay valid for the copy, and a writer casts
the text back to the decimal. Versions without such columns are read as they are, at no cost.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.layers import BATCH_ROWS, Part, _source, parts_schema


def wide_decimals(schema: pa.Schema, columns: list[str] | None = None) -> list[str]:
    """The decimal256 columns among ``columns`` (None: all)."""
    return [f.name for f in schema if pa.types.is_decimal256(f.type) and (columns is None or f.name in columns)]


def readable_schema(schema: pa.Schema, columns: list[str] | None = None) -> pa.Schema:
    """``schema`` with its wide decimals (among ``columns``) as text, the form DuckDB is given them in."""
    wide = set(wide_decimals(schema, columns))
    return pa.schema([pa.field(f.name, pa.string(), f.nullable) if f.name in wide else f for f in schema])


def readable_parts(parts: list[Part], *, scratch: Path, columns: list[str] | None = None) -> list[Part]:
    """``parts``, or copies of them with their wide decimals (among ``columns``) as text."""
    if not parts:
        return parts
    schema = parts_schema(parts)
    wide = wide_decimals(schema, columns)
    if not wide:
        return parts
    scratch.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, part in enumerate(parts):
        source = pq.ParquetFile(_source(part.path), pre_buffer=False)
        target = readable_schema(source.schema_arrow, wide)
        path = scratch / f"duckdb-part-{index}.parquet"
        with pq.ParquetWriter(path, target, compression="snappy") as writer:
            for batch in source.iter_batches(batch_size=BATCH_ROWS):  # every row, the dead ones too: positions
                writer.write_batch(batch.cast(target))
        copies.append(replace(part, path=path))
    return copies
