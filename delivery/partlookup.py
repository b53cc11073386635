"""Keyed lookups over a version's parts (接口交换): bisect each part's sorted keys, copy the matching rows out
of its memory-mapped row store, leave out the rows the version deleted.

The structures are the ones the publish built (pipeline.lookup_index); a layered version uses its base's
parts' structures as they are. A column nobody indexed at publish time (or a version published before row
stores existed) gets its structures on its first lookup, per part, in the delivery cache area
(<storage>/index/...), and the resource's next publishes build them too. Loaded structures are memory-mapped,
so a server's resident memory does not grow with the version's size.
"""

from __future__ import annotations

import fcntl
import gc
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.layers import Part, deleted_positions, is_dead, parts_schema, version_parts
from pipeline.locator import load_npy, supports
from pipeline.lookup_index import (
    build_keys,
    build_row_store,
    cached_stem,
    encode_probe,
    key_files,
    published_stem,
    row_store_path,
)
from pipeline.lookup_publish import owner_of
from registry.exchange.models import DatasetVersion

_MAX_CACHED = 512
_LOCK = threading.Lock()
_BUILDING = threading.Lock()  # one on-demand build at a time in a process (others wait for it)


@dataclass
class PartLookup:
    """One part: its row store (memory-mapped) and, per column loaded so far, its sorted keys and positions."""

    part: Part
    located: str | None  # the integer key the part's locator already sorts
    batches: list[pa.RecordBatch] | None = None  # the row store's record batches (memory-mapped)
    starts: np.ndarray | None = None  # the row position of each batch's first row
    keys: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def _stems(self) -> tuple[Path, Path]:
        owner, name = owner_of(self.part)
        return published_stem(owner, name), cached_stem(owner, name)

    def load_rows(self) -> None:
        if self.batches is None:
            published, cached = self._stems()
            path = row_store_path(published)
            if not path.is_file():
                path = _built(row_store_path(cached), lambda: build_row_store(self.part.path, cached))
            reader = pa.ipc.open_file(pa.memory_map(str(path)))  # zero-copy: pages are read on demand
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            self.starts = np.cumsum([0] + [b.num_rows for b in batches[:-1]])
            self.batches = batches

    def take(self, positions: np.ndarray, columns: list[str]) -> list[pa.RecordBatch]:
        """The rows at these positions (ascending), batch by batch: a take across the whole store would
        first concatenate its batches (a copy of the part's column)."""
        self.load_rows()
        which = np.searchsorted(self.starts, positions, "right") - 1
        if len(positions) == 1:  # the usual answer: one row, a zero-copy slice
            batch = int(which[0])
            return [self.batches[batch].select(columns).slice(int(positions[0] - self.starts[batch]), 1)]
        taken = []
        for batch in np.unique(which):
            local = positions[which == batch] - self.starts[batch]
            taken.append(self.batches[batch].select(columns).take(pa.array(local)))
        return taken

    def sorted_keys(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        if (loaded := self.keys.get(column)) is None:
            published, cached = self._stems()
            if column == self.located and self.part.locator is not None:
                stem = self.part.locator
                files = (stem.with_name(stem.name + ".keys.npy"), stem.with_name(stem.name + ".rows.npy"))
            else:
                files = key_files(published, column)
            if not files[0].is_file():
                files = key_files(cached, column)
                _built(files[0], lambda: build_keys(self.part.path, column, cached))
            # Plain arrays over the mappings: np.memmap's Python-level indexing costs more than the search.
            loaded = self.keys[column] = (load_npy(files[0], mmap_mode="r").view(np.ndarray),
                                          load_npy(files[1], mmap_mode="r").view(np.ndarray))
        return loaded

    def positions(self, column: str, value: object, kind: pa.DataType) -> np.ndarray:
        """Row positions (ascending) whose key may equal value; a text prefix may over-select."""
        keys, rows = self.sorted_keys(column)
        probe = encode_probe(value, kind, keys.dtype.itemsize if keys.dtype.kind == "S" else 0)
        low, high = keys.searchsorted(probe, "left"), keys.searchsorted(probe, "right")
        if high - low <= 1:
            return rows[low:high]
        return np.sort(rows[low:high])


def _built(target: Path, build) -> Path:  # noqa: ANN001 - a callable writing target
    """Build target once across threads and processes (a file lock beside it); readers see it whole."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _BUILDING, target.with_name(target.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not target.is_file():
                build()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


@dataclass
class VersionLookup:
    parts: list[PartLookup]
    dead: list[np.ndarray]  # each part's deleted row positions (sorted), for a layered version
    schema: pa.Schema

    def find(self, column: str, value: object, *, columns: list[str] | None) -> pa.Table:
        """Every live row whose column equals value, in the version's order, with the given columns."""
        kind = self.schema.field(column).type
        wanted = self.schema.names if columns is None else (columns if column in columns else [*columns, column])
        found = []
        for part, dead in zip(self.parts, self.dead):
            part.load_rows()  # every part, hit or not: then `loaded` lets the next lookups skip the thread hop
            positions = part.positions(column, value, kind)
            if len(positions) and len(dead):
                positions = positions[~is_dead(dead, positions)]
            if len(positions):
                found += part.take(positions, wanted)
        if not found:
            return self.schema.empty_table().select(wanted)
        table = pa.Table.from_batches(found)
        # Confirm on the rows themselves: text keys are compared by a prefix of at most 64 bytes (and NumPy's
        # byte strings ignore trailing NULs); a float NaN sorts beside NaNs but equals nothing.
        if all(found_value == value for found_value in table.column(column).to_pylist()):
            return table
        return table.filter(pc.equal(table.column(column), pa.scalar(value, kind)))


_PARTS: dict[str, PartLookup] = {}
_VERSIONS: dict[tuple[str, str], VersionLookup] = {}


def _version_key(version: DatasetVersion) -> tuple[str, str]:
    from core.settings import get_settings

    return str(get_settings().storage), version.path  # tests switch hubs within one process


def loaded(version: DatasetVersion, column: str) -> bool:
    """Every part of the version has its row store and its keys of column loaded in this process."""
    known = _VERSIONS.get(_version_key(version))
    return known is not None and all(p.batches is not None and column in p.keys for p in known.parts)


def version_lookup(version: DatasetVersion, *, primary_key: list[str] | None) -> VersionLookup:
    """The version's lookup structures (loaded once per process; a layer shares its base's parts)."""
    key = _version_key(version)
    if (known := _VERSIONS.get(key)) is not None:
        return known
    parts = version_parts(version)
    schema = parts_schema(parts)
    located = primary_key[0] if primary_key and supports(schema, tuple(primary_key)) else None
    with _LOCK:
        if len(_PARTS) > _MAX_CACHED:
            _PARTS.clear()
            _VERSIONS.clear()
        loaded = [_PARTS.setdefault(str(p.path), PartLookup(part=p, located=located)) for p in parts]
    known = VersionLookup(parts=loaded, dead=[deleted_positions(p) for p in parts], schema=schema)
    with _LOCK:
        _VERSIONS[key] = known
    gc.freeze()  # long-lived: keep it out of the collector's full passes (they stall every request)
    return known
