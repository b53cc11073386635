"""The connector protocol: declare yourself with class attributes, implement check, discover and read."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from core.errors import ConfigError

# A column a connector adds to a batch to flag rows it could not convert faithfully: the value is the
# problem (column, raw value, reason); the pipeline quarantines those rows instead of publishing them.
ROW_PROBLEM_COLUMN = "__govshare_row_problem"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class StreamSpec:
    """What to read: a table (optionally schema-qualified) or a query, with its key and cursor."""

    table: str | None = None
    query: str | None = None
    primary_key: tuple[str, ...] = ()
    cursor_column: str | None = None
    batch_rows: int = 65_536

    def __post_init__(self) -> None:
        if bool(self.table) == bool(self.query):
            raise ConfigError("a stream reads either a table or a query")
        for name in [self.table or "x", *self.primary_key, self.cursor_column or "x"]:
            if not IDENTIFIER.match(name):
                raise ConfigError(f"{name!r} is not a plain identifier (letters, digits, underscore)")

    @classmethod
    def from_stream(cls, stream: dict[str, Any], *, batch_rows: int) -> StreamSpec:
        return cls(table=stream.get("table"), query=stream.get("query"),
                   primary_key=tuple(stream.get("primary_key") or ()), cursor_column=stream.get("cursor_column"),
                   batch_rows=batch_rows)

    @property
    def label(self) -> str:
        return self.table or "query"


@dataclass(frozen=True)
class ReadState:
    """The typed cursor position an incremental read resumes from (None: read everything)."""

    cursor_value: str | None = None


@dataclass
class ColumnInfo:
    name: str
    source_type: str
    arrow_type: pa.DataType
    nullable: bool = True


@dataclass
class TableInfo:
    name: str
    columns: list[ColumnInfo] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)


class Connector(ABC):
    kind: ClassVar[str]
    title: ClassVar[str]
    required_config: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, name: str, config: dict[str, Any], secret: dict[str, Any] | None = None) -> None:
        self.validate_config(config)
        self.name = name
        self.config = config
        self.secret = secret or {}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        missing = [key for key in cls.required_config if not config.get(key)]
        if missing:
            raise ConfigError(f"a {cls.kind} source needs {', '.join(missing)} in its configuration")

    def __repr__(self) -> str:  # never shows the secret
        return f"<{type(self).__name__} {self.name}: {self.describe()}>"

    def fail(self, problem: str) -> str:
        """A one-line error naming the source, for check() and read()."""
        return f"source {self.name!r} ({self.kind} {self.describe()}): {problem}"

    @abstractmethod
    def describe(self) -> str:
        """Where the source is, without secrets."""

    @abstractmethod
    def check(self, stream: StreamSpec | None = None) -> None:
        """Connect (and look at the stream's table); raise ConfigError or RetriableError with fail()."""

    @abstractmethod
    def discover(self) -> list[TableInfo]:
        """Tables, columns, types and primary keys."""

    @abstractmethod
    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        """Record batches of at most stream.batch_rows rows; rows with cursor >= state.cursor_value."""
