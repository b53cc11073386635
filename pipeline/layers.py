"""Layered versions (分层版本): how a version's rows are read, whether it is a snapshot or built on another.

A version's manifest lists its data files. A snapshot (a full refresh, change capture, replay, or a compacted
incremental run) owns every file it lists. An incremental run instead lists the previous version's files
as they are, by reference (``folder``: the storage-relative folder of the version that owns the file), plus
its own delta part with the rows it read, and gives each referenced file whose rows it replaced a deletion
vector (删除向量, ``deleted``): the sorted row positions of that file that are no longer in the version. Files
are immutable, so a version's rows are always: every listed file's rows, minus its deletion vector, in
manifest order. Every reader of a version goes through this module, so that rule lives in one place.

Entry fields: ``path`` (relative to the owner's folder), ``rows`` (rows in the file), ``bytes``, ``sha256``;
optionally ``folder`` (owner, when not this version), ``deleted`` {path, rows, sha256, and ``folder`` when an
earlier version wrote it},
and ``locator`` (a sorted key file, see pipeline.locator, relative to the owner's folder).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.storage import get_storage
from pipeline.paths import resolve

POSITION = "position"
DELETES_DIR = "deletes"
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Part:
    """One data file of a version, and the rows of it the version no longer holds."""

    path: Path
    rows: int
    deleted: Path | None = None
    deleted_rows: int = 0
    locator: Path | None = None
    entry: dict = field(default_factory=dict, compare=False)

    @property
    def live_rows(self) -> int:
        return self.rows - self.deleted_rows

    @property
    def owned(self) -> bool:
        """Written by the version listing it (not referenced from an earlier one)."""
        return not self.entry.get("folder")


def parts_of(folder: Path, manifest: dict, *, pull: bool = True) -> list[Part]:
    """The parts a manifest lists; ``folder`` is the version's own folder. ``pull``: the folders of the parts
    are copied into this worker's working copy first (an object store); without it, a part this worker does
    not hold is read from the store by ranged reads (streaming readers: downloads)."""
    owner_of = resolve if pull else (lambda relative: get_storage().local(relative))
    parts = []
    for entry in manifest["files"]:
        owner = owner_of(entry["folder"]) if entry.get("folder") else folder
        deleted = entry.get("deleted") or {}
        deleted_owner = owner_of(deleted["folder"]) if deleted.get("folder") else folder
        parts.append(Part(path=owner / entry["path"], rows=int(entry["rows"]),
                          deleted=deleted_owner / deleted["path"] if deleted else None,
                          deleted_rows=int(deleted.get("rows", 0)),
                          locator=owner / entry["locator"] if entry.get("locator") else None, entry=entry))
    return parts


def version_parts(version, *, pull: bool = True) -> list[Part]:  # noqa: ANN001 - registry DatasetVersion
    folder = resolve(version.path) if pull else get_storage().local(version.path)
    return parts_of(folder, version.manifest, pull=pull)


def _source(path: Path):  # noqa: ANN202 - str | pyarrow.NativeFile
    """A file of this worker, or else the store's object (random access: a Parquet reader reads the footer and
    the column chunks it needs by ranged reads, never the object whole)."""
    return str(path) if path.exists() else get_storage().open_input(path)


def live_rows(manifest: dict) -> int:
    return sum(int(e["rows"]) - int((e.get("deleted") or {}).get("rows", 0)) for e in manifest["files"])


def deleted_positions(part: Part) -> np.ndarray:
    """The part's deleted row positions, sorted (an empty array when it has none)."""
    if part.deleted is None:
        return np.empty(0, dtype=np.int64)
    return pq.read_table(_source(part.deleted), columns=[POSITION]).column(0).to_numpy()


def is_dead(dead: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which of the ``positions`` a part's sorted deleted positions hold (one bool each)."""
    if not len(dead) or not len(positions):
        return np.zeros(len(positions), dtype=bool)
    return dead[np.minimum(np.searchsorted(dead, positions), len(dead) - 1)] == positions


def write_deleted(path: Path, positions: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Plain encoding, no statistics: a handful of these small files is written by every incremental run.
    pq.write_table(pa.table({POSITION: pa.array(np.sort(positions).astype(np.int64))}), path, compression="snappy",
                   use_dictionary=False, write_statistics=False)


def iter_part(part: Part, *, columns: list[str] | None = None,
              batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The part's live rows in file order, in record batches of at most ``batch_size`` rows."""
    dead = deleted_positions(part)
    start = 0
    # pre_buffer=False: a pre-buffering reader keeps every row group's raw bytes until the part is read to
    # its end (about 55 MB a million rows); a reader's memory is then one batch's, whatever the part's size.
    for batch in pq.ParquetFile(_source(part.path), pre_buffer=False).iter_batches(batch_size=batch_size,
                                                                                  columns=columns):
        end = start + batch.num_rows
        if len(dead):
            low, high = np.searchsorted(dead, [start, end])
            if high > low:
                keep = np.ones(batch.num_rows, dtype=bool)
                keep[dead[low:high] - start] = False
                batch = batch.filter(pa.array(keep))
        start = end
        if batch.num_rows:
            yield batch


def iter_parts(parts: list[Part], *, columns: list[str] | None = None,
               batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    for part in parts:
        yield from iter_part(part, columns=columns, batch_size=batch_size)


def parts_schema(parts: list[Part]) -> pa.Schema:
    return pq.read_schema(_source(parts[0].path))


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


PART_COLUMN = "__govshare_part"  # the file a row comes from, in live_sql's scan
PART_INDEX = "__govshare_part_index"  # live_sql(positions=True): the row's part, as its place in the list from 1
_registered = itertools.count()


def live_sql(parts: list[Part], connection, *, positions: bool = False) -> str:  # noqa: ANN001 - a duckdb connection
    """A DuckDB subquery (in parentheses) over the version's live rows, for out-of-core joins and sorts, on
    ``connection`` (the parts' deleted positions are registered on it as an Arrow table). With ``positions``,
    each row also says where it lives: ``PART_INDEX`` (the part's place in ``parts``, from 1) and
    ``file_row_number`` (its row in that file), so a query can name rows by key alone and leave their other
    columns to be read afterwards, part by part (pipeline.changes).

    One scan of every part, less an anti-join with the deleted positions: a scan per part (a UNION ALL)
    holds memory per branch, and a version of some twenty layers ran out of a 96 MB budget that way. The
    registered table's size is known, so the join's hash table is built on the deleted rows, not the scan."""
    files = ", ".join(_literal(p.path) for p in parts)
    dead = [(index, deleted_positions(part)) for index, part in enumerate(parts, start=1) if part.deleted is not None]
    dead = [(index, positions) for index, positions in dead if len(positions)]
    scan = f"read_parquet([{files}], filename = '{PART_COLUMN}', file_row_number = true) r"
    where = f"list_position([{files}], r.{PART_COLUMN})"
    kept = (f"r.* EXCLUDE ({PART_COLUMN}), {where} AS {PART_INDEX}" if positions
            else f"r.* EXCLUDE ({PART_COLUMN}, file_row_number)")
    if not dead:
        return f"(SELECT {kept} FROM {scan})" if positions else f"(SELECT * FROM read_parquet([{files}]))"
    name = f"govshare_deleted_{next(_registered)}"
    connection.register(name, pa.table({
        "part": pa.array(np.concatenate([np.full(len(positions), index, np.int32) for index, positions in dead])),
        POSITION: pa.array(np.concatenate([positions for _, positions in dead]).astype(np.int64))}))
    return (f"(SELECT {kept} FROM {scan} ANTI JOIN {name} d "
            f"ON {where} = d.part AND r.file_row_number = d.{POSITION})")
