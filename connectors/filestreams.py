"""A file source's streams: their settings, checked when the source is saved, and which listed files a read
takes.

Apart from the file source (connectors/filesource.py), which lists, opens and reads the files, because these
are decisions on settings and listings alone, the same over a local folder and SFTP: which settings a stream
may have, what a listed file is (FileEntry), and which files an incremental read takes (all new or changed
since the record of files read, with every file ranked after them; or, without a record, those at or after the
watermark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from pydantic import model_validator

from connectors.config import SourceConfig
from connectors.tabular import Column, check_parsing, declared_columns, zone
from core.errors import ConfigError

FILE_NAME, FILE_MODIFIED = "_file_name", "_file_modified"
FILE_COLUMNS = (Column(FILE_NAME, pa.string(), FILE_NAME),
                Column(FILE_MODIFIED, pa.timestamp("us", tz="UTC"), FILE_MODIFIED))
STREAM_KEYS = ("pattern", "format", "columns", "encoding", "delimiter", "quotechar", "sheet", "header", "header_row",
               "null_values", "timezone", "infer_rows", "file_columns", "primary_key")


@dataclass(frozen=True)
class FileEntry:
    path: str          # relative to the source folder, with forward slashes
    modified: datetime  # UTC
    size: int
    stamp: str | None = None  # what else tells a rewrite and no uploader sets (a local inode and change time)


class FileSourceConfig(SourceConfig):
    required = ("path",)

    path: str | None = None  # the folder
    streams: Any = None  # stream name -> its settings (STREAM_KEYS); checked by validate_streams

    @model_validator(mode="after")
    def _stream_settings(self) -> FileSourceConfig:
        validate_streams({**(self.model_extra or {}), **self.model_dump()})
        return self


def validate_streams(config: dict[str, Any]) -> None:
    """Each stream's settings are known ones, with declared columns and a time zone that can be used."""
    streams = config.get("streams") or {}
    if not isinstance(streams, dict):
        raise ConfigError('streams must map stream names to settings, e.g. {"enterprises": {"pattern": "企业*.csv"}}')
    for name, settings in streams.items():
        unknown = sorted(set(settings or {}) - set(STREAM_KEYS))
        if unknown:
            raise ConfigError(f"stream {name!r}: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(STREAM_KEYS)}")
        declared_columns((settings or {}).get("columns"))
        check_parsing(name, {**{k: v for k, v in config.items() if k in STREAM_KEYS}, **(settings or {})})
    declared_columns(config.get("columns"))
    check_parsing("(defaults)", {k: v for k, v in config.items() if k in STREAM_KEYS})
    zone(config.get("timezone"))


def new_or_changed(entries: list[FileEntry], changed: list[bool]) -> list[FileEntry]:
    """The files new or changed since the record, and every file ranked after the oldest of them (by time,
    then name). A key takes the newest file's row (pipeline/duplicates.py): a late file (an old time kept)
    read alone would replace a newer file's row of the same key, which a full read ranks above it; read with
    them, it loses as it does there. A new file with today's time is the newest: read alone."""
    fresh = [(e.modified, e.path) for e, c in zip(entries, changed) if c]
    if not fresh:
        return []
    oldest = min(fresh)
    return [e for e in entries if (e.modified, e.path) >= oldest]


def files_since(entries: list[FileEntry], cursor: str, value: str, *,
                fail: Callable[[str], str]) -> list[FileEntry]:
    """Without a record of files read (a connector used on its own): files at or after the watermark.
    ``fail`` (Connector.fail) names the source in the error."""
    if cursor == FILE_MODIFIED:
        try:
            mark = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(fail(f"saved cursor {value!r} is not a time; run a full sync")) from None
        return [e for e in entries if e.modified >= mark]
    if cursor == FILE_NAME:
        return [e for e in entries if e.path >= value]
    return entries  # a cursor inside the data: every file is read, rows are merged by key
