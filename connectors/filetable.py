"""One file of a stream read as a table: its format, its heading line, the stream's columns (inferred from its
first file unless declared), where each column sits in a file, and Excel's serial dates.

Apart from the file source (connectors/filesource.py), which lists, opens and reads the files, because these
rules look at one file's records only and are the same over a local folder and SFTP. Each takes ``fail``
(Connector.fail) to name the source in its errors.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

import pyarrow as pa

from connectors.fileformats import Record
from connectors.filestreams import FileEntry
from connectors.inference import infer_type
from connectors.tabular import UNDECODABLE, Column, declared_columns, flag, safe_name
from core.errors import ConfigError, RetriableError

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel"}
# Files of another known format that a pattern may match: read as CSV (the default for an unknown extension),
# a JSON lines file published its first record as the headings and the rest as values.
NOT_READ = {".json": "JSON", ".jsonl": "JSON lines", ".ndjson": "JSON lines", ".xml": "XML", ".xlsb": "binary Excel",
            ".ods": "OpenDocument", ".et": "WPS 表格", ".dbf": "dBASE", ".zip": "zip", ".gz": "gzip", ".rar": "rar",
            ".7z": "7-Zip", ".pdf": "PDF", ".doc": "Word", ".docx": "Word"}

# Excel serial numbers read as dates: up to 2099-12-31, and 9999-12-31 ("no end"). A number between them is no
# plausible serial date (202001 would be a day of 2453: a yyyymm code): tabular.Normalizer refuses it, and its
# row is quarantined.
EXCEL_SERIALS_UNTIL, EXCEL_NO_END = 73051, 2958465


def file_format(entry: FileEntry, settings: dict[str, Any], *, fail: Callable[[str], str]) -> str:
    """"csv" or "excel": the stream's ``format``, else by the file's extension."""
    if settings.get("format"):
        return str(settings["format"])
    extension = posixpath.splitext(entry.path)[1].lower()
    if extension == ".xls":
        raise ConfigError(fail(f"{entry.path}: the old binary .xls format is not read; save it as .xlsx"))
    if extension in NOT_READ:
        raise ConfigError(fail(
            f"{entry.path}: 不支持的文件格式 / a {NOT_READ[extension]} file is not read by a file source (CSV and "
            ".xlsx only); have the system export CSV or .xlsx, or narrow the stream's pattern (e.g. *.csv) so "
            "it matches only such files"))
    return FORMATS.get(extension, "csv")


def heading(records: Iterator[Record], entry: FileEntry, settings: dict[str, Any], *,
            fail: Callable[[str], str]) -> list[Any] | None:
    """The heading record's cells (None when the stream says its files have no heading line)."""
    skip = int(settings.get("header_row", 1)) - 1
    for record in islice(records, skip):
        pass
    if not flag(settings.get("header"), default=True):
        return None
    for record in records:
        if record.fields is None:
            raise ConfigError(fail(f"{entry.path}: the heading line is not readable: {record.problem}"))
        if any(isinstance(f, str) and UNDECODABLE.search(f) for f in record.fields):
            raise ConfigError(fail(
                f"{entry.path}: 标题行无法解码 / the heading line cannot be read as "
                f"{settings.get('encoding', 'auto (UTF-8, UTF-16 with its mark, or GB18030)')} text; set the "
                "stream's encoding (gb18030 for GBK/GB2312 exports, utf-8, utf-16, or auto)"))
        return record.fields
    return []


def inferred_columns(records: Iterator[Record], entry: FileEntry, settings: dict[str, Any], *,
                     fail: Callable[[str], str]) -> list[Column]:
    """The columns of a stream without declared ones, from its first file: named by the heading, typed by the
    first rows (``infer_rows``)."""
    cells = heading(records, entry, settings, fail=fail)
    if cells is None:
        raise ConfigError(fail("files without a heading line need their columns declared"))
    names = [safe_name(h, i) for i, h in enumerate(cells)]
    if not names:  # an empty sheet or file: a version without a single column was published
        raise no_heading_error(entry, fail=fail)
    if len(set(names)) != len(names):
        raise ConfigError(fail(f"{entry.path}: headings repeat; declare the columns"))
    sample = [r.fields for r in islice(records, int(settings.get("infer_rows", 1000))) if r.fields]
    null_values = set(settings.get("null_values", [""]))
    return [Column(name, infer_type(None if i >= len(row) or row[i] in null_values else row[i] for row in sample), name,
                   inferred=True) for i, name in enumerate(names)]


def positions(cells: list[Any] | None, columns: list[Column], entry: FileEntry, settings: dict[str, Any], *,
              fail: Callable[[str], str]) -> list[int]:
    """Where each of the stream's columns sits in the file with this heading (``cells``; None: no heading)."""
    if cells is None:
        return list(range(len(columns)))
    names = [safe_name(h, i) for i, h in enumerate(cells)]
    if not names:
        raise no_heading_error(entry, fail=fail)
    missing = [c.header for c in columns if c.header not in names]
    if missing:
        raise ConfigError(fail(f"{entry.path}: heading(s) {', '.join(missing)} missing "
                               f"(the file has: {', '.join(names)})"))
    repeated = {c.header: [i + 1 for i, n in enumerate(names) if n == c.header] for c in columns}
    repeated = {header: places for header, places in repeated.items() if len(places) > 1}
    if repeated:  # which of them is the column's cannot be told; the first was taken, the other silently dropped
        raise ConfigError(fail(
            f"{entry.path}: 标题重复 / heading(s) " + ", ".join(f"{h!r} in columns {', '.join(map(str, p))}"
                                                     for h, p in repeated.items())
            + " of the file, so which is the stream's column cannot be told; rename them in the export, or "
              "declare the columns in file order with header: false and header_row: 2 (the heading line skipped)"))
    if not declared_columns(settings.get("columns")):
        extra = [n for n in names if n not in {c.header for c in columns}]
        if extra:  # an inferred stream publishes every column; silently dropping one would lose data
            raise ConfigError(fail(f"{entry.path}: heading(s) {', '.join(extra)} are not in the stream's "
                                   "columns (taken from its first file); declare the columns"))
    return [names.index(c.header) for c in columns]


def no_heading_error(entry: FileEntry, *, fail: Callable[[str], str]) -> ConfigError | RetriableError:
    """A file (or sheet) without even a heading line. Of 0 bytes it is most likely an upload that has only
    begun (retriable); otherwise the export or the stream's sheet is wrong."""
    if entry.size == 0:
        return RetriableError(fail(
            f"文件为空 / {entry.path} is empty (0 bytes): an upload still starting, or an export that wrote "
            "nothing; nothing was published. The next run reads it once it is written; remove it if it stays "
            "empty"))
    return ConfigError(fail(
        f"无标题行 / {entry.path} has no heading line (an empty sheet or file); check the stream's sheet "
        "or header_row, or remove the file"))


def excel_dates(row: list[Any], columns: list[Column], epoch: datetime) -> list[Any]:
    """A number in a column declared ``date`` or ``timestamp`` is an Excel serial date (a cell that lost its date
    format, a tool's export) and is read as the date Excel shows for it; it was quarantined as no ISO date."""
    from openpyxl.utils.datetime import from_excel

    for index, column in enumerate(columns):
        value = row[index]
        if (pa.types.is_date(column.type) or pa.types.is_timestamp(column.type)) \
                and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and (0 < value < EXCEL_SERIALS_UNTIL or EXCEL_NO_END <= value < EXCEL_NO_END + 1):
            row[index] = from_excel(value, epoch)
    return row
