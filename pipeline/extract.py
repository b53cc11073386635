"""Extract and stage: read the source as record batches, check them, and write a staged run.

What the run reads and compares with is settled first (pipeline/extract_inputs.py); the read here checks,
conforms and writes the batches and makes a layer on the previous version or carries its rows forward; the
work by primary key (repeated keys, locators, deletes, the change set) is in pipeline/extract_keys.py.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_ORIGIN_COLUMN, Connector, ReadState, StreamSpec, payload_schema
from connectors.filesource import FILE_MODIFIED, FILE_NAME
from core.errors import ConfigError, FatalError, GovshareError, RetriableError
from pipeline import locator, locks
from pipeline.changes import no_change
from pipeline.conform import TypesChosen, ValueChoices, conform, published_form, run_schema
from pipeline.duplicates import FileRanks
from pipeline.extract_inputs import Inputs, prepare
from pipeline.extract_keys import (
    await_deletes,
    build_locators,
    change_set,
    settle_keys,
    start_key_scan,
    withheld_keys,
)
from pipeline.layering import carry_forward, compact, compaction_due, start_layer, version_batches
from pipeline.provenance import keep_published_provenance, provenance_columns
from pipeline.quarantine import seen_keys
from pipeline.run import lifecycle
from pipeline.runs import record_run_failure
from pipeline.schema_drift import SchemaMoved, guard_schema
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun, files_rows
from pipeline.validate import finish_checks, key_array, split_batch
from registry.db import session_scope
from registry.exchange.models import SyncRun
from registry.catalog.resources import get_resource

__all__ = ["record_run_failure", "stage_resource"]


def _cursor_text(value: Any) -> str:
    # str() keeps the "YYYY-MM-DD HH:MM:SS" spelling SQL engines compare correctly against stored text.
    return value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else str(value)


def _watermark(cursor: str, high_water: Any, previous: str | None) -> str | None:
    """The highest cursor value read. A file source also reads files older than its watermark (one uploaded
    with its old time kept, connectors/filesource.py); the watermark never moves back for them, or rows of files
    read before would sort past it and count as changed (pipeline/layering.py compares only rows up to it)."""
    if high_water is None:
        return previous
    if previous is not None and cursor in (FILE_MODIFIED, FILE_NAME):
        try:
            mark = datetime.fromisoformat(previous) if cursor == FILE_MODIFIED else previous
            if mark > high_water:
                return previous
        except (TypeError, ValueError):
            pass  # a mark of another spelling: the value read stands
    return _cursor_text(high_water)


def stage_resource(*, resource_code: str, full: bool = False, run_id: str | None = None, wait_seconds: float = 0,
                   hand_over: bool = False) -> StagedRun:
    """Read the resource's source into a staged run, holding the resource's lock (kept for the publish).

    ``hand_over``: this process ends after staging (Airflow's stage task) and its publish task takes the lock
    back (pipeline.locks.hand_over). On failure the run folder is removed, the run recorded as failed and the
    lock released.
    """
    run_id = run_id or uuid.uuid4().hex
    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if resource.source is None:
            raise ConfigError(f"resource {resource_code} has no source; register one with `govshare resource add --source`")
        resource_id = resource.id
    # The lease first: what the run compares with (previous version, cursor) is read once it is ours.
    folder = lifecycle.begin(resource_id=resource_id, resource_code=resource_code, run_id=run_id, mode="full",
                                      wait_seconds=wait_seconds)
    with lifecycle.staging(resource_id=resource_id, run_id=run_id):
        staged, inputs = prepare(resource_code, run_id, full)
        while True:
            try:
                _extract(staged, inputs)
                break
            except SchemaMoved as moved:
                # Rows carried from the previous version would lack the change: read everything again. A full
                # read whose values chose a type after NULLs were written in another reads again with it (each
                # time for another column, so this ends); a full read after an incremental one chooses afresh.
                chosen = moved.chosen if isinstance(moved, TypesChosen) and staged.mode == "full" else {}
                if staged.mode == "full" and not set(chosen) - set(inputs.chosen):
                    raise
                shutil.rmtree(folder, ignore_errors=True)
                staged = replace(staged, mode="full", rows_read=0)
                inputs = replace(inputs, state=ReadState(files=inputs.state.files), chosen=chosen)
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.status, run.mode, run.rows_read, run.rows_quarantined = "staged", staged.mode, staged.rows_read, \
            staged.rows_quarantined
    if hand_over:
        staged.push()  # the publish task may run on another worker: it finds the run in the store
        locks.hand_over(resource_id=resource_id, run_id=run_id)
    return staged


def _required_columns(schema: pa.Schema, stream: StreamSpec, connector: Connector, resource_code: str) -> None:
    """A key or cursor column the source does not have stops the run at once, naming it."""
    missing = [f"主键 key {name}" for name in stream.primary_key if name not in schema.names]
    if stream.cursor_column and stream.cursor_column not in schema.names:
        missing.append(f"游标 cursor {stream.cursor_column}")
    if missing:
        raise FatalError(connector.fail(
            f"资源 {resource_code} 所需的列不存在 / the column(s) {', '.join(missing)} of resource {resource_code} "
            f"are not in {stream.label} (it has: {', '.join(schema.names)}); nothing was published. Correct the "
            f"resource (`govshare resource edit {resource_code} --key ... --cursor ...`) or the source"))


def _extract(staged: StagedRun, inputs: Inputs) -> None:
    stream, connector, contract, previous = inputs.stream, inputs.connector, inputs.contract, inputs.previous
    key = stream.primary_key
    folder = Path(staged.folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    writer = PartWriter(folder / "data", lookup_owner=folder if staged.row_stores else None)
    quarantine = QuarantineWriter(folder / "quarantine.parquet")
    origins = FileRanks(folder / "origins.parquet")
    incremental = staged.mode == "incremental"
    keys: list[pa.Array] = []  # an incremental run's keys read (few): its delta
    withheld: list[pa.Array] = []  # ... and the keys of the rows it quarantined, whose published rows go
    watch = pa.array(inputs.watch, pa.string())
    seen: set[str] = set()
    high_water = None
    first = True
    settled = True  # the columns compared with the previous version are final (see guard below)
    form = None  # the published column order and nullability, when the run reads them otherwise (pipeline.conform)
    scan = start_key_scan(staged, inputs, folder)
    started = None  # a layer begun while the key scan reads (pipeline.layering.start_layer)
    try:
        for batch in _guarded(connector, connector.read(stream, inputs.state)):
            staged.rows_read += batch.num_rows
            origin = batch.column(ROW_ORIGIN_COLUMN) if ROW_ORIGIN_COLUMN in batch.schema.names else None
            if origin is not None:
                batch = batch.drop_columns([ROW_ORIGIN_COLUMN])
                writer.keep_arrival_order()  # the ranks side file is aligned with the parts' rows in order
            if first:
                first = False
                _required_columns(batch.schema, stream, connector, staged.resource_code)
                choices = ValueChoices(contract=contract, read=payload_schema(batch.schema), chosen=inputs.chosen,
                                       published=previous.schema if previous is not None else None)
                if previous is not None:  # before the contract's own check, so the change is recorded
                    read = run_schema(batch, contract, choices)
                    # Until values choose the types of the columns they decide (a later one may re-read the
                    # table, TypesChosen), a compatible change is recorded only once the table is read.
                    settled = not choices.undecided

                    def guard(final: bool) -> dict | None:
                        return guard_schema(
                            resource_code=staged.resource_code, run_id=staged.run_id, previous_number=previous.number,
                            previous_schema=previous.schema, schema=read, key=key,
                            cursor=stream.cursor_column, incremental=incremental, settled=final,
                            contract=contract)

                    staged.schema_change = guard(settled)
                    form = published_form(previous.schema, read) if incremental and key else None
            seen.update(seen_keys(batch, key, watch))  # open quarantine records read again, good or bad
            split = split_batch(batch, key=key, contract=contract, decided=choices.decided)
            if split.bad is not None:
                quarantine.write(split.bad)
            split.good = choices.apply(split.good)
            if form is not None:
                split.good = conform(split.good, form)
            if key and incremental:
                # Copies: a column of a connector's batch can pin the whole batch (Arrow's C data interface
                # releases a batch as one unit), and an incremental run's keys live until its end.
                keys.append(pa.concat_arrays([key_array(split.good, key)]))
                if split.bad_keys is not None and len(split.bad_keys):
                    withheld.append(pa.concat_arrays([split.bad_keys]))
            if stream.cursor_column and split.good.num_rows:  # the watermark in the source's own terms
                batch_max = pc.max(split.kept(batch.column(stream.cursor_column))).as_py()
                if batch_max is not None and (high_water is None or batch_max > high_water):
                    high_water = batch_max
            writer.write(split.good)
            if origin is not None:
                origins.write(split.kept(origin))
        if writer.schema is None:
            raise GovshareError(connector.fail("returned no schema; the table or query yields no columns"))
        if previous is not None and not settled:  # read to the end without a value choosing otherwise
            staged.schema_change = guard(True)
        writer.close()
        origins.close()
        if key:
            settle_keys(staged, folder, writer, quarantine, origins, key, keys)
        provenance = provenance_columns(connector, writer.schema)
        if provenance and key and previous is not None and writer.schema == previous.schema and writer.files:
            # where a row came from is not a change: an unchanged row stays its published row (pipeline.provenance)
            keep_published_provenance(folder=folder, files=[f"data/{name}" for name in writer.files],
                                      previous_parts=previous.parts, key=key, schema=writer.schema,
                                      provenance=provenance, row_stores=staged.row_stores,
                                      dictionary=writer.dictionary)
        # A layer on the previous version, or its change set at least: past the limits (compaction_due) the
        # version is compacted, but only once the layer's change set shows something to publish.
        stacked = bool(incremental and previous is not None and key and stackable(writer.schema, previous.schema))
        if stacked:  # the delta's share of the layer, while the key scan is still reading the source's keys
            staged.files = [f"data/{name}" for name in writer.files  # a layer that read nothing adds no file
                            if pq.ParquetFile(folder / "data" / name).metadata.num_rows]
            if locator.supports(writer.schema, key):
                build_locators(staged, folder, [Path(f).name for f in staged.files], key)
            started = start_layer(folder=folder, delta_files=staged.files, key=key, parts=previous.parts,
                                  schema=previous.schema, cursor=stream.cursor_column,
                                  previous_mark=inputs.state.cursor_value, previous_number=previous.number)
        found = await_deletes(staged, keys, scan)
        # A key whose new state is quarantined loses its published row, as a full read of the table publishes
        # none for it and change capture withdraws it (ARCHITECTURE.md, quarantined updates): the old row is a
        # value the source no longer holds. A key quarantined as repeated keeps it (its rows are in ``keys``).
        held = withheld_keys(withheld, keys, key, previous.schema) if incremental and previous is not None and key \
            else None
        deleted, prefetched = (found.deleted, found.rows) if found is not None else (None, None)
        scan = found = None
        delta_keys = None
        layered = stacked
        if stacked:
            layer = started.finish(previous_path=previous.path, removed=deleted, prefetched=prefetched,
                                   withheld=held)
            started = None
            if compaction_due(previous.parts) and not no_change(layer.changes):
                staged.rows_carried = compact(folder, layer, writer)
                layered = False
        elif incremental and previous is not None and key:  # a schema equal only as schema drift compares it
            # The keys of the rows kept: a key quarantined as repeated keeps its published row, as in a layer.
            delta_keys = pa.concat_tables([pq.read_table(folder / "data" / name, columns=list(key))
                                           for name in writer.files] or
                                          [pa.table({k: pa.array([], writer.schema.field(k).type) for k in key})])
            changed = key_array(delta_keys, key)
            for gone in (deleted, held):
                if gone is not None and len(gone):
                    changed = pa.concat_arrays([changed, gone.cast(changed.type)])
            staged.rows_carried = carry_forward(previous.parts, writer, key, changed)
        if not layered:
            writer.ensure_file(writer.schema)
    finally:
        if scan is not None:  # the run failed before it needed the deletes
            scan.cancel()
        if started is not None:
            started.abort()
        writer.close()
        quarantine.close()
        origins.close()
    if not layered:
        staged.files = [f"data/{name}" for name in writer.files]
    own_rows = files_rows(folder, staged.files)
    staged.rows_quarantined = quarantine.rows
    staged.quarantine_rules = quarantine.by_rule
    staged.quarantine = "quarantine.parquet" if quarantine.rows else None
    staged.findings["seen"] = sorted(seen)
    staged.findings["complete"] = not incremental
    if stream.cursor_column:
        staged.watermark = {"cursor_column": stream.cursor_column,
                            "value": _watermark(stream.cursor_column, high_water, inputs.state.cursor_value)}
    if layered:
        staged.referenced, staged.rows_carried = layer.referenced, layer.rows_carried
        staged.rows_staged = layer.rows_carried + own_rows
        finish_checks(staged, contract, previous_rows=previous.rows,
                      batches=version_batches(folder, layer, staged.files))
        staged.changes = layer.changes
    else:
        if incremental and key and locator.supports(writer.schema, key):  # the delta's were built already
            build_locators(staged, folder, [Path(f).name for f in staged.files if f not in staged.locators], key)
        staged.rows_staged = own_rows
        finish_checks(staged, contract, previous_rows=previous.rows if previous else None)
        staged.changes = layer.changes if stacked else \
            change_set(staged, folder, writer.schema, key, previous, delta_keys, deleted, withheld=held)
    staged.save()


def stackable(schema: pa.Schema, published: pa.Schema) -> bool:
    """Whether an incremental run's rows (in ``schema``) stack as a layer on the version published in
    ``published``; otherwise the version's other rows are carried forward into a whole table."""
    return schema == published


def _guarded(connector: Connector, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A driver's I/O error in the middle of a read (connection dropped, server restarted) is retriable,
    whichever connector raised it; errors of the pipeline's own writing are not wrapped."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except OSError as exc:  # pyarrow's IOError and the drivers' socket errors are OSErrors
            raise RetriableError(connector.fail(f"read interrupted: {' '.join(str(exc).split())}")) from exc
        yield batch
