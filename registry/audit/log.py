"""The audit trail (审计追踪, article 18): append-only, each event chained to the previous by SHA-256."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied
from core.keys import derive_key
from registry.audit import probes
from registry.audit.models import AuditEvent

GENESIS = "0" * 64


def _canonical_time(at: datetime) -> str:
    return clock.as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(event: AuditEvent) -> str:
    from core.crypto import sha256_hex

    body = {
        "at": _canonical_time(event.at),
        "actor": event.actor,
        "agency_code": event.agency_code,
        "action": event.action,
        "resource_code": event.resource_code,
        "result": event.result,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    return sha256_hex(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str))


def seal_key() -> bytes:
    """The audit seal's key (core.keys): refused while GOVSHARE_SECRET_KEY is the placeholder, outside demo mode."""
    return derive_key(purpose="audit-seal")


def event_seal(event_hash_hex: str, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 of an event's hash; only the platform (which holds the secret key) can make one."""
    import hashlib
    import hmac

    return hmac.new(key or seal_key(), event_hash_hex.encode(), hashlib.sha256).hexdigest()


def sealing_seal(sealed_from_id: int, started_at: datetime, *, key: bytes | None = None) -> str:
    """The seal of the "sealing began" marker: moving its start or forging it needs the secret key."""
    return event_seal(f"sealing-began:{int(sealed_from_id)}:{_canonical_time(started_at)}", key=key)


def anchor_seal(event_id: int, event_hash_hex: str, written_at: str, *, key: bytes | None = None) -> str:
    """The seal of an anchor written outside the database: a forged anchor file does not verify."""
    return event_seal(f"anchor:{int(event_id)}:{event_hash_hex}:{written_at}", key=key)


_KEYS_CHECKED: set[tuple[str, bytes]] = set()


def require_sealing_key(session: Session) -> None:
    """Refuse to seal with another key than the one this registry's log is sealed with (a GOVSHARE_SECRET_KEY
    mistyped or not the registry's): every record sealed so would show as forged under the right key, for good.
    The sealed marker of when sealing began (AuditSealing) tells; checked once per process, database and key."""
    from registry.audit.models import AuditSealing

    key = seal_key()
    checked = (str(session.get_bind().url), key)
    if checked in _KEYS_CHECKED:
        return
    marker = session.get(AuditSealing, 1)
    if marker is not None and sealing_seal(marker.sealed_from_id, marker.started_at, key=key) != marker.seal \
            and not _sealed_in_demo_mode(marker):
        from core.errors import ConfigError

        raise ConfigError(zh="GOVSHARE_SECRET_KEY 不是此登记库审计日志封印所用的密钥（或封印起点记录被改动）：请设回原密钥；"
                             "用别的密钥写入的审计记录将永远无法核验",
                          en="GOVSHARE_SECRET_KEY is not the key this registry's audit log is sealed with (or the "
                             "record of when sealing began was altered): set the original key back; records sealed "
                             "with another key could never be verified")
    _KEYS_CHECKED.add(checked)


def _sealed_in_demo_mode(marker) -> bool:  # noqa: ANN001 - AuditSealing
    """A registry begun in demo mode was sealed with the public placeholder's key, which proves nothing: it may
    take a real key (the way from a trial to production); a real key it was sealed with may not change."""
    from core.keys import derive_key
    from core.settings import PLACEHOLDER_SECRET

    demo_key = derive_key(purpose="audit-seal", secret=PLACEHOLDER_SECRET)
    return sealing_seal(marker.sealed_from_id, marker.started_at, key=demo_key) == marker.seal


def _lock_chain(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Serialise writers on the chain's tail; released when the transaction ends.
        session.execute(text("SELECT pg_advisory_xact_lock(7310001)"))
    elif dialect == "sqlite":
        # Take SQLite's write lock before reading the tail (a no-op write does), so concurrent API requests
        # chain one after another instead of two events claiming the same predecessor.
        session.execute(text("UPDATE audit_events SET id = id WHERE 0"))


def refused_party(*, actor: str, agency_code: str | None = None, token: object = None) -> tuple:
    """Whose refusals fold together (probes.fold's ``who``): an actor of an agency, a revoked token's id."""
    return (token, actor, agency_code)


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    agency_code: str | None = None,
    resource_code: str | None = None,
    result: str = "ok",
    detail: dict[str, Any] | None = None,
    fold_repeats: bool = False,
    count: int | None = None,
) -> AuditEvent | None:
    """Append one event inside the caller's transaction, so it commits or rolls back with the action. An
    anonymous refusal within a request (or one the caller says may repeat by the thousand, ``fold_repeats``: a
    link followed past the rate limit) is folded into the next one of its origin when one was recorded in the
    last interval (probes.fold): None then, and the next record's `count` says how many. A refusal folded
    before any database work (the rate limit's) passes the ``count`` probes.fold gave it instead."""
    if count is None and result == "denied" and (actor == "anonymous" or fold_repeats):
        # who is refused is part of the kind: one address (a proxy) may carry several agencies' refusals
        count = probes.fold(action=action, reason=(detail or {}).get("reason"),
                            who=refused_party(actor=actor, agency_code=agency_code, token=(detail or {}).get("token")))
        if count is None:
            return None
    if count is not None:
        detail = {**(detail or {}), "count": count}
    require_sealing_key(session)
    _lock_chain(session)
    last = session.scalars(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    event = AuditEvent(
        at=clock.now(),
        actor=actor,
        agency_code=agency_code,
        action=action,
        resource_code=resource_code,
        result=result,
        detail=json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str)),
        prev_hash=last or GENESIS,
    )
    event.hash = event_hash(event)
    event.seal = event_seal(event.hash)
    session.add(event)
    session.flush()
    return event


def _chained(events: list[dict[str, Any]], last: str) -> list[dict[str, Any]]:
    """The rows of events appended after the hash ``last``, hashed and sealed as record_event does."""
    from types import SimpleNamespace

    key = seal_key()
    rows = []
    for spec in events:
        event = SimpleNamespace(  # a plain record: hashed like an AuditEvent, without an ORM instance each
            at=clock.now(),
            actor=spec["actor"],
            agency_code=spec.get("agency_code"),
            action=spec["action"],
            resource_code=spec.get("resource_code"),
            result=spec.get("result", "ok"),
            detail=json.loads(json.dumps(spec.get("detail") or {}, ensure_ascii=False, default=str)),
            prev_hash=last,
        )
        event.hash = event_hash(event)
        event.seal = event_seal(event.hash, key=key)
        rows.append(vars(event))
        last = event.hash
    return rows


_COLUMNS = ("at", "actor", "agency_code", "action", "resource_code", "result", "detail", "prev_hash", "hash", "seal")
_LOCKS = {"postgresql": "SELECT pg_advisory_xact_lock(7310001)", "sqlite": "UPDATE audit_events SET id = id WHERE 0"}


class ChainWriter:
    """Appends events to the chain over one driver connection of its own, with the INSERT compiled once:
    the interface channel's group commit (delivery/audit_batch.py), where SQLAlchemy's per-statement work
    cost 50 times the database's (0.4 ms against 6 us a transaction on SQLite). Same rows, same lock and
    tail read as record_event; the columns' own bind processing (times, JSON) is applied."""

    def __init__(self, engine) -> None:  # noqa: ANN001 - sqlalchemy Engine
        with Session(engine) as session:
            require_sealing_key(session)
        dialect = engine.dialect
        compiled = insert(AuditEvent.__table__).compile(dialect=dialect, column_keys=list(_COLUMNS))
        self._sql, self._order = compiled.string, compiled.positiontup if compiled.positional else None
        columns = AuditEvent.__table__.c
        self._process = {name: columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _COLUMNS}
        self._lock = _LOCKS.get(dialect.name)
        self._connection = engine.raw_connection()

    def append(self, events: list[dict[str, Any]]) -> None:
        """Append and commit; on any error roll back and raise (nothing of the batch is kept)."""
        cursor = self._connection.cursor()
        try:
            if self._lock:
                cursor.execute(self._lock)
            cursor.execute("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
            tail = cursor.fetchone()
            rows = [{name: (process(row[name]) if process else row[name]) for name, process in self._process.items()}
                    for row in _chained(events, tail[0] if tail else GENESIS)]
            cursor.executemany(self._sql, [tuple(r[n] for n in self._order) for r in rows] if self._order else rows)
            self._connection.commit()
        except BaseException:
            self._connection.rollback()
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()


def record_refusal(*, actor: str, action: str, reason: str, agency_code: str | None = None,
                   resource_code: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """A refused request, in a transaction of its own (the request's own transaction was rolled back)."""
    from registry.db import session_scope

    with session_scope() as session:
        record_event(session, actor=actor, action=action, agency_code=agency_code, resource_code=resource_code,
                     result="denied", detail={"reason": reason, **(detail or {})})


def mark_audited(error: AccessDenied) -> AccessDenied:
    """Flag a refusal already written to the log (its declared `audited`), so the API and CLI boundaries do not
    write it twice."""
    error.audited = True
    return error


def verify_chain(session: Session) -> list[str]:
    """Every break in the chain, described; an empty list means the log is intact."""
    problems: list[str] = []
    expected_prev = GENESIS
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        if event.prev_hash != expected_prev:
            problems.append(f"event {event.id}: does not follow the previous event (deleted, inserted or reordered)")
        if event_hash(event) != event.hash:
            problems.append(f"event {event.id}: content does not match its hash (edited)")
        expected_prev = event.hash
    return problems
