"""Lookup structures of a data part (查找索引), built when a version is published, so a keyed lookup on the
interface channel (接口交换) costs a bisection and a row copy, never a sort or a scan.

For every data part (an immutable Parquet file) of a resource offered through the interface mode:

- a *row store*: the part's rows in file order as an uncompressed Arrow IPC file, memory-mapped by the server,
  so fetching a row copies a few bytes per column instead of decoding a Parquet row group;
- for each *lookup column*, the part's keys sorted, with their row positions (two .npy files, memory-mapped,
  searched by bisection). An integer primary key reuses the part's key locator (pipeline.locator): same
  format, already written at staging. Integer keys are int64, floating ones float64; every other type is
  its canonical Arrow text, as fixed-width bytes cut at ``MAX_KEY_BYTES`` (a longer value is found by its
  prefix and confirmed on the fetched row).

They live beside the part in its own version folder (``lookup/<part stem>...``), written into the staging
folder before the rename, so they appear with the version or not at all and are never part of the manifest
(the data files stay exactly what it describes). A layer references its base's parts and therefore their
structures: publishing a layer builds them for its own delta part only. Columns first looked up after the
publish are indexed on demand into ``<storage>/index/<resource>/<owner folder>/`` (pipeline paths of
delivery caches) and, from then on, built at every publish of that resource ("learned").
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.paths import storage_root

LOOKUP_DIR = "lookup"
MAX_KEY_BYTES = 64  # longer text keys are indexed by their first 64 bytes
_CHUNK_ROWS = 65_536
_KEYS, _ROWS = ".keys.npy", ".rows.npy"


# --- where a part's structures are ------------------------------------------------------------------------

def published_stem(owner: Path, part_name: str) -> Path:
    """<owner>/lookup/<part path without suffix>: the structures written with the version."""
    return owner / LOOKUP_DIR / Path(part_name).with_suffix("")


def cached_stem(owner: Path, part_name: str) -> Path:
    """The same under <storage>/index/: structures built after the publish (a column looked up later)."""
    return storage_root() / "index" / owner.parent.name / owner.name / Path(part_name).with_suffix("")


def row_store_path(stem: Path) -> Path:
    return stem.with_name(stem.name + ".arrow")


def key_files(stem: Path, column: str) -> tuple[Path, Path]:
    base = f"{stem.name}.{quote(column, safe='')}"
    return stem.with_name(base + _KEYS), stem.with_name(base + _ROWS)


def indexed_columns(stem: Path) -> set[str]:
    """Columns with sorted keys under this stem."""
    if not stem.parent.is_dir():
        return set()
    prefix = stem.name + "."
    return {unquote(name[len(prefix):-len(_KEYS)]) for name in os.listdir(stem.parent)
            if name.startswith(prefix) and name.endswith(_KEYS)}


# --- key encoding, one rule for building and probing ------------------------------------------------------

def key_kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) and not pa.types.is_uint64(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    return "text"


def encode_keys(array: pa.Array, width: int | None = None) -> np.ndarray:
    """The array's keys (no nulls) as a sortable NumPy array; text as fixed-width bytes (``width`` or the
    longest value, at most MAX_KEY_BYTES)."""
    kind = key_kind(array.type)
    if kind == "int":
        return array.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if kind == "float":
        return array.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return _fixed_width(_as_bytes(array), width)


def encode_probe(value: object, kind: pa.DataType, width: int) -> object:
    """One looked-up value (already of the column's Python type) encoded like the column's keys: the hot
    path of every lookup, so plain Python for the common types."""
    family = key_kind(kind)
    if family == "int":
        return np.int64(value)
    if family == "float":
        return np.float64(value)
    if isinstance(value, str) and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return value.encode()[:width]
    if isinstance(value, bytes):
        return value[:width]
    return encode_keys(pa.array([value], type=kind), width)[0]


def _as_bytes(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
            or pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
        array = array.cast(pa.string())  # dates, timestamps, decimals...: their canonical text
    return array.cast(pa.large_binary())


def _fixed_width(array: pa.Array, width: int | None) -> np.ndarray:
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if width is None:
        width = int(min(max(int(lengths.max()) if len(lengths) else 1, 1), MAX_KEY_BYTES))
    out = np.zeros((len(array), width), dtype=np.uint8)
    for start in range(0, len(array), _CHUNK_ROWS):  # bounded temporaries: index arrays are 8 bytes a byte
        stop = min(start + _CHUNK_ROWS, len(array))
        kept = np.minimum(lengths[start:stop], width)
        total = int(kept.sum())
        rows = np.repeat(np.arange(start, stop), kept)
        within = np.arange(total) - np.repeat(np.cumsum(kept) - kept, kept)
        out[rows, within] = data[np.repeat(offsets[start:stop], kept) + within]
    return out.view(f"S{width}").ravel()


# --- building ---------------------------------------------------------------------------------------------

def build_keys(part_path: Path, column: str, stem: Path) -> None:
    """Sort one column of a part into stem's key files (nulls left out: they never match a lookup)."""
    values = pq.read_table(part_path, columns=[column]).column(0).combine_chunks()
    positions = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False)) if values.null_count else None
    if positions is not None:
        values = values.take(pa.array(positions))
    keys = encode_keys(values)
    order = np.argsort(keys, kind="stable")
    rows = order if positions is None else positions[order]
    keys_file, rows_file = key_files(stem, column)
    # The rows first: readers take the keys file for the pair (a lookup beside the build loaded the keys and
    # found no rows file: a FileNotFoundError under concurrent first lookups).
    _save_atomically(rows_file, rows.astype(np.int64, copy=False))
    _save_atomically(keys_file, keys[order])


def build_row_store(part_path: Path, stem: Path) -> None:
    """The part's rows, uncompressed, in file order (record batches streamed: bounded memory)."""
    source = pq.ParquetFile(part_path)
    target = row_store_path(stem)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, source.schema_arrow) as writer:
        for batch in source.iter_batches(batch_size=_CHUNK_ROWS):
            writer.write_batch(batch)
    os.replace(partial, target)


def _save_atomically(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}.npy")
    np.save(partial, array)
    os.replace(partial, path)


def build_part(part_path: Path, stem: Path, columns: Iterable[str], *, located: str | None = None) -> None:
    """What a lookup needs of one part: its row store (unless the staging wrote it already, row for row)
    and the sorted keys of each column (but ``located``, the integer key its locator already sorts)."""
    store = row_store_path(stem)
    rows = pq.ParquetFile(part_path).metadata.num_rows
    if not store.is_file() or _row_store_rows(store) != rows:
        build_row_store(part_path, stem)
    names = set(pq.read_schema(part_path).names)
    for column in columns:
        if column in names and column != located and not key_files(stem, column)[0].is_file():
            build_keys(part_path, column, stem)


def _row_store_rows(path: Path) -> int:
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


class RowStoreWriter:
    """Writes a part's row store while the part itself is written (staging), so the publish need not read
    the part back; pipeline.staging.PartWriter drives it."""

    def __init__(self, stem: Path, schema: pa.Schema) -> None:
        path = row_store_path(stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._sink.close()
