"""Offline packages (离线交换): a version for one consumer, signed by the hub and encrypted for that consumer,
for networks without a link to the hub.

Layout of a `.gspkg` file: MAGIC, a 4-byte header length, the header (JSON: who it is for, which version, the
digest of the plain tar), then the tar (package.json + manifest.json + data/*.parquet) in AES-256-GCM segments
(each with its index and a last-segment flag as associated data, so none can be dropped, reordered or cut off),
and last the hub's Ed25519 signature over everything before it. The encryption key is derived for the consumer
from GOVSHARE_SECRET_KEY (HKDF, info = the agency's code) and handed to it once, out of band
(`govshare package key`); the hub's public key likewise (`govshare package hub-key`).

Import (delivery/package_import.py) checks, in order: the signature (a tampered package or one from another hub
is refused before anything is decrypted; a file cut short is told apart), the addressee, the expiry signed into
the header (GOVSHARE_PACKAGE_DAYS after export; a package without one is refused), the consumer's ledger (a
package imported before, or older than a version imported before, is refused; a fresh one of data imported
before changes nothing: delivery/package_ledger.py), each segment's tag (a package for another consumer fails
here), the tar digest, the tar's members (delivery/package_contents.py), then every data file against
package.json and the version manifest against the digest the hub published.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import clock
from core.errors import ConfigError, FatalError
from core.keys import derive_key
from core.settings import get_settings

MAGIC = b"GSPKG1\n"
SEGMENT = 1 << 20
SIGNATURE_BYTES = 64


class PackageRefused(FatalError):
    """The package must not be used: tampered, from another hub, or for another consumer."""

    zh_advice = "离线包不可使用，请向发送方重新索取"
    en_advice = "the package must not be used; ask the sender for a new one"

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(zh=zh, en=en)


# --- keys -------------------------------------------------------------------------------------------------------

def consumer_key(agency_code: str) -> bytes:
    """The AES-256 key of one consumer agency, derived from the hub's secret (never stored)."""
    return derive_key(purpose="offline-package", context=agency_code)


def hand_out_consumer_key(*, agency: str, actor: str = "cli") -> bytes:
    """The key of a registered agency (by code or name, as `package export --for` takes it), recorded: handing
    out a decryption key is an action on the record. An unknown agency (a typo) is refused, never given a key
    that opens nothing."""
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.people.agencies import get_agency

    with session_scope() as session:
        code = get_agency(session, ref=agency).code  # the addressee's code, as export_package seals for it
        record_event(session, actor=actor, action="package.key", agency_code=code, detail={"purpose": "offline-package"})
    return consumer_key(code)


def hub_key_path() -> Path:
    return get_settings().home / "keys" / "hub_ed25519.pem"


def hub_private_key() -> Ed25519PrivateKey:
    """The hub's signing key, created on first use (kept beside the registry, readable by the owner only)."""
    path = hub_key_path()
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 private key; move it away to create a new one")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:  # another file given (the agency's own key, a text file): say which one to give
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the --hub-key file is not the hub's public key: give the PEM file `govshare package "
                          "hub-key` printed (it starts -----BEGIN PUBLIC KEY-----)")
    return key


def _fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def segment_nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def segment_aad(header: bytes, index: int, last: bool) -> bytes:
    return hashlib.sha256(header).digest() + struct.pack(">I?", index, last)


# --- export -----------------------------------------------------------------------------------------------------

@dataclass
class PackageReport:
    path: Path
    consumer: str
    resource: str
    version: int
    rows: int
    bytes: int
    expires_at: str


def export_package(*, resource_code: str, agency: str, out: Path, since: int | None = None,
                   actor: str = "cli") -> PackageReport:
    """Write the consumer's package of the latest version (or its changes since a version)."""
    from delivery.access import audit_read
    from delivery.agency_access import authorize_agency
    from delivery.exports import local_copy, materialise
    from delivery.metadata import consumer_manifest, restricted
    from registry.db import session_scope

    with session_scope() as session:
        decision = authorize_agency(session, agency=agency, resource_code=resource_code, channel="offline",
                                    actor=actor)
        version = decision.version
        export = materialise(session, decision, version, fmt="parquet", since=since)
        from pipeline.paths import resolve

        data_name = "data/changes.parquet" if since is not None else "data/part-00000.parquet"
        files = [{"path": data_name, "rows": export.rows, "bytes": export.size, "sha256": export.sha256}]
        if restricted(decision):  # what it receives, never the whole version's manifest
            manifest_bytes = json.dumps(consumer_manifest(decision, version, files=files, rows=export.rows,
                                                          since=since), ensure_ascii=False, indent=2,
                                        sort_keys=True, default=str).encode()
        else:
            manifest_bytes = (resolve(version.path) / "manifest.json").read_bytes()
        manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
        package_json = {
            "format": 1, "resource": decision.resource.code, "resource_name": decision.resource.name,
            "version": version.number, "since": since, "consumer": decision.agency_code,
            "columns": decision.columns, "row_filter": decision.row_filter, "purpose": decision.purpose,
            "manifest_sha256": manifest_sha256, "files": files,
        }
        signer = hub_private_key()
        expires = (clock.now() + timedelta(days=get_settings().package_days)).isoformat()  # signed with the rest
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
            tar_path = Path(scratch) / "package.tar"
            with tarfile.open(tar_path, "w") as tar:
                for name, body in (("package.json", json.dumps(package_json, ensure_ascii=False, indent=2).encode()),
                                   ("manifest.json", manifest_bytes)):
                    info = tarfile.TarInfo(name)
                    info.size = len(body)
                    tar.addfile(info, io.BytesIO(body))
                tar.add(local_copy(export), arcname=data_name)
            size = _seal(tar_path, out, signer=signer, header={
                "format": 1, "hub": _fingerprint(signer.public_key()), "consumer": decision.agency_code,
                "resource": decision.resource.code, "version": version.number, "since": since,
                "manifest_sha256": manifest_sha256, "tar_sha256": sha256_file(tar_path), "expires_at": expires,
                "nonce_prefix": base64.b64encode(secrets.token_bytes(8)).decode(), "segment": SEGMENT})
        audit_read(session, decision=decision, rows=export.rows, fmt="package", since=since)
    return PackageReport(path=out, consumer=decision.agency_code, resource=decision.resource.code,
                         version=version.number, rows=export.rows, bytes=size, expires_at=expires)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(SEGMENT):
            digest.update(chunk)
    return digest.hexdigest()


def _seal(tar_path: Path, out: Path, *, signer: Ed25519PrivateKey, header: dict) -> int:
    aes = AESGCM(consumer_key(header["consumer"]))
    prefix = base64.b64decode(header["nonce_prefix"])
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    partial = out.with_name(out.name + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as sink, tar_path.open("rb") as source:
        def emit(data: bytes) -> None:
            sink.write(data)
            digest.update(data)

        emit(MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes)
        index, chunk = 0, source.read(SEGMENT)
        while True:
            following = source.read(SEGMENT)
            last = not following
            sealed = aes.encrypt(segment_nonce(prefix, index), chunk, segment_aad(header_bytes, index, last))
            emit(struct.pack(">I", len(sealed)) + sealed)
            if last:
                break
            index, chunk = index + 1, following
        sink.write(signer.sign(digest.digest()))
    os.replace(partial, out)
    return out.stat().st_size
