"""Exchange engine endpoints: changes since a held version, and the pull feed of update notices (article 16)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import ReadUseDep, SessionDep, TokenDep, credential_refused
from api.schemas import Problem
from delivery.access import apply_use, audit_read, authorize_read, restrict, restricted_schema
from delivery.change_filter import filtered_changes
from delivery.files import FORMATS, stream_version
from pipeline.changes import CHANGE_COLUMN
from pipeline.changes_feed import (
    VERSION_COLUMN,
    FullCopyNeeded,
    changes_schema,
    changes_since,
)
from pipeline.notice_delivery import hold_edited
from core.errors import AccessDenied, AuthenticationFailed
from registry.audit.log import mark_audited, record_event
from registry.people.auth import DATA_ROLES
from registry.people.bearer import authenticate_principal
from registry.exchange.notices import list_notices, notice_public, parse_cursor

DENIED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}}
router = APIRouter()


@router.get("/api/v1/resources/{code:path}/changes", responses=DENIED, tags=["versions"],
            response_class=StreamingResponse)
def changes(code: str, session: SessionDep, token: TokenDep, use: ReadUseDep, since: Annotated[int, Query(ge=0)],
            fmt: Annotated[Literal["parquet", "csv"], Query(alias="format")] = "parquet"):  # noqa: ANN201
    """Every change after the version you hold (since=N), oldest first: `_version`, `_change` (insert, update,
    delete) and the row. 409 when only a whole download can bring your copy up to date."""
    decision = apply_use(session, authorize_read(session, token=token, resource_code=code, channel="interface"), use)
    full_schema = changes_schema(decision.version)
    try:
        span = changes_since(session, resource=decision.resource, since=since)
        counts = _view_counts(session, decision, span, full_schema) if decision.row_filter else span.counts
    except FullCopyNeeded as exc:
        return JSONResponse({"detail": str(exc), "detail_zh": "无法增量更新，请下载完整的最新版本"}, status_code=409)
    marks = [VERSION_COLUMN, CHANGE_COLUMN]
    view = dataclasses.replace(decision, columns=[*decision.columns, *marks]) if decision.columns else decision
    audit_read(session, decision=decision, rows=sum(counts.values()), fmt=f"changes-{fmt}", since=since)
    session.commit()
    changes = filtered_changes(session, decision, span, schema=full_schema, columns=_file_columns(view))
    batches = restrict(dataclasses.replace(view, row_filter=None), changes)  # the feed applied the condition
    filename = f"{decision.resource.code.replace('/', '_')}_changes_v{since}-v{span.latest}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"',
               "X-Govshare-Since-Version": str(since), "X-Govshare-Version": str(span.latest),
               **{f"X-Govshare-{k.capitalize()}": str(v) for k, v in counts.items()}}
    return StreamingResponse(stream_version(decision.version, fmt=fmt, batches=batches,
                                            schema=restricted_schema(view, full_schema)),
                             media_type=FORMATS[fmt], headers=headers)


def _view_counts(session: Any, decision: Any, span: Any, schema: Any) -> dict[str, int]:  # noqa: ANN401
    """Inserts, updates and deletes of the consumer's view under a row condition (rows entering or leaving it
    are inserts or deletes there): the counts of the file it gets, not of the whole change set. Reads only the
    keys, the condition's columns and the change kind."""
    import pyarrow.compute as pc

    totals = {"inserted": 0, "updated": 0, "deleted": 0}
    names = {"insert": "inserted", "update": "updated", "delete": "deleted"}
    for batch in filtered_changes(session, decision, span, schema=schema, columns=[CHANGE_COLUMN]):
        counted = pc.value_counts(batch.column(batch.schema.get_field_index(CHANGE_COLUMN))).to_pylist()
        for entry in counted:
            totals[names[entry["values"]]] += entry["counts"]
    return totals


def _file_columns(view: Any) -> list[str] | None:  # noqa: ANN401 - AccessDecision
    columns = view.read_columns
    return [c for c in columns if c != VERSION_COLUMN] if columns else None


@router.get("/api/v1/notices", responses=DENIED, tags=["notices"])
def notices(request: Request, session: SessionDep, token: TokenDep, after: str | None = None,
            limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Update notices for your agency's subscriptions, oldest first (更新通知拉取). Pass `next_cursor` back as
    `after` to get only newer ones; the same notices a webhook receives. An entry never moves: a withheld notice
    released once your grant is live again comes as a new entry whose `releases` names it (补发通知)."""
    try:
        principal = authenticate_principal(session, token=token)
    except AuthenticationFailed as failed:
        raise credential_refused(request, failed) from None
    if principal.agency_id is None:
        raise AccessDenied("该令牌不属于任何机构", "this credential belongs to no agency")
    if principal.kind == "user" and not principal.has(*DATA_ROLES):
        # notices name versions, digests and counts: metadata, read under the role table as GET .../versions is
        denied = AccessDenied("您的角色不能读取共享数据的更新通知（仅机构管理员、数据资源管理员及其系统）",
                              "your roles may not read update notices of shared data: only agency administrators, "
                              "data resource administrators and the agency's systems may")
        record_event(session, actor=principal.actor, action="request.refused", agency_code=principal.agency_code,
                     result="denied", detail={"reason": denied.en, "method": "GET", "path": "/api/v1/notices"})
        session.commit()
        raise mark_audited(denied)
    page = list_notices(session, agency_id=principal.agency_id, after=parse_cursor(after), limit=limit)
    hold_edited(session, notices=page, actor=principal.actor)  # queued before its resource row was edited
    record_event(session, actor=principal.actor, action="notice.feed_read", agency_code=principal.agency_code,
                 detail={"after": after, "returned": len(page)})
    return {"notices": [notice_public(n) for n in page],
            "next_cursor": str(page[-1].id) if page else (after or "")}
