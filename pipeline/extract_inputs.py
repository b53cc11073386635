"""What a table read (pipeline/extract.py) reads and compares with, read once under the resource's lease.

The stream with its key and cursor, the cursor state to read from (none when the run reads everything), the
source's connector, the data contract, the previous version a run layers on or compares with, and the keys of
open quarantine records. Separate from the read itself: this is the one place where the registry decides a
run's mode, and the read and the key work (pipeline/extract_keys.py) only consume what it settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.base import Connector, ReadState, StreamSpec
from connectors.filelist import FileLedger
from core.settings import get_settings
from pipeline import paths
from pipeline.layers import Part, parts_schema, version_parts
from pipeline.runs import full_read_due
from pipeline.staging import StagedRun
from registry.db import session_scope
from registry.exchange.models import SyncRun
from registry.catalog.resources import get_resource
from registry.catalog.sources import open_connector
from registry.exchange.file_ledger import recorded_files
from registry.exchange.versions import cursor_state, latest_version

FILES_READ = "files-read.parquet"  # in the run folder: the change to the record of files read


@dataclass
class Previous:
    """The version a run is compared with: for layering on it, schema changes and the change set."""

    number: int
    rows: int
    path: str  # storage-relative folder
    parts: list[Part]
    schema: pa.Schema


@dataclass
class Inputs:
    """What a run reads and compares with, read once under the resource's lock."""

    stream: StreamSpec
    state: ReadState
    connector: Connector
    contract: Any  # quality.contracts.Contract | None
    previous: Previous | None
    watch: list[str] = field(default_factory=list)  # keys with open quarantine records
    # Types the values of an earlier read of this run chose for converted columns (pipeline.conform.ValueChoices)
    chosen: dict[str, pa.DataType] = field(default_factory=dict)


def _previous(version) -> Previous | None:  # noqa: ANN001 - DatasetVersion | None
    if version is None:
        return None
    parts = version_parts(version)
    return Previous(number=version.number, rows=version.row_count, path=version.path, parts=parts,
                    schema=parts_schema(parts))


def prepare(resource_code: str, run_id: str, full: bool) -> tuple[StagedRun, Inputs]:
    """The run's staged record and its inputs. A run reads incrementally only with a key, a cursor, a published
    version with a cursor value, and no full read due."""
    from registry.quality.quarantine import open_keys
    from schemas.contract_store import contract_for  # the resource's data contract (quality rules), if any

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        previous_version = latest_version(session, resource=resource)
        state = cursor_state(session, resource=resource)
        stream = StreamSpec.from_stream(resource.stream, batch_rows=get_settings().batch_rows)
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
        if contract is not None and contract.key and not stream.primary_key:
            stream = replace(stream, primary_key=tuple(contract.key))
        incremental = bool(not full and stream.cursor_column and stream.primary_key and previous_version
                           and state and state.cursor_value is not None
                           and not full_read_due(session, resource_id=resource.id))
        connector = open_connector(resource.source)
        mode = "incremental" if incremental else "full"
        session.get(SyncRun, run_id).mode = mode
        staged = StagedRun(
            run_id=run_id, resource_id=resource.id, resource_code=resource.code, mode=mode,
            folder=str(paths.run_dir(resource.id, run_id)), previous_version=previous_version.id if previous_version else None,
            source={"name": resource.source.name, "kind": resource.source.kind, "stream": resource.stream},
            key=list(stream.primary_key),
            row_stores="interface" in (resource.sharing_modes or []),
        )
        files = None
        if "files" in connector.capabilities:  # recorded by full reads too, so the next run compares with them
            files = FileLedger(previous=recorded_files(session, resource_id=resource.id),
                               out=Path(staged.folder) / FILES_READ)
            staged.files_read = FILES_READ
        inputs = Inputs(stream=stream, state=ReadState(cursor_value=state.cursor_value if incremental else None,
                                                       files=files),
                        connector=connector, contract=contract, previous=_previous(previous_version),
                        watch=open_keys(session, resource_id=resource.id) if stream.primary_key else [])
    return staged, inputs
