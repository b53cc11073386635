"""The grant's seal (授权记录封签): a grant edited outside the hub is refused, never served.

The access check reads a grant's columns, row condition, unmasking, purpose, status and expiry straight from
its row, so an UPDATE by anyone with write access to the registry database (a careless operator, a script)
widened what a consumer received while the audit log still showed the provider's narrower decision. Whenever
the hub writes a grant (any flush through the ORM: creation, activation, supersession, revocation) its seal is
made anew, HMAC-SHA256 under the `grant-seal` key derived from GOVSHARE_SECRET_KEY; a row whose fields no
longer match it was changed by something else. ``delivery.access`` refuses such a grant on every channel
(audited), update notices treat it as no grant, and ``registry.sharing.check`` (`govshare sharing check`)
reports it. Putting the row back as the hub wrote it makes it match again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import event, update

from core import clock
from core.keys import derive_key
from registry.sharing.models import Grant

# What decides a read (delivery/access.py, registry/sharing/visibility.py) and whose grant it is.
SEALED = ("id", "resource_id", "agency_id", "origin", "application_id", "columns", "row_filter", "unmask",
          "unmasked_columns", "external_use", "purpose", "status", "expires_at")


def _canonical(values: Mapping[str, Any]) -> bytes:
    def plain(name: str) -> Any:  # noqa: ANN401 - a column's value
        value = values[name]
        if isinstance(value, datetime):
            return clock.as_utc(value).isoformat()  # SQLite gives it back naive, as UTC
        if name in ("unmask", "external_use"):
            return bool(value)  # SQLite gives 0/1
        return value

    return json.dumps({name: plain(name) for name in SEALED}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()


def seal_of(values: Mapping[str, Any]) -> str:
    """The seal of a grant's sealed fields (a Grant's, or a row's as the migration reads it)."""
    return hmac.new(derive_key(purpose="grant-seal"), _canonical(values), hashlib.sha256).hexdigest()


def _values(grant: Grant) -> dict[str, Any]:
    return {name: getattr(grant, name) for name in SEALED}


def intact(grant: Grant) -> bool:
    """Whether the grant's row is as the hub last wrote it."""
    return grant.seal is not None and hmac.compare_digest(grant.seal, seal_of(_values(grant)))


@event.listens_for(Grant, "after_insert")
def _seal_new(_mapper, connection, grant: Grant) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
    # The id is part of the seal (a seal cannot be copied onto another grant), and exists only once inserted.
    from sqlalchemy.orm.attributes import set_committed_value

    seal = seal_of(_values(grant))
    connection.execute(update(Grant.__table__).where(Grant.__table__.c.id == grant.id).values(seal=seal))
    set_committed_value(grant, "seal", seal)


@event.listens_for(Grant, "before_update")
def _seal_changed(_mapper, _connection, grant: Grant) -> None:  # noqa: ANN001
    grant.seal = seal_of(_values(grant))
