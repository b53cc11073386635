"""Grants following a republished catalogue entry's data items (信息项).

A grant names the columns it shares; the entry names what may be shared at all. Republished with other items,
the entry left every grant on its old list: an item taken off was still read through a grant, one added never
reached subscribers. Now a subscription grant (无条件共享: it covers whatever the entry lists) follows the new
list, narrowed and widened; an application grant keeps what the provider approved but loses an item the
entry no longer lists (a new item needs a new application), and ends if none is left. The resource's
registered key (登记的主键, ``shareable_columns``) is no data item but stays on a grant that names it.
A grant whose row condition (行条件) reads a column no longer shareable ends: the condition cannot be honoured
without that column and no narrower one may be guessed for the provider, so the consumer applies again. A mask
the decision lifted (不脱敏) for an item no longer on the grant is dropped, so listing it again restores neither.
Each change goes through ``change_grant`` (audited ``grant.change``, the consumer told) as whoever published it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.models import Resource
from registry.people.auth import Principal
from registry.sharing.grant_change import change_grant
from registry.sharing.grants import LIVE, end_grant, filter_columns, shareable_columns
from registry.sharing.models import Grant


def follow_entry_items(session: Session, *, resource: Resource, items: list[str] | None, revision: int,
                       by: Principal) -> None:
    """Bring the resource's live grants to the items of its newly published revision (None: the entry names
    no columns, so a version's columns are its items)."""
    shareable = shareable_columns(resource, items)
    for grant in session.scalars(select(Grant).where(Grant.resource_id == resource.id, Grant.status.in_(LIVE))
                                 .order_by(Grant.id)):
        if shareable is not None and (unread := [c for c in filter_columns(grant.row_filter) if c not in shareable]):
            end_grant(session, grant=grant, by=by,
                      reason=f"目录条目第{revision}版不再列出本授权行条件所用的信息项（{'、'.join(unread)}），"
                             "行条件无法执行；请重新申请，由提供方重新答复")
            continue
        before = list(grant.columns) if grant.columns else None
        if items is None:
            after = before  # the entry lists no items to narrow anything to
        elif grant.origin == "subscription":
            after = [*items, *(c for c in before or [] if c in shareable and c not in items)]
        elif before is None:
            after = None  # approved as the whole version (a provider's decision, not narrowed by guess)
        else:
            after = [column for column in before if column in shareable]
            if not [column for column in after if column in items]:  # a key alone is no approved item
                end_grant(session, grant=grant, by=by,
                          reason=f"目录条目第{revision}版不再列出本授权批准的任何信息项（{'、'.join(before)}）")
                continue
        kept = after if after is not None else shareable
        lifted = grant.unmasked_columns
        if lifted and kept is not None:
            lifted = [column for column in lifted if column in kept]
        change_grant(session, grant=grant, by=by, columns=after, unmasked_columns=lifted,
                     why_zh=f"目录条目第{revision}版信息项调整", why_en="the entry was republished with other data items",
                     detail={"revision": revision})
