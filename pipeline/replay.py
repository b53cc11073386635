"""Replay (回放) of quarantined rows after the fix: check them again and publish them into a new version.

Replay reads the provider's corrected export (CSV or Excel; or, after a contract fix, the stored rows themselves),
converts the text to the published types, runs the contract's blocking row rules again, and publishes a new
version: the latest version's rows with the fixed rows merged in by key (mode ``replay``, the cursor unchanged).
Rows that still fail go to the new run's quarantine (with a new ticket); nothing is dropped: replayed rows =
published + quarantined, checked at publish. Dataset rules and thresholds judged the original run and are not
applied to a replay. The sets replayed (those named by the file's ``_run_id``) and their tickets are closed.

A replay reads nothing from the source, so the resource's cursor state (its position, and for change capture
the forms and the table's identity) is left exactly as it stands, not set back to the latest version's
watermark. For a change-captured resource (变更捕获) that means the slot and the recorded position stay
consistent: the next run streams the slot from where the last run left it and stacks its changes on the
replay version. A replayed row stays until the source changes its key again (the source's row then replaces
it, and goes to quarantine again if it still breaks a rule) or a snapshot re-reads the table.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ConfigError
from core.sheet_text import from_people
from core.xlsx import unescaped
from core.xlsx_package import XML_ERRORS, check_package, keep_typed_escapes, xml_refusal
from pipeline import paths
from pipeline.quarantine import BATCH_ROWS, KEY_COLUMN, RUN_COLUMN
from pipeline.run import lifecycle
from pipeline.text_values import from_text
from pipeline.validate import (
    REASON_COLUMN,
    RULE_COLUMN,
    duplicated_keys,
    key_array,
    split_batch,
)


@dataclass
class ReplayReport:
    resource_code: str
    run_id: str
    version: int | None  # None: the replayed rows changed nothing (they all still fail)
    rows_replayed: int
    rows_fixed: int
    rows_still_failing: int
    sets: list[str]


MAX_FIXED_BYTES = 4 * 1024 ** 3  # a returned workbook unpacked: as for a source's (connectors/excel_rows.py)


def _read_fixed_file(path: Path) -> Iterator[pa.RecordBatch]:
    """The provider's corrected export, every value as text (so no spreadsheet guess changes a code)."""
    if not path.is_file():
        raise ConfigError(f"corrected file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = _csv_records(handle, path)
            header = next(records, None)
            if not header:
                raise ConfigError(f"{path.name} is empty; export the quarantined rows first")
            yield from _rows_to_batches(header, records, path=path)
    elif suffix == ".xlsx":
        from openpyxl import load_workbook

        check_package(path, max_unpacked_bytes=MAX_FIXED_BYTES)  # it comes back from the provider's tools
        try:
            book = load_workbook(path, read_only=True, data_only=True)
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # a stated <dimension ref="A1:Z2"/> left every row below 2 out of the replay
            keep_typed_escapes(sheet)  # saved by Excel, an exported _x0041_ came back as A
            rows = (tuple(unescaped(v) for v in row) for row in sheet.iter_rows(values_only=True))
            header = [str(h) if h is not None else "" for h in next(rows, ())]
            yield from _rows_to_batches(header, rows, path=path)
            book.close()
        except XML_ERRORS as exc:
            raise xml_refusal(path, exc) from None
    else:
        raise ConfigError(f"replay reads .csv or .xlsx, not {path.name}")


def _csv_records(handle, path: Path) -> Iterator[list[str]]:  # noqa: ANN001 - a text file
    """The returned CSV's records, the text marker ' taken off (core/sheet_text.py); a quote never closed is an
    error naming the line it opened on, not one long value (the other corrections swallowed into it)."""
    reader = csv.reader(handle, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(f"{path.name} 第{start}行起 CSV 格式错误（引号未闭合？）/ the record from line {start} is "
                              f"not valid CSV ({exc}): close the quote, or quote the whole value (\"...\", a quote "
                              "inside doubled), and replay again; nothing was replayed") from None
        yield [from_people(v) for v in row]


def _rows_to_batches(header: list[str], rows, *, path: Path) -> Iterator[pa.RecordBatch]:  # noqa: ANN001
    chunk: list = []
    for number, row in enumerate(rows, start=2):
        if not any(v not in (None, "") for v in row):
            continue
        if any(v not in (None, "") for v in row[len(header):]):  # values past the heading were dropped, the rest
            # shifted: a comma outside quotes ("上海市,浦东新区"), a cell typed beside the table
            raise ConfigError(f"{path.name} 第{number}条记录的字段多于标题 / record {number} (the heading is record 1) "
                              f"has {len(row)} fields where the heading has {len(header)}: a comma outside quotes, "
                              "or a value beside the table; fix it and replay again; nothing was replayed")
        chunk.append(row)
        if len(chunk) >= BATCH_ROWS:
            yield _text_batch(header, chunk)
            chunk = []
    if chunk:
        yield _text_batch(header, chunk)


def _text_batch(header: list[str], rows: list) -> pa.RecordBatch:
    def text(value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime):  # a spreadsheet turned the text into a date: spell it back
            return value.isoformat(sep=" ") if value.time() != time() else value.date().isoformat()
        return str(value)

    width = len(header)
    rows = [(list(row) + [None] * width)[:width] for row in rows]  # a short or long line keeps the header's shape
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in header]
    return pa.RecordBatch.from_arrays([pa.array([text(v) for v in col], pa.string()) for col in columns],
                                      names=header)


def _typed(batch: pa.RecordBatch, schema: pa.Schema) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
    """Text -> the published types; rows a value of which does not convert are split off with the reason."""
    missing = [f.name for f in schema if f.name not in batch.schema.names]
    if missing:
        raise ConfigError(f"the replayed rows lack column(s) {', '.join(missing)}; export them again and keep "
                          "every column")
    problems: dict[int, str] = {}  # row -> the first value that does not convert
    arrays = []
    for field in schema:
        text = batch.column(field.name)
        try:
            arrays.append(from_text(text, field.type))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        values = []
        for index, value in enumerate(text.to_pylist()):
            try:
                values.append(from_text(pa.array([value], pa.string()), field.type)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values.append(None)
                problems.setdefault(index, f"{field.name}={value!r}: 无法转换为 {field.type} / cannot be read as "
                                           f"{field.type}")
        arrays.append(pa.array(values, field.type))
    bad = pa.array([i in problems for i in range(batch.num_rows)])
    reasons = pa.array([problems.get(i) for i in range(batch.num_rows)], pa.string())
    typed = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not problems:
        return typed, None
    failed = batch.select(schema.names).filter(bad)
    failed = failed.append_column(RULE_COLUMN, pa.array(["type_conversion"] * failed.num_rows, pa.string()))
    failed = failed.append_column(REASON_COLUMN, reasons.filter(bad))
    return typed.filter(pc.invert(bad)), failed


def _kept_position(state) -> dict:  # noqa: ANN001 - CursorState | None
    """The replay version's watermark: what is true of the replay, the position it keeps and that it is one.

    A run's watermark holds its position and, for change capture, that run's own details. A table read writes
    ``cursor_column`` and ``value`` (the highest cursor value read), position only. A change-capture snapshot
    writes the position (``cursor_column``, ``value``: the slot's consistent point) with ``slot`` and
    ``snapshot`` (why it read one); a change run writes the position (``value``: the LSN its changes reach)
    with ``slot``, ``transactions``, ``changes``, ``deletes`` and ``truncated`` (pipeline/cdc.py). A replay
    reads nothing from the source, no slot and no change, so of these it keeps the position alone, and takes
    it from the cursor state as it stands (both keys, a reset cursor's None too), which the publish writes
    back unchanged: quiet runs move the state past the latest version's watermark (a change-capture run moves
    its slot with it), and a stream edit resets it so that the next run reads in full. Copying the latest
    watermark had put the position back behind the slot's, so the next change-capture run read a snapshot
    with a resync mark (`tests/test_cdc_replay.py`), had brought a reset cursor back (the next run read
    incrementally from the old cursor's value) and made the replay version claim the last run's slot and
    counts (`tests/test_quarantine.py`). ``replay``: True, so the watermark says which kind of run it is."""
    return {"cursor_column": state.cursor_column if state is not None else None,
            "value": state.cursor_value if state is not None else None, "replay": True}


def replay_quarantine(*, resource_code: str, file: Path | None = None, run_id: str | None = None) -> ReplayReport:
    """Check the fixed rows again and publish them into a new version (see the module docstring)."""
    from pipeline.changes import CHANGES_FILE, compute_changes
    from pipeline.duplicates import settle_duplicates
    from pipeline.layering import carry_forward
    from pipeline.layers import parts_of, parts_schema
    from pipeline.manifest import read_manifest
    from pipeline.quarantine import open_rows, resource_key, seen_keys
    from pipeline.staging import PartWriter, QuarantineWriter, StagedRun, files_rows
    from registry.db import session_scope
    from registry.quality.quarantine import mark_replayed, open_keys, open_sets
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import cursor_state, require_latest_version
    from schemas.contract_store import contract_for

    if file is not None and not file.is_file():
        raise ConfigError(f"corrected file {file} does not exist")
    new_run = uuid.uuid4().hex
    with session_scope() as session:
        resource_id = get_resource(session, code=resource_code).id
    # The run lifecycle: lease (released by the publish), the run recorded, its own folder.
    folder = lifecycle.begin(resource_id=resource_id, resource_code=resource_code, run_id=new_run, mode="replay")
    with lifecycle.staging(resource_id=resource_id, run_id=new_run):
        with session_scope() as session:
            resource = get_resource(session, code=resource_code)
            version = require_latest_version(session, resource=resource)
            contract = contract_for(resource_code=resource.code, stream=resource.stream)
            key = resource_key(resource)
            if not key:
                raise ConfigError(f"resource {resource_code} has no key; replayed rows cannot be merged into a version")
            sets = open_sets(session, resource_code=resource_code, run_id=run_id)
            set_info = [(s.id, s.path, s.run_id) for s in sets]
            version_folder = paths.resolve(version.path)
            watch = pa.array(open_keys(session, resource_id=resource.id), pa.string())
            stored = None if file else open_rows(session, resource=resource, run_id=run_id)[1]
            staged = StagedRun(run_id=new_run, resource_id=resource.id, resource_code=resource.code, mode="replay",
                               folder=str(folder), previous_version=version.id,
                               source={"replay_of": [r for _, _, r in set_info], "file": file.name if file else None},
                               watermark=_kept_position(cursor_state(session, resource=resource)),
                               key=list(key),
                               findings={"seen": [], "complete": False})
            previous_number = version.number
        manifest = read_manifest(version_folder)
        parts = parts_of(version_folder, manifest)
        schema = parts_schema(parts)
        batches = _read_fixed_file(file) if file else stored  # the stored rows: those still open
        (folder / "data").mkdir(parents=True, exist_ok=True)
        writer = PartWriter(folder / "data")
        quarantine = QuarantineWriter(folder / "quarantine.parquet")
        keys: list[pa.Array] = []
        replayed_runs: set[str] = set()  # the runs the corrected rows came from (an export names them)
        try:
            for text in batches:
                staged.rows_read += text.num_rows
                if RUN_COLUMN in text.schema.names:
                    replayed_runs.update(r for r in pc.unique(text.column(RUN_COLUMN)).to_pylist() if r)
                typed, failed = _typed(text, schema)
                if failed is not None:
                    quarantine.write(failed)
                staged.findings["seen"] += seen_keys(typed, key, watch)
                if KEY_COLUMN in text.schema.names:  # the records the provider's rows came from, key changed or not
                    staged.findings["seen"] += [k for k in text.column(KEY_COLUMN).to_pylist() if k]
                split = split_batch(typed, key=key, contract=contract)
                if split.bad is not None:
                    quarantine.write(split.bad)
                keys.append(key_array(split.good, key))
                writer.write(split.good)
            if not staged.rows_read:
                raise ConfigError("the corrected file holds no rows; export the quarantined rows and fill them in")
            writer.close()
            dupes = duplicated_keys(keys)
            if len(dupes):
                settle_duplicates(folder / "data", writer.files, key, dupes, quarantine)
            fixed_files = list(writer.files)
            fixed = sum(pq.ParquetFile(folder / "data" / f).metadata.num_rows for f in fixed_files)
            replayed_keys = pa.concat_tables([pq.read_table(folder / "data" / f, columns=list(key))
                                              for f in fixed_files])
            staged.rows_carried = carry_forward(parts, writer, key, pa.chunked_array(keys))
            writer.ensure_file(schema)
        finally:
            writer.close()
            quarantine.close()
        staged.files = [f"data/{name}" for name in writer.files]
        staged.rows_staged = files_rows(folder, staged.files)
        staged.rows_quarantined, staged.quarantine_rules = quarantine.rows, quarantine.by_rule
        staged.quarantine = "quarantine.parquet" if quarantine.rows else None
        # Only the replayed keys can have changed: the change set compares them alone (a consumer holding the
        # previous version takes the fixed rows from `changes --since`).
        staged.changes = compute_changes(
            new_files=[folder / f for f in staged.files], previous_parts=parts, key=key, schema=schema,
            previous_schema=schema, out=folder / CHANGES_FILE, since_version=previous_number,
            read_keys=replayed_keys, scratch=folder / "tmp").summary()
        staged.save()
    report = lifecycle.publish(folder=str(folder))
    with session_scope() as session:
        done = [i for i, _, r in set_info if not replayed_runs or r in replayed_runs]
        mark_replayed(session, set_ids=done, replay_run_id=new_run, fixed=fixed, still_failing=staged.rows_quarantined)
    lifecycle.follow_up(resource_code=resource_code, version=report.version)
    return ReplayReport(resource_code=resource_code, run_id=new_run, version=report.version,
                        rows_replayed=staged.rows_read, rows_fixed=fixed, rows_still_failing=staged.rows_quarantined,
                        sets=[r for i, _, r in set_info if i in done])
