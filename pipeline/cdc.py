"""Change-capture sync (变更捕获同步) of a PostgreSQL resource in cdc mode, published as ordinary versions.

One run, under the resource's lock:
1. the guard (pipeline/cdc_slots.py) drops the slot if it holds back more WAL than allowed;
2. without a usable slot (first run, dropped, `--full`, schema change, slot ahead of the published position)
   a *snapshot run* creates the slot and reads the table in the snapshot the slot exports, so the version is
   exactly the state at the slot's consistent point;
3. otherwise a *change run* streams the slot (pgoutput), collapses the changes by primary key and stages the
   previous version's untouched rows plus the changed rows (deleted keys dropped);
4. the version is published through the one run lifecycle (pipeline.run): its cursor state (the LSN before which every
   commit is in the version) commits in the same transaction as the version;
5. only then is the slot advanced to that LSN. A crash before 5 re-delivers the changes: transactions
   committed before the stored LSN are skipped, the rest merge by key, so nothing is lost or doubled.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_PROBLEM_COLUMN, StreamSpec
from connectors.pgoutput import lsn_int, lsn_text
from connectors.postgres_cdc import (
    UNCHANGED_COLUMN,
    CapturedTable,
    ChangeCapture,
    Collected,
    StreamSchemaChanged,
    changed_keys,
    deleted_count,
    slot_name,
    upsert_batches,
)
from connectors.postgres_forms import FORMS
from core import clock
from core.errors import ConfigError
from core.settings import get_settings
from pipeline import locks
from pipeline.after_publish import STEPS
from pipeline.changes import CHANGES_FILE, ChangeSet, compute_changes
from pipeline.cdc_identity import identity_reason
from pipeline.cdc_layer import contract_form, layer_form, layer_rows, snapshot_reason, stage_layer, touched_keys
from pipeline.conform import run_schema
from pipeline.layering import carry_forward
from pipeline.layers import Part, iter_parts, parts_schema, version_parts
from pipeline.quarantine import seen_keys
from pipeline.run import lifecycle
from pipeline.schema_drift import SchemaMoved, guard_schema
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun, files_rows
from pipeline.validate import finish_checks, key_array, split_batch
from registry.audit.log import record_event
from registry.db import session_scope
from registry.exchange.models import CursorState, SyncRun
from registry.catalog.resources import get_resource
from registry.catalog.sources import open_connector
from registry.exchange.versions import cursor_state, latest_version

# CursorState.cursor_column of a cdc resource, its value an LSN such as 0/1949108. It names the forms the versions
# hold values in (connectors.postgres_forms; "__cdc_lsn": before they were numbered), here and not in a version's
# manifest because a snapshot that changes nothing publishes no version but does rewrite this state.
CDC_CURSOR = f"__cdc_lsn/forms={FORMS}"


def cdc_forms(cursor_column: str | None) -> int | None:
    """The forms of a cdc cursor state's versions; None: not a cdc cursor state."""
    if cursor_column == "__cdc_lsn":
        return 1
    number = (cursor_column or "").removeprefix("__cdc_lsn/forms=")
    return int(number) if number != cursor_column and number.isdigit() else None


def is_cdc(stream: dict | None) -> bool:
    return (stream or {}).get("mode") == "cdc"


@dataclass
class CdcReport:
    resource_code: str
    mode: str  # cdc-snapshot or cdc
    version: int | None  # None: no change since the last version
    position: str
    upserts: int = 0
    deletes: int = 0
    transactions: int = 0
    redelivered: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    manifest_sha256: str = ""
    note: str = ""


@dataclass
class _Resource:
    id: int
    code: str
    stream: dict
    source: dict
    previous_id: int | None
    previous_number: int | None
    previous_rows: int | None
    previous_parts: list[Part]  # the previous version's parts: its rows are their live rows (pipeline.layers)
    previous_path: str | None  # its storage-relative folder, which a layer's entries point at
    cursor: int | None
    watch: list[str]  # keys with open quarantine records (registry.quality.quarantine)
    forms: int | None  # the forms its values were published in (cdc_forms)
    identity: dict | None  # the table they were read from (pipeline.cdc_identity); None: not recorded yet


def capture_for(resource) -> ChangeCapture:  # noqa: ANN001 - registry Resource with its source
    if resource.source is None:
        raise ConfigError(f"resource {resource.code} has no source; change capture needs a postgresql source")
    return ChangeCapture(open_connector(resource.source), slot=slot_name(get_settings().cdc_slot_prefix, resource.code))


def _load(resource_code: str) -> tuple[_Resource, ChangeCapture, object]:
    from registry.quality.quarantine import open_keys
    from schemas.contract_store import contract_for

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        capture = capture_for(resource)
        previous = latest_version(session, resource=resource)
        state = cursor_state(session, resource=resource)
        info = _Resource(
            id=resource.id, code=resource.code, stream=dict(resource.stream),
            source={"name": resource.source.name, "kind": resource.source.kind, "stream": resource.stream},
            previous_id=previous.id if previous else None, previous_number=previous.number if previous else None,
            previous_rows=previous.row_count if previous else None,
            previous_parts=version_parts(previous) if previous else [],
            previous_path=previous.path if previous else None,
            cursor=lsn_int(state.cursor_value) if state and cdc_forms(state.cursor_column) and state.cursor_value
            else None, watch=open_keys(session, resource_id=resource.id),
            forms=cdc_forms(state.cursor_column) if state else None,
            identity=state.source_identity if state and cdc_forms(state.cursor_column) else None)
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
    return info, capture, contract


def sync_cdc(*, resource_code: str, full: bool = False, wait_seconds: float = 0,
             after: tuple[str, ...] = STEPS) -> CdcReport:
    """One change-capture run of the resource (`govshare sync RESOURCE` for a resource in cdc mode)."""
    from pipeline.cdc_slots import guard_slot, mark_resync

    with session_scope() as session:
        found = get_resource(session, code=resource_code)
        resource_id, code = found.id, found.code
    run_id = uuid.uuid4().hex
    with locks.resource_lock(resource_id, code, run_id=run_id, wait_seconds=wait_seconds):
        resource, capture, contract = _load(code)  # under the lock: the version and position are current
        stream = StreamSpec.from_stream(resource.stream, batch_rows=get_settings().batch_rows)
        table = capture.inspect(stream)
        publication_added = capture.ensure_publication(table)
        guard_slot(resource_code=resource.code, capture=capture)
        slot = capture.slot_info()
        reason = None
        if full:
            reason = "full re-read requested (--full)"
        elif slot is None:
            reason = "first run: no slot yet" if resource.cursor is None else "the slot was dropped"
        elif resource.cursor is None or resource.previous_id is None:
            reason = "no published position for this slot (an earlier snapshot run did not finish)"
        elif resource.forms != FORMS:  # changes merged into it would give a value, a key too, two forms
            reason = (f"已发布的取值形式已过时，重新快照 / values were published in forms {resource.forms}, not {FORMS} "
                      "(char(n) padded, intervals in ISO 8601): a snapshot republishes them as the full read does")
        elif slot.confirmed_flush_lsn and lsn_int(slot.confirmed_flush_lsn) > resource.cursor:
            reason = (f"the slot was advanced to {slot.confirmed_flush_lsn} past the published position "
                      f"{lsn_text(resource.cursor)}: changes in between may be lost")
            mark_resync(resource_id=resource.id, resource_code=resource.code, slot=capture.slot, reason=reason,
                        retained_bytes=slot.retained_bytes)
        else:
            published = parts_schema(resource.previous_parts) if resource.previous_parts else None
            reason = snapshot_reason(
                published=published, read=contract_form(published, table.arrow_schema, contract),
                table=f"{table.schema}.{table.name}", publication=capture.publication,
                publication_added=publication_added) or identity_reason(
                recorded=resource.identity, current=table.identity, table=f"{table.schema}.{table.name}")
        report = None
        if reason is None:
            try:
                report = _change_run(resource, capture, table, contract, run_id)
            except (StreamSchemaChanged, SchemaMoved) as moved:
                reason = str(moved)
        if report is None:
            if capture.slot_info() is not None:
                capture.drop_slot()  # a new slot, and a snapshot consistent with its start
            report = _snapshot_run(resource, capture, table, contract, run_id, reason)
    lifecycle.follow_up(resource_code=report.resource_code, version=report.version, steps=after)
    return report


# --- staging ------------------------------------------------------------------------------------------------

def _start(resource: _Resource, run_id: str, mode: str) -> StagedRun:
    # The lease is held for the whole run (sync_cdc): record the run, take its own folder.
    folder = lifecycle.begin(resource_id=resource.id, resource_code=resource.code, run_id=run_id, mode=mode,
                             leased=True)
    return StagedRun(run_id=run_id, resource_id=resource.id, resource_code=resource.code, mode=mode,
                     folder=str(folder), previous_version=resource.previous_id, source=resource.source,
                     findings={"seen": [], "complete": mode == "cdc-snapshot"})


def _finish(staged: StagedRun, writer: PartWriter, quarantine: QuarantineWriter, resource: _Resource,
            table: CapturedTable, contract, removed: pa.Array | None = None) -> None:  # noqa: ANN001
    """``removed``: the keys the changes touched, when they are published as a layer on the previous version."""
    folder = Path(staged.folder)
    staged.key = list(table.primary_key)
    if removed is not None:  # a touched key with no new row was deleted at the source
        touched = set(seen_keys(pa.record_batch([removed], names=["k"]), ("k",), pa.array(resource.watch, pa.string())))
        staged.findings["gone"] = sorted(touched - set(staged.findings["seen"]))
    if removed is None:
        writer.ensure_file(writer.schema or table.arrow_schema)
    writer.close()
    quarantine.close()
    staged.rows_quarantined, staged.quarantine_rules = quarantine.rows, quarantine.by_rule
    staged.quarantine = "quarantine.parquet" if quarantine.rows else None
    if removed is not None:
        batches = stage_layer(staged, writer, parts=resource.previous_parts, previous_path=resource.previous_path,
                              previous_number=resource.previous_number, key=table.primary_key, removed=removed)
        finish_checks(staged, contract, previous_rows=resource.previous_rows, batches=batches)
        _save(staged)
        return
    staged.files = [f"data/{name}" for name in writer.files]
    staged.rows_staged = files_rows(folder, staged.files)
    finish_checks(staged, contract, previous_rows=resource.previous_rows)
    if resource.previous_parts:  # the version holds the whole table: compare every key, deletions included
        staged.changes = compute_changes(
            new_files=[folder / f for f in staged.files], previous_parts=resource.previous_parts,
            key=table.primary_key, schema=pq.read_schema(folder / staged.files[0]),
            previous_schema=parts_schema(resource.previous_parts), out=folder / CHANGES_FILE,
            since_version=resource.previous_number, scratch=folder / "tmp").summary()
    else:
        staged.changes = ChangeSet(since_version=None, inserted=staged.rows_staged, deletes_detected=True,
                                   note="first version: every row is new").summary()
    _save(staged)


def _save(staged: StagedRun) -> None:
    staged.save()
    with session_scope() as session:  # the status stays "staging": the same process publishes at once, and a
        run = session.get(SyncRun, staged.run_id)  # crash before that frees the lock (a dead "staged" run would not)
        run.rows_read, run.rows_quarantined = staged.rows_read, staged.rows_quarantined


def _write(staged: StagedRun, batch: pa.RecordBatch, writer: PartWriter, quarantine: QuarantineWriter,
           table: CapturedTable, contract, watch: list[str], form: pa.Schema | None = None) -> None:  # noqa: ANN001
    staged.rows_read += batch.num_rows
    staged.findings["seen"] += seen_keys(batch, table.primary_key, pa.array(watch, pa.string()))
    split = split_batch(batch, key=table.primary_key, contract=contract)
    if split.bad is not None:
        quarantine.write(split.bad)
    writer.write(layer_rows(split.good, form, resource_code=staged.resource_code) if form is not None else split.good)


def _snapshot_run(resource: _Resource, capture: ChangeCapture, table: CapturedTable, contract, run_id: str,
                  reason: str) -> CdcReport:  # noqa: ANN001
    with session_scope() as session:
        record_event(session, actor="pipeline", action="cdc.snapshot", resource_code=resource.code,
                     detail={"slot": capture.slot, "publication": capture.publication, "reason": reason})
    staged = _start(resource, run_id, "cdc-snapshot")
    folder = Path(staged.folder)
    writer, quarantine = PartWriter(folder / "data"), QuarantineWriter(folder / "quarantine.parquet")
    try:
        with capture.create_slot_with_snapshot(table, batch_rows=get_settings().batch_rows) as (lsn, batches):
            for batch in batches:
                if writer.schema is None and resource.previous_parts:
                    staged.schema_change = guard_schema(
                        resource_code=resource.code, run_id=run_id, previous_number=resource.previous_number,
                        previous_schema=parts_schema(resource.previous_parts),
                        schema=run_schema(batch, contract),
                        key=table.primary_key, cursor=None, contract_columns=set(), incremental=False)
                _write(staged, batch, writer, quarantine, table, contract, resource.watch)
        staged.watermark = {"cursor_column": CDC_CURSOR, "value": lsn_text(lsn), "slot": capture.slot,
                            "snapshot": reason}
        staged.source_identity = table.identity
        _finish(staged, writer, quarantine, resource, table, contract)
    except BaseException as exc:
        writer.close()
        quarantine.close()
        lifecycle.discard(resource_id=resource.id, run_id=run_id, exc=exc, release=False)
        raise
    report = lifecycle.publish(folder=staged.folder)
    return CdcReport(resource_code=resource.code, mode="cdc-snapshot", version=report.version, position=lsn_text(lsn),
                     upserts=staged.rows_read, rows_published=report.rows_published,
                     rows_quarantined=report.rows_quarantined, manifest_sha256=report.manifest_sha256, note=reason)


def _change_run(resource: _Resource, capture: ChangeCapture, table: CapturedTable, contract, run_id: str) -> CdcReport:  # noqa: ANN001
    settings = get_settings()
    collected = capture.collect(table, after=resource.cursor, max_changes=settings.cdc_max_changes,
                                wait_seconds=settings.cdc_wait_seconds)
    position = max(collected.position or 0, resource.cursor)
    if not collected.rows and not collected.truncated:
        _move_cursor(resource, run_id, position, collected, identity=table.identity)
        capture.advance(position)
        return CdcReport(resource_code=resource.code, mode="cdc", version=None, position=lsn_text(position),
                         redelivered=collected.skipped,
                         note=f"no change since v{resource.previous_number}" if resource.previous_number else "")
    # A layer on the previous version, or its change set at least: past the compaction limits the version is
    # compacted, but only once that change set shows a change (pipeline.cdc_layer). Before the run is recorded:
    # a NULL in a column published NOT NULL makes this run a snapshot.
    published = parts_schema(resource.previous_parts) if resource.previous_parts else None
    form = None if collected.truncated else layer_form(
        published, contract_form(published, table.arrow_schema, contract), rows=collected.rows.values())
    staged = _start(resource, run_id, "cdc")
    folder = Path(staged.folder)
    writer, quarantine = PartWriter(folder / "data"), QuarantineWriter(folder / "quarantine.parquet")
    try:
        touched = touched_keys(changed_keys(table, collected), table.primary_key, contract)
        layered = form is not None
        if layered:
            writer.schema = form
        elif not collected.truncated:
            staged.rows_carried = carry_forward(resource.previous_parts, writer, table.primary_key, touched)
        for batch in upsert_batches(table, collected, batch_rows=settings.batch_rows):
            _write(staged, _fill_unchanged(batch, resource.previous_parts, table.primary_key), writer, quarantine,
                   table, contract, resource.watch, form)
        staged.watermark = {"cursor_column": CDC_CURSOR, "value": lsn_text(position), "slot": capture.slot,
                            "transactions": collected.transactions, "changes": collected.changes,
                            "deletes": deleted_count(collected), "truncated": collected.truncated}
        staged.source_identity = table.identity
        _finish(staged, writer, quarantine, resource, table, contract, removed=touched if layered else None)
    except BaseException as exc:
        writer.close()
        quarantine.close()
        lifecycle.discard(resource_id=resource.id, run_id=run_id, exc=exc, release=False)
        raise
    report = lifecycle.publish(folder=staged.folder)  # version and cursor LSN in one transaction
    capture.advance(position)  # only now may the server forget these changes
    return CdcReport(resource_code=resource.code, mode="cdc", version=report.version, position=lsn_text(position),
                     upserts=staged.rows_read, deletes=deleted_count(collected), transactions=collected.transactions,
                     redelivered=collected.skipped, rows_published=report.rows_published,
                     rows_quarantined=report.rows_quarantined, manifest_sha256=report.manifest_sha256)


def _fill_unchanged(batch: pa.RecordBatch, parts: list[Part], key: tuple[str, ...]) -> pa.RecordBatch:
    """Columns an update left unchanged (TOASTed values the server did not resend) take the previous value."""
    if UNCHANGED_COLUMN not in batch.schema.names:
        return batch
    marks = batch.column(UNCHANGED_COLUMN)
    batch = batch.drop_columns([UNCHANGED_COLUMN])
    wanted = key_array(batch, key).filter(pc.is_valid(marks))
    previous: dict = {}
    for old in iter_parts(parts):  # live rows only: a replaced row's old value is not the previous value
        hit = old.filter(pc.is_in(key_array(old, key), value_set=wanted))
        for row in hit.to_pylist():
            previous[tuple(row[k] for k in key)] = row
    rows = batch.to_pylist()
    for row, mark in zip(rows, marks.to_pylist()):
        if not mark:
            continue
        before = previous.get(tuple(row[k] for k in key))
        for name in mark.split(","):
            if before is not None:
                row[name] = before[name]
            else:
                row[ROW_PROBLEM_COLUMN] = f"{name}: unchanged large value with no earlier version to take it from"
    schema = batch.schema
    if any(ROW_PROBLEM_COLUMN in r for r in rows) and ROW_PROBLEM_COLUMN not in schema.names:
        schema = schema.append(pa.field(ROW_PROBLEM_COLUMN, pa.string()))
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def _move_cursor(resource: _Resource, run_id: str, position: int, collected: Collected, *, identity: dict) -> None:
    """Nothing to publish: the position still moves on (and the run is recorded), so the slot can be
    advanced and the server recycles WAL even while the table is quiet. The table's identity goes with it: the
    same as recorded, or recorded for the first time (pipeline.cdc_identity)."""
    with session_scope() as session:
        state = session.get(CursorState, resource.id)
        if state is not None and cdc_forms(state.cursor_column):
            state.cursor_value = lsn_text(position)
            state.source_identity = identity
            state.updated_at = clock.now()
        session.add(SyncRun(id=run_id, resource_id=resource.id, status="unchanged", mode="cdc",
                            finished_at=clock.now(), error=None if not collected.skipped else
                            f"{collected.skipped} re-delivered transaction(s) were already published"))


