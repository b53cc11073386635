"""The record of files read (已读文件清单) that a file source's incremental read compares the folder with.

A watermark alone (the newest modification time read) missed a file uploaded with an old time kept (`scp -p`,
`rsync -t`, an extracted archive) and a file rewritten in place with its time unchanged: both waited a week for
the full read. Instead each version's cursor state keeps, per file, what identified it when it was read: path,
size, modification time to the microsecond and, where the source tells it cheaply, a stamp that no uploader
sets (a local file's inode and change time; SFTP has none). A file whose entry differs, or that has none, is new
or changed and is read.

Where the time is told to the second only and no stamp beside it (SFTP v3), a file rewritten within the second
the hub listed it, its size unchanged (a corrected digit), looked unchanged until the weekly full read. Such a
file, its time within RECENT_SECONDS of the hub's clock when listed (either side: the server's clock may be off),
is stamped RECENT, and a file recorded RECENT is read again by the next run, until it is read with an older
time (git's "racily clean" files: one more read of the files changed in the last minutes). A content check was
the other choice: a hash of the first and last blocks costs two reads of every listed file on every run
(100,000 files: minutes) and misses the likely same-size edit, a digit mid-file.

The pipeline hands the previous record in as an Arrow table (registry.exchange.file_ledger streams it out of the
registry; some 60 bytes a file, about 6 MB for 100,000 files, less than the listing itself) and takes back only
the difference, written by the connector to a Parquet file in the run folder and applied to the registry in the
publish transaction, so a run that read three files writes three rows, not the whole folder's record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECENT = "recent"
RECENT_SECONDS = 300
# The registry's record (cursor_files) as the connector receives it.
RECORD_SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64()), ("modified_us", pa.int64()),
                           ("stamp", pa.string())])
# The difference a read leaves: entries to (re)write, and ``gone`` paths to forget.
DELTA_SCHEMA = pa.schema([*RECORD_SCHEMA, ("gone", pa.bool_())])


class Listed(Protocol):
    path: str
    modified: datetime
    size: int
    stamp: str | None


def microseconds(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class FileLedger:
    """What a read is given: the files recorded for the previous version, and where to write the difference."""

    previous: pa.Table  # RECORD_SCHEMA; empty when nothing was recorded yet (then every file is new)
    out: Path

    def changed(self, entries: list[Listed]) -> list[bool]:
        """For each listed file, whether it is new or differs from its recorded entry (vectorised: no dict of
        every recorded path in Python objects)."""
        if not entries:
            return []
        listed = record_of(entries)
        where = pc.index_in(listed.column("path"), value_set=self.previous.column("path"))
        found = pc.is_valid(where).to_pylist()
        if not any(found):
            return [True] * len(entries)
        recorded = self.previous.take(pc.fill_null(where, 0))
        same = pc.and_kleene(pc.equal(listed.column("size"), recorded.column("size")),
                             pc.equal(listed.column("modified_us"), recorded.column("modified_us")))
        # a stamp on both sides must agree (None on both, e.g. SFTP, leaves size and time to decide); a file
        # recorded RECENT may have been rewritten after it was read, within its second: read it again
        stamps = pc.or_kleene(pc.and_(pc.is_null(listed.column("stamp")), pc.is_null(recorded.column("stamp"))),
                              pc.equal(listed.column("stamp"), recorded.column("stamp")))
        stamps = pc.and_kleene(stamps, pc.not_equal(pc.fill_null(recorded.column("stamp"), ""), RECENT))
        same = pc.fill_null(pc.and_kleene(same, stamps), False).to_pylist()
        return [not (f and s) for f, s in zip(found, same)]

    def record(self, entries: list[Listed], changed: list[bool]) -> int:
        """Write the difference between the listing and the previous record; the number of entries in it."""
        fresh = record_of([e for e, c in zip(entries, changed) if c])
        listed = pa.array([e.path for e in entries], pa.string())
        gone_paths = pc.filter(self.previous.column("path"),
                               pc.invert(pc.is_in(self.previous.column("path"), value_set=listed)))
        gone = pa.table({"path": gone_paths, "size": pa.nulls(len(gone_paths), pa.int64()),
                         "modified_us": pa.nulls(len(gone_paths), pa.int64()),
                         "stamp": pa.nulls(len(gone_paths), pa.string())}, schema=RECORD_SCHEMA)
        delta = pa.concat_tables([
            fresh.append_column("gone", pa.repeat(False, fresh.num_rows)),
            gone.append_column("gone", pa.repeat(True, gone.num_rows))]).cast(DELTA_SCHEMA)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(delta, self.out)
        return delta.num_rows


def second_stamp(modified: datetime, now: datetime) -> str | None:
    """The stamp of a file whose time is told to the second: RECENT while a rewrite may still share it."""
    return RECENT if abs((modified - now).total_seconds()) <= RECENT_SECONDS else None


def record_of(entries: Iterable[Listed]) -> pa.Table:
    """Entries as the registry records them (RECORD_SCHEMA)."""
    entries = list(entries)
    return pa.table({"path": pa.array([e.path for e in entries], pa.string()),
                     "size": pa.array([e.size for e in entries], pa.int64()),
                     "modified_us": pa.array([microseconds(e.modified) for e in entries], pa.int64()),
                     "stamp": pa.array([e.stamp for e in entries], pa.string())}, schema=RECORD_SCHEMA)
