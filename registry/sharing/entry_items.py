"""Grants following a republished catalogue entry's data items (信息项).

A grant names the columns it shares; the entry names what may be shared at all. Republished with other items,
the entry left every grant on its old list: an item taken off was still read through a grant, one added never
reached subscribers. Now a subscription grant (无条件共享: it covers whatever the entry lists) follows the new
list, narrowed and widened; an application grant keeps what the provider approved but loses an item the
entry no longer lists (a new item needs a new application), and ends if none is left. Each change is
audited as a grant change (``grant.change``, before and after) by whoever published the revision.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.people.auth import Principal
from registry.sharing.grants import LIVE, end_grant
from registry.sharing.models import Grant


def follow_entry_items(session: Session, *, resource: Resource, items: list[str] | None, revision: int,
                       by: Principal) -> None:
    """Bring the resource's live grants to the items of its newly published revision (None: the entry names
    no columns, so a version's columns are its items)."""
    for grant in session.scalars(select(Grant).where(Grant.resource_id == resource.id, Grant.status.in_(LIVE))
                                 .order_by(Grant.id)):
        before = list(grant.columns) if grant.columns else None
        if grant.origin == "subscription":
            after = items
        elif before is None or items is None:
            continue  # approved as the whole version, or the entry lists no items to drop any against
        else:
            after = [column for column in before if column in items]
            if not after:  # no approved item is listed any more: nothing of the approval is left to share
                end_grant(session, grant=grant, by=by,
                          reason=f"目录条目第{revision}版不再列出本授权批准的任何信息项（{'、'.join(before)}）")
                continue
        if after == before:
            continue
        grant.columns = after
        record_event(session, actor=by.actor, action="grant.change", agency_code=grant.agency.code,
                     resource_code=resource.code,
                     detail={"grant": grant.id, "origin": grant.origin, "revision": revision,
                             "before": before, "after": after,
                             "reason": "目录条目重新发布，信息项变更 / the entry was republished with other data items"})
