"""The connector protocol: declare yourself with class attributes, implement check, discover and read."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from connectors.config import SourceConfig, parse_config
from core.errors import ConfigError, RetriableError

# A column a connector adds to a batch to flag rows it could not convert faithfully: the value is the
# problem (column, raw value, reason); the pipeline quarantines those rows instead of publishing them.
ROW_PROBLEM_COLUMN = "__govshare_row_problem"
# Beside it, the values those problems concern as they were read (JSON: column -> text; bytes as \x hex): the
# converted column holds NULL there, and the quarantined row must keep what the source had, for the provider to
# correct. Never published.
ROW_RAW_COLUMN = "__govshare_row_raw"
# A column a file source adds: the rank of the row's file among those read, by modification time then name. When
# several files hold a key, the pipeline keeps the newest file's row (an update) and only repeats within one
# file are duplicates (pipeline/extract_keys.py). Never published.
ROW_ORIGIN_COLUMN = "__govshare_row_origin"
RESERVED_PREFIX = "__govshare_"  # the hub's own columns: a source column of such a name would be taken for one
# What a database source does about such a column (a file source says how to rename a heading instead).
RENAME_AT_SOURCE = ("rename the column at the source, or register a --query that reads it under another name "
                    "(SELECT ..., the_column AS another_name FROM ...)")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# A source that refuses the credential or the right to read is a configuration problem: trying again with the
# same password or grants cannot succeed, so it is never retried (sync --attempts, Airflow task retries).
# SQLSTATE class 28 (invalid authorization), 42501 (insufficient privilege), 3D000 (no such database).
REFUSED_SQLSTATES = ("28", "42501", "3D000")
REFUSED_WORDS = ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
                 "permission denied", "access denied", "login failed", "login refused", "not authorized",
                 "unauthorized", "must be superuser", "must be owner", "must have replication")
_MISSING_LOGIN = re.compile(r"(role|user|database) \S+ does not exist", re.I)


def refused(reason: str, sqlstate: str | None = None) -> bool:
    """Whether a source's error says the hub may not log in or read (wrong password, no grant, no database)."""
    if sqlstate and sqlstate.upper().startswith(REFUSED_SQLSTATES):
        return True
    text = reason.lower()
    return any(word in text for word in REFUSED_WORDS) or bool(_MISSING_LOGIN.search(reason))


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
                raise ConfigError(f"名称须为字母、数字、下划线 / {name!r} is not a plain identifier (letters, digits, "
                                  "underscore); for a table or column named otherwise, register a --query that gives "
                                  "plain names (e.g. --query 'SELECT \"Name\" AS name, ... FROM \"My Table\"'), or "
                                  "ask for a view; a file or API stream declares its columns with plain names and "
                                  'their headings: "columns": [{"name": "id", "type": "integer", "header": "编号"}]')

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
    """The typed cursor position an incremental read resumes from (None: read everything), and for a source
    with the ``files`` capability the record of files read (已读文件清单, connectors.filelist.FileLedger)."""

    cursor_value: str | None = None
    files: Any = None  # connectors.filelist.FileLedger | None


@dataclass
class ColumnInfo:
    name: str
    source_type: str
    arrow_type: pa.DataType
    nullable: bool = True
    comment: str = ""  # the column's description at the source, where the database keeps one


@dataclass
class TableInfo:
    name: str
    columns: list[ColumnInfo] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)


# What a connector can do beyond reading a stream in full (`Connector.capabilities`):
# incremental: reads only rows with cursor >= the last published value; key_scan: reads a stream's key columns
# alone (the pipeline then finds keys deleted at the source in every incremental run, pipeline/deletes.py);
# cdc: change capture from the source's log (pipeline/cdc.py); files: reads files, records which ones it read
# (connectors/filelist.py) and, incrementally, reads every file new or changed since (connectors/filesource.py).
CAPABILITIES = frozenset({"incremental", "key_scan", "cdc", "files"})


class Connector(ABC):
    """A source kind. Declares its `kind`, `title`, `config_model` (the settings it reads, connectors/config.py),
    `secret_fields` and `capabilities`."""

    kind: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    secret_fields: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[str]] = frozenset({"incremental"})

    def __init__(self, *, name: str, config: dict[str, Any], secret: dict[str, Any] | None = None) -> None:
        self.validate_config(config)
        self.name = name
        self.config = config
        self.secret = secret or {}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> SourceConfig:
        """The configuration checked against `config_model`; a ConfigError names each wrong setting."""
        return parse_config(cls.kind, cls.config_model, config)

    def __repr__(self) -> str:  # never shows the secret
        return f"<{type(self).__name__} {self.name}: {self.describe()}>"

    def fail(self, problem: str) -> str:
        """A one-line error naming the source, for check() and read()."""
        return f"source {self.name!r} ({self.kind} {self.describe()}): {problem}"

    def refuse_reserved(self, names: Iterable[str], *, rename: str = RENAME_AT_SOURCE) -> None:
        """A ConfigError naming the source's columns spelled like the hub's own (RESERVED_PREFIX): read, such a
        column was taken for a row flag, its values became quarantine reasons and it was never published."""
        reserved = [name for name in names if name.startswith(RESERVED_PREFIX)]
        if reserved:
            raise ConfigError(self.fail(
                f"列名 {', '.join(reserved)} 为平台保留 / column name(s) {', '.join(reserved)}: names starting with "
                f"{RESERVED_PREFIX} are reserved for the hub's own row flags; {rename}"))

    def error(self, reason: str, *, doing: str, sqlstate: str | None = None) -> ConfigError | RetriableError:
        """The error a failed call to the source raises, by its cause: refused credentials or rights are a
        ConfigError (fix the source's secret or grants: `govshare source edit`), anything else retriable."""
        reason = " ".join(reason.split())
        for value in self.secret.values():  # a driver may echo a connection string
            if isinstance(value, str) and len(value) >= 4:
                reason = reason.replace(value, "***")
        if refused(reason, sqlstate):
            return ConfigError(self.fail(f"登录或读取被拒绝 / the source refused the hub ({doing}): {reason}; check "
                                         f"the credential and grants (`govshare source edit {self.name}`)"))
        return RetriableError(self.fail(f"{doing}: {reason}"))

    @abstractmethod
    def describe(self) -> str:
        """Where the source is, without secrets."""

    @abstractmethod
    def check(self, stream: StreamSpec | None = None) -> None:
        """Connect (and look at the stream's table); raise ConfigError or RetriableError with fail()."""

    @abstractmethod
    def discover(self) -> list[TableInfo]:
        """Tables, columns, types and primary keys."""

    def table_info(self, table: str) -> TableInfo | None:
        """One table as discover() describes it, None when the source has none of that name. Connectors with
        schemas look a qualified name (``schema.table``) up in that schema: matched by its bare name among the
        default schema's tables, another schema's table was described (a namesake, or nothing)."""
        bare = table.rpartition(".")[2]
        return next((t for t in self.discover() if t.name in (table, bare)), None)

    @abstractmethod
    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        """Record batches of at most stream.batch_rows rows; rows with cursor >= state.cursor_value, and rows
        without a cursor value (NULL): those cannot be placed after any watermark, so every incremental read
        reads them (a row inserted or changed without one would otherwise wait for the next full read)."""

    def read_keys(self, stream: StreamSpec, *, ordered: bool) -> Iterator[pa.RecordBatch]:
        """Every row's key columns only, in record batches; sorted by the key when ``ordered`` (the caller
        checks the order and copes when it is not). Only for a connector with the `key_scan` capability: others
        (files, HTTP APIs) find deleted keys only by a full read."""
        raise NotImplementedError(f"a {self.kind} source cannot read its keys alone")

    # A source that can read one range of a single integer key, sorted, says so: the key scan then reads several
    # ranges over as many connections at once (the server's index scan is most of the scan's time).
    reads_key_ranges: ClassVar[bool] = False

    def read_key_range(self, stream: StreamSpec, *, low: int | None, high: int | None,
                       splits: Sequence[int] = ()) -> Iterator[pa.RecordBatch]:
        """The single integer key's values with low <= key < high (None: unbounded), sorted. ``splits``: keys
        inside the range where the source may cut its answer into chunks of about as many keys (the published
        keys' quantiles), to send many keys at once."""
        raise NotImplementedError(f"a {self.kind} source cannot read a range of its keys")

    def stream_schema(self, stream: StreamSpec) -> pa.Schema:
        """The stream's columns as a read would deliver them, without reading its rows (the default reads the
        first batch; database connectors ask their catalogue)."""
        first = next(iter(self.read(stream, ReadState())), None)
        if first is None:
            raise ConfigError(self.fail(f"{stream.label} yields no columns"))
        return payload_schema(first.schema)


def payload_schema(schema: pa.Schema) -> pa.Schema:
    """A read's columns as they will be published (without a connector's row flags)."""
    for name in (ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN, ROW_ORIGIN_COLUMN):
        index = schema.get_field_index(name)
        if index >= 0:
            schema = schema.remove(index)
    return schema


def quoted_names(names: tuple[str, ...] | list[str], quote: str = '"') -> str:
    """Column names for a SQL statement (each already a plain identifier, StreamSpec checks that)."""
    return ", ".join(f"{quote}{name}{quote}" for name in names)
