"""A live grant changed in place (授权变更): its data items, the identifiers it shows unmasked, or its term.

Every such change is audited as ``grant.change`` (before and after) by whoever made it, and its consumer is told
once in the inbox (``grant_changed``) what changed: an approval or an end already told it, a change did not, so
a consumer learned of a narrowed grant only from columns missing in its next read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core import clock
from registry.audit.log import record_event
from registry.catalog.entries import item_names
from registry.people.auth import Principal
from registry.sharing.inbox import notify
from registry.sharing.models import Grant
from schemas.presentation import day

_UNCHANGED: Any = object()


def _what_changed(before: dict[str, Any], after: dict[str, Any], names: dict[str, str]) -> list[str]:
    """The changes in Chinese, one phrase each, for the consumer's message: items by the names the entry gives
    them (信息项名称; the column where it gives none), as the consumer knows them from the catalogue."""
    def _listed(columns: list[str]) -> str:
        return "、".join(names.get(column, column) for column in columns)

    said = []
    old, new = before["columns"], after["columns"]
    if old != new:
        if old is None:
            said.append(f"由版本的全部字段改为仅含信息项：{_listed(new)}")
        elif new is None:
            said.append("改为包含版本的全部字段")
        else:
            if dropped := [c for c in old if c not in new]:
                said.append(f"不再包含信息项：{_listed(dropped)}")
            if added := [c for c in new if c not in old]:
                said.append(f"新增信息项：{_listed(added)}")
    if masked := [c for c in before["unmasked_columns"] or [] if c not in (after["unmasked_columns"] or [])]:
        said.append(f"以下信息项恢复脱敏：{_listed(masked)}")
    if shown := [c for c in after["unmasked_columns"] or [] if c not in (before["unmasked_columns"] or [])]:
        said.append(f"以下信息项不再脱敏：{_listed(shown)}")
    if before["expires_at"] != after["expires_at"]:
        said.append(f"有效期改为至{day(after['expires_at'])}" if after["expires_at"] else "有效期改为不设期限")
    return said


def _state(grant: Grant) -> dict[str, Any]:
    return {"columns": list(grant.columns) if grant.columns else None,
            "unmasked_columns": list(grant.unmasked_columns) if grant.unmasked_columns else None,
            "expires_at": clock.as_utc(grant.expires_at) if grant.expires_at else None}


def change_grant(session: Session, *, grant: Grant, by: Principal, why_zh: str, why_en: str,
                 columns: Any = _UNCHANGED, unmasked_columns: Any = _UNCHANGED,
                 expires_at: Any = _UNCHANGED, detail: dict[str, Any] | None = None) -> bool:
    """Change what is given (None keeps its meaning: every column, no lifted mask, no term); audit and tell the
    consumer once. Returns whether anything changed (nothing changed: nothing recorded, nothing told)."""
    before = _state(grant)
    if columns is not _UNCHANGED:
        grant.columns = list(columns) if columns else None
    if unmasked_columns is not _UNCHANGED:
        grant.unmasked_columns = sorted(set(unmasked_columns)) if unmasked_columns else None
    if expires_at is not _UNCHANGED:
        grant.expires_at = clock.as_utc(expires_at) if isinstance(expires_at, datetime) else None
    after = _state(grant)
    if after == before:
        return False
    resource = grant.resource
    record_event(session, actor=by.actor, action="grant.change", agency_code=grant.agency.code,
                 resource_code=resource.code,
                 detail={"grant": grant.id, "origin": grant.origin, **(detail or {}),
                         "before": before["columns"], "after": after["columns"],
                         "unmasked_before": before["unmasked_columns"], "unmasked_after": after["unmasked_columns"],
                         "expires_before": _iso(before["expires_at"]), "expires_after": _iso(after["expires_at"]),
                         "reason": f"{why_zh} / {why_en}"})
    notify(session, kind="grant_changed", agency_id=grant.agency_id,
           message=f"本机构对“{resource.name}”（{resource.code}）的共享授权已变更（{why_zh}）："
                   f"{'；'.join(_what_changed(before, after, item_names(session, resource=resource)))}")
    return True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
