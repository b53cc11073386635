"""The record of files read (已读文件清单) of a file source, kept in the registry beside its cursor state.

Read out as an Arrow table for the connector (connectors/filelist.py), in pages so no list of ORM objects of
every file is held; written back as the difference a run's read left, in the transaction that records the run's
version (or its unchanged run), so the record always describes what the served version read.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from connectors.filelist import RECORD_SCHEMA
from registry.exchange.models import CursorFile

PAGE = 5_000


def recorded_files(session: Session, *, resource_id: int) -> pa.Table:
    """The files recorded for the resource (empty: none yet, then every file is new)."""
    query = (select(CursorFile.path, CursorFile.size, CursorFile.modified_us, CursorFile.stamp)
             .where(CursorFile.resource_id == resource_id)
             .execution_options(yield_per=PAGE))
    pages = [pa.table([list(column) for column in zip(*rows)], schema=RECORD_SCHEMA)
             for rows in session.execute(query).partitions()]
    return pa.concat_tables(pages) if pages else RECORD_SCHEMA.empty_table()


def apply_file_delta(session: Session, *, resource_id: int, run_id: str, delta: Path) -> int:
    """Rewrite the entries of the files a run read and forget the files gone; the entries changed."""
    changed = 0
    for batch in pq.ParquetFile(delta).iter_batches(batch_size=PAGE):
        rows = batch.to_pylist()
        paths = [row["path"] for row in rows]
        session.execute(delete(CursorFile).where(CursorFile.resource_id == resource_id, CursorFile.path.in_(paths)))
        fresh = [{"resource_id": resource_id, "path": row["path"], "size": row["size"],
                  "modified_us": row["modified_us"], "stamp": row["stamp"], "run_id": run_id}
                 for row in rows if not row["gone"]]
        if fresh:
            session.execute(insert(CursorFile), fresh)
        changed += len(rows)
    return changed

