"""An incremental run published as a layer (增量分层) on the previous version, at the cost of its changes only.

The rows read become the new version's own delta part; every file of the previous version is referenced, not
copied, and the rows the delta replaces get a deletion vector (pipeline.layers). The change set comes from
the delta alone: a key the previous version held is an update, any other an insert, and a row re-read at the
previous watermark (cursor ties are read again on purpose) that is identical to its published row is not a
change. Layers stack up to a limit; past it, or once too many referenced rows are dead, the next run with
changes compacts instead: it writes a whole snapshot, as a full refresh does (pipeline.extract). The layer is
worked out first all the same, for its change set: a run that finds no change publishes nothing, and one
that compacted first would throw its snapshot away (and every quiet run after it would write it again).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.changes import CHANGE_COLUMN, ChangeSet, change_schema
from pipeline.layers import DELETES_DIR, Part, deleted_positions, iter_parts, parts_of, write_deleted
from pipeline.locator import Found, find_live
from pipeline.manifest import file_sha256
from pipeline.validate import key_array

MAX_PARTS = 24  # a version read as more files than this is compacted by its next incremental run
MAX_DEAD_FRACTION = 0.2  # ... and so is one whose referenced files are a fifth dead rows
DELETED_ROWS_AT_ONCE = 65_536  # deleted rows read and written to the change set at once
ROW_READERS = 8  # record batches of a row store read at once when rows are taken from it (I/O overlapped)


def compaction_due(parts: list[Part]) -> bool:
    """Whether a version of these parts is past the limits: its next run with changes compacts it."""
    total = sum(p.rows for p in parts)
    dead = sum(p.deleted_rows for p in parts)
    return len(parts) >= MAX_PARTS or dead > MAX_DEAD_FRACTION * max(total, 1)


def layerable(parts: list[Part], schema: pa.Schema, previous_schema: pa.Schema) -> bool:
    """Whether the next incremental run may stack a layer, or must compact into a snapshot."""
    return schema == previous_schema and not compaction_due(parts)


@dataclass
class Layer:
    referenced: list[dict] = field(default_factory=list)  # manifest entries of the previous version's files
    rows_carried: int = 0
    changes: dict = field(default_factory=dict)

    def carried_parts(self, folder: Path) -> list[Part]:
        """The previous version's files as the layer keeps them (with its new marks); ``folder``: the run's."""
        return parts_of(folder, {"files": self.referenced})


def _entry_for(part: Part, previous_path: str) -> dict:
    """The previous version's entry, pointing at the folder that owns the file (and its deletion vector)."""
    entry = dict(part.entry)
    entry.setdefault("folder", previous_path)
    if entry.get("deleted"):
        entry["deleted"] = {**entry["deleted"], "folder": entry["deleted"].get("folder") or previous_path}
    return entry


def stack(*, folder: Path, delta_files: list[str], key: tuple[str, ...], parts: list[Part], previous_path: str,
          previous_number: int, schema: pa.Schema, cursor: str | None, previous_mark: str | None,
          removed: pa.Array | None = None) -> Layer:
    """Reference the previous version's files, mark the rows the delta replaces, and write the change set.

    ``removed`` (change capture, deletes found by a key scan): more keys whose rows go, deleted at the source
    or quarantined, with no new row; they are deletes in the change set, carrying the row as it was. Without
    a cursor (change capture), every re-read key is compared with its published row; with one, only rows at
    the watermark.
    """
    started = start_layer(folder=folder, delta_files=delta_files, key=key, parts=parts, schema=schema,
                          cursor=cursor, previous_mark=previous_mark, previous_number=previous_number)
    return started.finish(previous_path=previous_path, removed=removed)


def start_layer(*, folder: Path, delta_files: list[str], key: tuple[str, ...], parts: list[Part],
                schema: pa.Schema, cursor: str | None, previous_mark: str | None,
                previous_number: int) -> StartedLayer:
    """The part of ``stack`` that needs only the delta: which keys it replaces, which re-reads are
    unchanged, and its rows in the change set. An incremental run does this while its key scan is still
    reading the source's keys, and finishes the layer with the deletes the scan found (``finish``)."""
    delta = [folder / name for name in delta_files]
    read = _distinct_keys(delta, key)
    dead_before = [deleted_positions(part) for part in parts]
    found = find_live(parts, key, read, dead_before) if len(read) else []
    existed = np.zeros(len(read), dtype=bool)
    for hit in found:
        existed[hit.wanted] = True
    unchanged = _unchanged_ties(delta, key, read, found, parts, cursor=cursor, mark=previous_mark, schema=schema)
    changes = ChangeWriter(folder / "changes.parquet", schema=schema, since=previous_number)
    try:
        changes.write_delta(delta, key, read, existed, unchanged)
        # The replaced rows' marks too: a part the deletes do not touch keeps these as they are written here
        replaced = {hit.part_index: _marked(dead_before[hit.part_index], hit.positions) for hit in found}
        vectors = {index: _write_vector(folder, index, dead) for index, dead in replaced.items()}
    except BaseException:
        changes.abort()
        raise
    return StartedLayer(folder=folder, key=key, parts=parts, read=read, found=found, dead_before=dead_before,
                        changes=changes, replaced=replaced, vectors=vectors)


def _marked(dead: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """A part's sorted dead positions with more marked: inserted in place (a merge, not a sort of them all:
    after a run the part's marks are many, the new ones few)."""
    if not len(positions):
        return dead
    positions = np.unique(positions)
    at = np.searchsorted(dead, positions)
    new = (at >= len(dead)) | (dead[np.minimum(at, len(dead) - 1)] != positions) if len(dead) else \
        np.ones(len(positions), dtype=bool)
    return np.insert(dead, at[new], positions[new])


def _write_vector(folder: Path, index: int, dead: np.ndarray) -> dict:
    """The part's deletion vector in the layer's folder, and its manifest entry."""
    name = f"{DELETES_DIR}/{index:05d}.parquet"
    write_deleted(folder / name, dead)
    return {"path": name, "rows": int(len(dead)), "sha256": file_sha256(folder / name)}


@dataclass
class StartedLayer:
    folder: Path
    key: tuple[str, ...]
    parts: list[Part]
    read: pa.Array  # the delta's distinct keys
    found: list[Found]  # where they had live rows
    dead_before: list[np.ndarray]
    changes: ChangeWriter  # open: the deletes come last
    replaced: dict[int, np.ndarray] = field(default_factory=dict)  # dead positions once the delta's keys are marked
    vectors: dict[int, dict] = field(default_factory=dict)  # their deletion vectors, written already

    def finish(self, *, previous_path: str, removed: pa.Array | None) -> Layer:
        """Mark the replaced and the ``removed`` keys' rows dead and close the change set with the deletes."""
        try:
            gone = self._gone(removed)
            layer = Layer()
            newly_dead = 0
            removed_here = {hit.part_index: hit.positions for hit in gone}
            for index, part in enumerate(self.parts):
                entry = _entry_for(part, previous_path)
                if index in removed_here:
                    dead = _marked(self.replaced.get(index, self.dead_before[index]), removed_here[index])
                    entry["deleted"] = _write_vector(self.folder, index, dead)
                elif index in self.vectors:
                    dead, entry["deleted"] = self.replaced[index], self.vectors[index]
                else:
                    dead = self.dead_before[index]
                newly_dead += len(dead) - len(self.dead_before[index])
                layer.referenced.append(entry)
            layer.rows_carried = sum(p.live_rows for p in self.parts) - newly_dead
            self.changes.write_deletes([(self.parts[g.part_index], g.positions) for g in gone if len(g.positions)])
            layer.changes = self.changes.close(deletes_detected=removed is not None)
            return layer
        except BaseException:
            self.changes.abort()
            raise

    def abort(self) -> None:
        self.changes.abort()

    def _gone(self, removed: pa.Array | None) -> list[Found]:
        """Where the removed keys the delta does not hold had live rows."""
        if removed is None or not len(removed):
            return []
        if len(self.read):
            removed = removed.filter(pc.invert(pc.is_in(removed, value_set=self.read.cast(removed.type))))
        removed = pc.unique(removed)
        return find_live(self.parts, self.key, removed, self.dead_before) if len(removed) else []


def version_batches(folder: Path, layer: Layer, own_files: list[str]):  # noqa: ANN201 - quality.checks.BatchReader
    """The rows the layered version will hold (the previous files minus the new marks, and the delta), for the
    dataset rules that run before it is published."""
    parts = layer.carried_parts(folder) + [
        Part(path=folder / name, rows=pq.ParquetFile(folder / name).metadata.num_rows) for name in own_files]
    return lambda *, columns=None: iter_parts(parts, columns=columns)


def compact(folder: Path, layer: Layer, writer) -> int:  # noqa: ANN001 - PartWriter
    """Compaction (合并) of a layer that found changes: the rows it carries (the previous version's live rows
    less those its delta replaced and its deletes removed) written after the delta, batch by batch, so the
    version owns every file it lists; its deletion vectors go, nothing refers to them. The rows carried."""
    carried = 0
    for batch in iter_parts(layer.carried_parts(folder)):
        writer.write(batch)
        carried += batch.num_rows
    shutil.rmtree(folder / DELETES_DIR, ignore_errors=True)
    return carried


def carry_forward(parts: list[Part], writer, key: tuple[str, ...], changed: pa.Array | pa.ChunkedArray) -> int:  # noqa: ANN001 - PartWriter
    """A snapshot instead of a layer (compaction, a TRUNCATE, a replay): the previous version's live rows whose
    key did not change are written into the new version, batch by batch."""
    if isinstance(changed, pa.ChunkedArray):
        changed = changed.combine_chunks()
    changed = pc.unique(changed) if len(changed) else changed
    carried = 0
    for batch in iter_parts(parts):
        kept = batch.filter(pc.invert(pc.is_in(key_array(batch, key), value_set=changed)))
        if kept.num_rows:
            writer.write(kept)
            carried += kept.num_rows
    return carried


def _distinct_keys(files: list[Path], key: tuple[str, ...]) -> pa.Array:
    arrays = [key_array(pq.read_table(path, columns=list(key)), key) for path in files]
    if not arrays:
        return pa.array([])
    return pc.unique(pa.chunked_array(arrays).combine_chunks())


def rows_at(part: Part, positions: np.ndarray) -> pa.Table:
    """The rows of a file at some positions (ascending): copied out of the part's row store where the publish
    wrote one, else decoding only the row groups that hold them (rows spread over a whole table, such as
    random deletes, touch every row group: the whole part is decoded)."""
    stored = _stored_rows_at(part, positions)
    return stored if stored is not None else parquet_rows_at(part, positions)


def parquet_rows_at(part: Part, positions: np.ndarray) -> pa.Table:
    """The rows at some positions (ascending) decoded from the row groups that hold them: cheaper than the row
    store for rows that lie close together (a store's pages are read one at a time)."""
    parquet = pq.ParquetFile(part.path)
    starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    groups = np.searchsorted(starts, positions, side="right") - 1
    pieces = []
    for group in np.unique(groups):
        local = positions[groups == group] - starts[group]
        pieces.append(parquet.read_row_group(int(group)).take(pa.array(local)))
    return pa.concat_tables(pieces) if pieces else parquet.schema_arrow.empty_table()


def _stored_rows_at(part: Part, positions: np.ndarray) -> pa.Table | None:
    """The rows from the part's row store (pipeline.lookup_index: uncompressed Arrow, memory-mapped, so a row
    costs a copy of its values), or None when the part has none, or one that does not hold the part row
    for row."""
    from pipeline.lookup_index import published_stem, row_store_path

    name = part.entry.get("path")
    if not name:
        return None
    path = row_store_path(published_stem(Path(str(part.path)[: -len(name)].rstrip("/")), name))
    if not path.is_file():
        return None
    import mmap

    # Pages mapped count in the process's resident memory, and the kernel maps whole neighbourhoods (large
    # folios) of a touched page: rows spread over the file would map most of it. So no read-ahead, and the
    # pages are given back after each round of record batches (they stay in the page cache). A row's values
    # sit on pages of their own in every column: where the file has left the page cache, each is a read from
    # disk, so the batches of a round are taken in threads (their reads overlap; take releases the GIL).
    with path.open("rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    mapping.madvise(mmap.MADV_RANDOM)
    try:
        reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        if sum(b.num_rows for b in batches) != part.rows or not batches \
                or batches[0].schema.names != pq.read_schema(part.path).names:
            return None
        starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]])
        which = np.searchsorted(starts, positions, side="right") - 1
        jobs = [(batches[b], pa.array(positions[which == b] - starts[b])) for b in np.unique(which)]
        taken = []
        with ThreadPoolExecutor(max_workers=ROW_READERS, thread_name_prefix="govshare-rows") as pool:
            for first in range(0, len(jobs), ROW_READERS):
                taken += pool.map(lambda job: job[0].take(job[1]), jobs[first:first + ROW_READERS])
                mapping.madvise(mmap.MADV_DONTNEED)
        return pa.Table.from_batches(taken, schema=batches[0].schema) if taken else \
            batches[0].schema.empty_table()  # take copies: nothing returned points into the mapping
    finally:
        reader = batches = None
        try:
            mapping.close()
        except BufferError:  # a buffer of it still lives: the mapping goes with it
            pass


def _at_or_before(values: pa.ChunkedArray | pa.Array, mark: str | None) -> pa.Array:
    """Rows whose cursor is not past the previous watermark: only these can be unchanged re-reads (every
    published row's cursor is at or before the watermark, so a row past it differs at least there)."""
    if mark is None:  # no watermark to go by: every row is compared
        return pa.array(np.ones(len(values), dtype=bool))
    try:
        bound = pa.scalar(mark).cast(values.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array(np.ones(len(values), dtype=bool))  # compare every re-read row: slower, still right
    return pc.fill_null(pc.less_equal(values, bound), True)


def _unchanged_ties(delta: list[Path], key: tuple[str, ...], wanted: pa.Array, found: list[Found],
                    parts: list[Part], *, cursor: str | None, mark: str | None, schema: pa.Schema) -> np.ndarray:
    """Which wanted keys were re-read exactly as published (indexes into ``wanted``)."""
    if not found:
        return np.zeros(len(wanted), dtype=bool)
    candidates = []
    for path in delta:
        if cursor:  # the cursor column first: usually only a few rows sit at the watermark
            at_mark = _at_or_before(pq.read_table(path, columns=[cursor]).column(0), mark)
            if not pc.any(at_mark).as_py():
                continue
            table = pq.read_table(path).filter(at_mark)
        else:
            table = pq.read_table(path)
        if table.num_rows:
            candidates.append(table)
    unchanged = np.zeros(len(wanted), dtype=bool)
    if not candidates:
        return unchanged
    new = pa.concat_tables(candidates)
    new_index = pc.index_in(key_array(new, key), value_set=wanted).to_numpy(zero_copy_only=False)
    for hit in found:
        wanted_here = np.isin(hit.wanted, new_index)
        if not wanted_here.any():
            continue
        old = rows_at(parts[hit.part_index], hit.positions[wanted_here])
        old_index = pc.index_in(key_array(old, key), value_set=wanted).to_numpy(zero_copy_only=False)
        mine = new.take(pa.array(np.flatnonzero(np.isin(new_index, old_index))))
        mine_index = pc.index_in(key_array(mine, key), value_set=wanted).to_numpy(zero_copy_only=False)
        order = pc.index_in(key_array(mine, key), value_set=key_array(old, key))
        aligned = old.take(order)
        same = np.ones(mine.num_rows, dtype=bool)
        for name in schema.names:
            same &= same_values(mine.column(name), aligned.column(name))
        unchanged[mine_index[same]] = True
    return unchanged


def same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """Row by row: equal values, or both null, or both NaN (a float that is not a number is the same value
    read again: compared as unequal, every run republished its row). Nested values (e.g. a PostgreSQL array)
    have no comparison kernel: they are compared as Python values (callers pass a few rows: the rows at the
    watermark, a window of a copy being verified)."""
    try:
        equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    except pa.ArrowNotImplementedError:
        return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist())], dtype=bool)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(a.type) and pa.types.is_floating(b.type):
        both_nan = pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False).to_numpy(zero_copy_only=False)
        return equal | both_null | both_nan
    return equal | both_null


class ChangeWriter:
    """A layer's change file: the delta's inserts and updates, then the deletes carrying their old rows."""

    def __init__(self, out: Path, *, schema: pa.Schema, since: int) -> None:
        self.target = change_schema(schema)
        self.result = ChangeSet(since_version=since, file=out.name)
        # No dictionaries: a layer's change file is small and written on every run, where they cost a third.
        self.writer = pq.ParquetWriter(out, self.target, compression="snappy", use_dictionary=False)

    def write_delta(self, delta: list[Path], key: tuple[str, ...], wanted: pa.Array, existed: np.ndarray,
                    unchanged: np.ndarray) -> None:
        target, result = self.target, self.result
        for path in delta:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                index = pc.index_in(key_array(batch, key), value_set=wanted).to_numpy(zero_copy_only=False)
                keep = ~unchanged[index]
                if not keep.any():
                    continue
                batch = batch.filter(pa.array(keep))
                updates = existed[index[keep]]
                kinds = pc.if_else(pa.array(updates), "update", "insert")
                arrays = [batch.column(f.name).cast(f.type) if f.name != CHANGE_COLUMN else kinds for f in target]
                self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=target))
                result.updated += int(updates.sum())
                result.inserted += int((~updates).sum())

    def write_deletes(self, deletes: list[tuple[Part, np.ndarray]]) -> None:
        """A delete carries the row as last published. The rows are read and written DELETED_ROWS_AT_ONCE at a
        time: a source that dropped most of a table must not bring every old row into memory at once."""
        for part, positions in deletes:
            positions = np.sort(positions)
            for first in range(0, len(positions), DELETED_ROWS_AT_ONCE):
                wanted = positions[first:first + DELETED_ROWS_AT_ONCE]
                rows = rows_at(part, wanted)
                kinds = pa.array(["delete"] * rows.num_rows, pa.string())
                arrays = [rows.column(f.name).cast(f.type) if f.name != CHANGE_COLUMN else kinds
                          for f in self.target]
                self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.target))
                self.result.deleted += rows.num_rows
                rows = arrays = None
                pa.default_memory_pool().release_unused()  # mimalloc would keep the decoded row groups' pages

    def close(self, *, deletes_detected: bool) -> dict:
        self.writer.close()
        self.result.deletes_detected = deletes_detected
        return self.result.summary()

    def abort(self) -> None:
        self.writer.close()
