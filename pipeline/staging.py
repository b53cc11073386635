"""Staging: Parquet parts and a quarantine file written under a run folder, never visible to consumers."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import ROW_RAW_COLUMN
from pipeline import text_values

ROWS_PER_FILE = 1_000_000
PARALLEL_FROM_ROWS = 262_144  # a run reading more than this writes two parts at a time


@dataclass
class StagedRun:
    """What a staged run holds; saved as staged.json so publishing can be its own (retriable) task."""

    run_id: str
    resource_id: int
    resource_code: str
    mode: str
    folder: str
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    rows_carried: int = 0  # incremental: unchanged rows taken over from the previous version
    rows_superseded: int = 0  # file sources: rows of a key a newer file of the same read replaced
    files: list[str] = field(default_factory=list)
    quarantine: str | None = None
    quarantine_rules: dict[str, int] = field(default_factory=dict)
    watermark: dict[str, Any] = field(default_factory=dict)
    previous_version: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)  # the change set's counts against the previous version
    schema_change: dict[str, Any] | None = None  # columns added, dropped or retyped at the source
    referenced: list[dict[str, Any]] = field(default_factory=list)  # a layer: the previous version's file entries
    locators: dict[str, str] = field(default_factory=dict)  # own file -> its key locator (pipeline.locator)
    row_stores: bool = False  # offered through the interface: parts get row stores as written (pipeline.lookup_index)
    key: list[str] = field(default_factory=list)  # the key the run merged and quarantined by
    findings: dict[str, Any] = field(default_factory=dict)  # open quarantine keys seen / gone (registry.quality.quarantine)
    key_scan: dict[str, Any] | None = None  # an incremental run's scan of the source's keys (pipeline.deletes)
    files_read: str | None = None  # a file source: the change to its record of files read (connectors/filelist.py)
    source_identity: dict[str, Any] | None = None  # change capture: the table read (pipeline.cdc_identity)

    def save(self) -> None:
        (Path(self.folder) / "staged.json").write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2))

    def push(self) -> None:
        """Copy the staged files to the store under the run's prefix (an object store; nothing locally), so a
        publish task on another worker finds them. No manifest yet: the prefix is no version."""
        from core.storage import get_storage

        get_storage().push(self.folder)

    @classmethod
    def load(cls, folder: Path) -> StagedRun:
        """The staged run saved in ``folder``: this worker's copy of the run's prefix (a folder another worker
        named is the same ``datasets/<resource>/<run>`` here), pulled from an object store if it is not here."""
        from core.storage import get_storage

        storage = get_storage()
        folder = storage.root / Path(*Path(folder).parts[-3:])  # datasets/<resource>/<run> of this worker
        path = folder / "staged.json"
        if not path.is_file():
            storage.pull(folder)  # staged by another worker: its files are in the store
        if not path.is_file():
            from core.errors import FatalError

            # e.g. removed by housekeeping or by a run that took over an expired lock. Fatal, not retriable: a
            # retried publish task finds it gone again (Airflow retried it for a quarter of an hour, in vain).
            raise FatalError(f"暂存的运行已不存在，请重新运行同步（抽取与发布） / {folder} holds no staged run "
                             "(staged.json missing): run the sync again, stage and publish")
        return cls(**{**json.loads(path.read_text()), "folder": str(folder)})


def files_rows(folder: Path, files: list[str]) -> int:
    """Rows of a run's Parquet files (paths relative to its folder), from their footers."""
    return sum(pq.ParquetFile(folder / name).metadata.num_rows for name in files)


class _Lane:
    """One file being written at a time: its Parquet writer and, for the interface, its row store."""

    def __init__(self) -> None:
        self.writer: pq.ParquetWriter | None = None
        self.row_store = None
        self.rows_in_file = 0
        self.pending: Future | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)
        if self.row_store is not None:
            self.row_store.write(batch)

    def settle(self) -> None:
        """Wait for the batch in flight; its error, if any, is raised here."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        self.settle()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.row_store is not None:
            self.row_store.close()
            self.row_store = None


def part_writer(path: Path, schema: pa.Schema, *, dictionary: list[str] | bool = True) -> pq.ParquetWriter:
    """A run's Parquet part as every one is written, and rewritten (PartWriter.retype, pipeline.provenance):
    snappy, with statistics (key locators and DuckDB's scans skip by them), dictionary encoding only for the
    ``dictionary`` columns (PartWriter chooses them from its first batch)."""
    return pq.ParquetWriter(path, schema, compression="snappy", write_statistics=True, use_dictionary=dictionary)


class PartWriter:
    """Writes record batches into Parquet parts of bounded size, so no file grows without limit.

    Encoding a part is the costliest step of a full read, so a large run writes two parts at a time, each in
    its own thread (Parquet encoding and compression release the GIL): batches alternate between them once
    PARALLEL_FROM_ROWS rows are in, so a small run (an incremental one) still makes one part. Dictionary
    encoding is kept for the columns whose first batch repeats values; on near-unique columns (keys, codes,
    names) it would be built and thrown away for every row group.

    With ``lookup_owner`` (the run folder of a resource offered through the interface), each part's row store
    (pipeline.lookup_index) is written from the same batches, so the publish does not read the part back."""

    def __init__(self, folder: Path, *, prefix: str = "part", lookup_owner: Path | None = None) -> None:
        self.folder = folder
        self.prefix = prefix
        self.files: list[str] = []
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._lookup_owner = lookup_owner
        self._lanes = [_Lane(), _Lane()]
        self._next = 0
        self.dictionary: list[str] | bool = True  # the columns dictionary-encoded (part_writer)
        self._threads: ThreadPoolExecutor | None = None
        self._serial = False
        self._alternated = False

    def _open(self, lane: _Lane) -> None:
        name = f"{self.prefix}-{len(self.files):05d}.parquet"
        lane.writer = part_writer(self.folder / name, self.schema, dictionary=self.dictionary)
        self.files.append(name)
        lane.rows_in_file = 0
        if self._lookup_owner is not None:
            from pipeline.lookup_index import RowStoreWriter, published_stem

            stem = published_stem(self._lookup_owner, f"{self.folder.name}/{name}")
            lane.row_store = RowStoreWriter(stem, self.schema)

    def keep_arrival_order(self) -> None:
        """Write one part at a time, so the parts' rows, file after file, are the rows in the order they came
        (what a side file aligned with them, such as file sources' ranks, relies on)."""
        if self._alternated:
            raise RuntimeError("keep_arrival_order() must be called before two parts are written at a time")
        self._serial = True

    def write(self, batch: pa.RecordBatch) -> None:
        if self.schema is None:
            self.schema = batch.schema
            self.dictionary = _repeating_columns(batch)
        elif batch.schema != self.schema:
            batch = batch.cast(self.schema)  # a type that cannot be cast raises: the run fails, nothing publishes
        if self.rows >= PARALLEL_FROM_ROWS and not self._serial:
            self._next = 1 - self._next
            self._alternated = True
        lane = self._lanes[self._next]
        lane.settle()  # one batch in flight per lane: memory stays bounded, order within a part is kept
        if lane.writer is None or lane.rows_in_file >= ROWS_PER_FILE:
            lane.close()
            self._open(lane)
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=len(self._lanes), thread_name_prefix="govshare-part")
        lane.pending = self._threads.submit(lane.write, batch)
        lane.rows_in_file += batch.num_rows
        self.rows += batch.num_rows

    def ensure_file(self, schema: pa.Schema) -> None:
        """An empty dataset still publishes one file, so consumers see its schema."""
        if not self.files:
            self.schema = self.schema or schema
            self._open(self._lanes[0])

    def retype(self, types: dict[str, pa.DataType]) -> pa.Schema:
        """Columns that hold only NULLs in the parts written so far take other ``types``: the parts are
        rewritten with them cast, row group by row group (exact: a NULL is NULL in any type), and later batches
        are written in the new schema, which is returned. Change capture's snapshot cannot read its snapshot
        again when a value chooses a converted column's type after NULLs (pipeline.conform.ValueChoices)."""
        if self._lookup_owner is not None:
            raise RuntimeError("retype() does not rewrite row stores")
        self.close()
        schema = self.schema
        for name, kind in types.items():
            index = schema.get_field_index(name)
            schema = schema.set(index, schema.field(index).with_type(kind))
        for name in self.files:
            path, scratch = self.folder / name, self.folder / f"{name}.retyped"
            source = pq.ParquetFile(path)
            with part_writer(scratch, schema, dictionary=self.dictionary) as rewritten:
                for group in range(source.num_row_groups):
                    rows = source.read_row_group(group)
                    if any(rows.column(n).null_count != rows.num_rows for n in types):
                        raise RuntimeError(f"retype(): {name} holds values in {', '.join(types)}")
                    rewritten.write_table(rows.cast(schema))
            source.close()
            scratch.replace(path)
        self.schema = schema
        return schema

    def close(self) -> None:
        """Finish every part (a later write starts new ones); raises what a writing thread raised."""
        try:
            for lane in self._lanes:
                lane.close()
        finally:
            if self._threads is not None:
                self._threads.shutdown(wait=True)
                self._threads = None
            self._next = 0


def _repeating_columns(batch: pa.RecordBatch) -> list[str] | bool:
    """Columns worth dictionary encoding: at most half of the first batch's values distinct."""
    if batch.num_rows < 1_000:
        return True  # too few rows to judge; a small part costs little either way
    chosen = []
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            distinct = pc.count_distinct(column).as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            distinct = 0
        if distinct <= batch.num_rows // 2:
            chosen.append(name)
    return chosen


class QuarantineWriter:
    """Rows that failed a blocking rule, with the rule and reason, kept for correction and replay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.by_rule: dict[str, int] = {}
        self._writer: pq.ParquetWriter | None = None

    def write(self, rows: pa.RecordBatch) -> None:
        # Quarantined values are kept as text: a value that failed conversion must survive as it was (a
        # connector's converted column holds NULL there; ROW_RAW_COLUMN has what it read).
        raw = None
        if ROW_RAW_COLUMN in rows.schema.names:
            raw, rows = rows.column(ROW_RAW_COLUMN), rows.drop_columns([ROW_RAW_COLUMN])
        as_text = pa.RecordBatch.from_arrays([text_values.as_text(c) for c in rows.columns], names=rows.schema.names)
        if raw is not None:
            as_text = text_values.with_raw(as_text, raw)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, as_text.schema)
        elif as_text.schema != self._writer.schema:
            as_text = as_text.select(self._writer.schema.names)
        self._writer.write_batch(as_text)
        self.rows += rows.num_rows
        for rule, count in zip(*_rule_counts(rows)):
            self.by_rule[rule] = self.by_rule.get(rule, 0) + count

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _rule_counts(rows: pa.RecordBatch) -> tuple[list[str], list[int]]:
    """Rows per rule; a row that broke several rules counts for each (pipeline.validate lists them all)."""
    from collections import Counter

    from pipeline.validate import RULE_COLUMN, rules_of

    counts = Counter(rule for rules in rules_of(rows.column(RULE_COLUMN)) for rule in rules)
    return list(counts), list(counts.values())
