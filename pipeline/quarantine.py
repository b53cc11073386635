"""Quarantined rows for the provider (隔离数据): export them to fix, and list the rows a ticket names.

Export writes CSV (UTF-8 with BOM, opens in Excel) or Excel, one row per quarantined row: ``_run_id``,
``_rule``, ``_reason`` and the source values as they were read (text). The provider corrects the values in that
file and hands it back to ``pipeline.replay``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ConfigError, NotFound
from pipeline import paths
from pipeline.validate import REASON_COLUMN, RULE_COLUMN

RUN_COLUMN = "_run_id"
EXCEL_MAX_ROWS = 1_048_575
BATCH_ROWS = 65_536


def set_batches(storage_path: str, run_id: str) -> Iterator[pa.RecordBatch]:
    path = paths.resolve(storage_path)
    if not path.is_file():
        raise NotFound(f"quarantine file {path} is missing; the rows of run {run_id} cannot be read")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        yield batch.append_column(RUN_COLUMN, pa.array([run_id] * batch.num_rows, pa.string()))


def _export_columns(storage_paths: list[str]) -> list[str]:
    names: list[str] = []
    for storage_path in storage_paths:
        for name in pq.ParquetFile(paths.resolve(storage_path)).schema_arrow.names:
            if name not in names and name not in (RULE_COLUMN, REASON_COLUMN):
                names.append(name)
    return [RUN_COLUMN, RULE_COLUMN, REASON_COLUMN, *names]


def _aligned(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = [batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
              for name in columns]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def export_quarantine(*, resource_code: str, path: Path, run_id: str | None = None) -> int:
    """Write the open quarantined rows (all runs, or one) to ``path`` (.csv or .xlsx); the number of rows."""
    from registry.db import session_scope
    from registry.quarantine import open_sets

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ConfigError(f"export to .csv or .xlsx, not {path.name}")
    with session_scope() as session:
        sets = [(s.path, s.run_id, s.rows) for s in open_sets(session, resource_code=resource_code, run_id=run_id)]
    total = sum(rows for _, _, rows in sets)
    if suffix == ".xlsx" and total > EXCEL_MAX_ROWS:
        raise ConfigError(f"{total} rows do not fit one Excel sheet; export to .csv instead")
    columns = _export_columns([p for p, _, _ in sets])
    batches = (_aligned(b, columns) for p, r, _ in sets for b in set_batches(p, r))
    path.parent.mkdir(parents=True, exist_ok=True)
    written = _write_csv(path, columns, batches) if suffix == ".csv" else _write_excel(path, columns, batches)
    _audit_export(resource_code, path, written)
    return written


def _write_csv(path: Path, columns: list[str], batches: Iterator[pa.RecordBatch]) -> int:
    written = 0
    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # the BOM lets Excel see UTF-8
        writer = csv.writer(handle)
        writer.writerow(columns)
        for batch in batches:
            writer.writerows(zip(*(batch.column(c).to_pylist() for c in columns)))
            written += batch.num_rows
    return written


def _write_excel(path: Path, columns: list[str], batches: Iterator[pa.RecordBatch]) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("隔离数据")
    sheet.append(columns)
    written = 0
    for batch in batches:
        for row in zip(*(batch.column(c).to_pylist() for c in columns)):
            sheet.append(list(row))
        written += batch.num_rows
    notes = book.create_sheet("说明")
    notes.append(["请在“隔离数据”表中更正数据值后交回; 以 _ 开头的列不要修改。"])
    notes.append(["Correct the values in the first sheet and hand the file back; leave the columns starting "
                  "with _ as they are. The hub replays it with `govshare quarantine replay RESOURCE --file FILE`."])
    book.save(path)
    return written


def _audit_export(resource_code: str, path: Path, rows: int) -> None:
    from registry.audit import record_event
    from registry.db import session_scope

    with session_scope() as session:
        record_event(session, actor="cli", action="quarantine.export", resource_code=resource_code,
                     detail={"file": path.name, "rows": rows})


def ticket_rows(session, *, ticket, limit: int = 50) -> tuple[list[str], list[tuple]]:  # noqa: ANN001
    """The first ``limit`` rows a ticket lists: its quarantined rows, or its consistency mismatches."""
    from registry.quality_models import ConsistencyCheck, QuarantineSet

    storage_path = None
    if ticket.quarantine_set_id:
        storage_path = session.get(QuarantineSet, ticket.quarantine_set_id).path
    elif ticket.consistency_check_id:
        storage_path = session.get(ConsistencyCheck, ticket.consistency_check_id).path
    if not storage_path or not paths.resolve(storage_path).is_file():
        return [], []
    parquet = pq.ParquetFile(paths.resolve(storage_path))
    batch = next(parquet.iter_batches(batch_size=max(limit, 1)), None)
    if batch is None:
        return list(parquet.schema_arrow.names), []
    batch = batch.slice(0, limit)
    names = batch.schema.names
    if RULE_COLUMN in names:  # rule and reason first: that is what the provider must act on
        names = [RULE_COLUMN, REASON_COLUMN, *[n for n in names if n not in (RULE_COLUMN, REASON_COLUMN)]]
    return names, list(zip(*(batch.column(n).to_pylist() for n in names)))
