"""Quarantined rows for the provider (隔离数据): export them to fix, and list the rows a ticket names.

Export writes CSV (UTF-8 with BOM, opens in Excel) or Excel, one row per quarantined row that is still open (its
newest reading): ``_run_id``, ``_rule`` (every rule it breaks, ``;``-separated), ``_reason``, ``_key`` (the row's
name in the records) and the source values as they were read (text). The provider corrects the values in that file and hands it back to ``pipeline.replay``.
A quarantined row is known by its key's text, or without a key by the digest of its values (``row_keys``),
the same way the registry's records name it (registry/quality/quarantine.py).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ConfigError, NotFound
from core.sheet_text import for_people
from core.xlsx import append_row
from pipeline import paths
from pipeline.validate import REASON_COLUMN, REASON_SEPARATOR, RULE_COLUMN, key_array, rules_of

RUN_COLUMN = "_run_id"
KEY_COLUMN = "_key"  # the row's name in the records, so a replay closes them even when the fix changed the key
RESOURCE_COLUMN = "_resource"  # which resource a row of a provider-and-rule ticket comes from
EXCEL_MAX_ROWS = 1_048_575
BATCH_ROWS = 65_536
ROW_KEY_PREFIX = "row:"  # registry.quality.quarantine.ROW_KEY_PREFIX: a row without a key, known by its values


def row_keys(batch: pa.RecordBatch | pa.Table, key: tuple[str, ...]) -> list[str]:
    """Each row's name in the quarantine records: its key as text (composite keys joined by U+001F), or for a
    row without a key (or a resource without one) ``row:`` + SHA-256 of its values as text."""
    keys = pc.cast(key_array(batch, key), pa.string()).to_pylist() if key else [None] * batch.num_rows
    if all(k is not None for k in keys):
        return keys
    names = [n for n in batch.schema.names if not n.startswith("_")]
    values = [pc.cast(batch.column(n), pa.string()).to_pylist() for n in names]
    named = []
    for index, found in enumerate(keys):
        if found is None:
            text = "\x1f".join("\x00" if column[index] is None else column[index] for column in values)
            found = ROW_KEY_PREFIX + hashlib.sha256(text.encode()).hexdigest()
        named.append(found)
    return named


def resource_key(resource) -> tuple[str, ...]:  # noqa: ANN001 - registry Resource
    """The key runs merge and quarantine by: the stream's, else its contract's."""
    from schemas.contract_store import contract_for

    key = tuple((resource.stream or {}).get("primary_key") or ())
    if not key:
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
        key = tuple(contract.key) if contract is not None else ()
    return key


def seen_keys(batch: pa.RecordBatch, key: tuple[str, ...], watch: pa.Array) -> list[str]:
    """The keys of a batch (as text, the records' form) that are among ``watch`` (open quarantine keys)."""
    if not len(watch) or not key:
        return []
    texts = pc.cast(key_array(batch, key), pa.string())
    return texts.filter(pc.fill_null(pc.is_in(texts, value_set=watch), False)).to_pylist()


def entries_of(path: Path, key: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(key, rule, reason) for every rule every quarantined row of a run's file broke."""
    entries = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        names = row_keys(batch, key)
        reasons = batch.column(REASON_COLUMN).to_pylist()
        for name, rules, why in zip(names, rules_of(batch.column(RULE_COLUMN)), reasons):
            explained = (why or "").split(REASON_SEPARATOR)
            for index, rule in enumerate(rules):
                entries.append((name, rule, explained[index] if index < len(explained) else ""))
    return entries


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
    return [RUN_COLUMN, RULE_COLUMN, REASON_COLUMN, KEY_COLUMN, *names]


def _aligned(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = [batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
              for name in columns]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def open_rows(session, *, resource, run_id: str | None = None,  # noqa: ANN001 - Session, Resource
              rule: str | None = None) -> tuple[list[str], Iterator[pa.RecordBatch], int]:
    """The quarantined rows still open (of one run, or of one rule), newest reading of each: (columns,
    batches, rows). Sets from before per-key records give all their rows."""
    from registry.quality.quarantine import open_keys_of_sets, open_records, open_sets

    if rule is not None:
        records = open_records(session, resource_id=resource.id, rule=rule)
        by_set: dict[int, set[str] | None] = {}
        for record in records:
            by_set.setdefault(record.set_id, set()).add(record.key)
        from registry.quality.models import QuarantineSet

        sets = [session.get(QuarantineSet, i) for i in sorted(by_set)]
    else:
        sets = open_sets(session, resource_code=resource.code, run_id=run_id)
        by_set = open_keys_of_sets(session, set_ids=[s.id for s in sets])
    key = resource_key(resource)
    chosen = [(s.path, s.run_id, by_set.get(s.id)) for s in sets]
    total = sum(len(k) if k is not None else s.rows for s, (_, _, k) in zip(sets, chosen))
    columns = _export_columns([p for p, _, _ in chosen])

    def batches() -> Iterator[pa.RecordBatch]:
        for storage_path, set_run, keys in chosen:
            for batch in set_batches(storage_path, set_run):
                names = row_keys(batch, key)
                batch = batch.append_column(KEY_COLUMN, pa.array(names, pa.string()))
                if keys is not None:
                    batch = batch.filter(pa.array([k in keys for k in names], pa.bool_()))
                if batch.num_rows:
                    yield _aligned(batch, columns)

    return columns, batches(), total


def export_quarantine(*, resource_code: str, path: Path, run_id: str | None = None) -> int:
    """Write the open quarantined rows (all runs, or one) to ``path`` (.csv or .xlsx); the number of rows."""
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ConfigError(f"export to .csv or .xlsx, not {path.name}")
    with session_scope() as session:
        columns, batches, total = open_rows(session, resource=get_resource(session, code=resource_code),
                                            run_id=run_id)
        if suffix == ".xlsx" and total > EXCEL_MAX_ROWS:
            raise ConfigError(f"{total} rows do not fit one Excel sheet; export to .csv instead")
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
            # for the provider's spreadsheet: a value it would run as a formula gets the text marker ' (replay
            # takes it off again, core/sheet_text.py)
            rows = zip(*(batch.column(c).to_pylist() for c in columns))
            writer.writerows([for_people(v) for v in row] for row in rows)
            written += batch.num_rows
    return written


def _write_excel(path: Path, columns: list[str], batches: Iterator[pa.RecordBatch]) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("隔离数据")
    append_row(sheet, columns)
    written = 0
    for batch in batches:
        for row in zip(*(batch.column(c).to_pylist() for c in columns)):
            append_row(sheet, row)  # the rows that failed: text stays text, any character survives (core.xlsx)
        written += batch.num_rows
    notes = book.create_sheet("说明")
    notes.append(["请在“隔离数据”表中更正数据值后交回; 以 _ 开头的列不要修改。"])
    notes.append(["Correct the values in the first sheet and hand the file back; leave the columns starting "
                  "with _ as they are. The hub replays it with `govshare quarantine replay RESOURCE --file FILE`."])
    book.save(path)
    return written


def _audit_export(resource_code: str, path: Path, rows: int) -> None:
    from registry.audit.log import record_event
    from registry.db import session_scope

    with session_scope() as session:
        record_event(session, actor="cli", action="quarantine.export", resource_code=resource_code,
                     detail={"file": path.name, "rows": rows})


def ticket_rows(session, *, ticket, limit: int = 50) -> tuple[list[str], list[tuple]]:  # noqa: ANN001
    """The first ``limit`` rows a ticket lists: its rule's open quarantined rows, or its consistency mismatches."""
    from registry.quality.models import ConsistencyCheck, QuarantineSet

    if ticket.kind == "quarantine" and ticket.rule:
        return _rule_rows(session, ticket=ticket, limit=limit)
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
    return _rule_first(names), [_reorder(names, r) for r in zip(*(batch.column(n).to_pylist() for n in names))]


def _rule_rows(session, *, ticket, limit: int) -> tuple[list[str], list[tuple]]:  # noqa: ANN001
    """A provider-and-rule ticket's open rows, resource by resource (``_resource`` first when it names more
    than one: their columns differ)."""
    from registry.catalog.resources import get_resource

    codes = [c for c, n in (ticket.detail or {}).get("resources", {}).items() if n] or [ticket.resource.code]
    several = len(codes) > 1
    names: list[str] = [RESOURCE_COLUMN] if several else []
    rows: list[dict] = []
    for code in codes:
        columns, batches, _ = open_rows(session, resource=get_resource(session, code=code), rule=ticket.rule)
        columns = [c for c in columns if c != RUN_COLUMN]
        names += [c for c in columns if c not in names]
        for batch in batches:
            rows += [{RESOURCE_COLUMN: code, **dict(zip(columns, r))}
                     for r in zip(*(batch.column(c).to_pylist() for c in columns))]
            if len(rows) >= limit:
                break
        if len(rows) >= limit:
            break
    ordered = _rule_first(names)
    if several:
        ordered = [RESOURCE_COLUMN, *[n for n in ordered if n != RESOURCE_COLUMN]]
    return ordered, [tuple(row.get(n) for n in ordered) for row in rows[:limit]]


def _rule_first(names: list[str]) -> list[str]:
    """Rule and reason first: that is what the provider must act on."""
    if RULE_COLUMN not in names:
        return list(names)
    return [RULE_COLUMN, REASON_COLUMN, *[n for n in names if n not in (RULE_COLUMN, REASON_COLUMN)]]


def _reorder(names: list[str], row: tuple) -> tuple:
    values = dict(zip(names, row))
    return tuple(values[n] for n in _rule_first(names))
