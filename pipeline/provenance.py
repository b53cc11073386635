"""Where a file source's row came from is not a change (来源文件不算变更).

A file source publishes each row's provenance, ``_file_name`` and ``_file_modified`` (connectors/filestreams.py).
An agency that delivers its full export every day re-delivers every row from a new file: compared with them, every
row was an update (``~N``), notices went out and a run with no real change published a version. Before its change
set is worked out, a run of a file source therefore gives every row whose content (its columns other than the key
and the provenance) equals its published row that published row's provenance: the row is then the published row,
and both the layer's comparison (pipeline/layering.py) and a snapshot's (pipeline/changes.py) see no change. A row
whose content changed keeps the new file's provenance. A database column that happens to be called ``_file_name``
is content: only a connector with the ``files`` capability has provenance columns (it refuses files with columns
of those names).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import Connector
from connectors.filestreams import FILE_MODIFIED, FILE_NAME
from pipeline.changes import budget_connection, located_file, quoted, row_digest
from pipeline.duckdb_parts import readable_parts
from pipeline.layers import PART_INDEX, Part, live_sql
from pipeline.lookup_index import published_stem, row_store_path
from pipeline.staging import part_writer

PROVENANCE = (FILE_NAME, FILE_MODIFIED)


def provenance_columns(connector: Connector, schema: pa.Schema) -> tuple[str, ...]:
    """The schema's provenance columns when the connector reads files (none otherwise)."""
    if "files" not in connector.capabilities:
        return ()
    return tuple(name for name in PROVENANCE if name in schema.names)


def keep_published_provenance(*, folder: Path, files: list[str], previous_parts: list[Part], key: tuple[str, ...],
                              schema: pa.Schema, provenance: tuple[str, ...], row_stores: bool,
                              dictionary: list[str] | bool = True) -> int:
    """Rewrite the run's parts (``files``, relative to ``folder``) so that a row whose content equals its live
    published row carries the published row's provenance. Same rows, same order (key locators stay valid); a
    rewritten part's row store is dropped, and the publish writes it again; ``dictionary``: the columns the run's
    parts are dictionary-encoded in (PartWriter.dictionary), kept. Returns the rows given back their provenance."""
    content = [n for n in schema.names if n not in key and n not in provenance]
    scratch = folder / "provenance"
    scratch.mkdir(parents=True, exist_ok=True)
    parts = [Part(path=folder / name, rows=pq.ParquetFile(folder / name).metadata.num_rows) for name in files]
    try:
        located = _located(parts, previous_parts, key, content, provenance, scratch)
        restored = 0
        for index, name in enumerate(files, start=1):
            found = pq.read_table(located, filters=[("part", "=", index)])
            if found.num_rows:
                _rewrite(folder / name, found, provenance, dictionary)
                restored += found.num_rows
                if row_stores:  # it holds the rows as first written
                    store = row_store_path(published_stem(folder, name))
                    if store.is_file():
                        os.remove(store)
        return restored
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _located(parts: list[Part], previous_parts: list[Part], key: tuple[str, ...], content: list[str],
             provenance: tuple[str, ...], scratch: Path) -> Path:
    """(part from 1, row, the published provenance) of every run row whose content hash equals its published
    row's and whose provenance differs, ordered by part and row. Keys and one hash are joined, never whole rows
    (pipeline/changes.py says why)."""
    keys = [quoted(k) for k in key]
    marks = [quoted(c) for c in provenance]
    needed = [*key, *content]
    connection = budget_connection(scratch)
    try:
        fresh = live_sql(readable_parts(parts, scratch=scratch / "fresh", columns=needed), connection, positions=True)
        before = live_sql(readable_parts(previous_parts, scratch=scratch / "before", columns=needed), connection)
        on = " AND ".join(f"n.{k} = o.{k}" for k in keys)
        differs = " OR ".join(f"n.{m} IS DISTINCT FROM o.{m}" for m in marks)
        return located_file(connection, scratch / "located.parquet", (
            f"SELECT n.{PART_INDEX}::INTEGER AS part, n.file_row_number AS row, "
            f"{', '.join(f'o.{m}' for m in marks)} "
            f"FROM (SELECT {', '.join(f'x.{k}' for k in keys)}, {', '.join(f'x.{m}' for m in marks)}, "
            f"{row_digest('x', content)} AS __hash, x.{PART_INDEX}, x.file_row_number FROM {fresh} x) n "
            f"JOIN (SELECT {', '.join(f'x.{k}' for k in keys)}, {', '.join(f'x.{m}' for m in marks)}, "
            f"{row_digest('x', content)} AS __hash FROM {before} x) o "
            f"ON {on} AND n.__hash IS NOT DISTINCT FROM o.__hash WHERE {differs} ORDER BY 1, 2"))
    finally:
        connection.close()


def _rewrite(path: Path, found: pa.Table, provenance: tuple[str, ...], dictionary: list[str] | bool) -> None:
    """The part with the provenance of the rows ``found`` names replaced, row group by row group."""
    rows = found.column("row").to_numpy().astype(np.int64)
    source = pq.ParquetFile(path)
    partial = path.with_name(path.name + ".provenance")
    start = 0
    with part_writer(partial, source.schema_arrow, dictionary=dictionary) as writer:
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            end = start + table.num_rows
            first, last = np.searchsorted(rows, [start, end])
            if last > first:
                at = rows[first:last] - start
                for name in provenance:
                    column = table.column(name).combine_chunks()
                    published = found.column(name).slice(first, last - first).combine_chunks().cast(column.type)
                    order = np.arange(table.num_rows)
                    order[at] = table.num_rows + np.arange(last - first)
                    table = table.set_column(table.schema.get_field_index(name), name,
                                             pa.concat_arrays([column, published]).take(pa.array(order)))
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            start = end
    os.replace(partial, path)
