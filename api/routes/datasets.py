"""Datasets: the catalogue list and a resource's versions (file download: api/routes/downloads.py)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SessionDep, TokenDep
from api.principal import PrincipalDep
from api.schemas import Problem, ResourcePublic, VersionPublic
from delivery.metadata import authorize_metadata, version_view
from registry.catalog.resources import list_resources, shown_as_published
from registry.exchange.versions import latest_version, list_versions

DENIED = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
router = APIRouter()


@router.get("/api/v1/catalog", response_model=list[ResourcePublic], responses=DENIED, tags=["catalogue"])
def catalog(session: SessionDep, caller: PrincipalDep) -> list[ResourcePublic]:
    """The published catalogue (资源目录): every resource with its sharing attributes.

    Only published entries are shared, so only they are listed: a stream registered with `resource add`, a draft
    or a withdrawn entry appears once its catalogue entry passes review (ARCHITECTURE.md).
    """
    out = []
    for resource in list_resources(session):
        if not shown_as_published(session, resource=resource, actor=caller.actor, where="catalogue list",
                                  agency_code=caller.agency_code):
            continue
        latest = latest_version(session, resource=resource)
        out.append(ResourcePublic(
            code=resource.code, name=resource.name, abstract=resource.abstract, provider=resource.agency.name,
            provider_code=resource.agency.code, sharing_type=resource.sharing_type,
            sharing_modes=resource.sharing_modes, update_cycle=resource.update_cycle,
            latest_version=latest.number if latest else None, catalog_status=resource.catalog_status))
    session.commit()  # an edited entry's refusal recorded before the answer leaves
    return out

@router.get("/api/v1/resources/{code:path}/versions", response_model=list[VersionPublic], responses=DENIED,
            tags=["versions"])
def versions(code: str, session: SessionDep, token: TokenDep) -> list[VersionPublic]:
    """Published versions of a resource, newest first, for a reader the access check allows: granted columns
    only; counts and watermark only where the grant does not restrict them; the manifest digest (the version's
    identity, as on every download) always. Audited."""
    decision = authorize_metadata(session, token=token, resource_code=code, what="versions")
    listed = [VersionPublic(**version_view(decision, v)) for v in list_versions(session, resource=decision.resource)]
    session.commit()
    return listed
