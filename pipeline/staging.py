"""Staging: Parquet parts and a quarantine file written under a run folder, never visible to consumers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_FILE = 1_000_000


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
    key: list[str] = field(default_factory=list)  # the key the run merged and quarantined by
    findings: dict[str, Any] = field(default_factory=dict)  # open quarantine keys seen / gone (registry.quarantine)
    key_scan: dict[str, Any] | None = None  # an incremental run's scan of the source's keys (pipeline.deletes)

    def save(self) -> None:
        (Path(self.folder) / "staged.json").write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, folder: Path) -> StagedRun:
        path = folder / "staged.json"
        if not path.is_file():
            from core.errors import RetriableError

            # e.g. removed by housekeeping or by a run that took over an expired lock
            raise RetriableError(f"{folder} holds no staged run (staged.json missing); run the stage step again")
        return cls(**json.loads(path.read_text()))


class PartWriter:
    """Writes record batches into Parquet parts of bounded size, so no file grows without limit."""

    def __init__(self, folder: Path, *, prefix: str = "part") -> None:
        self.folder = folder
        self.prefix = prefix
        self.files: list[str] = []
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.files):05d}.parquet"
        self._writer = pq.ParquetWriter(self.folder / name, self.schema, compression="snappy",
                                        write_statistics=True)
        self.files.append(name)
        self._rows_in_file = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self.schema is None:
            self.schema = batch.schema
        elif batch.schema != self.schema:
            batch = batch.cast(self.schema)  # a type that cannot be cast raises: the run fails, nothing publishes
        if self._writer is None or self._rows_in_file >= ROWS_PER_FILE:
            self.close()
            self._open()
        self._writer.write_batch(batch)
        self._rows_in_file += batch.num_rows
        self.rows += batch.num_rows

    def ensure_file(self, schema: pa.Schema) -> None:
        """An empty dataset still publishes one file, so consumers see its schema."""
        if not self.files:
            self.schema = self.schema or schema
            self._open()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class QuarantineWriter:
    """Rows that failed a blocking rule, with the rule and reason, kept for correction and replay."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.by_rule: dict[str, int] = {}
        self._writer: pq.ParquetWriter | None = None

    def write(self, rows: pa.RecordBatch) -> None:
        # Quarantined values are kept as text: a value that failed conversion must survive as it was.
        as_text = pa.RecordBatch.from_arrays(
            [c.cast(pa.string()) if not pa.types.is_string(c.type) else c for c in rows.columns],
            names=rows.schema.names)
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
