"""System docking, search, interface services and DCAT of the catalogue over HTTP (articles 9 and 15).

- POST /api/v1/catalog/bulk: an agency's own system upserts its entries by resource code, idempotently; each
  entry is answered created / updated / unchanged / error. The agency is the token's, never the payload's.
- GET /api/v1/catalog/search: the published catalogue by keyword and filters.
- GET /api/v1/catalog/{code}/openapi.json: the registered interface service's OpenAPI document.
- GET /api/v1/catalog/dcat.jsonld: the published catalogue as DCAT JSON-LD, for harvesting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import ConsumerDep, SessionDep, TokenDep
from api.principal import PrincipalDep
from api.schemas import Problem
from delivery.metadata import authorize_metadata, restrict_openapi
from registry.catalog.dcat import dcat_catalog
from registry.catalog.import_export import MAX_BULK, bulk_upsert
from registry.catalog.search import MAX_LIMIT, get_service, list_services, search_catalog

ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
router = APIRouter(prefix="/api/v1/catalog", tags=["catalogue exchange"])


class BulkCreate(BaseModel):
    """Entries with the core elements (CatalogEntryData's fields, codes or Chinese labels) and an optional
    resource code: with a code, that entry gets a new draft revision (or nothing when unchanged)."""

    entries: list[dict[str, Any]] = Field(max_length=MAX_BULK)


class BulkProblem(BaseModel):
    element: str | None
    message: str


class BulkResult(BaseModel):
    index: int
    code: str | None
    status: Literal["created", "updated", "unchanged", "error"]
    problems: list[BulkProblem] = []


class BulkPublic(BaseModel):
    created: int
    updated: int
    unchanged: int
    error: int
    results: list[BulkResult]


class SearchHitPublic(BaseModel):
    code: str
    name: str
    abstract: str
    provider: str
    provider_code: str
    classification: str
    sharing_type: str
    sharing_modes: list[str]
    update_cycle: str
    matched_items: list[str]
    interface_service: str | None


class SearchPublic(BaseModel):
    total: int
    hits: list[SearchHitPublic]


class ServicePublic(BaseModel):
    code: str
    path: str
    description: str
    invocation: str
    openapi_url: str


@router.post("/bulk", response_model=BulkPublic, responses=ERRORS)
def bulk(body: BulkCreate, session: SessionDep, caller: ConsumerDep) -> BulkPublic:
    """系统对接 Upsert the calling agency's entries by resource code (each on its own; idempotent)."""
    results = bulk_upsert(session, entries=body.entries, agency=caller.agency.code, author=f"system:{caller.name}",
                          actor=f"token:{caller.name}")
    counts = {s: sum(r["status"] == s for r in results) for s in ("created", "updated", "unchanged", "error")}
    return BulkPublic(**counts, results=[BulkResult.model_validate(r) for r in results])


@router.get("/search", response_model=SearchPublic, responses=ERRORS)
def search(session: SessionDep, _: PrincipalDep,
           q: Annotated[str | None, Query(description="关键词（空格分隔，且） keywords")] = None,
           agency: Annotated[str | None, Query(description="提供方代码或名称")] = None,
           classification: Annotated[str | None, Query(description="分类代码或前缀")] = None,
           sharing_type: Annotated[str | None, Query(description="unconditional / conditional / not_shared")] = None,
           mode: Annotated[str | None, Query(description="interface / file / browse / offline")] = None,
           limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
           offset: Annotated[int, Query(ge=0)] = 0) -> SearchPublic:
    """检索已发布目录 Search the published catalogue (names, abstracts, data item names) with filters."""
    result = search_catalog(session, keyword=q, agency=agency, classification=classification,
                            sharing_type=sharing_type, mode=mode, limit=limit, offset=offset)
    return SearchPublic(total=result.total, hits=[SearchHitPublic(**vars(h)) for h in result.hits])


@router.get("/services", response_model=list[ServicePublic], responses=ERRORS)
def services(session: SessionDep, _: PrincipalDep) -> list[ServicePublic]:
    """已注册的接口服务 The registered interface services, with their invocation method."""
    return [ServicePublic(code=s.code, path=s.path, description=s.description, invocation=s.invocation,
                          openapi_url=f"/api/v1/catalog/{s.code}/openapi.json") for s in list_services(session)]


@router.get("/dcat.jsonld", responses=ERRORS)
def dcat(request: Request, session: SessionDep, _: PrincipalDep) -> JSONResponse:
    """The published catalogue as DCAT (JSON-LD)."""
    document = dcat_catalog(session, base_url=str(request.base_url))
    return JSONResponse(document, media_type="application/ld+json")


@router.get("/{code:path}/openapi.json", responses=ERRORS)
def openapi(code: str, session: SessionDep, token: TokenDep) -> JSONResponse:
    """The interface service of a published entry offered through the interface mode, as OpenAPI 3: for a
    reader the access check allows, describing only its granted columns (metadata is data; audited)."""
    # who asks first: an anonymous caller learns nothing, not even which entries have a service
    decision = authorize_metadata(session, token=token, resource_code=code, what="openapi")
    session.commit()
    service = get_service(session, code=code)
    return JSONResponse(restrict_openapi(service.openapi, decision))
