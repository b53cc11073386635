"""Change-capture sync (变更捕获同步) of a PostgreSQL resource in cdc mode, published as ordinary versions.

One run, under the resource's lock:
1. the guard (pipeline/cdc_slots.py) drops the slot if it holds back more WAL than allowed;
2. without a usable slot (first run, dropped, `--full`, schema change, slot ahead of the published position)
   a *snapshot run* creates the slot and reads the table in the snapshot the slot exports, so the version is
   exactly the state at the slot's consistent point;
3. otherwise a *change run* streams the slot (pgoutput), collapses the changes by primary key and stages the
   previous version's untouched rows plus the changed rows (deleted keys dropped; a key whose upsert is
   quarantined is dropped too, as a full read publishes no row for it);
4. the version is published through the one run lifecycle (pipeline.run): its cursor state (the LSN before which every
   commit is in the version) commits in the same transaction as the version;
5. only then is the slot advanced to that LSN. A crash before 5 re-delivers the changes: transactions
   committed before the stored LSN are skipped, the rest merge by key, so nothing is lost or doubled.

The resource as a run finds it is read by pipeline/cdc_resource.py, a run's folder is begun, finished and
saved by pipeline/cdc_staging.py; the two runs, which read the slot or its snapshot, are here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from connectors.base import StreamSpec, payload_schema
from connectors.pgoutput import lsn_int, lsn_text
from connectors.postgres_captured import (
    CapturedTable,
    changed_keys,
    deleted_count,
    upsert_batches,
)
from connectors.postgres_cdc import ChangeCapture, StreamSchemaChanged
from connectors.postgres_forms import FORMS
from core.settings import get_settings
from pipeline import locks
from pipeline.after_publish import STEPS
from pipeline.cdc_identity import identity_reason
from pipeline.cdc_layer import layer_form, layer_rows, snapshot_reason, touched_keys
from pipeline.cdc_resource import CDC_CURSOR, CdcResource, load_resource
from pipeline.cdc_staging import begin_cdc_run, fill_unchanged, finish_cdc_run, move_cursor
from pipeline.conform import ValueChoices, contract_form, run_schema
from pipeline.layering import carry_forward
from pipeline.layers import parts_schema
from pipeline.quarantine import seen_keys
from pipeline.run import lifecycle
from pipeline.schema_drift import SchemaMoved, guard_schema
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun
from pipeline.validate import split_batch
from registry.audit.log import record_event
from registry.db import session_scope
from registry.catalog.resources import get_resource

log = logging.getLogger(__name__)


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


def sync_cdc(*, resource_code: str, full: bool = False, wait_seconds: float = 0,
             after: tuple[str, ...] = STEPS) -> CdcReport:
    """One change-capture run of the resource (`govshare sync RESOURCE` for a resource in cdc mode)."""
    from pipeline.cdc_slots import guard_slot, mark_resync

    with session_scope() as session:
        found = get_resource(session, code=resource_code)
        resource_id, code = found.id, found.code
    run_id = uuid.uuid4().hex
    with locks.resource_lock(resource_id, code, run_id=run_id, wait_seconds=wait_seconds):
        resource, capture, contract = load_resource(code)  # under the lock: the version and position are current
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
            reason = reason or _periodic_snapshot_reason(resource_id=resource.id)
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


def _periodic_snapshot_reason(*, resource_id: int) -> str | None:
    """The safety net every resource gets (GOVSHARE_FULL_REFRESH_DAYS): a slot tells only the changes it
    decoded, so one it never saw (a slot advanced by hand together with the stored position, a table restored
    from a backup under its slot, a merge gone wrong) stayed published for good. A fresh snapshot compared with
    the published version shows any drift as a change set; streamed in batches like every snapshot."""
    from pipeline.runs import full_read_due

    with session_scope() as session:
        due = full_read_due(session, resource_id=resource_id)
    days = get_settings().full_refresh_days
    return (f"定期全量核对，重新快照 / the periodic full read is due (last one {days:g} days or more ago, "
            "GOVSHARE_FULL_REFRESH_DAYS): the source is read whole and compared with what was published") \
        if due else None


# --- the runs: a snapshot, or the slot's changes ------------------------------------------------------------

def _write(staged: StagedRun, batch: pa.RecordBatch, writer: PartWriter, quarantine: QuarantineWriter,
           table: CapturedTable, contract, watch: list[str], form: pa.Schema | None = None,  # noqa: ANN001
           choices: ValueChoices | None = None, retype: Callable[[dict[str, pa.DataType]], object] | None = None,
           ) -> None:
    """Stage one batch: its good rows written, its bad ones quarantined."""
    staged.rows_read += batch.num_rows
    staged.findings["seen"] += seen_keys(batch, table.primary_key, pa.array(watch, pa.string()))
    split = split_batch(batch, key=table.primary_key, contract=contract,
                        decided=choices.decided if choices is not None else None)
    if split.bad is not None:
        quarantine.write(split.bad)
    good = choices.apply(split.good, retype) if choices is not None else split.good
    writer.write(layer_rows(good, form, resource_code=staged.resource_code) if form is not None else good)


def _snapshot_run(resource: CdcResource, capture: ChangeCapture, table: CapturedTable, contract, run_id: str,
                  reason: str) -> CdcReport:  # noqa: ANN001
    with session_scope() as session:
        record_event(session, actor="pipeline", action="cdc.snapshot", resource_code=resource.code,
                     detail={"slot": capture.slot, "publication": capture.publication, "reason": reason})
    staged = begin_cdc_run(resource, run_id, "cdc-snapshot")
    folder = Path(staged.folder)
    writer, quarantine = PartWriter(folder / "data"), QuarantineWriter(folder / "quarantine.parquet")
    published = parts_schema(resource.previous_parts) if resource.previous_parts else None
    choices = None  # a text timestamp's zone: the first value decides, NULLs before it take the published choice
    columns = None  # the run's columns as they stand: the first batch's, then as re-typed

    def guard(schema: pa.Schema, *, settled: bool = False) -> None:
        # The first batch's columns, and again once a value re-typed NULLs: a change that cannot publish stops
        # the run at once; while values may still re-type NULLs, a compatible change is recorded only once the
        # table is read (one change a run, with all its differences).
        nonlocal columns
        columns = schema
        if resource.previous_parts:
            staged.schema_change = guard_schema(
                resource_code=resource.code, run_id=run_id, previous_number=resource.previous_number,
                previous_schema=published, schema=schema,
                key=table.primary_key, cursor=None, incremental=False,  # judged as the full read judges it
                contract=contract,
                settled=settled)

    try:
        with capture.create_slot_with_snapshot(table, batch_rows=get_settings().batch_rows) as (lsn, batches):
            for batch in batches:
                if choices is None:
                    choices = ValueChoices(contract=contract, read=payload_schema(batch.schema), published=published)
                    guard(run_schema(batch, contract, choices), settled=not choices.undecided)
                _write(staged, batch, writer, quarantine, table, contract, resource.watch, choices=choices,
                       retype=lambda types: guard(writer.retype(types)))  # only NULLs written: no second read
        if columns is not None:
            guard(columns, settled=True)
        staged.watermark = {"cursor_column": CDC_CURSOR, "value": lsn_text(lsn), "slot": capture.slot,
                            "snapshot": reason}
        staged.source_identity = table.identity
        finish_cdc_run(staged, writer, quarantine, resource, table, contract)
    except BaseException as exc:
        writer.close()
        quarantine.close()
        _drop_unpublished_slot(capture)
        lifecycle.discard(resource_id=resource.id, run_id=run_id, exc=exc, release=False)
        raise
    report = lifecycle.publish(folder=staged.folder)
    return CdcReport(resource_code=resource.code, mode="cdc-snapshot", version=report.version, position=lsn_text(lsn),
                     upserts=staged.rows_read, rows_published=report.rows_published,
                     rows_quarantined=report.rows_quarantined, manifest_sha256=report.manifest_sha256, note=reason)


def _drop_unpublished_slot(capture: ChangeCapture) -> None:
    """A snapshot that did not publish leaves a slot no run can use: its start is past the published position.
    Left, it held the source's WAL back while the run stayed stopped (a dropped contract column stops every run
    until the contract is edited), and each next run took it for a slot advanced behind the hub's back and
    marked a resync ("changes in between may be lost") that `govshare cdc status` showed. Dropped, the next run
    reads a snapshot for the plain reason that there is no slot."""
    try:
        capture.drop_slot()
    except Exception as problem:  # noqa: BLE001 - the run's own error matters more; the next run finds the slot ahead
        log.warning("could not drop slot %s after a stopped snapshot: %s", capture.slot, problem)


def _change_run(resource: CdcResource, capture: ChangeCapture, table: CapturedTable, contract,  # noqa: ANN001
                run_id: str) -> CdcReport:
    settings = get_settings()
    collected = capture.collect(table, after=resource.cursor, max_changes=settings.cdc_max_changes,
                                wait_seconds=settings.cdc_wait_seconds)
    position = max(collected.position or 0, resource.cursor)
    if not collected.rows and not collected.truncated:
        move_cursor(resource, run_id, position, collected, identity=table.identity)
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
    # A text timestamp's zone, as a table read decides it: the run's first value decides (against the published
    # choice: a snapshot), a later text of the other kind is quarantined, never cast to the published type.
    first = ValueChoices(contract=contract, read=table.arrow_schema, published=published)
    choices = ValueChoices(contract=contract, read=table.arrow_schema, published=published,
                           chosen=_first_values(first, table=table, collected=collected, contract=contract,
                                                batch_rows=settings.batch_rows))
    staged = begin_cdc_run(resource, run_id, "cdc")
    folder = Path(staged.folder)
    writer, quarantine = PartWriter(folder / "data"), QuarantineWriter(folder / "quarantine.parquet")
    try:
        touched = touched_keys(changed_keys(table, collected), table.primary_key, contract)
        layered = form is not None
        if layered:
            writer.schema = form
        elif not collected.truncated:
            staged.rows_carried = carry_forward(resource.previous_parts, writer, table.primary_key, touched)
        # Every touched key's published row goes, a key whose upsert is quarantined too: a full read of the table
        # publishes no row for it either (only the quarantine record), and its old row is a value the source no
        # longer holds. The new state waits in quarantine until a readable change or a replay publishes it.
        for batch in upsert_batches(table, collected, batch_rows=settings.batch_rows):
            filled = fill_unchanged(batch, parts=resource.previous_parts, key=table.primary_key, contract=contract)
            _write(staged, filled, writer, quarantine, table, contract, resource.watch, form, choices=choices)
        staged.watermark = {"cursor_column": CDC_CURSOR, "value": lsn_text(position), "slot": capture.slot,
                            "transactions": collected.transactions, "changes": collected.changes,
                            "deletes": deleted_count(collected), "truncated": collected.truncated}
        staged.source_identity = table.identity
        finish_cdc_run(staged, writer, quarantine, resource, table, contract, removed=touched if layered else None)
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


def _first_values(choices: ValueChoices, *, table: CapturedTable, collected, contract,  # noqa: ANN001
                  batch_rows: int) -> dict[str, pa.DataType]:
    """The types a change run's first values choose, read from the collected changes before the run is recorded:
    a first value choosing another type than the published version holds (or one choosing after NULLs) raises
    SchemaMoved while sync_cdc can still read a snapshot as this run. The run then writes with them decided."""
    if not choices.undecided:
        return choices.decided
    for batch in upsert_batches(table, collected, batch_rows=batch_rows):
        choices.apply(split_batch(batch, key=table.primary_key, contract=contract, decided=choices.decided).good)
        if (moved := choices.departed()) is not None:
            raise moved
        if not choices.undecided:
            break
    return choices.decided
