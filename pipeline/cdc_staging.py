"""A change-capture run's staging (pipeline/cdc.py): its folder begun, its checks and change set, its record.

A run's folder is begun under the lease the whole cdc run holds; it is finished as a layer on the previous
version (pipeline/cdc_layer.py) or as the whole table with its change set, then saved with the run's record
left "staging" for the same process to publish. Columns an update left unchanged (TOASTed values the server
did not resend) take the previous version's values; a run with nothing to publish still moves the cursor on.
Separate from the runs themselves (pipeline/cdc.py), which read the slot and decide what to stage.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_PROBLEM_COLUMN
from connectors.pgoutput import lsn_text
from connectors.postgres_captured import UNCHANGED_COLUMN, CapturedTable, Collected
from core import clock
from pipeline.cdc_layer import stage_layer, touched_keys
from pipeline.cdc_resource import CdcResource, cdc_forms
from pipeline.changes import CHANGES_FILE, ChangeSet, compute_changes
from pipeline.layers import Part, iter_parts, parts_schema
from pipeline.quarantine import seen_keys
from pipeline.run import lifecycle
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun, files_rows
from pipeline.validate import finish_checks, key_array
from registry.db import session_scope
from registry.exchange.models import CursorState, SyncRun


def begin_cdc_run(resource: CdcResource, run_id: str, mode: str) -> StagedRun:
    # The lease is held for the whole run (sync_cdc): record the run, take its own folder.
    folder = lifecycle.begin(resource_id=resource.id, resource_code=resource.code, run_id=run_id, mode=mode,
                             leased=True)
    return StagedRun(run_id=run_id, resource_id=resource.id, resource_code=resource.code, mode=mode,
                     folder=str(folder), previous_version=resource.previous_id, source=resource.source,
                     findings={"seen": [], "complete": mode == "cdc-snapshot"})


def finish_cdc_run(staged: StagedRun, writer: PartWriter, quarantine: QuarantineWriter, resource: CdcResource,
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
        save_staged(staged)
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
    save_staged(staged)


def save_staged(staged: StagedRun) -> None:
    staged.save()
    with session_scope() as session:  # the status stays "staging": the same process publishes at once, and a
        run = session.get(SyncRun, staged.run_id)  # crash before that frees the lock (a dead "staged" run would not)
        run.rows_read, run.rows_quarantined = staged.rows_read, staged.rows_quarantined


def fill_unchanged(batch: pa.RecordBatch, *, parts: list[Part], key: tuple[str, ...],
                    contract) -> pa.RecordBatch:  # noqa: ANN001 - Contract | None
    """Columns an update left unchanged (TOASTed values the server did not resend) take the previous value.

    The previous rows are found by the key as they hold it: the data contract may convert the key column (text
    declared integer, pipeline.cdc_layer.touched_keys). Matched as the server sent it, such a key met no
    published row, and every update that left a large value unchanged was quarantined for want of one
    (`tests/test_cdc_contract.py`)."""
    if UNCHANGED_COLUMN not in batch.schema.names:
        return batch
    marks = batch.column(UNCHANGED_COLUMN)
    batch = batch.drop_columns([UNCHANGED_COLUMN])
    published_keys = touched_keys(batch.select(list(key)), key, contract)
    wanted = published_keys.filter(pc.is_valid(marks))
    previous: dict = {}
    for old in iter_parts(parts):  # live rows only: a replaced row's old value is not the previous value
        old_keys = key_array(old, key)
        hit = pc.is_in(old_keys, value_set=wanted)
        previous.update(zip(old_keys.filter(hit).to_pylist(), old.filter(hit).to_pylist()))
    rows = batch.to_pylist()
    for row, mark, published_key in zip(rows, marks.to_pylist(), published_keys.to_pylist()):
        if not mark:
            continue
        before = previous.get(published_key)
        for name in mark.split(","):
            if before is not None:
                row[name] = before[name]
            else:
                row[ROW_PROBLEM_COLUMN] = f"{name}: unchanged large value with no earlier version to take it from"
    schema = batch.schema
    if any(ROW_PROBLEM_COLUMN in r for r in rows) and ROW_PROBLEM_COLUMN not in schema.names:
        schema = schema.append(pa.field(ROW_PROBLEM_COLUMN, pa.string()))
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def move_cursor(resource: CdcResource, run_id: str, position: int, collected: Collected, *, identity: dict) -> None:
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
