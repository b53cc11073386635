"""Extract and stage: read the source as record batches, check them, and write a staged run."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_PROBLEM_COLUMN, ReadState, StreamSpec
from core import clock
from core.errors import ConfigError, GovshareError, RetriableError
from core.settings import get_settings
from pipeline import locator, locks, paths
from pipeline.changes import CHANGES_FILE, ChangeSet, compute_changes
from pipeline.layering import carry_forward, layerable, stack, version_batches
from pipeline.layers import Part, parts_schema, version_parts
from pipeline.schema_drift import SchemaMoved, guard_schema
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun
from pipeline.validate import (
    REASON_COLUMN,
    RULE_COLUMN,
    duplicated_keys,
    duplicated_keys_in_files,
    finish_checks,
    key_array,
    split_batch,
)
from registry.db import session_scope
from registry.models import SyncRun
from registry.resources import get_resource
from registry.sources import open_connector
from registry.versions import cursor_state, latest_version

RENEW_SECONDS = 60  # a long read pushes its lock's lease out this often


def _cursor_text(value: Any) -> str:
    # str() keeps the "YYYY-MM-DD HH:MM:SS" spelling SQL engines compare correctly against stored text.
    return value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else str(value)


@dataclass
class Previous:
    """The version a run is compared with: for layering on it, schema changes and the change set."""

    number: int
    rows: int
    path: str  # storage-relative folder
    parts: list[Part]
    schema: pa.Schema


def _previous(version) -> Previous | None:  # noqa: ANN001 - DatasetVersion | None
    if version is None:
        return None
    parts = version_parts(version)
    return Previous(number=version.number, rows=version.row_count, path=version.path, parts=parts,
                    schema=parts_schema(parts))


def stage_resource(*, resource_code: str, full: bool = False, run_id: str | None = None,
                   wait_seconds: float = 0) -> StagedRun:
    """Read the resource's source into a staged run, holding the resource's lock (kept for the publish).

    On failure the run folder is removed, the run recorded as failed and the lock released.
    """
    run_id = run_id or uuid.uuid4().hex
    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if resource.source is None:
            raise ConfigError(f"resource {resource_code} has no source; register one with `govshare resource add --source`")
        resource_id = resource.id
        session.add(SyncRun(id=run_id, resource_id=resource_id, status="staging"))
    folder = paths.staging_dir(run_id)
    try:
        # The lock first: what the run compares with (previous version, cursor) is read once it is ours.
        locks.acquire(resource_id=resource_id, resource_code=resource_code, run_id=run_id, wait_seconds=wait_seconds)
        staged, stream, read_state, connector, contract, previous = _prepare(resource_code, run_id, full)
        try:
            _extract(staged, connector=connector, stream=stream, state=read_state, previous=previous,
                     contract=contract)
        except SchemaMoved:
            # Rows carried from the previous version would lack the change: read everything again.
            shutil.rmtree(folder, ignore_errors=True)
            staged = replace(staged, mode="full", rows_read=0)
            _extract(staged, connector=connector, stream=stream, state=ReadState(), previous=previous,
                     contract=contract)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        record_run_failure(run_id, exc)
        locks.release(resource_id=resource_id, run_id=run_id)
        raise
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.status, run.mode, run.rows_read, run.rows_quarantined = "staged", staged.mode, staged.rows_read, \
            staged.rows_quarantined
    return staged


def _prepare(resource_code: str, run_id: str, full: bool):  # noqa: ANN202 - the run's inputs, read under the lock
    from schemas.contract_store import contract_for  # the resource's data contract (quality rules), if any

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        previous_version = latest_version(session, resource=resource)
        state = cursor_state(session, resource=resource)
        stream = StreamSpec.from_stream(resource.stream, batch_rows=get_settings().batch_rows)
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
        if contract is not None and contract.key and not stream.primary_key:
            stream = StreamSpec.from_stream({**resource.stream, "primary_key": contract.key},
                                            batch_rows=get_settings().batch_rows)
        incremental = bool(not full and stream.cursor_column and stream.primary_key and previous_version
                           and state and state.cursor_value is not None and not _full_read_due(session, resource))
        connector = open_connector(resource.source)
        mode = "incremental" if incremental else "full"
        session.get(SyncRun, run_id).mode = mode
        staged = StagedRun(
            run_id=run_id, resource_id=resource.id, resource_code=resource.code, mode=mode,
            folder=str(paths.staging_dir(run_id)), previous_version=previous_version.id if previous_version else None,
            source={"name": resource.source.name, "kind": resource.source.kind, "stream": resource.stream},
        )
        read_state = ReadState(cursor_value=state.cursor_value if incremental and state else None)
        previous = _previous(previous_version)
    return staged, stream, read_state, connector, contract, previous


def _full_read_due(session, resource) -> bool:  # noqa: ANN001
    """Incremental reads cannot see deletes: read in full again once the last full read is old enough."""
    days = get_settings().full_refresh_days
    if not days:
        return False
    from datetime import timedelta

    from registry.versions import list_versions

    for version in list_versions(session, resource=resource):
        if (version.manifest or {}).get("mode") != "incremental":  # full, or change capture's own snapshot
            created = clock.as_utc(version.created_at)
            return clock.now() - created >= timedelta(days=days)
    return True


def _extract(staged: StagedRun, *, connector, stream: StreamSpec, state: ReadState,  # noqa: ANN001
             previous: Previous | None, contract=None) -> None:  # noqa: ANN001
    folder = paths.staging_dir(staged.run_id)
    (folder / "data").mkdir(parents=True)
    writer = PartWriter(folder / "data")
    quarantine = QuarantineWriter(folder / "quarantine.parquet")
    incremental = staged.mode == "incremental"
    keys: list[pa.Array] = []
    delta_keys: pa.Table | None = None  # a compacting run's kept keys: the only ones its change set compares
    high_water = None
    first = True
    renewed = time.monotonic()
    try:
        for batch in _guarded(connector, connector.read(stream, state)):
            staged.rows_read += batch.num_rows
            if first and previous is not None:  # before the contract's own check, so the change is recorded
                first = False
                staged.schema_change = guard_schema(
                    resource_code=staged.resource_code, run_id=staged.run_id, previous_number=previous.number,
                    previous_schema=previous.schema, schema=_payload_schema(batch), key=stream.primary_key,
                    cursor=stream.cursor_column, incremental=incremental,
                    contract_columns={c.name for c in contract.columns} if contract is not None else set())
            split = split_batch(batch, key=stream.primary_key, contract=contract)
            if split.bad is not None:
                quarantine.write(split.bad)
            if stream.primary_key and incremental:
                # Copies: a column of a connector's batch can pin the whole batch (Arrow's C data interface
                # releases a batch as one unit), and an incremental run's keys live until its end.
                keys.append(pa.concat_arrays([key_array(split.good, stream.primary_key)]))
            if stream.cursor_column and split.good.num_rows:
                batch_max = pc.max(split.good.column(stream.cursor_column)).as_py()
                high_water = batch_max if high_water is None or (batch_max is not None and batch_max > high_water) else high_water
            writer.write(split.good)
            if time.monotonic() - renewed > RENEW_SECONDS:
                locks.renew(resource_id=staged.resource_id, run_id=staged.run_id)
                renewed = time.monotonic()
        if writer.schema is None:
            raise GovshareError(connector.fail("returned no schema; the table or query yields no columns"))
        writer.close()
        data = folder / "data"
        if stream.primary_key:
            located = not incremental and locator.supports(writer.schema, stream.primary_key)
            if located:  # sorted keys first: up to a size, they also tell the duplicates
                _build_locators(staged, folder, writer.files, stream.primary_key)
            if located and writer.rows <= locator.DUPLICATES_IN_MEMORY_ROWS:
                dupes = locator.duplicates([folder / stem for stem in staged.locators.values()])
            else:
                dupes = _duplicated_keys(data, writer.files, stream.primary_key, keys=keys if incremental else None,
                                         scratch=folder / "scratch")
            if len(dupes):
                _quarantine_duplicates(data, writer.files, stream.primary_key, dupes, quarantine)
                if located:  # the parts lost rows: their positions moved
                    _build_locators(staged, folder, writer.files, stream.primary_key)
        layered = bool(incremental and previous is not None and stream.primary_key
                       and layerable(previous.parts, writer.schema, previous.schema))
        if incremental and previous is not None and keys and not layered:
            # The keys of the rows kept: a key quarantined as repeated keeps its published row, as in a layer.
            delta_keys = pa.concat_tables([pq.read_table(data / name, columns=list(stream.primary_key))
                                           for name in writer.files])
            staged.rows_carried = carry_forward(previous.parts, writer, stream.primary_key,
                                                 key_array(delta_keys, stream.primary_key))
        if not layered:
            writer.ensure_file(writer.schema)
    finally:
        writer.close()
        quarantine.close()
    staged.files = [f"data/{name}" for name in writer.files]
    if layered:  # a layer that read nothing adds no file: its version is the previous one's files
        staged.files = [f for f in staged.files if pq.ParquetFile(folder / f).metadata.num_rows]
    own_rows = sum(pq.ParquetFile(folder / f).metadata.num_rows for f in staged.files)
    staged.rows_quarantined = quarantine.rows
    staged.quarantine_rules = quarantine.by_rule
    staged.quarantine = "quarantine.parquet" if quarantine.rows else None
    if stream.cursor_column:
        previous_mark = state.cursor_value
        staged.watermark = {"cursor_column": stream.cursor_column,
                            "value": _cursor_text(high_water) if high_water is not None else previous_mark}
    if incremental and stream.primary_key and locator.supports(writer.schema, stream.primary_key):
        _build_locators(staged, folder, [Path(f).name for f in staged.files], stream.primary_key)
    if layered:
        layer = stack(folder=folder, delta_files=staged.files, key=stream.primary_key, parts=previous.parts,
                      previous_path=previous.path, previous_number=previous.number, schema=previous.schema,
                      cursor=stream.cursor_column, previous_mark=state.cursor_value)
        staged.referenced, staged.rows_carried = layer.referenced, layer.rows_carried
        staged.rows_staged = layer.rows_carried + own_rows
        finish_checks(staged, contract, previous_rows=previous.rows,
                      batches=version_batches(folder, layer, staged.files))
        staged.changes = layer.changes
    else:
        staged.rows_staged = own_rows
        finish_checks(staged, contract, previous_rows=previous.rows if previous else None)
        staged.changes = _change_set(staged, folder, writer.schema, stream.primary_key, previous, delta_keys)
    staged.save()


def _build_locators(staged: StagedRun, folder: Path, names: list[str], key: tuple[str, ...]) -> None:
    """A sorted key file beside each part the run wrote (names under data/), so later incremental runs find
    keys by bisection."""
    for name in names:
        part = f"data/{name}"
        stem = locator.locator_name(part)
        locator.build(folder / part, key[0], folder / stem)
        staged.locators[part] = stem


def _payload_schema(batch: pa.RecordBatch) -> pa.Schema:
    """The batch's columns as they will be published (without a connector's row-problem flags)."""
    index = batch.schema.get_field_index(ROW_PROBLEM_COLUMN)
    return batch.schema.remove(index) if index >= 0 else batch.schema


def _guarded(connector, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:  # noqa: ANN001
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


def _change_set(staged: StagedRun, folder: Path, schema: pa.Schema, key: tuple[str, ...],
                previous: Previous | None, read_keys: pa.Table | None) -> dict:
    if previous is None:
        return ChangeSet(since_version=None, inserted=staged.rows_staged, deletes_detected=True,
                         note="first version: every row is new").summary()
    if not key:
        return ChangeSet(since_version=previous.number, note="no primary key: changes are not tracked by key; "
                         "take the whole version").summary()
    if staged.mode == "incremental" and read_keys is None:  # nothing read: nothing changed
        read_keys = pa.table({k: pa.array([], schema.field(k).type) for k in key})
    return compute_changes(new_files=[folder / f for f in staged.files], previous_parts=previous.parts, key=key,
                           schema=schema, previous_schema=previous.schema, out=folder / CHANGES_FILE,
                           since_version=previous.number, read_keys=read_keys, scratch=folder / "tmp").summary()


def _duplicated_keys(folder: Path, files: list[str], key: tuple[str, ...], *, keys: list[pa.Array] | None,
                     scratch: Path) -> pa.Array:
    """Keys read more than once. An incremental run already holds the keys it read (few), so it counts them
    in memory; a full read asks DuckDB over its parts, which spills to disk."""
    if keys is not None:
        return duplicated_keys(keys)
    try:
        return duplicated_keys_in_files([folder / name for name in files], key, scratch=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _quarantine_duplicates(folder: Path, files: list[str], key: tuple[str, ...], dupes: pa.Array,
                           quarantine: QuarantineWriter) -> None:
    """One data, one row: every row of a key seen twice in one read goes to quarantine, none is guessed."""
    for name in files:
        table = pq.read_table(folder / name)
        is_dupe = pc.is_in(key_array(table, key), value_set=dupes)
        if not pc.any(is_dupe).as_py():
            continue
        bad = table.filter(is_dupe)
        bad = bad.append_column(RULE_COLUMN, pa.array(["unique_key"] * bad.num_rows, pa.string()))
        bad = bad.append_column(REASON_COLUMN, pa.array([f"主键重复 / duplicate key ({', '.join(key)})"] * bad.num_rows))
        for batch in bad.to_batches():
            quarantine.write(batch)
        pq.write_table(table.filter(pc.invert(is_dupe)), folder / name, compression="snappy")


def record_run_failure(run_id: str, exc: BaseException) -> None:
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is not None:
                run.status, run.finished_at, run.error = "failed", clock.now(), str(exc)[:2000]
    except Exception:  # noqa: BLE001 - the original error matters more than the bookkeeping
        pass
