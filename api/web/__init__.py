"""Online browsing (在线浏览, article 15): Chinese web pages served by the API process.

The catalogue (search, filters, an entry's full metadata and data items) and, for a signed-in person whose
agency holds a grant, a paged table of the data with personal identifiers masked. A person signs in with the
account of registry.users; the session token lives in an HttpOnly cookie and is checked on every page exactly
like a bearer token (registry.auth.authenticate_principal), and every data page goes through
delivery.access (authorize_read, restrict, audit_read) on the "browse" channel.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import SessionDep
from core.errors import AccessDenied, ConfigError, NotFound
from registry.due_days import due_text

COOKIE = "govshare_session"
PAGE_ROWS = 20
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
# A statutory due day as a person reads it: 2026年12月18日, or 待国务院公布节假日安排 while its year has no schedule.
templates.env.filters["due"] = lambda value: due_text(date.fromisoformat(value) if isinstance(value, str) else value)
router = APIRouter(prefix="/web", include_in_schema=False)
SessionCookie = Annotated[str | None, Cookie(alias=COOKIE)]


def _principal(session, token: str | None):
    from registry.auth import authenticate_principal

    if not token:
        return None
    try:
        return authenticate_principal(session, token=token)
    except AccessDenied:
        return None


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/web/login?next={quote(target)}", status_code=303)


def _page(request: Request, name: str, principal: Any, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"principal": principal, **context}, status_code=status)


def _problem(request: Request, principal: Any, exc: Exception) -> HTMLResponse:
    if isinstance(exc, AccessDenied):
        return _page(request, "error.html", principal, 403, title="无权访问", zh=exc.zh, en=exc.en)
    if isinstance(exc, NotFound):
        return _page(request, "error.html", principal, 404, title="未找到", zh="未找到该资源", en=str(exc))
    return _page(request, "error.html", principal, 400, title="请求有误", zh="请求参数有误", en=str(exc))


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/web/catalog", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/web/catalog") -> HTMLResponse:
    return _page(request, "login.html", None, next=next if next.startswith("/web") else "/web/catalog")


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, username: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/web/catalog") -> Response:
    from registry.users import login as sign_in

    target = next if next.startswith("/web") else "/web/catalog"
    try:
        token = sign_in(session, username=username, password=password, source="web")
    except AccessDenied as failed:
        session.commit()  # failed attempts are kept: they lock the account after too many
        return _page(request, "login.html", None, 401, next=target, error=failed.zh, username=username)
    session.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/web")
    return response


@router.post("/logout")
def logout(session: SessionDep, token: SessionCookie = None) -> RedirectResponse:
    from sqlalchemy import select

    from core import clock
    from core.crypto import sha256_hex
    from registry.sharing_models import UserSession

    if token:
        record = session.scalar(select(UserSession).where(UserSession.token_sha256 == sha256_hex(token)))
        if record is not None and record.revoked_at is None:
            record.revoked_at = clock.now()
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


def _search(session, *, keyword: str, agency: str, sharing_type: str, mode: str, page: int) -> tuple[int, list]:
    """The catalogue helper's search of published entries when present, else a plain listing of resources."""
    try:
        from registry.catalog_search import search_catalog
    except ImportError:
        search_catalog = None
    if search_catalog is not None:
        result = search_catalog(session, keyword=keyword or None, agency=agency or None,
                                sharing_type=sharing_type or None, mode=mode or None, limit=PAGE_ROWS,
                                offset=(page - 1) * PAGE_ROWS)
        return result.total, [{"code": h.code, "name": h.name, "abstract": h.abstract, "provider": h.provider,
                               "sharing_type": h.sharing_type, "sharing_modes": h.sharing_modes,
                               "update_cycle": h.update_cycle, "matched": h.matched_items} for h in result.hits]
    from registry.resources import list_resources

    rows = [r for r in list_resources(session, agency=agency or None)
            if (not keyword or keyword in r.name or keyword in r.abstract)
            and (not sharing_type or r.sharing_type == sharing_type) and (not mode or mode in r.sharing_modes)]
    return len(rows), [{"code": r.code, "name": r.name, "abstract": r.abstract, "provider": r.agency.name,
                        "sharing_type": r.sharing_type, "sharing_modes": r.sharing_modes,
                        "update_cycle": r.update_cycle, "matched": []}
                       for r in rows[(page - 1) * PAGE_ROWS: page * PAGE_ROWS]]


def _labels() -> dict[str, dict[str, str]]:
    from registry.resources import SHARING_MODES, SHARING_TYPES, UPDATE_CYCLES

    return {"sharing_types": SHARING_TYPES, "sharing_modes": SHARING_MODES, "update_cycles": UPDATE_CYCLES}


@router.get("/catalog", response_class=HTMLResponse)
def catalog(request: Request, session: SessionDep, token: SessionCookie = None, q: str = "", agency: str = "",
            sharing_type: str = "", mode: str = "", page: Annotated[int, Query(ge=1)] = 1) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    from registry.agencies import list_agencies

    try:
        total, hits = _search(session, keyword=q, agency=agency, sharing_type=sharing_type, mode=mode, page=page)
    except (ConfigError, AccessDenied) as exc:
        return _problem(request, principal, exc)
    return _page(request, "catalog.html", principal, hits=hits, total=total, page=page, pages=max(1, -(-total // PAGE_ROWS)),
                 q=q, agency=agency, sharing_type=sharing_type, mode=mode, agencies=list_agencies(session),
                 labels=_labels())


@router.get("/catalog/{code:path}", response_class=HTMLResponse)
def entry(code: str, request: Request, session: SessionDep, token: SessionCookie = None) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    from registry.resources import get_resource
    from registry.versions import latest_version

    try:
        resource = get_resource(session, code=code)
    except NotFound as exc:
        return _problem(request, principal, exc)
    content, elements = _entry_content(session, resource)
    return _page(request, "entry.html", principal, resource=resource, content=content, elements=elements,
                 latest=latest_version(session, resource=resource), labels=_labels())


def _entry_content(session, resource) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The published catalogue revision's elements (all of them, labelled), or the resource's own fields."""
    try:
        from registry.catalog import entry_view, published_revision
        from schemas.catalog_metadata import label_of
    except ImportError:
        entry_view = None
    content: dict[str, Any] = {}
    if entry_view is not None:
        revision = published_revision(session, resource=resource)
        if revision is not None:
            content = entry_view(resource, revision)
    if not content:
        content = {"code": resource.code, "name": resource.name, "provider": resource.agency.name,
                   "provider_code": resource.agency.code, "abstract": resource.abstract,
                   "sharing_type": resource.sharing_type, "sharing_condition": resource.sharing_condition,
                   "sharing_modes": resource.sharing_modes, "update_cycle": resource.update_cycle, "data_items": []}
    labels = _labels()
    shown = []
    for field, value in content.items():
        if field in ("data_items", "status", "revision"):
            continue
        if field == "sharing_type":
            value = labels["sharing_types"].get(value, value)
        elif field == "sharing_modes":
            value = "、".join(labels["sharing_modes"].get(m, m) for m in value)
        elif field == "update_cycle":
            value = labels["update_cycles"].get(value, value)
        elif isinstance(value, bool):
            value = "是" if value else "否"
        elif isinstance(value, list):
            value = "、".join(str(v) for v in value)
        try:
            label = label_of(field) if entry_view is not None else field
        except Exception:  # noqa: BLE001 - an element the metadata file does not list keeps its name
            label = field
        shown.append((label, "" if value is None else str(value)))
    return content, shown


@router.get("/data/{code:path}", response_class=HTMLResponse)
def browse(code: str, request: Request, session: SessionDep, token: SessionCookie = None,
           cursor: str | None = None, page: Annotated[int, Query(ge=1)] = 1) -> Response:
    """A page of the data the signed-in person's agency was granted, personal identifiers masked."""
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    from delivery import interface
    from delivery.access import audit_read, authorize_read

    try:
        decision = authorize_read(session, token=token, resource_code=code, channel="browse")
        start, order_by, number = 0, None, None
        if cursor:
            number, order_by, start = interface.decode_cursor(cursor)
        version = interface.version_for(session, decision, number)
        order_by = order_by or interface.order_column(version, decision.resource.stream.get("primary_key") or [])
        result = interface.page(decision, version, order_by=order_by, start=start, limit=PAGE_ROWS, where=None,
                                fields=None)
    except (AccessDenied, ConfigError) as exc:
        return _problem(request, principal, exc)
    audit_read(session, decision=decision, rows=result.rows.num_rows, fmt="html")
    session.commit()
    # Column headings: the catalogue's data item names, else the label the contract gave the column.
    labels = {f.name: (f.metadata or {}).get(b"label", b"").decode() for f in interface.arrow_schema(version)}
    content, _ = _entry_content(session, decision.resource)
    labels.update({item["column"]: item["name"] for item in content.get("data_items", []) if item.get("column")})
    columns = result.rows.column_names
    rows = [[interface.json_value(row[c]) for c in columns] for row in result.rows.to_pylist()]
    return _page(request, "data.html", principal, resource=decision.resource, version=version, columns=columns,
                 labels=labels, rows=rows, masked=decision.mask_columns, next_cursor=result.next_cursor, page=page,
                 total=version.row_count)
