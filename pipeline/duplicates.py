"""Keys read more than once in one run (一数一源): which row, if any, may be published.

A database read holds each key once; two rows of one key cannot be told apart, so every row of that key goes
to quarantine with the rule ``unique_key`` (nothing is guessed). A file source is different: a newer file
carries the newer state of a key that an older file also holds (an update delivered as a file). There the
row of the newest file wins (files ranked by modification time, then name: connectors.base.ROW_ORIGIN_COLUMN)
and the older rows are superseded, neither published nor quarantined; only a key repeated within that newest
file is a duplicate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.staging import QuarantineWriter
from pipeline.validate import REASON_COLUMN, RULE_COLUMN, key_array

DUPLICATE_RULE = "unique_key"


def settle_duplicates(folder: Path, files: list[str], key: tuple[str, ...], dupes: pa.Array,
                      quarantine: QuarantineWriter, origins: Path | None = None) -> int:
    """Rewrite the parts without the rows of repeated keys: the newest file's row is kept when it is alone
    there (``origins``: each row's file rank, aligned with the parts), the rest quarantined. Returns the rows
    superseded by a newer file's row."""
    ranks = pq.read_table(origins).column("rank").to_numpy() if origins is not None else None
    newest = _newest(folder, files, key, dupes, ranks) if ranks is not None else {}
    superseded, offset = 0, 0
    for name in files:
        table = pq.read_table(folder / name)
        rows = table.num_rows
        keys = key_array(table, key)
        is_dupe = pc.is_in(keys, value_set=dupes).to_numpy(zero_copy_only=False)
        if not is_dupe.any():
            offset += rows
            continue
        keep = ~is_dupe
        to_quarantine = is_dupe.copy()
        if ranks is not None:
            mine = ranks[offset:offset + rows]
            for index in np.flatnonzero(is_dupe):
                best, count = newest[keys[int(index)].as_py()]
                if mine[index] < best:  # an older file's row: the newer one replaces it
                    to_quarantine[index] = False
                    superseded += 1
                elif count == 1:  # the newest file's only row of the key
                    keep[index], to_quarantine[index] = True, False
        offset += rows
        if to_quarantine.any():
            bad = table.filter(pa.array(to_quarantine))
            bad = bad.append_column(RULE_COLUMN, pa.array([DUPLICATE_RULE] * bad.num_rows, pa.string()))
            bad = bad.append_column(REASON_COLUMN, pa.array(
                [f"主键重复 / duplicate key ({', '.join(key)})"] * bad.num_rows, pa.string()))
            for batch in bad.to_batches():
                quarantine.write(batch)
        pq.write_table(table.filter(pa.array(keep)), folder / name, compression="snappy")
    return superseded


def _newest(folder: Path, files: list[str], key: tuple[str, ...], dupes: pa.Array,
            ranks: np.ndarray) -> dict[object, tuple[int, int]]:
    """Per repeated key: the newest file rank holding it, and how many rows it has there."""
    found: dict[object, tuple[int, int]] = {}
    offset = 0
    for name in files:
        keys = key_array(pq.read_table(folder / name, columns=list(key)), key)
        is_dupe = pc.is_in(keys, value_set=dupes).to_numpy(zero_copy_only=False)
        for index in np.flatnonzero(is_dupe):
            value, rank = keys[int(index)].as_py(), int(ranks[offset + index])
            best, count = found.get(value, (-1, 0))
            found[value] = (rank, 1) if rank > best else (best, count + (rank == best))
        offset += len(keys)
    return found


class FileRanks:
    """Each staged row's file rank (file sources), in a side file aligned with the parts' rows."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows, self._writer = path, 0, None

    def write(self, ranks: pa.Array) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, pa.schema([("rank", pa.int32())]))
        self._writer.write_batch(pa.record_batch([ranks.cast(pa.int32())], names=["rank"]))
        self.rows += len(ranks)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
