"""Extract and stage: read the source as record batches, check them, and write a staged run."""

from __future__ import annotations

import shutil
import uuid
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ReadState, StreamSpec
from core.errors import ConfigError, GovshareError
from core.settings import get_settings
from pipeline import paths
from pipeline.staging import PartWriter, QuarantineWriter, StagedRun
from pipeline.validate import REASON_COLUMN, RULE_COLUMN, duplicated_keys, finish_checks, key_array, split_batch
from registry.db import session_scope
from registry.models import SyncRun, utcnow
from registry.resources import get_resource
from registry.sources import open_connector
from registry.versions import cursor_state, latest_version


def _cursor_text(value: Any) -> str:
    # str() keeps the "YYYY-MM-DD HH:MM:SS" spelling SQL engines compare correctly against stored text.
    return value.isoformat() if isinstance(value, date) and not isinstance(value, datetime) else str(value)


def stage_resource(*, resource_code: str, full: bool = False) -> StagedRun:
    """Read the resource's source into a staged run; on failure the run folder is removed and recorded."""
    run_id = uuid.uuid4().hex
    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if resource.source is None:
            raise ConfigError(f"resource {resource_code} has no source; register one with `govshare resource add --source`")
        previous = latest_version(session, resource=resource)
        state = cursor_state(session, resource=resource)
        stream = StreamSpec.from_stream(resource.stream, batch_rows=get_settings().batch_rows)
        from schemas.contract_store import contract_for  # the resource's data contract (quality rules), if any

        contract = contract_for(resource_code=resource.code, stream=resource.stream)
        if contract is not None and contract.key and not stream.primary_key:
            stream = StreamSpec.from_stream({**resource.stream, "primary_key": contract.key},
                                            batch_rows=get_settings().batch_rows)
        previous_rows = previous.row_count if previous else None
        incremental = bool(not full and stream.cursor_column and stream.primary_key and previous
                           and state and state.cursor_value is not None)
        connector = open_connector(resource.source)
        session.add(SyncRun(id=run_id, resource_id=resource.id, status="staging",
                            mode="incremental" if incremental else "full"))
        staged = StagedRun(
            run_id=run_id, resource_id=resource.id, resource_code=resource.code,
            mode="incremental" if incremental else "full", folder=str(paths.staging_dir(run_id)),
            previous_version=previous.id if previous else None,
            source={"name": resource.source.name, "kind": resource.source.kind, "stream": resource.stream},
        )
        previous_folder = paths.resolve(previous.path) if incremental and previous else None
        read_state = ReadState(cursor_value=state.cursor_value if incremental and state else None)
    try:
        _extract(staged, connector=connector, stream=stream, state=read_state, previous_folder=previous_folder,
                 contract=contract, previous_rows=previous_rows)
    except BaseException as exc:
        shutil.rmtree(staged.folder, ignore_errors=True)
        record_run_failure(run_id, exc)
        raise
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        run.status, run.rows_read, run.rows_quarantined = "staged", staged.rows_read, staged.rows_quarantined
    return staged


def _extract(staged: StagedRun, *, connector, stream: StreamSpec, state: ReadState, previous_folder,  # noqa: ANN001
             contract=None, previous_rows: int | None = None) -> None:  # noqa: ANN001
    folder = paths.staging_dir(staged.run_id)
    (folder / "data").mkdir(parents=True)
    writer = PartWriter(folder / "data")
    quarantine = QuarantineWriter(folder / "quarantine.parquet")
    keys: list[pa.Array] = []
    high_water = None
    try:
        for batch in connector.read(stream, state):
            staged.rows_read += batch.num_rows
            split = split_batch(batch, key=stream.primary_key, contract=contract)
            if split.bad is not None:
                quarantine.write(split.bad)
            if stream.primary_key:
                keys.append(key_array(split.good, stream.primary_key))
            if stream.cursor_column and split.good.num_rows:
                batch_max = pc.max(split.good.column(stream.cursor_column)).as_py()
                high_water = batch_max if high_water is None or (batch_max is not None and batch_max > high_water) else high_water
            writer.write(split.good)
        if writer.schema is None:
            raise GovshareError(connector.fail("returned no schema; the table or query yields no columns"))
        writer.close()
        dupes = duplicated_keys(keys)
        if len(dupes):
            _quarantine_duplicates(folder / "data", writer.files, stream.primary_key, dupes, quarantine)
        changed = pa.chunked_array(keys, type=keys[0].type) if keys else None
        if previous_folder is not None and changed is not None:
            staged.rows_carried = _carry_forward(previous_folder, writer, stream.primary_key, changed)
        writer.ensure_file(writer.schema)
    finally:
        writer.close()
        quarantine.close()
    staged.files = [f"data/{name}" for name in writer.files]
    staged.rows_staged = sum(pq.ParquetFile(folder / f).metadata.num_rows for f in staged.files)
    staged.rows_quarantined = quarantine.rows
    staged.quarantine_rules = quarantine.by_rule
    staged.quarantine = "quarantine.parquet" if quarantine.rows else None
    if stream.cursor_column:
        previous_mark = state.cursor_value
        staged.watermark = {"cursor_column": stream.cursor_column,
                            "value": _cursor_text(high_water) if high_water is not None else previous_mark}
    finish_checks(staged, contract, previous_rows=previous_rows)  # dataset rules, thresholds: FatalError publishes nothing
    staged.save()


def _quarantine_duplicates(folder, files: list[str], key: tuple[str, ...], dupes: pa.Array,
                           quarantine: QuarantineWriter) -> None:  # noqa: ANN001
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


def _carry_forward(previous_folder, writer: PartWriter, key: tuple[str, ...], changed: pa.ChunkedArray) -> int:  # noqa: ANN001
    """Incremental run: the previous version's rows whose keys did not change are carried into the new one."""
    from pipeline.manifest import read_manifest

    changed_set = pc.unique(changed.combine_chunks()) if len(changed) else changed.combine_chunks()
    carried = 0
    for entry in read_manifest(previous_folder)["files"]:
        parquet = pq.ParquetFile(previous_folder / entry["path"])
        for batch in parquet.iter_batches(batch_size=65_536):
            keep = pc.invert(pc.is_in(key_array(batch, key), value_set=changed_set))
            kept = batch.filter(keep)
            writer.write(kept)
            carried += kept.num_rows
    return carried


def record_run_failure(run_id: str, exc: BaseException) -> None:
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id)
            if run is not None:
                run.status, run.finished_at, run.error = "failed", utcnow(), str(exc)[:2000]
    except Exception:  # noqa: BLE001 - the original error matters more than the bookkeeping
        pass
