"""SFTP push (离线交换 / 推送): a version, or its changes, written to the consumer's SFTP server.

Each file goes up under a temporary name (`.name.partial`) and is renamed when complete, data first and the
manifest last, so the consumer's side never sees half a file and may take the manifest's arrival as "ready".
A delivery record per consumer, version and kind (unique in the registry) makes a second push a no-op; a push
that broke off is retried (attempts with back-off) and, when the files already reached the server before the
record was written, recognised by their digest instead of sent again.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from dataclasses import dataclass
from typing import Any

import paramiko
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import clock
from core.crypto import decrypt, encrypt
from core.errors import ConfigError, NotFound, RetriableError
from core.settings import get_settings
from registry.people.agencies import get_agency
from registry.audit.log import record_event
from registry.exchange.delivery_models import Delivery, SftpTarget


def add_target(session: Session, *, agency: str, host: str, username: str, host_key: str, port: int = 22,
               folder: str = ".", password: str | None = None, private_key: str | None = None,
               actor: str = "cli") -> SftpTarget:
    """Register (or replace) a consumer agency's SFTP server; the credential is stored encrypted."""
    if not (password or private_key):
        raise ConfigError("an SFTP target needs --password or --private-key-file")
    if not host_key.strip():
        raise ConfigError("an SFTP target needs the server's host key (a known_hosts line or SHA256:... "
                          "fingerprint from `ssh-keygen -lf`), so the hub never sends data to an impostor")
    owner = get_agency(session, ref=agency)
    target = session.scalar(select(SftpTarget).where(SftpTarget.agency_id == owner.id)) or SftpTarget(agency_id=owner.id)
    secret = {"password": password} if password else {"private_key": private_key}
    target.host, target.port, target.username, target.folder = host, port, username, folder
    target.host_key = host_key.strip()
    target.secret_encrypted = encrypt(json.dumps(secret), secret_key=get_settings().require_secret())
    session.add(target)
    session.flush()
    record_event(session, actor=actor, action="sftp_target.set", agency_code=owner.code,
                 detail={"host": host, "port": port, "user": username, "folder": folder})
    return target


def _connector(target: SftpTarget):
    from connectors.sftp import SFTPConnector

    secret = json.loads(decrypt(target.secret_encrypted, secret_key=get_settings().require_secret()))
    config: dict[str, Any] = {"host": target.host, "port": target.port, "user": target.username,
                              "path": target.folder, "connect_timeout": 10}
    if (target.host_key or "").startswith("SHA256:"):
        config["host_key_fingerprint"] = target.host_key
    else:
        config["known_hosts"] = target.host_key
    return SFTPConnector(name=f"sftp-target-{target.agency_id}", config=config, secret=secret)


@dataclass
class PushReport:
    status: str  # delivered, already-delivered
    resource: str
    version: int
    consumer: str
    remote_path: str
    rows: int
    attempts: int


def _remote_names(resource_code: str, version: int, since: int | None) -> tuple[str, str]:
    stem = f"{resource_code.replace('/', '_')}_v{version}" + (f"_since_v{since}" if since is not None else "")
    return f"{stem}.parquet", f"{stem}.manifest.json"


def _upload(client: paramiko.SFTPClient, folder: str, name: str, *, local=None, body: bytes | None = None) -> None:
    """Write under a temporary name, then rename into place (atomic on the server's file system)."""
    final, partial = posixpath.join(folder, name), posixpath.join(folder, f".{name}.partial")
    if local is not None:
        client.put(str(local), partial, confirm=True)
    else:
        with client.open(partial, "wb") as handle:
            handle.write(body or b"")
    try:
        client.posix_rename(partial, final)
    except OSError:
        client.rename(partial, final)  # a server without the posix-rename extension


def _remote_sha256(client: paramiko.SFTPClient, path: str) -> str | None:
    try:
        with client.open(path, "rb") as handle:
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            return digest.hexdigest()
    except FileNotFoundError:
        return None


def _recorded(session: Session, *, agency_id: int, version_id: int, kind: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(
        Delivery.agency_id == agency_id, Delivery.version_id == version_id, Delivery.kind == kind,
        Delivery.channel == "sftp"))


def _claim(session: Session, *, agency_id: int, resource_id: int, version_id: int, kind: str) -> Delivery:
    existing = _recorded(session, agency_id=agency_id, version_id=version_id, kind=kind)
    if existing is not None:
        return existing
    record = Delivery(agency_id=agency_id, resource_id=resource_id, version_id=version_id, kind=kind, channel="sftp",
                      status="pending", attempts=0)
    session.add(record)
    try:
        session.commit()  # the unique key: a concurrent push of the same version finds this row instead
    except IntegrityError:
        session.rollback()
        return _claim(session, agency_id=agency_id, resource_id=resource_id, version_id=version_id, kind=kind)
    return record


def push(*, resource_code: str, agency: str, since: int | None = None, attempts: int = 3, backoff: float = 1.0,
         actor: str = "cli") -> PushReport:
    """Deliver the latest version (or its changes since a version) to the agency's SFTP server, once."""
    from delivery.access import audit_read
    from delivery.agency_access import authorize_agency
    from delivery.exports import local_copy, materialise
    from delivery.metadata import consumer_manifest, restricted
    from pipeline.paths import resolve
    from registry.db import session_scope

    with session_scope() as session:
        decision = authorize_agency(session, agency=agency, resource_code=resource_code, channel="offline",
                                    actor=actor)
        consumer = get_agency(session, ref=agency)
        target = session.scalar(select(SftpTarget).where(SftpTarget.agency_id == consumer.id))
        if target is None:
            raise NotFound(f"agency {consumer.code} has no SFTP target; add one with `govshare push target ...`")
        version = decision.version
        kind = "full" if since is None else f"changes:{since}"
        data_name, manifest_name = _remote_names(decision.resource.code, version.number, since)
        remote = posixpath.join(target.folder, data_name)

        def already(record: Delivery) -> PushReport:
            return PushReport(status="already-delivered", resource=resource_code, version=version.number,
                              consumer=consumer.code, remote_path=record.remote_path or remote, rows=0,
                              attempts=record.attempts)

        record = _recorded(session, agency_id=consumer.id, version_id=version.id, kind=kind)
        if record is not None and record.status == "delivered":
            return already(record)
        # The file, manifest and credential first: a --since naming no version, changes only a full copy can
        # replace, a credential the secret no longer opens fail here, before a delivery is recorded as under way
        # (nothing was attempted, so nothing stays "pending").
        export = materialise(session, decision, version, fmt="parquet", since=since)
        files = [{"path": data_name, "rows": export.rows, "bytes": export.size, "sha256": export.sha256}]
        if restricted(decision):  # what it receives, never the whole version's manifest
            manifest = consumer_manifest(decision, version, files=files, rows=export.rows, since=since)
        else:
            manifest = {
                "resource": decision.resource.code, "version": version.number, "since": since,
                "consumer": consumer.code, "columns": decision.columns, "row_filter": decision.row_filter,
                "manifest_sha256": version.manifest_sha256,
                "version_manifest": json.loads((resolve(version.path) / "manifest.json").read_text()),
                "files": files,
            }
        body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode()
        connector = _connector(target)
        record = _claim(session, agency_id=consumer.id, resource_id=decision.resource.id, version_id=version.id,
                        kind=kind)
        if record.status == "delivered":  # a concurrent push finished while this one wrote its file
            return already(record)
        last_error: Exception | None = None

        def failed(error: Exception) -> None:
            record.status = "failed"
            record_event(session, actor=decision.actor, action="sftp.push", agency_code=consumer.code,
                         resource_code=decision.resource.code, result="failed",
                         detail={"version": version.number, "kind": kind, "error": str(error)})
            session.commit()

        for attempt in range(1, attempts + 1):
            record.attempts += 1
            try:
                with connector._session() as client:
                    already = (_remote_sha256(client, remote) == export.sha256
                               and _remote_sha256(client, posixpath.join(target.folder, manifest_name))
                               == hashlib.sha256(body).hexdigest())
                    if not already:  # a previous attempt may have finished on the server before its record
                        _upload(client, target.folder, data_name, local=local_copy(export))
                        _upload(client, target.folder, manifest_name, body=body)
                last_error = None
                break
            except ConfigError as exc:  # a host key that does not match (an impostor?), a login refused: no retry
                record.last_error = f"attempt {attempt}: {exc}"
                failed(exc)  # the refusal is evidence: recorded before the error reaches the operator
                raise
            except (RetriableError, OSError, paramiko.SSHException, EOFError) as exc:
                last_error = exc
                record.last_error = f"attempt {attempt}: {exc}"
                session.commit()
                if attempt < attempts:
                    time.sleep(backoff * 2 ** (attempt - 1))
        if last_error is not None:
            failed(last_error)
            raise RetriableError(f"SFTP push of {resource_code} v{version.number} to {consumer.code} failed after "
                                 f"{attempts} attempts: {last_error}; run `govshare push sftp` again")
        record.status, record.delivered_at, record.remote_path, record.last_error = "delivered", clock.now(), remote, None
        audit_read(session, decision=decision, rows=export.rows, fmt="sftp", since=since)
        return PushReport(status="delivered", resource=resource_code, version=version.number, consumer=consumer.code,
                          remote_path=remote, rows=export.rows, attempts=record.attempts)
