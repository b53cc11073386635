"""What every rule type shares (规则基类): validated parameters, issues instead of exceptions.

A rule is data: a ``type`` plus parameters, validated by the pydantic model of its type when the contract
loads. A row rule yields ``RowIssue`` (a failing mask and reasons, row-aligned with the Arrow batch); a dataset
rule yields ``Issue`` (one finding about the whole staged run). Neither raises on bad data: the pipeline
decides what a finding means (quarantine, fail the run, or only report it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["row", "dataset", "key"]


class Threshold(BaseModel):
    """How many failures a run may have before it publishes nothing (最大隔离比例/行数)."""

    model_config = ConfigDict(extra="forbid")
    max_fraction: float | None = Field(default=None, ge=0, le=1, description="share of the dataset's rows (the "
                                       "version's rows plus those the run quarantined), 0..1")
    max_rows: int | None = Field(default=None, ge=0, description="number of rows")

    @model_validator(mode="after")
    def _one_limit(self) -> Threshold:
        if self.max_fraction is None and self.max_rows is None:
            raise ValueError("a threshold needs max_fraction or max_rows")
        return self

    def exceeded(self, count: int, total: int) -> str | None:
        """Why ``count`` failures out of ``total`` rows break this threshold, or None."""
        if self.max_rows is not None and count > self.max_rows:
            return f"{count} > max_rows {self.max_rows}"
        if self.max_fraction is not None and total and count / total > self.max_fraction:
            return f"{count}/{total} = {count / total:.2%} > max_fraction {self.max_fraction:.2%}"
        return None


@dataclass
class RowIssue:
    """Rows of one batch that break a rule: ``failing`` is a boolean array without nulls."""

    rule: str
    failing: pa.Array
    reasons: pa.Array | str


@dataclass
class Issue:
    """One finding about a whole run or version."""

    rule: str
    blocking: bool
    message_zh: str
    message_en: str
    observed: Any = None

    @property
    def message(self) -> str:
        return f"{self.message_zh} / {self.message_en}"


class BatchReader(Protocol):
    """Streams a dataset's rows, only the named columns (all when None), in bounded record batches."""

    def __call__(self, *, columns: list[str] | None = None) -> Iterable[pa.RecordBatch]: ...


def file_batches(files: list[Path], *, batch_rows: int = 65_536) -> BatchReader:
    """Plain Parquet files whose every row is in the dataset (a staged run's parts), as a BatchReader."""
    def batches(*, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        for path in files:
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns)

    return batches


@dataclass
class DatasetContext:
    """What a dataset rule may look at: the staged run's (or published version's) rows and the previous
    version's row count. Rows are read through ``batches``, never from files directly: a layered published
    version's files hold rows it no longer has (pipeline.layers knows which)."""

    batches: BatchReader
    rows: int
    run_time: datetime
    previous_rows: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectationSpec:
    """A great-expectations expectation by class name and keyword arguments (no GX import needed)."""

    name: str
    kwargs: dict[str, Any]
    note: str = ""


class Rule(BaseModel):
    """Parameters every rule accepts; each type adds its own in its module."""

    model_config = ConfigDict(extra="forbid")
    type: str
    id: str = Field(default="", description="name in quarantine files and reports; default type_column")
    blocking: bool = True
    threshold: Threshold | None = None
    description: str = ""

    scope: ClassVar[Scope] = "row"
    title_zh: ClassVar[str] = ""

    def columns_used(self) -> list[str]:
        names = getattr(self, "columns", None) or []
        column = getattr(self, "column", None)
        return [*names, *([column] if column else [])]

    def default_id(self) -> str:
        used = self.columns_used()
        return f"{self.type}_{'_'.join(used)}" if used else self.type

    @model_validator(mode="after")
    def _fill_id(self) -> Rule:
        if not self.id:
            self.id = self.default_id()
        return self

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        """Row rules: the failing rows of one batch."""
        return iter(())

    def check_dataset(self, context: DatasetContext) -> Iterator[Issue]:
        """Dataset rules: findings about the whole run."""
        return iter(())

    def expectations(self) -> list[ExpectationSpec]:
        """The same rule as great-expectations expectations."""
        return []


def column_of(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    column = batch.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
