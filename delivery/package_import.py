"""Importing an offline package on the consumer's side (离线包导入): verify, check the ledger, decrypt, unpack.

The format and the order of the checks are described in delivery/packages.py; what was imported and refused
is kept by delivery/package_ledger.py.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import shutil
import struct
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import clock
from core.errors import ConfigError, RetriableError
from delivery.package_contents import hostile, unpack_members
from delivery.package_ledger import default_ledger, header_fields, held, package_id
from delivery.packages import (
    MAGIC,
    SEGMENT,
    SIGNATURE_BYTES,
    PackageRefused,
    load_public_key,
    segment_aad,
    segment_nonce,
    sha256_file,
)


@dataclass
class ImportReport:
    folder: Path
    resource: str
    version: int
    consumer: str
    rows: int
    files: list[str]
    ledger: Path
    unchanged_since: datetime | None = None  # a re-delivery of data imported then: verified, not kept


def _read_header(handle) -> tuple[dict, bytes]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise PackageRefused("不是共享交换离线包", "not a govshare offline package (wrong magic bytes)")
    (length,) = struct.unpack(">I", handle.read(4))
    if length > 1 << 20:
        raise PackageRefused("离线包头部损坏", "package header is corrupt")
    header_bytes = handle.read(length)
    try:
        header = json.loads(header_bytes)
    except ValueError as exc:
        raise PackageRefused("离线包头部损坏", "package header is corrupt") from exc
    if not isinstance(header, dict):
        raise PackageRefused("离线包头部损坏", "package header is corrupt (not a JSON object)")
    return header, header_bytes


def import_package(*, package: Path, key: bytes, hub_public_key: bytes, agency: str, out: Path,
                   ledger: Path | None = None) -> ImportReport:
    """Verify and unpack a package into `out` (created; must not exist), or PackageRefused saying why. Each
    import and refusal is written to the consumer's ledger (delivery/package_ledger.py), which refuses a package
    imported before or one older than a version of its resource imported before. A fresh package of data
    imported before is verified like any other, then not kept: the report names where that data went."""
    if out.exists() and not out.is_dir():
        raise ConfigError(zh=f"--out {out} 是已有的文件，不是目录；请指定一个新目录（导入时创建）或空目录",
                          en=f"--out {out} is an existing file, not a folder; name a new folder (the import makes "
                             "it) or an empty one")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(zh=f"--out {out} 不是空目录；请指定一个新目录（导入时创建）或空目录",
                          en=f"--out {out} is not empty; unpack into a new folder")
    ledger = ledger or default_ledger()
    header: dict | None = None
    identity = None
    try:
        signature = _verify_signature(package, load_public_key(hub_public_key))
        identity = package_id(signature)
        with package.open("rb") as handle:
            header, header_bytes = _read_header(handle)
            _check_header(header)
            if header.get("consumer") != agency:
                raise PackageRefused(f"该离线包的接收方为 {header.get('consumer')}，不是本机构 {agency}，拒绝导入",
                                     f"this package is addressed to agency {header.get('consumer')}, not {agency}; "
                                     "refused")
            _refuse_expired(header)
            with held(ledger) as record:
                if (refusal := record.refusal(package=identity, header=header)) is not None:
                    raise PackageRefused(*refusal)
                earlier = record.same_data(header)  # the hub sent the same data again: verified, not kept
                try:
                    report = _unpack_new(handle, header, header_bytes, key, out, ledger=ledger,
                                         keep=earlier is None, end=package.stat().st_size - SIGNATURE_BYTES)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    # The consumer's own folder, not the hub's storage: the general disk-full advice
                    # (housekeep, GOVSHARE_STORAGE) does not apply; nothing was imported or recorded.
                    raise RetriableError(
                        zh=f"--out {out} 所在磁盘空间不足，未导入任何内容；请腾出空间后重新导入，或用 --out 指定"
                           "其他磁盘上的新目录",
                        en=f"no space left on the disk of --out {out}; nothing was imported: free space there and "
                           "import again, or give --out a new folder on a larger disk") from exc
                if earlier is not None:
                    record.append({"event": "unchanged", "package": identity, "file": str(package),
                                   "same_as": earlier["package"], **header_fields(header)})
                    return replace(report, folder=Path(earlier["folder"]),
                                   unchanged_since=clock.as_utc(datetime.fromisoformat(earlier["at"])))
                record.append({"event": "imported", "package": identity, "file": str(package),
                               "folder": str(out), "rows": report.rows, "files": report.files,
                               **header_fields(header)})
    except PackageRefused as refused:
        with held(ledger) as record:  # the consumer side's record of what was turned away, and why
            record.append({"event": "refused", "package": identity, "file": str(package), "reason": refused.en,
                           **header_fields(header)})
        raise
    return report


# The signed header's fields the import reads, each with what it must be.
_HEADER_FIELDS = {
    "resource": lambda v: isinstance(v, str) and bool(v),
    "version": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "tar_sha256": lambda v: isinstance(v, str) and len(v) == 64,
    "manifest_sha256": lambda v: isinstance(v, str) and len(v) == 64,
    "nonce_prefix": lambda v: isinstance(v, str) and len(_base64(v) or b"") == NONCE_PREFIX_BYTES,
    "expires_at": lambda v: v is None or (isinstance(v, str) and _instant(v) is not None),
}
NONCE_PREFIX_BYTES = 8  # delivery/packages.py: 8 random bytes, then the segment's index (4)


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _check_header(header: dict) -> None:
    """Every field the import reads is of its kind: the hub signed the header, so a malformed one is a fault
    of the hub that made it (or of its key), refused as such rather than failing mid-import."""
    for name, valid in _HEADER_FIELDS.items():
        if not valid(header.get(name)):
            raise hostile(f"离线包头部字段 {name} 无效（{str(header.get(name))[:40]}）",
                          f"the package header's {name} field is malformed ({str(header.get(name))[:40]!r})")


def _verify_signature(package: Path, public: Ed25519PublicKey) -> bytes:
    """The package's signature, once it verifies over everything before it (nothing is decrypted before)."""
    size = package.stat().st_size
    if size < len(MAGIC) + 4 + SIGNATURE_BYTES:
        raise _cut_off_refusal()
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
        if _cut_off(package, size):
            raise _cut_off_refusal() from None
        raise PackageRefused("离线包签名验证失败：包被篡改，或并非来自所信任的共享交换平台，拒绝导入",
                             "signature check failed: the package was altered or was not made by the trusted hub; "
                             "refused") from None
    return signature


def _cut_off_refusal() -> PackageRefused:
    return PackageRefused("离线包文件不完整（被截断，如拷贝中断），请从介质重新拷贝该文件，或向发送方重新索取",
                          "the package file is incomplete (cut off, e.g. by an interrupted copy): copy it again from "
                          "the medium, or ask the sender for a new one; refused")


def _cut_off(package: Path, size: int) -> bool:
    """Whether the file ends before its own segments do (a copy cut short), rather than being altered: the
    lengths it states are walked, nothing is decrypted."""
    end = size - SIGNATURE_BYTES
    with package.open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            return False  # not a package at all: the signature refusal says so
        (length,) = struct.unpack(">I", handle.read(4))
        position = len(MAGIC) + 4 + length  # past the header
        while position + 4 <= end:
            handle.seek(position)
            (length,) = struct.unpack(">I", handle.read(4))
            position += 4 + length
            if position == end:
                return False  # whole, so altered
            if length != SEGMENT + 16:  # a full segment and its GCM tag; only the last is shorter (or junk)
                return position > end  # (so a file of tiny made-up segments is not walked for minutes)
    return True


def _refuse_expired(header: dict) -> None:
    """A package past the expiry the hub signed into it is refused: one held back (or found again) too long."""
    if not header.get("expires_at"):  # made before packages expired: good for ever, in any installation
        raise PackageRefused("该离线包没有签名的有效期（由早于有效期机制的平台版本制作），拒绝导入；"
                             "请向发送方重新索取新的离线包（新包带有效期）",
                             "this package carries no signed expiry (a hub from before packages expired made it); "
                             "refused: ask the sender to export a new package (`govshare package export`)")
    expires = datetime.fromisoformat(header["expires_at"])
    if clock.now() >= expires:
        shown = clock.to_beijing(expires).strftime("%Y-%m-%d %H:%M")
        raise PackageRefused(f"该离线包已于 {shown}（北京时间）过期，拒绝导入，请向发送方重新索取",
                             f"this package expired on {shown} Beijing time; refused: ask the sender for a new one")


def _unpack_new(handle, header: dict, header_bytes: bytes, key: bytes, out: Path, *, ledger: Path, keep: bool,
                end: int) -> ImportReport:
    """Decrypt and unpack into `out` with every check; with `keep` false, verify only and leave nothing."""
    made = _first_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    tar_path = out / ".package.tar.partial"
    try:
        _decrypt(handle, header, header_bytes, key, tar_path, end=end)
        if sha256_file(tar_path) != header["tar_sha256"]:
            raise PackageRefused("离线包内容摘要不符", "package content digest does not match its header")
        report = _unpack(tar_path, out, header, ledger=ledger)
    except BaseException:
        _remove_what_was_made(out, made)  # nothing half-imported stays behind
        raise
    tar_path.unlink()
    if not keep:
        _remove_what_was_made(out, made)
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
                plain = aes.decrypt(segment_nonce(prefix, index), sealed, segment_aad(header_bytes, index, last))
                sink.write(plain)
            except InvalidTag:
                raise PackageRefused("无法解密离线包：密钥不是本机构的，或包已损坏",
                                     "cannot decrypt the package: the key is not the one for this agency, or the "
                                     "package is damaged; refused") from None
            index += 1


def _unpack(tar_path: Path, out: Path, header: dict, *, ledger: Path) -> ImportReport:
    package_json = unpack_members(tar_path, out)  # nothing but the listed plain files, or nothing at all
    manifest_digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    if manifest_digest != header["manifest_sha256"] or package_json.get("manifest_sha256") != header["manifest_sha256"]:
        raise hostile("版本清单摘要不符", "the version manifest does not match the digest the hub published")
    rows = 0
    for entry in package_json["files"]:
        if sha256_file(out / entry["path"]) != entry.get("sha256") or _rows(out / entry["path"]) != entry.get("rows"):
            raise hostile(f"数据文件 {entry['path']} 校验失败", f"data file {entry['path']} fails its check")
        rows += entry["rows"]
    return ImportReport(folder=out, resource=header["resource"], version=header["version"],
                        consumer=header["consumer"], rows=rows, files=[e["path"] for e in package_json["files"]],
                        ledger=ledger)


def _rows(path: Path) -> int | None:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError):
        return None  # not Parquet: the file fails its check


def decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigError("the consumer key must be the base64 text `govshare package key` printed") from exc
    if len(key) != 32:
        raise ConfigError("the consumer key must be 32 bytes (base64 text from `govshare package key`)")
    return key


