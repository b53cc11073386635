"""Offline packages (离线交换): a version for one consumer, signed by the hub and encrypted for that consumer,
for networks without a link to the hub.

Layout of a `.gspkg` file: MAGIC, a 4-byte header length, the header (JSON: who it is for, which version, the
digest of the plain tar), then the tar (package.json + manifest.json + data/*.parquet) in AES-256-GCM segments
(each with its index and a last-segment flag as associated data, so none can be dropped, reordered or cut off),
and last the hub's Ed25519 signature over everything before it. The encryption key is derived for the consumer
from GOVSHARE_SECRET_KEY (HKDF, info = the agency's code) and handed to it once, out of band
(`govshare package key`); the hub's public key likewise (`govshare package hub-key`).

Import checks, in order: the signature (a tampered package or one from another hub is refused before anything is
decrypted), the addressee, the expiry signed into the header (GOVSHARE_PACKAGE_DAYS after export), the consumer's
ledger (a package imported before, or older than a version imported before, is refused:
delivery/package_ledger.py), each segment's tag (a package for another consumer fails here), the tar digest, then
every data file against package.json and the version manifest against the digest the hub published.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from cryptography.exceptions import InvalidSignature, InvalidTag
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
from delivery.package_ledger import default_ledger, header_fields, held, package_id

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
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the hub key file is not an Ed25519 public key (`govshare package hub-key` prints it)")
    return key


def _fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, last: bool) -> bytes:
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
                "manifest_sha256": manifest_sha256, "tar_sha256": _sha256_file(tar_path), "expires_at": expires,
                "nonce_prefix": base64.b64encode(secrets.token_bytes(8)).decode(), "segment": SEGMENT})
        audit_read(session, decision=decision, rows=export.rows, fmt="package", since=since)
    return PackageReport(path=out, consumer=decision.agency_code, resource=decision.resource.code,
                         version=version.number, rows=export.rows, bytes=size, expires_at=expires)


def _sha256_file(path: Path) -> str:
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
            sealed = aes.encrypt(_nonce(prefix, index), chunk, _aad(header_bytes, index, last))
            emit(struct.pack(">I", len(sealed)) + sealed)
            if last:
                break
            index, chunk = index + 1, following
        sink.write(signer.sign(digest.digest()))
    os.replace(partial, out)
    return out.stat().st_size


# --- import -----------------------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    folder: Path
    resource: str
    version: int
    consumer: str
    rows: int
    files: list[str]


def _read_header(handle) -> tuple[dict, bytes]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise PackageRefused("不是共享交换离线包", "not a govshare offline package (wrong magic bytes)")
    (length,) = struct.unpack(">I", handle.read(4))
    if length > 1 << 20:
        raise PackageRefused("离线包头部损坏", "package header is corrupt")
    header_bytes = handle.read(length)
    try:
        return json.loads(header_bytes), header_bytes
    except ValueError as exc:
        raise PackageRefused("离线包头部损坏", "package header is corrupt") from exc


def import_package(*, package: Path, key: bytes, hub_public_key: bytes, agency: str, out: Path,
                   ledger: Path | None = None) -> ImportReport:
    """Verify and unpack a package into `out` (created; must not exist), or PackageRefused saying why. Each
    import and refusal is written to the consumer's ledger (delivery/package_ledger.py), which refuses a package
    imported before or one older than a version of its resource imported before."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; unpack into a new folder")
    ledger = ledger or default_ledger()
    header: dict | None = None
    identity = None
    try:
        signature = _verify_signature(package, load_public_key(hub_public_key))
        identity = package_id(signature)
        with package.open("rb") as handle:
            header, header_bytes = _read_header(handle)
            if header.get("consumer") != agency:
                raise PackageRefused(f"该离线包的接收方为 {header.get('consumer')}，不是本机构 {agency}，拒绝导入",
                                     f"this package is addressed to agency {header.get('consumer')}, not {agency}; "
                                     "refused")
            _refuse_expired(header)
            with held(ledger) as record:
                if (refusal := record.refusal(package=identity, header=header)) is not None:
                    raise PackageRefused(*refusal)
                report = _unpack_new(handle, header, header_bytes, key, out,
                                     end=package.stat().st_size - SIGNATURE_BYTES)
                record.append({"event": "imported", "package": identity, "file": str(package),
                               "folder": str(out), **header_fields(header)})
    except PackageRefused as refused:
        with held(ledger) as record:  # the consumer side's record of what was turned away, and why
            record.append({"event": "refused", "package": identity, "file": str(package), "reason": refused.en,
                           **header_fields(header)})
        raise
    return report


def _verify_signature(package: Path, public: Ed25519PublicKey) -> bytes:
    """The package's signature, once it verifies over everything before it (nothing is decrypted before)."""
    size = package.stat().st_size
    if size < len(MAGIC) + 4 + SIGNATURE_BYTES:
        raise PackageRefused("离线包不完整", "package is truncated")
    digest = hashlib.sha256()
    with package.open("rb") as handle:
        left = size - SIGNATURE_BYTES
        while left > 0:
            chunk = handle.read(min(SEGMENT, left))
            digest.update(chunk)
            left -= len(chunk)
        signature = handle.read(SIGNATURE_BYTES)
    try:
        public.verify(signature, digest.digest())
    except InvalidSignature:
        raise PackageRefused("离线包签名验证失败：包被篡改，或并非来自所信任的共享交换平台，拒绝导入",
                             "signature check failed: the package was altered or was not made by the trusted hub; "
                             "refused") from None
    return signature


def _refuse_expired(header: dict) -> None:
    """A package past the expiry the hub signed into it is refused: one held back (or found again) too long."""
    if not header.get("expires_at"):
        return  # a package made before packages expired: the ledger still refuses it as a replay or rollback
    expires = datetime.fromisoformat(header["expires_at"])
    if clock.now() >= expires:
        shown = clock.to_beijing(expires).strftime("%Y-%m-%d %H:%M")
        raise PackageRefused(f"该离线包已于 {shown}（北京时间）过期，拒绝导入，请向发送方重新索取",
                             f"this package expired on {shown} Beijing time; refused: ask the sender for a new one")


def _unpack_new(handle, header: dict, header_bytes: bytes, key: bytes, out: Path, *, end: int) -> ImportReport:
    made = _first_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    tar_path = out / ".package.tar.partial"
    try:
        _decrypt(handle, header, header_bytes, key, tar_path, end=end)
        if _sha256_file(tar_path) != header["tar_sha256"]:
            raise PackageRefused("离线包内容摘要不符", "package content digest does not match its header")
        report = _unpack(tar_path, out, header)
    except BaseException:
        _remove_what_was_made(out, made)  # nothing half-imported stays behind
        raise
    tar_path.unlink()
    return report


def _first_missing(out: Path) -> Path | None:
    """The outermost folder of `out` that does not exist yet (the import makes it), or None if `out` exists."""
    missing = None
    for folder in (out, *out.parents):
        if folder.exists():
            return missing
        missing = folder
    return missing


def _remove_what_was_made(out: Path, made: Path | None) -> None:
    """Undo a failed import: the folders it made, or, in a folder the user gave (empty, as required), only
    what it put there; the user's own folder stays."""
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        return
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _decrypt(handle, header: dict, header_bytes: bytes, key: bytes, tar_path: Path, *, end: int) -> None:
    aes = AESGCM(key)
    prefix = base64.b64decode(header["nonce_prefix"])
    index = 0
    with tar_path.open("wb") as sink:
        while handle.tell() < end:
            (length,) = struct.unpack(">I", handle.read(4))
            sealed = handle.read(length)
            last = handle.tell() >= end
            try:
                sink.write(aes.decrypt(_nonce(prefix, index), sealed, _aad(header_bytes, index, last)))
            except InvalidTag:
                raise PackageRefused("无法解密离线包：密钥不是本机构的，或包已损坏",
                                     "cannot decrypt the package: the key is not the one for this agency, or the "
                                     "package is damaged; refused") from None
            index += 1


def _unpack(tar_path: Path, out: Path, header: dict) -> ImportReport:
    with tarfile.open(tar_path) as tar:
        tar.extractall(out, filter="data")  # the data filter refuses absolute paths, links and ../ escapes
    package_json = json.loads((out / "package.json").read_text())
    manifest_digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    if manifest_digest != header["manifest_sha256"] or package_json["manifest_sha256"] != header["manifest_sha256"]:
        raise PackageRefused("版本清单摘要不符", "the version manifest does not match the digest the hub published")
    rows = 0
    for entry in package_json["files"]:
        path = out / entry["path"]
        if _sha256_file(path) != entry["sha256"] or pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
            raise PackageRefused(f"数据文件 {entry['path']} 校验失败", f"data file {entry['path']} fails its check")
        rows += entry["rows"]
    return ImportReport(folder=out, resource=header["resource"], version=header["version"],
                        consumer=header["consumer"], rows=rows, files=[e["path"] for e in package_json["files"]])


def decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigError("the consumer key must be the base64 text `govshare package key` printed") from exc
    if len(key) != 32:
        raise ConfigError("the consumer key must be 32 bytes (base64 text from `govshare package key`)")
    return key


