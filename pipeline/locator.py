"""Key locators (键位索引): where a key's live row is in a version, found without scanning the version.

An incremental run must find, for each key it read, the file and row position of that key's current row, to
mark it deleted there (pipeline.layers) and to tell an insert from an update. Scanning the key column of a
5-million-row version costs about 0.1 s per run; a locator answers in milliseconds. A locator is written
beside each data part whose key is one integer column (the common surrogate key): the part's keys sorted,
and their row positions, as two .npy files memory-mapped at lookup time. Other keys (text, composite) are
found by scanning the key column, which stays correct, only slower.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.layers import Part, deleted_positions
from pipeline.validate import key_array

LOCATOR_DIR = "locator"
# The duplicate check merges the parts' sorted keys one key range at a time, about this many keys a range:
# its memory (some 30 MB) does not grow with the table.
DUPLICATES_RANGE_ROWS = 1_000_000


# CPython 3.11 builds an AST with interpreter-wide recursion bookkeeping, so two threads parsing at once (a
# garbage collection in one lets the other run) can fail with "SystemError: AST constructor recursion depth
# mismatch" (python/cpython#106905; seen here in a key scan). A .npy header is a dict parsed by
# ast.literal_eval, and the key scan's range threads and the interface's threads read headers at once: every
# header read in the hub takes this lock (npy_header, load_npy).
NPY_HEADER_LOCK = threading.Lock()


def npy_header(handle) -> tuple[tuple[int, ...], np.dtype]:  # noqa: ANN001 - a binary file at its start
    """A .npy file's shape and dtype; the handle is left at the data."""
    with NPY_HEADER_LOCK:
        major, _ = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
    return shape, dtype


def load_npy(path: Path, *, mmap_mode: str | None = None) -> np.ndarray:
    """np.load of a one-dimensional .npy file, its header read under NPY_HEADER_LOCK."""
    if mmap_mode is not None:
        with NPY_HEADER_LOCK:
            return np.load(path, mmap_mode=mmap_mode)
    with path.open("rb") as handle:
        shape, dtype = npy_header(handle)
        return np.fromfile(handle, dtype=dtype, count=int(np.prod(shape)))


def supports(schema: pa.Schema, key: tuple[str, ...]) -> bool:
    """A single integer key that int64 holds: a uint64 key (MySQL BIGINT UNSIGNED) from 2**63 up wrapped to a
    negative number in the sorted keys, so its rows were not found (an update published as a second row, a
    delete missed); such a key is found by scanning, as a text key is."""
    if len(key) != 1 or key[0] not in schema.names:
        return False
    kind = schema.field(key[0]).type
    return pa.types.is_integer(kind) and not pa.types.is_uint64(kind)


def locator_name(part_name: str) -> str:
    """The locator's stem for a part ("data/part-00000.parquet" -> "locator/part-00000")."""
    return f"{LOCATOR_DIR}/{Path(part_name).stem}"


def _files(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".keys.npy"), stem.with_name(stem.name + ".rows.npy")


def build(part_path: Path, key: str, stem: Path) -> None:
    """Sort the part's keys once, at staging time, so every later run looks keys up by bisection."""
    column = pq.read_table(part_path, columns=[key]).column(0)
    if column.null_count:  # NULL keys never reach a part (a blocking rule); NumPy would turn them into floats
        raise ValueError(f"{part_path.name}: key {key} holds NULLs; it cannot be located")
    keys = column.to_numpy()
    order = np.argsort(keys, kind="stable")
    keys_file, rows_file = _files(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.save(keys_file, keys[order].astype(np.int64, copy=False))
    np.save(rows_file, order.astype(np.int64, copy=False))


def duplicates(stems: list[Path]) -> pa.Array:
    """Keys held more than once across these parts' locators: their sorted keys merged, equal neighbours
    taken, one key range at a time (a key's every copy falls in the same range). On an integer key this
    replaces the DuckDB check: a tenth of the time, no spill, and bounded memory whatever the table's size."""
    files = [_files(stem)[0] for stem in stems]
    # Read, never memory-mapped: mapped pages count in the process's resident memory (the kernel maps whole
    # neighbourhoods of a touched page), and all parts' keys are 8 bytes a row. One part is held at a time
    # to find the ranges, then each range's slices are read from every part.
    samples, total = [], 0
    for path in files:
        keys = load_npy(path)
        total += len(keys)
        samples.append(keys[:: max(1, len(keys) // 64)].copy())  # a copy: a view would keep the part alive
    if not total:
        return pa.array([], pa.int64())
    ranges = -(-total // DUPLICATES_RANGE_ROWS)
    sample = np.sort(np.concatenate(samples))
    bounds = np.unique(sample[np.linspace(0, len(sample) - 1, ranges + 1).astype(np.int64)[1:-1]])
    edges = []
    for path in files:
        keys = load_npy(path)
        edges.append([0, *np.searchsorted(keys, bounds).tolist(), len(keys)])
    found = []
    for index in range(len(bounds) + 1):
        pieces = [_read_slice(path, cuts[index], cuts[index + 1]) for path, cuts in zip(files, edges)]
        merged = np.sort(np.concatenate(pieces), kind="stable")  # sorted runs: a merge
        found.append(np.unique(merged[1:][merged[1:] == merged[:-1]]))
    return pa.array(np.concatenate(found))


def _read_slice(path: Path, start: int, stop: int) -> np.ndarray:
    """Elements start..stop of a one-dimensional .npy file, read without loading or mapping the rest."""
    with path.open("rb") as handle:
        _, dtype = npy_header(handle)
        handle.seek(handle.tell() + start * dtype.itemsize)
        return np.fromfile(handle, dtype=dtype, count=max(stop - start, 0))


class Mapped:
    """A one-dimensional .npy file, memory-mapped with the kernel told how it will be read, so a run's resident
    memory holds the pages it reads, not their neighbourhoods: ``random`` (bisection: no read-ahead) or
    sequential (a merge front to back, which gives back the pages it passed: ``release``)."""

    def __init__(self, path: Path, *, random: bool) -> None:
        import mmap

        with path.open("rb") as handle:
            shape, dtype = npy_header(handle)
            self._offset = handle.tell()
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._map.madvise(mmap.MADV_RANDOM if random else mmap.MADV_SEQUENTIAL)
        self.array = np.frombuffer(self._map, dtype=dtype, count=int(np.prod(shape)), offset=self._offset)

    def release(self, upto: int) -> None:
        """Drop the pages before element ``upto`` from the process (they stay in the page cache)."""
        import mmap

        end = (self._offset + upto * self.array.itemsize) // mmap.PAGESIZE * mmap.PAGESIZE
        if end > 0:
            self._map.madvise(mmap.MADV_DONTNEED, 0, end)

    def close(self) -> None:
        self.array = None
        try:
            self._map.close()
        except BufferError:  # a view of it still lives: the mapping goes with it
            pass


@dataclass
class Found:
    """The live rows of some keys in one part: positions in the file, and which of the wanted keys they are."""

    part_index: int
    positions: np.ndarray
    wanted: np.ndarray  # indexes into the array of wanted keys


def _by_locator(part: Part, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys_file, rows_file = _files(part.locator)
    keys, rows = Mapped(keys_file, random=True), Mapped(rows_file, random=True)
    try:
        at = np.searchsorted(keys.array, wanted)
        inside = at < len(keys.array)
        hit = np.zeros(len(wanted), dtype=bool)
        hit[inside] = keys.array[at[inside]] == wanted[inside]
        return rows.array[at[hit]], np.flatnonzero(hit)  # fancy indexing copies: no view of the mapping left
    finally:
        keys.close()
        rows.close()


def _by_scan(part: Part, key: tuple[str, ...], wanted: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    positions, which = [], []
    start = 0
    for batch in pq.ParquetFile(part.path).iter_batches(batch_size=262_144, columns=list(key)):
        keys = key_array(batch, key)
        hits = pc.indices_nonzero(pc.is_in(keys, value_set=wanted)).to_numpy()
        if len(hits):
            positions.append(hits + start)
            which.append(pc.index_in(keys.take(pa.array(hits)), value_set=wanted).to_numpy())
        start += batch.num_rows
    if not positions:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(positions).astype(np.int64), np.concatenate(which).astype(np.int64)


def find_live(parts: list[Part], key: tuple[str, ...], wanted: pa.Array,
              dead: list[np.ndarray] | None = None) -> list[Found]:
    """Where each wanted key (distinct values) has its live row. A key lives in the newest part that holds
    it, so parts are searched newest first and a key found is not searched further; a key found only at a
    deleted position has no live row. ``dead``: each part's deleted positions, when the caller has them."""
    remaining = np.ones(len(wanted), dtype=bool)
    numeric = wanted.to_numpy(zero_copy_only=False) if len(key) == 1 and pa.types.is_integer(wanted.type) else None
    if numeric is not None:  # bisecting in key order walks each locator's pages once, front to back
        order = np.argsort(numeric, kind="stable")
        wanted, numeric = wanted.take(pa.array(order)), numeric[order]
    else:
        order = None
    found: list[Found] = []
    for index in range(len(parts) - 1, -1, -1):
        if not remaining.any():
            break
        part = parts[index]
        todo = np.flatnonzero(remaining)
        if part.locator is not None and numeric is not None and all(f.is_file() for f in _files(part.locator)):
            positions, local = _by_locator(part, numeric[todo])
        else:  # no locator (a text or composite key, a version from before locators, a lost file): scan
            positions, local = _by_scan(part, key, wanted.take(pa.array(todo)))
        which = todo[local]
        remaining[which] = False
        gone = dead[index] if dead is not None else deleted_positions(part)
        if len(gone):  # sorted: bisect rather than np.isin, which sorts both sides again
            at = np.minimum(np.searchsorted(gone, positions), len(gone) - 1)
            alive = gone[at] != positions
            positions, which = positions[alive], which[alive]
        if len(positions):
            found.append(Found(part_index=index, positions=positions,
                               wanted=order[which] if order is not None else which))
    return found
