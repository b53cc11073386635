"""What the files and sftp kinds share: streams of CSV / Excel files matched by a pattern in a folder.

A stream (the resource's ``--table``) names an entry of the config's ``streams`` mapping; keys at the top of the
config are defaults for every stream. Files are read in name order. Incremental reads use a file cursor: with
``--cursor _file_modified`` (or ``_file_name``) each row carries its file's modification time (or name), every
read records which files it read (已读文件清单, connectors/filelist.py), and a later run reads every file that is
new or changed since that record, whatever its time, with the files ranked after it (see
connectors/filestreams.new_or_changed). A file whose size or time changed while it was read (an upload still in
progress) stops the run before anything is published.

This module is the file source itself: what a subclass provides (listing and opening files, locally or over
SFTP) and the Connector protocol over it. A stream's settings and which files a read takes are in
connectors/filestreams.py, one file's heading and columns in connectors/filetable.py.
"""

from __future__ import annotations

import fnmatch
import posixpath
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, BinaryIO

import pyarrow as pa

from connectors.base import ColumnInfo, Connector, ReadState, StreamSpec, TableInfo
from connectors.excel_rows import excel_rows
from connectors.filelist import FileLedger
from connectors.fileformats import Record, csv_rows, excerpt
from connectors.filestreams import (
    FILE_COLUMNS,
    FILE_MODIFIED,
    FILE_NAME,
    STREAM_KEYS,
    FileEntry,
    FileSourceConfig,
    files_since,
    new_or_changed,
)
from connectors.filetable import excel_dates, file_format, heading, inferred_columns, positions
from connectors.tabular import UNDECODABLE, BatchBuilder, Column, Normalizer, declared_columns, flag
from core.errors import ConfigError, RetriableError


class FileSourceConnector(Connector):
    config_model = FileSourceConfig
    capabilities = frozenset({"incremental", "files"})

    # --- what a subclass provides -------------------------------------------------------------------------------

    @abstractmethod
    def _session(self) -> AbstractContextManager[Any]:
        """One connection for a check, discover or read (nothing for a local folder)."""

    @abstractmethod
    def _list(self, session: Any, folder: str) -> list[FileEntry]:
        """Regular files directly in ``folder`` (relative to the source path); ConfigError if it is missing."""

    @abstractmethod
    def _open(self, session: Any, entry: FileEntry) -> AbstractContextManager[BinaryIO]:
        """The file as a binary stream."""

    @abstractmethod
    def _local_path(self, session: Any, entry: FileEntry) -> AbstractContextManager[str]:
        """A local path to the file (a workbook needs random access)."""

    @abstractmethod
    def _current(self, session: Any, entry: FileEntry) -> FileEntry | None:
        """The file as it is now (size, modification time), None if it is gone."""

    def _unchanged_since_listed(self, session: Any, entry: FileEntry) -> None:
        """A file that changed while it was read was still being written (an upload in progress): its rows may
        end mid-file, and a full read would take every row after that for deleted. The run stops, nothing is
        published, and the next run reads the file whole."""
        now = self._current(session, entry)
        if now is None or (now.size, now.modified) != (entry.size, entry.modified):
            change = "was removed" if now is None else (f"went from {entry.size:,} to {now.size:,} bytes"
                                                        if now.size != entry.size else "was modified")
            raise RetriableError(self.fail(
                f"文件在读取期间被改动（可能仍在上传）/ {entry.path} changed while it was read: it {change}; "
                "nothing was published and the next run reads it again. An uploader should write under a "
                "temporary name (e.g. .part) and rename the file when it is complete"))

    # --- streams ----------------------------------------------------------------------------------------------

    def settings(self, stream: str) -> dict[str, Any]:
        streams = self.config.get("streams") or {}
        defaults = {k: v for k, v in self.config.items() if k in STREAM_KEYS}
        if stream not in streams and streams and "pattern" not in defaults:
            raise ConfigError(self.fail(f"stream {stream!r} is not declared; declared streams: {', '.join(streams)}"))
        merged = {**defaults, **(streams.get(stream) or {})}
        merged.setdefault("pattern", f"{stream}*.csv")
        return merged

    def _matching(self, session: Any, settings: dict[str, Any]) -> list[FileEntry]:
        folder, pattern = posixpath.split(str(settings["pattern"]).replace("\\", "/"))
        if any(ch in folder for ch in "*?["):
            raise ConfigError(self.fail(f"pattern {settings['pattern']!r}: wildcards only in the file name part"))
        if folder.startswith("/") or ".." in folder.split("/"):  # another agency's folder, or any file the hub reads
            raise ConfigError(self.fail(
                f"pattern {settings['pattern']!r}: 不能匹配源文件夹之外的文件 / a pattern names files in the source's "
                "folder (path) or a folder inside it, never above it (..) or an absolute path; to read another "
                "folder, register it as a source of its own"))
        entries = [e for e in self._list(session, folder)
                   if fnmatch.fnmatchcase(posixpath.basename(e.path), pattern)
                   and not posixpath.basename(e.path).startswith((".", "~$"))]  # hidden files, Excel lock files
        return sorted(entries, key=lambda e: e.path)

    @contextmanager
    def _records(self, session: Any, entry: FileEntry, settings: dict[str, Any]) -> Iterator[Iterator[Record]]:
        try:
            try:
                if file_format(entry, settings, fail=self.fail) == "excel":
                    with self._local_path(session, entry) as path:
                        yield excel_rows(path, sheet=settings.get("sheet"))
                else:
                    with self._open(session, entry) as binary:
                        delimiter = settings.get("delimiter") or ("\t" if entry.path.lower().endswith(".tsv") else ",")
                        yield csv_rows(binary, encoding=settings.get("encoding", "auto"), delimiter=delimiter,
                                       quotechar=settings.get("quotechar") or '"')
            except ConfigError as exc:  # the parser's (a workbook, an encoding) named with the source and file
                if str(exc).startswith(self.fail("")):  # the caller's, already naming the source
                    raise
                raise ConfigError(self.fail(f"{entry.path}: {exc}")) from None
        except FileNotFoundError:
            # Removed after the folder was listed (a clean-up job, a file moved away): the files read so far are
            # not the folder's state either. It was a ConfigError ("cannot open"), never retried.
            raise RetriableError(self.fail(
                f"文件在列出后被删除 / {entry.path} was removed after the folder was listed: nothing was published; "
                "the next run (or --attempts) lists the folder again")) from None

    def _columns(self, session: Any, entries: list[FileEntry], settings: dict[str, Any]) -> list[Column]:
        """Declared, or inferred from the heading and the first rows of the first file."""
        columns = declared_columns(settings.get("columns"))
        if not columns:
            if not entries:
                raise ConfigError(self.fail(f"no file matches {settings['pattern']!r} and no columns are declared"))
            with self._records(session, entries[0], settings) as records:
                columns = inferred_columns(records, entries[0], settings, fail=self.fail)
        self.refuse_reserved([c.name for c in columns], rename=(
            'rename the heading in the export, or declare the column under another name '
            '({"name": "...", "header": "<the heading>"})'))
        return columns

    def _wants_file_columns(self, stream: StreamSpec, settings: dict[str, Any]) -> bool:
        return flag(settings.get("file_columns")) or stream.cursor_column in (FILE_NAME, FILE_MODIFIED)

    # --- the protocol ------------------------------------------------------------------------------------------

    def check(self, stream: StreamSpec | None = None) -> None:
        with self._session() as session:
            self._list(session, "")
            if stream:
                settings = self.settings(stream.label)
                entries = self._matching(session, settings)
                if not entries:
                    raise ConfigError(self.fail(f"no file matches {settings['pattern']!r}"))
                columns = self._columns(session, entries, settings)
                with self._records(session, entries[0], settings) as records:
                    positions(heading(records, entries[0], settings, fail=self.fail), columns, entries[0], settings,
                              fail=self.fail)

    def discover(self) -> list[TableInfo]:
        streams = list(self.config.get("streams") or {})
        tables = []
        with self._session() as session:
            if not streams:  # undeclared: one stream per CSV file name, read with the default pattern
                streams = sorted({posixpath.splitext(e.path)[0] for e in self._list(session, "")
                                  if e.path.lower().endswith(".csv")})
            for name in streams:
                settings = self.settings(name)
                columns = self._columns(session, self._matching(session, settings), settings)
                columns += list(FILE_COLUMNS) if flag(settings.get("file_columns")) else []
                tables.append(TableInfo(name=name, primary_key=list(settings.get("primary_key") or []),
                                        columns=[ColumnInfo(c.name, f"{c.header}: {c.type}", c.type) for c in columns]))
        return tables

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        settings = self.settings(stream.label)
        with self._session() as session:
            entries = self._matching(session, settings)
            columns = self._columns(session, entries, settings)
            file_columns = self._wants_file_columns(stream, settings)
            if file_columns and {c.name for c in columns} & {FILE_NAME, FILE_MODIFIED}:
                raise ConfigError(self.fail(f"the files have a column named {FILE_NAME} or {FILE_MODIFIED}"))
            listed, ledger = entries, state.files
            changed = ledger.changed(entries) if isinstance(ledger, FileLedger) else None
            if stream.cursor_column and state.cursor_value is not None:
                entries = files_since(entries, stream.cursor_column, state.cursor_value, fail=self.fail) \
                    if changed is None or stream.cursor_column not in (FILE_NAME, FILE_MODIFIED) \
                    else new_or_changed(entries, changed)
            normalizer = Normalizer(columns, null_values=settings.get("null_values", [""]),
                                    timezone=settings.get("timezone"))
            builder = BatchBuilder(columns + list(FILE_COLUMNS if file_columns else ()), batch_rows=stream.batch_rows,
                                   normalizer=normalizer)
            # A keyed stream's rows carry their file's rank, newest last: a key in several files takes the newest
            # file's row (pipeline/duplicates.py).
            ranks = {e.path: rank for rank, e in enumerate(sorted(entries, key=lambda e: (e.modified, e.path)))}
            for entry in entries:
                yield from self._read_file(session, entry, settings, columns, normalizer, builder, file_columns,
                                           ranks[entry.path] if stream.primary_key else None)
            if changed is not None:  # read whole (a file that changed meanwhile stopped the run): recorded
                ledger.record(listed, changed)
            last = builder.flush(always=True)  # an empty read still tells its schema
            if last is not None:
                yield last

    def _read_file(self, session: Any, entry: FileEntry, settings: dict[str, Any], columns: list[Column],
                   normalizer: Normalizer, builder: BatchBuilder, file_columns: bool,
                   rank: int | None) -> Iterator[pa.RecordBatch]:
        extra = (entry.path, entry.modified) if file_columns else ()
        width = len(columns)
        unit = "row" if file_format(entry, settings, fail=self.fail) == "excel" else "line"
        with self._records(session, entry, settings) as records:
            cells = heading(records, entry, settings, fail=self.fail)
            places = positions(cells, columns, entry, settings, fail=self.fail)
            expected = len(cells) if cells is not None else width
            for record in records:
                problem = record.problem
                if record.fields is None:
                    row: tuple = (None,) * width
                else:
                    fields = record.fields
                    # Excel drops trailing empty cells, so only a CSV line can come short.
                    if len(fields) > expected or (unit == "line" and len(fields) != expected):
                        problem = "; ".join(p for p in (problem, (
                            f"字段数不符 / has {len(fields)} fields where the heading has {expected}: "
                            f"{excerpt(record.raw) if record.raw else fields!r}")) if p)
                    row = [fields[p] if p < len(fields) else None for p in places]
                    if record.epoch is not None:
                        row = excel_dates(row, columns, record.epoch)
                    if record.raw and UNDECODABLE.search(record.raw):
                        row, text_problem = normalizer.text(row, encoding=record.encoding)
                        problem = "; ".join(p for p in (problem, text_problem) if p)
                    row = tuple(row)
                batch = builder.add(row + extra, place=f"{entry.path} {unit} {record.number}", problem=problem,
                                    origin=rank)
                if batch is not None:
                    yield batch
        self._unchanged_since_listed(session, entry)
