"""SFTP source: CSV and Excel files in a folder on an agency's SFTP server (paramiko), read like the files kind.

The server's host key is verified before any credential is sent: against a pinned fingerprint
(``host_key_fingerprint``, as ``ssh-keygen -lf`` prints it: ``SHA256:...``) or a known_hosts entry
(``known_hosts``: the line(s) themselves, or ``known_hosts_file``: a path). A source with neither is refused.
The password or private key (``private_key``, PEM/OpenSSH text, optional ``passphrase``) lives in the encrypted
secret. Files are streamed in bounded windows of pipelined reads; a workbook is copied to a temporary file
first (it needs random access), never held in memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import paramiko
import pyarrow as pa
from pydantic import model_validator

from connectors.base import ReadState, StreamSpec, TableInfo
from connectors.credentials import (
    overlay,
    uses_airflow_connection,
)
from connectors.filelist import second_stamp
from connectors.filesource import FileSourceConnector
from connectors.filestreams import FileEntry, FileSourceConfig
from core import clock
from core.errors import ConfigError, RetriableError

TRANSIENT = (paramiko.SSHException, OSError, EOFError)
CHUNK, WINDOW = 32 * 1024, 2 * 1024 * 1024


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of a public key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class _RemoteReader(io.RawIOBase):
    """A remote file read ahead in windows of pipelined requests: fast on a slow link, bounded in memory."""

    def __init__(self, handle: paramiko.SFTPFile, size: int) -> None:
        self._handle, self._size, self._offset = handle, size, 0
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._buffer.nbytes and self._offset < self._size:
            end = min(self._offset + WINDOW, self._size)
            chunks = [(at, min(CHUNK, end - at)) for at in range(self._offset, end, CHUNK)]
            self._buffer = memoryview(b"".join(self._handle.readv(chunks)))
            self._offset = end
        n = min(len(buffer), self._buffer.nbytes)
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class SFTPConfig(FileSourceConfig):
    required = ("host", "user", "path")
    airflow_fields: ClassVar[dict[str, str]] = {"host": "host", "port": "port", "user": "login"}

    host: str | None = None
    port: int | None = None  # 22
    user: str | None = None
    host_key_fingerprint: str | None = None  # SHA256:..., or known_hosts / known_hosts_file
    known_hosts: str | None = None
    known_hosts_file: str | None = None
    connect_timeout: float | None = None
    timeout: float | None = None

    @model_validator(mode="after")
    def _server_verified(self) -> SFTPConfig:
        if not (self.host_key_fingerprint or self.known_hosts or self.known_hosts_file):
            raise ConfigError("a sftp source needs host_key_fingerprint (SHA256:..., from `ssh-keygen -lf` on the "
                              "server's key) or known_hosts / known_hosts_file, so that the server is verified")
        return self


class SFTPConnector(FileSourceConnector):
    kind = "sftp"
    title = "SFTP 服务器 (CSV / Excel)"
    config_model = SFTPConfig
    secret_fields = ("password", "private_key", "passphrase")

    def describe(self) -> str:
        c = self.config
        if uses_airflow_connection(c) and not c.get("host"):
            return f"Airflow connection {c['airflow_conn_id']}:{c['path']}"
        return f"{c.get('user')}@{c.get('host')}:{self._port(c)} {c['path']}"

    @staticmethod
    def _port(config: dict[str, Any]) -> int:
        return int(config.get("port") or 22)

    # --- connecting ---------------------------------------------------------------------------------------------

    def _known_keys(self, host: str, port: int) -> dict[str, paramiko.PKey] | None:
        keys = paramiko.HostKeys()
        if path := self.config.get("known_hosts_file"):
            try:
                keys.load(str(Path(path).expanduser()))
            except OSError as exc:
                raise ConfigError(self.fail(f"cannot read known_hosts_file {path}: {exc.strerror}")) from None
        for line in str(self.config.get("known_hosts") or "").splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line.strip()) if line.strip() else None
            if entry is not None and entry.key is not None:
                for name in entry.hostnames:
                    keys.add(name, entry.key.get_name(), entry.key)
        found = keys.lookup(host if port == 22 else f"[{host}]:{port}")
        return dict(found) if found is not None else None

    def _verify(self, key: paramiko.PKey, host: str, port: int, known: dict[str, paramiko.PKey] | None) -> None:
        """Refuse the server unless its key is the pinned or known one; no credential has been sent yet."""
        seen = fingerprint(key)
        if pinned := self.config.get("host_key_fingerprint"):
            wanted = str(pinned).strip()
            wanted = wanted if wanted.startswith("SHA256:") else "SHA256:" + wanted
            if seen.rstrip("=") != wanted.rstrip("="):
                raise ConfigError(self.fail(
                    f"服务器身份不符 / host key {seen} does not match the pinned {wanted}: this may not be the "
                    "registered server; confirm the key with its administrator before updating host_key_fingerprint"))
            return
        if known is None:
            raise ConfigError(self.fail(
                f"未知主机密钥 / host key of {host}:{port} is unknown ({key.get_name()} {seen}); add the server's "
                "known_hosts line or set host_key_fingerprint after confirming it with the administrator"))
        if key.get_name() not in known or known[key.get_name()] != key:
            raise ConfigError(self.fail(
                f"服务器身份不符 / host key {key.get_name()} {seen} of {host}:{port} does not match its known_hosts "
                "entry: this may not be the registered server"))

    @staticmethod
    def _private_key(text: str, passphrase: str | None) -> paramiko.PKey:
        for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return cls.from_private_key(io.StringIO(text), password=passphrase)
            except paramiko.PasswordRequiredException:
                raise ConfigError("the private key is encrypted: store its passphrase in the secret") from None
            except (paramiko.SSHException, ValueError):
                continue
        raise ConfigError("the private key is not a readable Ed25519, ECDSA or RSA key")

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        config, secret = overlay(self.config, self.secret, source=self.name, mapping=self.config_model.airflow_fields)
        host, port = str(config["host"]), self._port(config)
        timeout = float(config.get("connect_timeout", 10))
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.gaierror as exc:
            raise ConfigError(self.fail(f"主机名无法解析 / host {host!r} is not known ({exc.strerror})")) from None
        except OSError as exc:
            raise RetriableError(self.fail(f"无法连接 / cannot connect to {host}:{port}: {exc.strerror or exc}")) from None
        transport = paramiko.Transport(sock)
        try:
            known = None if config.get("host_key_fingerprint") else self._known_keys(host, port)
            if known:  # ask for a key type the entry knows, so a server with several keys is verified
                options = transport.get_security_options()
                wanted = set(known) | ({"rsa-sha2-256", "rsa-sha2-512"} if "ssh-rsa" in known else set())
                options.key_types = [t for t in options.key_types if t in wanted] or options.key_types
            try:
                transport.start_client(timeout=timeout)
            except TRANSIENT as exc:
                raise RetriableError(self.fail(f"SSH handshake with {host}:{port} failed: {exc}")) from None
            self._verify(transport.get_remote_server_key(), host, port, known)
            self._authenticate(transport, str(config["user"]), secret)
            client = paramiko.SFTPClient.from_transport(transport)
            client.get_channel().settimeout(float(config.get("timeout", 60)))
            yield client
        finally:
            transport.close()

    def _authenticate(self, transport: paramiko.Transport, user: str, secret: dict[str, Any]) -> None:
        if not secret.get("private_key") and not secret.get("password"):
            raise ConfigError(self.fail("no password or private_key in the source's secret"))
        try:
            if secret.get("private_key"):
                try:
                    key = self._private_key(str(secret["private_key"]), secret.get("passphrase"))
                except ConfigError as exc:
                    raise ConfigError(self.fail(str(exc))) from None
                transport.auth_publickey(user, key)
            else:
                transport.auth_password(user, str(secret["password"]))
        except paramiko.AuthenticationException:
            method = "key" if secret.get("private_key") else "password"
            raise ConfigError(self.fail(f"登录被拒绝 / login refused for user {user!r}: wrong {method}")) from None
        except TRANSIENT as exc:
            raise RetriableError(self.fail(f"login interrupted: {exc}")) from None

    # --- files -----------------------------------------------------------------------------------------------

    def _remote(self, relative: str) -> str:
        return posixpath.join(str(self.config["path"]), relative) if relative else str(self.config["path"])

    def _list(self, session: paramiko.SFTPClient, folder: str) -> list[FileEntry]:
        directory = self._remote(folder)
        try:
            listing = session.listdir_attr(directory)
        except FileNotFoundError:
            raise ConfigError(self.fail(f"文件夹不存在 / folder {directory} does not exist on the server")) from None
        except PermissionError:
            raise ConfigError(self.fail(f"无权读取 / folder {directory} is not readable for this user")) from None
        entries = []
        now = clock.now()
        for attr in listing:
            if attr.st_mode is not None and stat.S_ISREG(attr.st_mode):
                modified = datetime.fromtimestamp(int(attr.st_mtime or 0), tz=UTC)
                relative = f"{folder}/{attr.filename}" if folder else attr.filename
                entries.append(FileEntry(path=relative, modified=modified, size=int(attr.st_size or 0),
                                         stamp=second_stamp(modified, now)))  # times to the second only
        return entries

    @contextmanager
    def _open(self, session: paramiko.SFTPClient, entry: FileEntry) -> Iterator[BinaryIO]:
        with session.open(self._remote(entry.path), "rb") as handle:
            yield io.BufferedReader(_RemoteReader(handle, entry.size), buffer_size=CHUNK)

    def _current(self, session: paramiko.SFTPClient, entry: FileEntry) -> FileEntry | None:
        try:
            attr = session.stat(self._remote(entry.path))
        except FileNotFoundError:
            return None
        return FileEntry(path=entry.path, modified=datetime.fromtimestamp(int(attr.st_mtime or 0), tz=UTC),
                         size=int(attr.st_size or 0))

    @contextmanager
    def _local_path(self, session: paramiko.SFTPClient, entry: FileEntry) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="govshare-sftp-") as folder:
            target = Path(folder) / posixpath.basename(entry.path)
            with self._open(session, entry) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
            yield str(target)

    # --- the protocol, with transport faults made retriable ------------------------------------------------------

    def _transient(self, exc: BaseException, doing: str) -> RetriableError:
        return RetriableError(self.fail(f"{doing}: {type(exc).__name__}: {exc}"))

    def check(self, stream: StreamSpec | None = None) -> None:
        try:
            super().check(stream)
        except TRANSIENT as exc:
            raise self._transient(exc, "check failed") from None

    def discover(self) -> list[TableInfo]:
        try:
            return super().discover()
        except TRANSIENT as exc:
            raise self._transient(exc, "discover failed") from None

    def read(self, stream: StreamSpec, state: ReadState) -> Iterator[pa.RecordBatch]:
        try:
            yield from super().read(stream, state)
        except TRANSIENT as exc:
            raise self._transient(exc, "read failed") from None
