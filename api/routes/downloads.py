"""File download (文件下载): the latest or a given version, or the changes since one, as Parquet, CSV or Excel;
resumable with HTTP Range, verifiable by the manifest digest, and offered through expiring signed links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import ReadUseDep, SessionDep, TokenDep
from api.routes.interface import LIMITED, rate_limit
from api.schemas import SignedLinkCreate, SignedLinkPublic
from delivery import signed_links
from delivery.access import apply_use, audit_read, authorize_read
from delivery.exports import MEDIA_TYPES, Export, materialise, read_range
from delivery.interface import version_for
from registry.audit.log import record_event
from registry.people.bearer import authenticate_principal

router = APIRouter(tags=["file download"])
FileRateLimitDep = Annotated[None, Depends(rate_limit("file"))]
LinkRateLimitDep = Annotated[None, Depends(rate_limit("file", action="link.issue"))]
Format = Literal["parquet", "csv", "xlsx"]
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _headers(export: Export) -> dict[str, str]:
    return {
        "Accept-Ranges": "bytes",
        "ETag": f'"{export.sha256}"',
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(export.filename)}",
        "X-Govshare-Version": str(export.version),
        "X-Govshare-Rows": str(export.rows),
        "X-Govshare-Manifest-SHA256": export.manifest_sha256,  # the published version's manifest.json
        "X-Govshare-File-SHA256": export.sha256,  # this file's bytes, whole
        **({"X-Govshare-Since-Version": str(export.since)} if export.since is not None else {}),
    }


def serve(request: Request, export: Export) -> Response:
    """The whole file, or the one byte range asked for (206); a stale If-Range gets the whole file."""
    headers = _headers(export)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and if_range and if_range.strip('"') != export.sha256:
        wanted = None  # the client's partial copy is of other bytes: start again
    if wanted:
        match = RANGE.match(wanted.replace(" ", ""))
        if match and (match.group(1) or match.group(2)):
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), export.size - 1) if last else export.size - 1
            else:
                start, end = max(export.size - int(last), 0), export.size - 1
            if start >= export.size or start > end:
                return _unsatisfiable(export, headers, wanted)
            headers.update({"Content-Range": f"bytes {start}-{end}/{export.size}",
                            "Content-Length": str(end - start + 1)})
            return StreamingResponse(read_range(export.path, start, end), status_code=206,
                                     media_type=export.media_type, headers=headers)
        # several ranges or an unknown unit: the whole file is a valid answer
    headers["Content-Length"] = str(export.size)
    return StreamingResponse(read_range(export.path, 0, export.size - 1), media_type=export.media_type,
                             headers=headers)


def _unsatisfiable(export: Export, headers: dict[str, str], wanted: str) -> Response:
    """416 in the API's error shape (detail, detail_zh) with the file's size, so a client resuming a copy of
    other bytes (or one already whole) learns why and where the file ends; Content-Range says it too (RFC 9110)."""
    headers = {k: v for k, v in headers.items() if k != "Content-Disposition"}  # no file comes with it
    return JSONResponse(
        {"detail": f"range {wanted!r} is not satisfiable: the file has {export.size} bytes (0-{export.size - 1}); "
                   "ask for a range within it, or without Range for the whole file",
         "detail_zh": f"请求的字节范围 {wanted} 超出文件大小：文件共 {export.size} 字节（0-{export.size - 1}），"
                      "请在此范围内续传，或不带 Range 重新下载整个文件",
         "size": export.size},
        status_code=416, headers={**headers, "Content-Range": f"bytes */{export.size}"})


@router.get("/api/v1/resources/{code:path}/files", responses=LIMITED, response_class=StreamingResponse)
def download_file(code: str, request: Request, session: SessionDep, token: TokenDep, _: FileRateLimitDep,
                  use: ReadUseDep,
                  fmt: Annotated[Format, Query(alias="format")] = "parquet",
                  version: Annotated[int | None, Query(description="a given version; default the latest")] = None,
                  since: Annotated[int | None, Query(description="only the changes after this version")] = None,
                  ) -> Response:
    """A version (or the changes since one) as a file; send `Range: bytes=N-` to resume a broken download."""
    decision = apply_use(session, authorize_read(session, token=token, resource_code=code, channel="file"), use)
    chosen = version_for(session, decision, version)
    export = materialise(session, decision, chosen, fmt=fmt, since=since)
    audit_read(session, decision=decision, rows=export.rows, fmt=fmt, version=chosen, since=since)
    session.commit()
    return serve(request, export)


@router.post("/api/v1/resources/{code:path}/links", response_model=SignedLinkPublic, responses=LIMITED)
def create_link(code: str, body: SignedLinkCreate, request: Request, session: SessionDep, token: TokenDep,
                use: ReadUseDep,
                _: LinkRateLimitDep) -> SignedLinkPublic:
    """A signed link to a file that works without a credential until it expires (default an hour)."""
    if body.format not in MEDIA_TYPES:
        from core.errors import ConfigError

        raise ConfigError(zh=f"不支持的格式“{body.format}”，可选：{'、'.join(MEDIA_TYPES)}",
                          en=f"unknown format {body.format!r}; use one of {', '.join(MEDIA_TYPES)}")
    decision = apply_use(session, authorize_read(session, token=token, resource_code=code, channel="file"), use)
    version = version_for(session, decision, body.version)
    issuer = authenticate_principal(session, token=token)  # the link lives no longer than this credential
    claims = signed_links.new_claims(
        agency=decision.agency_code, caller=decision.actor, resource=decision.resource.code, version=version.number,
        fmt=body.format, since=body.since, credential=issuer.credential or "",
        grant=signed_links.grant_digest(decision.columns, decision.row_filter, decision.mask_columns),
        seconds=body.expires_in)
    record_event(session, actor=decision.actor, action="link.issue", agency_code=decision.agency_code,
                 resource_code=decision.resource.code,
                 detail={"version": version.number, "format": body.format, "since": body.since,
                         "expires": claims.expires, "grant": decision.grant_id})
    url = str(request.base_url).rstrip("/") + f"/api/v1/links/{signed_links.sign(claims)}"
    return SignedLinkPublic(url=url, expires_at=datetime.fromtimestamp(claims.expires, UTC),
                            version=version.number, format=body.format)


@router.get("/api/v1/links/{link}", responses=LIMITED, response_class=StreamingResponse)
def follow_link(link: str, request: Request, session: SessionDep) -> Response:
    """Download through a signed link; Range works here too."""
    from core.errors import AccessDenied
    from registry.audit.log import mark_audited

    try:
        claims = signed_links.verify(link)
    except AccessDenied as denied:  # a forged or expired link is an attempt too: audited, the link never logged
        record_event(session, actor="anonymous", action="data.read", result="denied",
                     detail={"channel": "file", "via": signed_links.VIA, "reason": denied.en})
        session.commit()
        raise mark_audited(denied) from None
    signed_links.check_rate(session, claims)
    decision = signed_links.authorize_link(session, claims)
    # A changes link runs up to the latest version at the time it is followed; a version link stays on its version.
    version = decision.version if claims.since is not None else version_for(session, decision, claims.version)
    export = materialise(session, decision, version, fmt=claims.fmt, since=claims.since)
    audit_read(session, decision=decision, rows=export.rows, fmt=claims.fmt, version=version, since=claims.since,
               via=signed_links.VIA)
    session.commit()
    return serve(request, export)
