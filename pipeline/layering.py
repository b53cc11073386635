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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.layer_changes import ChangeWriter, rows_at
from pipeline.row_store import PrefetchedRows
from pipeline.layers import DELETES_DIR, Part, deleted_positions, iter_parts, parts_of, write_deleted
from pipeline.locator import Found, find_live
from pipeline.manifest import file_sha256
from pipeline.validate import key_array

MAX_PARTS = 24  # a version read as more files than this is compacted by its next incremental run
MAX_DEAD_FRACTION = 0.2  # ... and so is one whose referenced files are a fifth dead rows


def compaction_due(parts: list[Part]) -> bool:
    """Whether a version of these parts is past the limits: its next run with changes compacts it."""
    total = sum(p.rows for p in parts)
    dead = sum(p.deleted_rows for p in parts)
    return len(parts) >= MAX_PARTS or dead > MAX_DEAD_FRACTION * max(total, 1)


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

    def finish(self, *, previous_path: str, removed: pa.Array | None,
               prefetched: PrefetchedRows | None = None, withheld: pa.Array | None = None) -> Layer:
        """Mark the replaced and the ``removed`` keys' rows dead and close the change set with the deletes
        (their rows taken from ``prefetched`` where the key scan read them ahead). ``withheld``: keys whose new
        state the run quarantined; their rows go too, as deletes, without claiming the source's deletes were
        looked for (``removed`` None: no key scan)."""
        try:
            gone = self._gone(removed if withheld is None or not len(withheld) else
                              withheld if removed is None else pa.concat_arrays([removed,
                                                                                 withheld.cast(removed.type)]))
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
            self.changes.write_deletes([(self.parts[g.part_index], g.positions) for g in gone if len(g.positions)],
                                       prefetched=prefetched)
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


def carry_forward(parts: list[Part], writer, key: tuple[str, ...],  # noqa: ANN001 - PartWriter
                  changed: pa.Array | pa.ChunkedArray) -> int:
    """A snapshot instead of a layer (compaction, a TRUNCATE, a replay): the previous version's live rows whose
    key did not change are written into the new version, batch by batch."""
    if isinstance(changed, pa.ChunkedArray):
        changed = changed.combine_chunks()
    changed = pc.unique(changed) if len(changed) else changed
    carried = 0
    for batch in iter_parts(parts):
        hit = pc.is_in(key_array(batch, key), value_set=changed)
        kept = batch.filter(pc.invert(hit))
        if kept.num_rows:
            writer.write(kept)
            carried += kept.num_rows
    return carried


def _distinct_keys(files: list[Path], key: tuple[str, ...]) -> pa.Array:
    arrays = [key_array(pq.read_table(path, columns=list(key)), key) for path in files]
    if not arrays:
        return pa.array([])
    return pc.unique(pa.chunked_array(arrays).combine_chunks())


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
