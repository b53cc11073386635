"""Proving the audit log intact (审计日志校验, article 18) and exporting a period for inspectors.

Three things are checked for every record, in id order:
- its content still hashes to its stored hash (else: edited);
- its prev_hash is the hash of the record before it (else: deleted, inserted or reordered, told apart below);
- its seal, an HMAC of the hash under a key derived from GOVSHARE_SECRET_KEY, is right (else: edited and
  re-hashed, or forged), so someone with database access but without the key cannot rewrite the chain.

A broken link at record r is classified: r's prev_hash names a record that comes later -> reordered; a later
record links to the last good one -> r (and those up to it) inserted; r's prev_hash names no record -> records
before r deleted. Deleting the newest records leaves no break; an anchor catches that: the head written outside
the database by `govshare audit anchor` (and the daily supervision DAG), or the last hash of an earlier export,
must still be in the chain (`govshare audit verify --anchor FILE|HASH`).

Sealing cannot be switched off by editing the table: the platform recorded when sealing began (the sealed
`audit_sealing` row, migration 0030), and from that record on a missing seal is tampering ("unsealed"), so
setting every seal to NULL, or rewriting a record, recomputing the chain and stripping the seals, is found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from registry.audit.log import GENESIS, _canonical_time, anchor_seal, event_hash, event_seal, seal_key, sealing_seal
from registry.audit.models import AuditEvent, AuditSealing

KINDS = {"edited": "被修改", "deleted": "被删除", "inserted": "被插入", "reordered": "顺序被调换",
         "forged": "被伪造", "truncated": "被截断", "unsealed": "封印被去除", "sealing": "封印起点被篡改"}


@dataclass
class Finding:
    event_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "log"
        return f"{where}: {self.kind} ({KINDS[self.kind]}): {self.detail}"


@dataclass
class VerifyReport:
    count: int = 0
    first_id: int | None = None
    last_id: int | None = None
    hash_before: str = GENESIS
    last_hash: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def _row(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": _canonical_time(event.at), "actor": event.actor, "agency_code": event.agency_code,
            "action": event.action, "resource_code": event.resource_code, "result": event.result,
            "detail": event.detail, "prev_hash": event.prev_hash, "hash": event.hash, "seal": event.seal}


def _content_hash(row: dict[str, Any]) -> str:
    at = datetime.strptime(row["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    probe = AuditEvent(at=at, actor=row["actor"], agency_code=row["agency_code"], action=row["action"],
                       resource_code=row["resource_code"], result=row["result"], detail=row["detail"],
                       prev_hash=row["prev_hash"])
    return event_hash(probe)


def verify_rows(rows: list[dict[str, Any]], *, hash_before: str = GENESIS, key: bytes | None = None,
                anchor: str | None = None, sealed_from_id: int | None = None) -> VerifyReport:
    """Check a run of records (the whole log, or an export starting after ``hash_before``). With ``key`` and
    ``sealed_from_id`` (when sealing began), every record from that id on must carry its valid seal."""
    report = VerifyReport(count=len(rows), hash_before=hash_before)
    if rows:
        report.first_id, report.last_id, report.last_hash = rows[0]["id"], rows[-1]["id"], rows[-1]["hash"]
    position = {row["hash"]: index for index, row in enumerate(rows)}
    if sealed_from_id is not None:
        sealed_from = next((i for i, row in enumerate(rows) if row["id"] >= sealed_from_id), None)
    else:
        sealed_from = next((i for i, row in enumerate(rows) if row.get("seal")), None)
    expected = hash_before
    add = report.findings.append
    for index, row in enumerate(rows):
        following = rows[index + 1] if index + 1 < len(rows) else None
        if row["prev_hash"] != expected:
            later = position.get(row["prev_hash"])
            relinks = next((j for j in range(index + 1, len(rows)) if rows[j]["prev_hash"] == expected), None)
            if later is not None and later > index:
                add(Finding(row["id"], "reordered", f"it claims to follow event {rows[later]['id']}, which comes "
                                                    "after it"))
            elif relinks is not None:
                add(Finding(row["id"], "inserted", f"event {rows[relinks]['id']} links to the record before this "
                                                   "one, so this record was put in between"))
                continue  # the inserted record is no link of the chain: the next one must follow the last good one
            elif later is not None:
                add(Finding(row["id"], "reordered", f"it claims to follow event {rows[later]['id']}, which is "
                                                    "not the record before it"))
            else:
                add(Finding(row["id"], "deleted", "the record it follows is gone (deleted before this one)"))
        elif _content_hash(row) != row["hash"]:
            add(Finding(row["id"], "edited", "its content does not match its hash"))
        elif key is not None and sealed_from is not None and index >= sealed_from and not row.get("seal"):
            add(Finding(row["id"], "unsealed", "it has no seal although sealing began before it (seals stripped, "
                                               "or the record rewritten and re-chained without the key)"))
        elif key is not None and sealed_from is not None and index >= sealed_from and (
                event_seal(row["hash"], key=key) != row["seal"]):
            if following is not None and following["prev_hash"] != row["hash"]:
                add(Finding(row["id"], "edited", "content and hash were rewritten (its seal does not match)"))
                expected = following["prev_hash"]  # the original hash: the next record still follows it
                continue
            else:
                add(Finding(row["id"], "forged", "its seal does not match: not written by the platform"))
        expected = row["hash"]
    if anchor and anchor not in position and anchor != hash_before:
        add(Finding(None, "truncated", f"anchor {anchor[:16]}… is no longer in the log: records were deleted "
                                       "from its end or the log was rewritten"))
    return report


def _sealing_start(session: Session, key: bytes, rows: list[dict[str, Any]]) -> tuple[int, list[Finding]]:
    """The id sealing began at, from the sealed marker; a missing or altered marker is itself tampering (and
    then every record must be sealed)."""
    marker = session.get(AuditSealing, 1)
    if marker is None:
        return 0, [Finding(None, "sealing", "the record of when sealing began is missing (deleted)")] if rows else []
    if sealing_seal(marker.sealed_from_id, marker.started_at, key=key) != marker.seal:
        return 0, [Finding(None, "sealing", "the record of when sealing began was altered (its seal does not "
                                            "match; if every record shows as forged too, check first that "
                                            "GOVSHARE_SECRET_KEY is the key the log was sealed with)")]
    return marker.sealed_from_id, []


def read_anchor(text: str) -> dict[str, Any]:
    """An anchor given to `audit verify --anchor`: a file written by `audit anchor` or an export's
    .anchor.json, or a bare last hash."""
    path = Path(text)
    if is_hash(text):
        return {"hash": text}
    if not path.is_file():
        raise FileNotFoundError(f"anchor {text!r} is neither a 64-hex hash nor a file; give the file "
                                "`govshare audit anchor` wrote")
    return anchor_of(json.loads(path.read_text(encoding="utf-8")))


def is_hash(text: str) -> bool:
    """A bare chain hash (64 lower-case hex digits), as an anchor may be given."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def anchor_of(data: dict[str, Any]) -> dict[str, Any]:
    """An anchor's content (`audit anchor`'s file, or an export's .anchor.json) in the form verify_log checks."""
    if "last_hash" in data and "hash" not in data:  # an export's anchor
        return {"hash": data["last_hash"]}
    return data


def verify_log(session: Session, *, anchor: str | dict[str, Any] | None = None) -> VerifyReport:
    key = seal_key()
    rows = [_row(e) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(5000)]
    sealed_from, marker_findings = _sealing_start(session, key, rows)
    given = read_anchor(anchor) if isinstance(anchor, str) else anchor
    report = verify_rows(rows, key=key, anchor=given["hash"] if given else None, sealed_from_id=sealed_from)
    report.findings[:0] = marker_findings
    if given and "id" in given:
        report.findings.extend(_check_anchor(given, rows, key))
    return report


def _check_anchor(anchor: dict[str, Any], rows: list[dict[str, Any]], key: bytes) -> list[Finding]:
    if anchor_seal(anchor["id"], anchor["hash"], anchor["written_at"], key=key) != anchor.get("seal"):
        return [Finding(None, "forged", "the anchor's seal does not match: it was not written by the platform")]
    at = next((row for row in rows if row["id"] == anchor["id"]), None)
    if at is None or at["hash"] != anchor["hash"]:
        return [Finding(anchor["id"], "truncated", f"the anchored record {anchor['id']} (written "
                                                   f"{anchor['written_at']}) is gone or changed: the log was cut "
                                                   "back or rewritten after the anchor")]
    return []


def write_anchor(session: Session, *, folder: Path | None = None, out: Path | None = None) -> tuple[Path, dict]:
    """Write the head of the chain (id, hash, its seal) with the anchor's own seal to a file outside the
    database, after checking the log; the operator keeps these files (or copies them to an object store)."""
    from core.settings import get_settings

    report = verify_log(session)
    if not report.ok:
        raise ValueError(f"the audit log does not verify ({report.first}); an anchor would bless tampering")
    head = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).first()
    if head is None:
        raise ValueError("the audit log is empty: nothing to anchor yet")
    written_at = clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    anchor = {"id": head.id, "hash": head.hash, "event_seal": head.seal, "count": report.count,
              "written_at": written_at, "seal": anchor_seal(head.id, head.hash, written_at),
              "how_to_verify": "govshare audit verify --anchor THIS_FILE"}
    if out is None:
        folder = folder or get_settings().audit_anchor_dir
        out = folder / f"audit-anchor-{written_at[:10]}-{head.id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_text(json.dumps(anchor, ensure_ascii=False, indent=2), encoding="utf-8")
    partial.replace(out)
    return out, anchor


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime.combine(start, time.min, clock.BEIJING_TIME).astimezone(timezone.utc),
            datetime.combine(end + timedelta(days=1), time.min, clock.BEIJING_TIME).astimezone(timezone.utc))


def export_period(session: Session, *, start: date, end: date, out: Path) -> dict[str, Any]:
    """Write the records of [start, end] (Beijing dates) as JSON Lines to ``out`` and their verification anchor
    to ``out`` + ``.anchor.json``: the hash before the first record, the last hash, the count, the file's SHA-256
    and whether the whole log verified at export time. Returns the anchor."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    low, high = _bounds(start, end)
    whole = verify_log(session)
    events: Iterable[AuditEvent] = session.scalars(select(AuditEvent).where(AuditEvent.at >= low, AuditEvent.at < high)
                                                   .order_by(AuditEvent.id))
    out.parent.mkdir(parents=True, exist_ok=True)
    digest, count, first, last = hashlib.sha256(), 0, None, None
    partial = out.with_name(out.name + ".part")
    with partial.open("w", encoding="utf-8") as handle:
        for event in events:
            row = _row(event)
            line = json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
            handle.write(line)
            digest.update(line.encode())
            first, last, count = first or row, row, count + 1
    partial.replace(out)
    anchor = {
        "from": start.isoformat(), "to": end.isoformat(), "timezone": "Asia/Shanghai (UTC+8)", "count": count,
        "first_id": first["id"] if first else None, "last_id": last["id"] if last else None,
        "hash_before": first["prev_hash"] if first else None, "last_hash": last["hash"] if last else None,
        "file": out.name, "file_sha256": digest.hexdigest(),
        "log_verified": whole.ok, "log_findings": [str(f) for f in whole.findings],
        "exported_at": clock.now().isoformat(),
        "how_to_verify": "each line's SHA-256 over its canonical content (registry/audit/log.py event_hash) equals its "
                         "hash; the first line's prev_hash equals hash_before; every next line's prev_hash equals "
                         "the line before's hash; the last hash equals last_hash",
    }
    Path(f"{out}.anchor.json").write_text(json.dumps(anchor, ensure_ascii=False, indent=2), encoding="utf-8")
    return anchor


def verify_export(out: Path) -> VerifyReport:
    """Check an exported file against its anchor, without the database (what an inspector does)."""
    anchor = json.loads(Path(f"{out}.anchor.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = verify_rows(rows, hash_before=anchor["hash_before"] or GENESIS)
    if rows and rows[-1]["hash"] != anchor["last_hash"]:
        report.findings.append(Finding(rows[-1]["id"], "truncated", "the file does not end at the anchor's last hash"))
    if hashlib.sha256(out.read_bytes()).hexdigest() != anchor["file_sha256"]:
        report.findings.append(Finding(None, "edited", "the file's SHA-256 differs from the anchor's"))
    return report
