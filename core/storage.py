"""Where the data plane lives (数据存储): one interface on ``pyarrow.fs`` for a local folder or an S3-compatible
object store (``GOVSHARE_STORAGE=s3://bucket/prefix`` with ``GOVSHARE_STORAGE_ENDPOINT`` and the credentials).

Every object the hub writes (a version's parts, deletion vectors, key locators, lookup structures, change
sets and manifest; quarantine files; expectations reports; exports; consistency findings) is immutable once
written, and lives under a storage-relative key such as ``datasets/7/<run_id>/data/part-00000.parquet``.

- Local folder (the embedded default): the store *is* the working folder; pushing and pulling do nothing.
- Object store: a worker works in its own working copy (``GOVSHARE_STORAGE_CACHE``, default
  ``home/objects``): a run writes its files there (DuckDB, NumPy's memory maps and Parquet writers need a file
  system), pushes them to the store under the run's own prefix (the manifest last), and a reader pulls a
  published folder it does not have yet (once: published folders never change). Downloads stream from the
  store itself (``open_input``: a ranged GET per chunk, so an HTTP Range request passes through).
Copies go in 1 MiB chunks (``pyarrow.fs.copy_files``), so memory stays bounded whatever an object's size.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from core.errors import ConfigError, RetriableError

CHUNK = 1 << 20
PULLED = ".pulled"  # a published folder's working copy is whole
PUSHED = ".pushed"  # the files of a folder this worker already copied to the store


@dataclass(frozen=True)
class Storage:
    """The store (``fs`` + ``base``) and this worker's working copy of it (``root``)."""

    fs: pafs.FileSystem
    base: str  # the store's root inside ``fs`` (an absolute folder, or bucket/prefix)
    root: Path  # the working copy; the store itself when local
    remote: bool
    url: str  # what GOVSHARE_STORAGE says, for messages and cache keys

    # --- names -----------------------------------------------------------------------------------------------
    def relative(self, path: Path | str) -> str:
        """A storage-relative key from a working-copy path or a key."""
        text = str(path)
        root = str(self.root)
        if os.path.isabs(text):
            if text != root and not text.startswith(root + os.sep):
                raise ValueError(f"{text} is not under the storage working folder {root}")
            text = text[len(root):]
        return text.strip("/")

    def key(self, relative: Path | str) -> str:
        rel = self.relative(relative)
        return f"{self.base}/{rel}" if rel else self.base

    def local(self, relative: Path | str) -> Path:
        return self.root / self.relative(relative)

    # --- writing: a worker's files into the store ---------------------------------------------------------
    def push(self, relative: Path | str, *, skip: tuple[str, ...] = ()) -> None:
        """Copy a file, or every file of a folder (but the names in ``skip``), from the working copy to the store."""
        if not self.remote:
            return
        source = self.local(relative)
        try:
            if source.is_dir():
                record = source / PUSHED  # files already copied (files never change once written)
                done = set(record.read_text().split("\n")) if record.exists() else set()
                for folder, _dirs, names in os.walk(source):
                    for name in sorted(names):
                        path = Path(folder) / name
                        inner = path.relative_to(source).as_posix()
                        if name in skip or name in (PULLED, PUSHED) or inner in done:
                            continue
                        self._upload(path)
                        with record.open("a") as handle:
                            handle.write(inner + "\n")
            elif source.exists():
                self._upload(source)
        except OSError as exc:
            raise RetriableError(f"对象存储写入失败 / writing {self.relative(source)} to {self.url} failed: {exc}") from exc

    def _upload(self, path: Path) -> None:
        pafs.copy_files(str(path), self.key(path), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs, chunk_size=CHUNK, use_threads=False)

    def mark_whole(self, relative: Path | str) -> None:
        """This worker's copy of a published folder is whole (it wrote it): never pull it again."""
        if self.remote:
            (self.local(relative) / PULLED).touch()

    # --- reading ---------------------------------------------------------------------------------------------
    def pull(self, relative: Path | str) -> Path:
        """The working-copy path of a file or published folder, copied from the store first where missing."""
        target = self.local(relative)
        if not self.remote:
            return target
        if target.is_file() or (target / PULLED).exists():
            return target
        try:
            info = self.fs.get_file_info(self.key(relative))
            if info.type == pafs.FileType.File:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
                pafs.copy_files(self.key(relative), str(partial), source_filesystem=self.fs,
                                destination_filesystem=pafs.LocalFileSystem(), chunk_size=CHUNK, use_threads=False)
                os.replace(partial, target)
            elif info.type == pafs.FileType.Directory:
                target.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(self.key(relative), str(target), source_filesystem=self.fs,
                                destination_filesystem=pafs.LocalFileSystem(), chunk_size=CHUNK, use_threads=False)
                # Everything here is in the store already: a later push sends only what is written after.
                (target / PUSHED).write_text("".join(f"{p.relative_to(target).as_posix()}\n"
                                                     for p in target.rglob("*") if p.is_file()))
                (target / PULLED).touch()
        except OSError as exc:
            raise RetriableError(f"对象存储读取失败 / reading {self.relative(relative)} from {self.url} failed: {exc}") from exc
        return target

    def open_input(self, relative: Path | str) -> pafs.NativeFile:
        """A random-access reader on the store's object (ranged reads: nothing is copied whole)."""
        with self._failing("reading", relative):
            return self.fs.open_input_file(self.key(relative))

    def size(self, relative: Path | str) -> int:
        with self._failing("reading", relative):
            return self.fs.get_file_info(self.key(relative)).size

    def exists(self, relative: Path | str) -> bool:
        with self._failing("reading", relative):
            return self.fs.get_file_info(self.key(relative)).type != pafs.FileType.NotFound

    def children(self, relative: Path | str) -> list[pafs.FileInfo]:
        """The store's entries directly under a folder (none when it is absent)."""
        selector = pafs.FileSelector(self.key(relative), allow_not_found=True, recursive=False)
        with self._failing("listing", relative):
            return sorted(self.fs.get_file_info(selector), key=lambda info: info.path)

    @contextmanager
    def _failing(self, doing: str, relative: Path | str) -> Iterator[None]:
        """An unreachable or refusing store is a RetriableError naming it (a CLI shows one line, a task retries)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RetriableError(f"对象存储访问失败 / {doing} {self.relative(relative) or '/'} in {self.url} failed: "
                                 f"{exc}") from exc

    # --- removing --------------------------------------------------------------------------------------------
    def delete(self, relative: Path | str) -> None:
        """Remove a file or folder from the store and from this worker's working copy."""
        local = self.local(relative)
        if local.is_dir():
            shutil.rmtree(local, ignore_errors=True)
        elif local.exists():
            local.unlink(missing_ok=True)
        if not self.remote:
            return
        key = self.key(relative)
        with self._failing("deleting", relative):
            info = self.fs.get_file_info(key)
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(key)
            elif info.type == pafs.FileType.File:
                self.fs.delete_file(key)


def _object_store(url: str, cache: Path) -> Storage:
    from core.settings import get_settings

    settings = get_settings()
    parsed = urlparse(url)
    base = f"{parsed.netloc}/{parsed.path.strip('/')}".strip("/")
    if not parsed.netloc:
        raise ConfigError(f"GOVSHARE_STORAGE={url} names no bucket; write s3://bucket/prefix")
    options: dict = {"region": settings.storage_region, "allow_bucket_creation": False,
                     "allow_bucket_deletion": False, "connect_timeout": 5, "request_timeout": 60,
                     # Each part uploaded before the next is read: with background writes Arrow queued parts of
                     # a large object (a 1 GB row store) faster than they went out, and a full sync of 5 M rows
                     # peaked at 534 MiB, past the 512 MiB bound (409 MiB without; bench_storage, 7% slower).
                     "background_writes": False}
    if settings.storage_endpoint:
        endpoint = urlparse(settings.storage_endpoint)
        options["endpoint_override"] = endpoint.netloc or endpoint.path
        options["scheme"] = endpoint.scheme or "https"
    if settings.storage_access_key:
        options["access_key"] = settings.storage_access_key
        options["secret_key"] = settings.storage_secret_key.get_secret_value()
    fs = pafs.S3FileSystem(**options)
    try:
        found = fs.get_file_info(parsed.netloc).type
    except OSError as exc:
        raise RetriableError(f"对象存储不可达 / the object store of GOVSHARE_STORAGE={url} cannot be reached "
                             f"({settings.storage_endpoint or 'AWS'}): {exc}") from exc
    if found != pafs.FileType.Directory:
        raise ConfigError(f"对象存储桶不存在 / bucket {parsed.netloc} of GOVSHARE_STORAGE={url} does not exist; "
                          "create it (the hub never creates buckets)")
    cache.mkdir(parents=True, exist_ok=True)
    return Storage(fs=fs, base=base, root=cache.resolve(), remote=True, url=url)


@lru_cache(maxsize=4)
def _open(url: str, cache: str) -> Storage:
    if url.startswith("s3://"):
        return _object_store(url, Path(cache))
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"GOVSHARE_STORAGE={url}: use a folder or s3://bucket/prefix (存储只支持本地目录或 S3 兼容对象存储)")
    root = Path(url.removeprefix("file://")).absolute()
    if root.exists() and not root.is_dir():
        raise ConfigError(zh=f"GOVSHARE_STORAGE={url} 是文件而不是文件夹：请指向一个文件夹（不存在时会自动创建）",
                          en=f"GOVSHARE_STORAGE={url} is a file, not a folder: point it at a folder (one that does "
                             "not exist yet is created)")
    root.mkdir(parents=True, exist_ok=True)
    return Storage(fs=pafs.LocalFileSystem(), base=root.as_posix(), root=root, remote=False, url=url)


def forget_storages() -> None:
    """Open the storage again on next use (after the settings changed)."""
    _open.cache_clear()


def get_storage() -> Storage:
    """The storage the settings name (one per storage URL and working folder)."""
    from core.settings import get_settings

    settings = get_settings()
    return _open(settings.storage, str(settings.storage_cache))
