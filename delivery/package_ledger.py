"""The consumer's ledger of offline packages (离线包接收记录): what this side imported, and what it refused.

A package's signature stays good for ever, so the signature alone cannot tell a package imported a second time
(a replay) or last month's package handed in after this month's (a rollback to stale data) from a fresh one.
The importing side therefore remembers: one JSON line per import and per refusal, appended and synced to disk,
in GOVSHARE_HOME/received-packages.jsonl (or the file `package import --ledger` names). Import runs without a
registry (the consumer's machine may have none, on the far side of the air gap), so this file is also the
consumer side's audit record of what arrived, when, and what was turned away and why.

The ledger is the installation's (another GOVSHARE_HOME on the same machine keeps its own unless both name one
file): it guards the consumer's own pipeline, not against whoever holds the agency's key, who can decrypt a
package without govshare. A fresh package of data imported before is a re-delivery: an `unchanged` line, and
nothing unpacked again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core import clock
from core.errors import ConfigError
from core.settings import get_settings

LEDGER_NAME = "received-packages.jsonl"


def default_ledger() -> Path:
    return get_settings().home / LEDGER_NAME


def package_id(signature: bytes) -> str:
    """A package's identity: its signature, which differs for every package the hub writes (a fresh nonce)."""
    return hashlib.sha256(signature).hexdigest()[:32]


@dataclass
class HeldLedger:
    """The ledger while this import holds it: read, checked and appended under one lock, so two imports of the
    same package at once cannot both pass the check."""

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # torn by a crash while it was written; the next append keeps it as a `torn` line
        entries = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise ConfigError(f"line {number} of the package ledger {self.path} is not a JSON record (edited "
                                  "by hand?); restore it from a backup, or move that line out to a note beside "
                                  "the file, then import again") from None
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        lines = [{"at": clock.now().isoformat(), **entry}]
        if (torn := self._torn_tail()) is not None:
            lines.insert(0, {"at": clock.now().isoformat(), "event": "torn", "text": torn})
        with self.path.open("a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # a record that an import happened must survive a crash right after it

    def _torn_tail(self) -> str | None:
        """The unfinished last line a crash left (cut off the file here, kept by the caller as a line), or None."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return None
        keep = data.rfind(b"\n") + 1
        os.truncate(self.path, keep)
        return data[keep:].decode("utf-8", errors="replace")

    def refusal(self, *, package: str, header: dict[str, Any]) -> tuple[str, str] | None:
        """(zh, en) why this package must not be imported again or over a newer one, or None."""
        imported = [e for e in self.entries() if e.get("event") == "imported"]
        for entry in imported:
            if entry.get("package") == package:
                when = clock.to_beijing(clock.as_utc(datetime.fromisoformat(entry["at"])))
                shown = when.strftime("%Y-%m-%d %H:%M")
                return (f"该离线包已于 {shown}（北京时间）导入过（{entry['resource']} 第 {entry['version']} 版），拒绝重复导入；"
                        "如需再次导入，请向发送方索取新的离线包",
                        f"this package was already imported on {shown} Beijing time ({entry['resource']} "
                        f"v{entry['version']}); refused as a replay: ask the sender for a new package if you need it "
                        "again")
        same = [e["version"] for e in imported
                if (e.get("consumer"), e.get("resource")) == (header["consumer"], header["resource"])]
        if same and header["version"] < max(same):
            return (f"该离线包为 {header['resource']} 第 {header['version']} 版，早于本机构已导入的第 {max(same)} 版，"
                    "拒绝回退到旧数据",
                    f"this package holds {header['resource']} v{header['version']}, older than v{max(same)} already "
                    "imported here; refused (a rollback to older data)")
        return None


    def same_data(self, header: dict[str, Any]) -> dict[str, Any] | None:
        """The import of the very data this fresh package holds (a re-delivery), or None. The same data: the
        same consumer, resource, version, changes-since and manifest digest (a restricted consumer's manifest
        holds its own files' digests); a narrowed grant or a package of changes is other data."""
        if not header.get("manifest_sha256"):
            return None
        key = content_key(header)
        return next((e for e in reversed(self.entries())
                     if e.get("event") == "imported" and e.get("folder") and content_key(e) == key), None)


def content_key(fields: dict[str, Any]) -> tuple:
    return tuple(fields.get(k) for k in ("consumer", "resource", "version", "since", "manifest_sha256"))


@contextmanager
def held(path: Path) -> Iterator[HeldLedger]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one import at a time per ledger, across processes
        try:
            yield HeldLedger(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def header_fields(header: dict[str, Any] | None) -> dict[str, Any]:
    """What a ledger line says about the package (nothing from a header whose signature did not verify)."""
    if header is None:
        return {}
    return {k: header.get(k) for k in ("consumer", "resource", "version", "since", "expires_at",
                                   "manifest_sha256")}
