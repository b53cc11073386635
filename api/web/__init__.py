"""Online browsing (在线浏览, article 15): Chinese web pages served by the API process.

The catalogue (search, filters, an entry's full metadata and data items) and, for a signed-in person whose
agency holds a grant, a paged table of the data with personal identifiers masked. A person signs in with the
account of registry.people.users; the session token lives in an HttpOnly cookie and is checked on every page exactly
like a bearer token (registry.people.bearer.authenticate_principal), and every data page goes through
delivery.access (authorize_read, restrict, audit_read) on the "browse" channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import SessionDep
from core.errors import AccessDenied, ConfigError, NotFound
from schemas import presentation

COOKIE = "govshare_session"
PAGE_ROWS = 20
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
# Every code and time a page shows goes through schemas/presentation.py: {{ a.status | label("application_statuses") }}
templates.env.filters.update(label=lambda code, kind: presentation.label(kind, code),
                             labels=lambda codes, kind: presentation.label_list(kind, codes),
                             day=presentation.day, days_in=presentation.days_in, evidence=presentation.evidence,
                             due_day=presentation.due_day, moment=presentation.moment,
                             share=presentation.share, score=presentation.score)
templates.env.globals.update(labels_of=presentation.labels, named=presentation.named)
router = APIRouter(prefix="/web", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)
SessionCookie = Annotated[str | None, Cookie(alias=COOKIE)]
# What a person can do next, by what went wrong (error pages are for people: Chinese only).
ADVICE = {
    403: "如需使用该资源：普遍共享的资源由本机构数据资源管理员在平台订阅，按需共享的资源请在资源目录中打开该条目并点击"
         "“申请共享”。如认为不应拒绝，请联系本机构数据资源管理员或资源提供方。",
    404: "请返回资源目录重新查找，或检查网址是否完整。",
    400: "请检查填写的内容，修改后重新提交。",
}


def _principal(session, token: str | None):
    from registry.people.bearer import authenticate_principal

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


def error_page(request: Request, principal: Any, status: int, *, title: str, problem: str) -> HTMLResponse:
    """The Chinese error page: what went wrong and what to do next (no developer's English)."""
    return _page(request, "error.html", principal, status, title=title, problem=problem, advice=ADVICE.get(status, ""))


def refusal_logged(session, principal: Any, request: Request, exc: AccessDenied,  # noqa: ANN001 - Session
                   resource_code: str | None = None) -> None:
    """Roll back the refused action, then keep the refusal as evidence (unless the service logged it), as the
    API's AuditedRoute does: every page that refuses a signed-in person calls it."""
    from registry.audit.log import record_refusal

    session.rollback()
    if not exc.audited:
        record_refusal(actor=principal.actor, action="request.refused", agency_code=principal.agency_code,
                       resource_code=resource_code, reason=exc.en,
                       detail={"method": request.method, "path": request.url.path, "channel": "web"})


def _problem(request: Request, principal: Any, exc: Exception) -> HTMLResponse:
    if isinstance(exc, AccessDenied):
        return error_page(request, principal, 403, title="无权访问", problem=exc.zh)
    if isinstance(exc, NotFound):
        return error_page(request, principal, 404, title="未找到", problem="未找到要查看的资源、申请或页面。")
    return error_page(request, principal, 400, title="请求有误", problem=chinese_message(exc))


def chinese_message(exc: Exception) -> str:
    """The Chinese part of a service's message ("中文 / English" or "English (中文)"), else a general one."""
    text = str(exc)
    zh, sep, _ = text.partition(" / ")
    if sep and any("\u4e00" <= c <= "\u9fff" for c in zh):
        return zh
    return text if all(not c.isascii() or not c.isalpha() for c in text) else "填写的内容不符合要求。"


def for_people(request: Request) -> bool:
    """A request from a browser to a page (not the API, whose errors stay JSON with English and Chinese)."""
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


# What the pages call the fields of their forms and filters, for a form sent incomplete or wrong.
FIELD_LABELS = {"username": "用户名", "password": "密码", "next": "登录后返回的页面", "resource": "资源",
                "scope": "共享范围", "purpose": "共享用途", "items": "数据项", "outcome": "审核结果",
                "reasons": "意见及理由", "approved_items": "同意共享的数据项", "unmask": "显示个人标识",
                "received_on": "收到书面需求申请表的日期", "grounds": "异议理由", "conclusion": "协调结论",
                "q": "关键词", "agency": "提供方", "sharing_type": "共享类型", "mode": "共享方式", "period": "评估期",
                "page": "页码"}


def invalid_request_page(request: Request, errors: list[dict[str, Any]]) -> HTMLResponse:
    """A form or page address the app could not read: which field, by the label the page shows, and why."""
    from schemas.validation_text import summary_zh

    return http_error_page(request, 400, problem=f"提交的内容有误：{summary_zh(errors, names=FIELD_LABELS)}。")


def http_error_page(request: Request, status: int, *, problem: str | None = None) -> HTMLResponse:
    """The Chinese page for a request the app could not route or read (an unknown address, a form sent
    incomplete), for the person signed in, if any."""
    from registry.db import session_factory

    session = session_factory()()
    try:
        principal = _principal(session, request.cookies.get(COOKIE))
        if status == 404:
            return error_page(request, principal, 404, title="页面不存在", problem="没有这个页面。")
        if status == 400:
            return error_page(request, principal, 400, title="请求有误", problem=problem or "提交的内容不完整或格式不对。")
        if status == 507:
            return error_page(request, principal, 507, title="存储空间已满",
                              problem="平台的存储空间已满，暂时无法生成文件。请稍后再试，并告知平台运维人员清理空间。")
        return error_page(request, principal, status, title="无法完成请求", problem="该操作不能以这种方式进行。")
    finally:
        session.close()


@root_router.get("/")
@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    """The hub's front door is the catalogue (which sends a person who is not signed in to the login page)."""
    return RedirectResponse("/web/catalog", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/web/catalog") -> HTMLResponse:
    return _page(request, "login.html", None, next=next if next.startswith("/web") else "/web/catalog")


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, username: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/web/catalog") -> Response:
    from registry.people.users import login as sign_in

    target = next if next.startswith("/web") else "/web/catalog"
    try:
        token = sign_in(session, username=username, password=password, source="web")
    except AccessDenied as failed:
        session.commit()  # failed attempts are kept: they lock the account after too many
        return _page(request, "login.html", None, 401, next=target, error=failed.zh, username=username)
    session.commit()
    response = RedirectResponse(target, status_code=303)
    # Secure whenever the request came over HTTPS (behind the proxy: X-Forwarded-Proto from an address uvicorn's
    # --forwarded-allow-ips trusts), so the browser never sends it over plain HTTP; the loopback demo is HTTP.
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/web",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(session: SessionDep, token: SessionCookie = None) -> RedirectResponse:
    from registry.people.users import logout as sign_out

    if token:
        try:
            sign_out(session, token=token, source="web")  # audited as the person, as the API's sign-out
        except AccessDenied:
            pass  # signed out already (or never signed in): the browser is sent to the login page all the same
        session.commit()  # before the answer: the next page must find the session ended
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


def _search(session, *, keyword: str, agency: str, sharing_type: str, mode: str, page: int) -> tuple[int, list]:
    """The catalogue's search of published entries, one page."""
    from registry.catalog.search import search_catalog

    result = search_catalog(session, keyword=keyword or None, agency=agency or None,
                            sharing_type=sharing_type or None, mode=mode or None, limit=PAGE_ROWS,
                            offset=(page - 1) * PAGE_ROWS)
    return result.total, [{"code": h.code, "name": h.name, "abstract": h.abstract, "provider": h.provider,
                           "sharing_type": h.sharing_type, "sharing_modes": h.sharing_modes,
                           "update_cycle": h.update_cycle, "matched": h.matched_items} for h in result.hits]


@router.get("/catalog", response_class=HTMLResponse)
def catalog(request: Request, session: SessionDep, token: SessionCookie = None, q: str = "", agency: str = "",
            sharing_type: str = "", mode: str = "", page: Annotated[int, Query(ge=1)] = 1) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    from registry.people.agencies import list_agencies

    try:
        total, hits = _search(session, keyword=q, agency=agency, sharing_type=sharing_type, mode=mode, page=page)
    except (ConfigError, AccessDenied) as exc:
        return _problem(request, principal, exc)
    return _page(request, "catalog.html", principal, hits=hits, total=total, page=page, pages=max(1, -(-total // PAGE_ROWS)),
                 q=q, agency=agency, sharing_type=sharing_type, mode=mode, agencies=list_agencies(session))


@router.get("/catalog/{code:path}", response_class=HTMLResponse)
def entry(code: str, request: Request, session: SessionDep, token: SessionCookie = None) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    from registry.exchange.versions import latest_version

    try:
        resource = shown_entry(session, principal, code)
    except NotFound as exc:
        return _problem(request, principal, exc)
    from delivery.access import OWN_DATA
    from delivery.metadata import record_metadata_read
    from registry.sharing.grants import usable_grant

    content, elements = _entry_content(session, resource)
    own = principal.agency_id == resource.agency_id
    latest = latest_version(session, resource=resource)
    # the whole version's row count is the provider's (metadata is data: a consumer sees what its grant gives
    # it); the manifest digest names the version every download carries, so any reader with a live grant sees
    # it, as on the versions endpoint and in notices, and the read is audited as that endpoint's is
    grant = None if own or principal.agency_id is None else usable_grant(
        session, resource=resource, agency_id=principal.agency_id)
    digest = own or grant is not None
    if digest and latest is not None:
        record_metadata_read(session, actor=principal.actor, agency_code=principal.agency_code,
                             resource_code=resource.code, what="entry page digest",
                             grant_id=grant.id if grant else None, columns=grant.columns if grant else None,
                             purpose=grant.purpose if grant else OWN_DATA)
        session.commit()  # recorded before the page leaves, as the API's reads are
    return _page(request, "entry.html", principal, resource=resource, content=content, elements=elements,
                 latest=latest, own=own, digest=digest)


def shown_entry(session, principal, code: str):  # noqa: ANN001, ANN201 - Session, Principal -> Resource
    """The resource of a page about a catalogue entry, or NotFound: an entry that is not published (registered
    by `resource add` only, a draft, withdrawn) is its provider's alone, as the catalogue API answers."""
    from registry.catalog.resources import get_resource, shown_as_published

    resource = get_resource(session, code=code)
    if principal.agency_id != resource.agency_id and not shown_as_published(
            session, resource=resource, actor=principal.actor, where="entry page", agency_code=principal.agency_code):
        session.commit()  # an edited entry's refusal is recorded even though the page is refused
        raise NotFound(f"目录条目 {code} 尚未发布 / entry {code} has no published revision")
    return resource


def _entry_content(session, resource) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The published catalogue revision's elements, each under its Chinese label with its value as a person
    reads it (coded values labelled, days as 2026年12月6日), or the resource's own fields before cataloguing."""
    from registry.catalog.entries import entry_view, published_revision
    from schemas.catalog_metadata import metadata

    revision = published_revision(session, resource=resource)
    content: dict[str, Any] = entry_view(resource, revision) if revision is not None else {}
    if not content:
        content = {"code": resource.code, "name": resource.name, "provider": resource.agency.name,
                   "provider_code": resource.agency.code, "abstract": resource.abstract,
                   "sharing_type": resource.sharing_type, "sharing_condition": resource.sharing_condition,
                   "sharing_modes": resource.sharing_modes, "update_cycle": resource.update_cycle, "data_items": []}
    shown = []
    for element in metadata()["elements"]:
        field = element["field"]
        if field == "data_items" or field not in content:
            continue
        value = content[field]
        if element.get("codes"):
            value = (presentation.label_list(element["codes"], value) if isinstance(value, list)
                     else presentation.label(element["codes"], value))
        elif field == "release_date":
            # an entry compiled without its release date shows the day its revision was published
            value = presentation.day(value or (revision.published_at if revision is not None else None))
        elif isinstance(value, list):
            value = "、".join(str(v) for v in value)
        shown.append((element["label"], "" if value is None else str(value)))
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
            number, order_by, start = interface.decode_cursor(cursor, reader=interface.cursor_reader(decision))
        version = interface.version_for(session, decision, number)
        order_by = interface.cursor_order(decision, version, order_by)
        result = interface.page(decision, version, order_by=order_by, start=start, limit=PAGE_ROWS, where=None,
                                fields=None)
    except (AccessDenied, ConfigError) as exc:
        return _problem(request, principal, exc)
    audit_read(session, decision=decision, rows=result.rows.num_rows, fmt="html", version=version)
    session.commit()
    # Column headings: the catalogue's data item names, else the label the contract gave the column. Columns the
    # catalogue does not list as data items (a technical key such as `id`) are the exchange's, not shown here.
    labels = {f.name: (f.metadata or {}).get(b"label", b"").decode() for f in interface.arrow_schema(version)}
    content, _ = _entry_content(session, decision.resource)
    items = {item["column"]: item for item in content.get("data_items", []) if item.get("column")}
    labels.update({column: item["name"] for column, item in items.items()})
    columns = [c for c in result.rows.column_names if not items or c in items]
    types = {column: item.get("data_type") for column, item in items.items()}
    rows = [[presentation.cell(row[c], types.get(c)) for c in columns] for row in result.rows.to_pylist()]
    return _page(request, "data.html", principal, resource=decision.resource, version=version, columns=columns,
                 labels=labels, rows=rows, masked=decision.mask_columns, next_cursor=result.next_cursor, page=page,
                 total=_total(decision, version))


def _total(decision, version) -> int:
    """The rows this reader receives of the version: with a row condition, never the whole version's count (a
    fact about rows outside the grant, which the versions endpoint withholds too)."""
    from dataclasses import replace

    from delivery.access import restricted_row_count

    return restricted_row_count(replace(decision, version=version))
