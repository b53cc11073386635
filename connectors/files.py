"""Files source: CSV and Excel (.xlsx) files in a local (or mounted) folder, one glob pattern per stream.

    govshare source add scjg-files --agency ... --kind files -o path=/data/scjg \\
        -o 'streams={"enterprises": {"pattern": "企业登记*.csv", "columns": {"id": "integer", ...}}}'

Stream settings are described in connectors/filesource.py and README.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from connectors.filesource import FileSourceConnector
from connectors.filestreams import FileEntry
from core.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(info: os.stat_result) -> str:
    """Inode and change time: a file rewritten or replaced with its modification time (and size) kept still
    gets a new change time, which no uploader can set (connectors/filelist.py)."""
    return f"{info.st_ino}:{info.st_ctime_ns}"


class FilesConnector(FileSourceConnector):
    kind = "files"
    title = "本地文件夹 (CSV / Excel)"

    def describe(self) -> str:
        return str(self.config["path"])

    def _root(self) -> Path:
        return Path(self.config["path"]).expanduser()

    def _session(self):
        return nullcontext()

    def _list(self, session: Any, folder: str) -> list[FileEntry]:
        root = self._root()
        directory = root / folder if folder else root
        if not root.is_dir():
            raise ConfigError(self.fail(f"folder {root} does not exist or is not a folder"))
        if not directory.is_dir():
            raise ConfigError(self.fail(f"folder {directory} does not exist"))
        entries = []
        try:
            with os.scandir(directory) as listing:
                for item in listing:
                    if item.is_file():
                        info = item.stat()
                        modified = EPOCH + timedelta(microseconds=info.st_mtime_ns // 1000)
                        relative = f"{folder}/{item.name}" if folder else item.name
                        entries.append(FileEntry(path=relative, modified=modified, size=info.st_size,
                                                 stamp=_stamp(info)))
        except PermissionError as exc:
            raise ConfigError(self.fail(f"cannot list {directory}: {exc.strerror}")) from None
        return entries

    @contextmanager
    def _open(self, session: Any, entry: FileEntry) -> Iterator[BinaryIO]:
        try:
            handle = open(self._root() / entry.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise  # removed since it was listed: FileSourceConnector._records says so, retriable
        except OSError as exc:
            raise ConfigError(self.fail(f"cannot open {entry.path}: {exc.strerror}")) from None
        with handle:
            yield handle

    @contextmanager
    def _local_path(self, session: Any, entry: FileEntry) -> Iterator[str]:
        yield str(self._root() / entry.path)

    def _current(self, session: Any, entry: FileEntry) -> FileEntry | None:
        try:
            info = (self._root() / entry.path).stat()
        except FileNotFoundError:
            return None
        return FileEntry(path=entry.path, modified=EPOCH + timedelta(microseconds=info.st_mtime_ns // 1000),
                         size=info.st_size)
