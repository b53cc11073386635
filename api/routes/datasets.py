"""Datasets: the catalogue list, a resource's versions, and file download of the latest version."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ReadUseDep, SessionDep, TokenDep
from api.principal import PrincipalDep
from api.schemas import Problem, ResourcePublic, VersionPublic
from delivery.access import apply_use, audit_read, authorize_read, restrict, restricted_row_count, restricted_schema
from delivery.metadata import authorize_metadata, version_view
from delivery.files import FORMATS, iter_batches, stream_version, version_schema
from registry.catalog.resources import list_resources
from registry.exchange.versions import latest_version, list_versions

DENIED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
router = APIRouter()


@router.get("/api/v1/catalog", response_model=list[ResourcePublic], responses=DENIED, tags=["catalogue"])
def catalog(session: SessionDep, _: PrincipalDep) -> list[ResourcePublic]:
    """The published catalogue (资源目录): every resource with its sharing attributes.

    Only published entries are shared, so only they are listed: a stream registered with `resource add`, a draft
    or a withdrawn entry appears once its catalogue entry passes review (ARCHITECTURE.md).
    """
    out = []
    for resource in list_resources(session):
        if resource.catalog_status != "published":
            continue
        latest = latest_version(session, resource=resource)
        out.append(ResourcePublic(
            code=resource.code, name=resource.name, abstract=resource.abstract, provider=resource.agency.name,
            provider_code=resource.agency.code, sharing_type=resource.sharing_type,
            sharing_modes=resource.sharing_modes, update_cycle=resource.update_cycle,
            latest_version=latest.number if latest else None, catalog_status=resource.catalog_status))
    return out

@router.get("/api/v1/resources/{code:path}/versions", response_model=list[VersionPublic], responses=DENIED,
            tags=["versions"])
def versions(code: str, session: SessionDep, token: TokenDep) -> list[VersionPublic]:
    """Published versions of a resource, newest first, for a reader the access check allows: granted columns
    only; counts, watermark and manifest digest only where the grant does not restrict them. Audited."""
    decision = authorize_metadata(session, token=token, resource_code=code, what="versions")
    listed = [VersionPublic(**version_view(decision, v)) for v in list_versions(session, resource=decision.resource)]
    session.commit()
    return listed


@router.get("/api/v1/resources/{code:path}/download", responses=DENIED, tags=["file download"],
         response_class=StreamingResponse)
def download(code: str, session: SessionDep, token: TokenDep, use: ReadUseDep,
             fmt: Annotated[Literal["parquet", "csv"], Query(alias="format")] = "parquet") -> StreamingResponse:
    """The latest version as Parquet or CSV (文件下载), for a consumer agency holding a grant."""
    decision = apply_use(session, authorize_read(session, token=token, resource_code=code, channel="file"), use)
    version = decision.version
    rows = restricted_row_count(decision)
    audit_read(session, decision=decision, rows=rows, fmt=fmt)
    session.commit()
    schema = restricted_schema(decision, version_schema(version))
    batches = restrict(decision, iter_batches(version, columns=decision.read_columns))
    filename = f"{decision.resource.code.replace('/', '_')}_v{version.number}.{fmt}"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Govshare-Version": str(version.number),
        "X-Govshare-Rows": str(rows),
        "X-Govshare-Manifest-SHA256": version.manifest_sha256,
    }
    return StreamingResponse(stream_version(version, fmt=fmt, batches=batches, schema=schema),
                             media_type=FORMATS[fmt], headers=headers)
