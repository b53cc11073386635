"""Row seals (记录封签): a row the access check reads, edited outside the hub, is refused, never acted on.

The access and review checks read who a credential belongs to, a person's roles, a designation's dates, a grant's
columns and a resource's sharing type straight from their rows, so an UPDATE by anyone with write access to the
registry database (a careless operator, a script) changed who may do what while the audit log still showed what
the hub had decided. Each such row carries `seal` = HMAC-SHA256 of its sealed fields (SEALED below, one list per
table) under its table's key (core/keys.py, one purpose per table), made whenever the hub writes the row through
the ORM (the hooks below, installed by registry/orm.py so no service has to remember them). `intact` tells a row
the hub wrote from an edited one; the checks refuse the edited one (audited) and `govshare sharing check` reports
it (registry/sharing/check.py). Putting the row back as the hub wrote it makes it match again.

Decision: the hub never re-seals a row that was already broken when it writes it again (a login's counters, a
revocation): that would launder the edit. A user's lockout (failed sign-ins, locked until) is sealed too: it
decides whether a password is tried at all, and the hub writes it only through the ORM (registry/people/users.py). The stored row is read back and checked first; a broken one keeps its
broken seal. Rows are written only through the ORM (there is no bulk `update()` of a sealed table; a new one
must re-seal what it writes, or the rows it touches are refused).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Table, event, select, update
from sqlalchemy.orm import Mapper, Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from core import clock
from core.keys import Purpose, derive_key

# What decides an access or review check, per table, and the key each is sealed under. The id is always part of
# the seal, so a seal cannot be copied onto another row.
SEALED: dict[str, tuple[Purpose, tuple[str, ...]]] = {
    # delivery/access.py, registry/sharing/visibility.py: what a consumer receives and whose grant it is
    "grants": ("grant-seal", ("id", "resource_id", "agency_id", "origin", "application_id", "columns",
                              "row_filter", "unmask", "unmasked_columns", "external_use", "purpose", "status",
                              "expires_at")),
    # registry/people/tokens.py: which agency a consumer system acts for, and until when
    "api_tokens": ("token-seal", ("id", "agency_id", "name", "token_sha256", "expires_at", "revoked_at")),
    # registry/people/users.py: a person's agency, roles, password and whether the account may act; its lockout
    # too (migration 0100_user_lockout_seal), or an UPDATE clearing the counter lifted the brute-force limit
    "users": ("user-seal", ("id", "username", "agency_id", "roles", "password_hash", "active", "failed_logins",
                            "locked_until")),
    # registry/people/bearer.py: whose session a session token is, and until when
    "user_sessions": ("session-seal", ("id", "user_id", "token_sha256", "expires_at", "revoked_at")),
    # delivery/access.py: whose resource it is, whether and how it is shared, whether its entry is published
    "resources": ("resource-seal", ("id", "code", "agency_id", "sharing_type", "sharing_modes", "catalog_status")),
    # registry/people/persons.py: who reviews or compiles an agency's entries on a day (article 10)
    "designations": ("designation-seal", ("id", "person_id", "agency_id", "role", "valid_from", "valid_to")),
}


def edited(*, zh: str, en: str) -> tuple[str, str]:
    """The refusal of an edited row (zh, en), naming what it is: what the user is told to do about it."""
    return (f"{zh}记录在平台之外被改动（封签不符），已停止使用；请联系平台运维人员核查并恢复（govshare sharing check）",
            f"the {en} record was changed outside the hub (its seal does not match), so it is not used: ask the "
            "platform operator to check it (`govshare sharing check`) and restore it")


def _canonical(table: Table, values: Mapping[str, Any], fields: tuple[str, ...]) -> bytes:
    def plain(name: str) -> Any:  # noqa: ANN401 - a column's value
        value = values[name]
        if isinstance(value, datetime):
            return clock.as_utc(value).isoformat()  # SQLite gives it back naive, as UTC
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(table.c[name].type, Boolean):
            return bool(value)  # SQLite gives 0/1
        return value

    return json.dumps({name: plain(name) for name in fields}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()


def seal_of(table: Table, values: Mapping[str, Any], *, fields: tuple[str, ...] | None = None) -> str:
    """The seal of a row's sealed fields (an ORM object's, or a row as the migration reads it); `fields` are
    another list of them, as a migration changing the list reads the seals made before it."""
    purpose, sealed = SEALED[table.name]
    return hmac.new(derive_key(purpose=purpose), _canonical(table, values, fields or sealed),
                    hashlib.sha256).hexdigest()


def _matches(table: Table, values: Mapping[str, Any], seal: str | None, *,
             fields: tuple[str, ...] | None = None) -> bool:
    return seal is not None and hmac.compare_digest(seal, seal_of(table, values, fields=fields))


def _of(row: Any) -> dict[str, Any]:  # noqa: ANN401 - any sealed ORM object
    return {name: getattr(row, name) for name in SEALED[row.__table__.name][1]}


def intact(row: Any) -> bool:  # noqa: ANN401 - any sealed ORM object
    """Whether the row is as the hub last wrote it."""
    return _matches(row.__table__, _of(row), row.seal)


def stored_select(table: Table) -> Any:  # noqa: ANN401 - a Select
    """The sealed fields and the seal, typed as the ORM reads them (JSON decoded, booleans, instants)."""
    return select(*(table.c[name] for name in SEALED[table.name][1]), table.c.seal)


def broken_rows(connection: Any, table: Table) -> list[int]:  # noqa: ANN401 - a Connection or Session
    """The ids of the table's rows whose seal does not match (edited outside the hub)."""
    rows = connection.execute(stored_select(table).order_by(table.c.id)).mappings()
    return [row["id"] for row in rows if not _matches(table, row, row["seal"])]


def reseal(connection: Any, table: Table, *, before: tuple[str, ...], after: tuple[str, ...]) -> None:  # noqa: ANN401
    """Move a table's seals from one list of sealed fields to another (a migration): a row that matched under
    `before` is sealed under `after`; a row that did not (edited outside the hub) keeps its broken seal."""
    columns = sorted({*before, *after})
    for row in connection.execute(select(*(table.c[name] for name in columns), table.c.seal)).mappings().all():
        if _matches(table, row, row["seal"], fields=before):
            connection.execute(update(table).where(table.c.id == row["id"]).values(
                seal=seal_of(table, row, fields=after)))


def seal_all(connection: Any, table: Table) -> None:  # noqa: ANN401 - a migration's Connection
    """Seal every row as it stands (a migration adding the seal to a table)."""
    for row in connection.execute(stored_select(table)).mappings().all():
        connection.execute(update(table).where(table.c.id == row["id"]).values(seal=seal_of(table, row)))


@event.listens_for(Mapper, "after_insert")
def _seal_new(mapper: Mapper, connection: Any, row: Any) -> None:  # noqa: ANN401 - SQLAlchemy's event
    table = mapper.local_table
    if table.name not in SEALED:
        return
    # The id is part of the seal and exists only once inserted.
    seal = seal_of(table, _of(row))
    connection.execute(update(table).where(table.c.id == row.id).values(seal=seal))
    set_committed_value(row, "seal", seal)


# A flush's stored rows, read by _read_stored before the flush writes anything; kept in the session's info.
_STORED = "govshare.seals.stored"
_CHUNK = 500  # ids per IN list: SQLite's and PostgreSQL's parameter limits are far above it


@event.listens_for(Session, "before_flush")
def _read_stored(session: Session, flush_context: Any, instances: Any) -> None:  # noqa: ANN401 - the event's
    """The stored rows of every sealed row this flush updates, one SELECT per table: _seal_changed read each one
    by itself, a round trip per updated row (a sweep revoking many grants, a lockout pass over many users)."""
    wanted: dict[Table, list[Any]] = {}
    for row in session.dirty:
        table = getattr(row, "__table__", None)
        if table is not None and table.name in SEALED and row.id is not None and session.is_modified(row):
            wanted.setdefault(table, []).append(row.id)
    stored: dict[tuple[str, Any], dict[str, Any] | None] = {}
    for table, ids in wanted.items():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            stored.update({(table.name, row_id): None for row_id in chunk})  # gone meanwhile: nothing to match
            for values in session.connection().execute(
                    stored_select(table).where(table.c.id.in_(chunk))).mappings():
                stored[(table.name, values["id"])] = dict(values)
    session.info[_STORED] = stored


@event.listens_for(Session, "after_flush")
def _forget_stored(session: Session, flush_context: Any) -> None:  # noqa: ANN401 - the event's
    session.info.pop(_STORED, None)


@event.listens_for(Mapper, "before_update")
def _seal_changed(mapper: Mapper, connection: Any, row: Any) -> None:  # noqa: ANN401 - SQLAlchemy's event
    table = mapper.local_table
    if table.name not in SEALED:
        return
    session = object_session(row)
    read = session.info.get(_STORED, {}) if session is not None else {}
    if (table.name, row.id) in read:  # read by _read_stored at the start of this flush
        stored = read[(table.name, row.id)]
    else:  # a row changed during the flush itself
        stored = connection.execute(stored_select(table).where(table.c.id == row.id)).mappings().one_or_none()
    if stored is not None and _matches(table, stored, stored["seal"]):
        row.seal = seal_of(table, _of(row))
