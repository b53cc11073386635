"""Cross-site form posts refused (跨站请求拦截): a page's form acts only when posted from the hub's own pages.

The session cookie is HttpOnly and SameSite=Strict, but SameSite judges by registrable domain: a sibling site
(another agency's portal under the same gov.cn name) is "same-site" and gets the cookie sent with a form it
posts here, as does a browser that ignores SameSite. So every POST under /web is checked first: a browser's
`Sec-Fetch-Site` saying `cross-site` or `same-site`, or an `Origin` other than this hub's own address (the Host
the request came to, as the reverse proxy passes it on: `proxy_set_header Host $host`), or `null`, is refused
with a Chinese page (403) before any form is read, and the refusal is audited (`request.refused`, naming the
signed-in person if the cookie names one). A client that sends neither header (a script) carries no browser's
cookie, so nothing is forged through it. The check is a thin ASGI layer: every other request passes untouched.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

ACTING = {"POST", "PUT", "PATCH", "DELETE"}


def cross_site(headers: dict[str, str]) -> str | None:
    """Why a request comes from another site (for the audit), or None when it is the hub's own page's."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return f"Origin: {origin[:200]}"
    return None


class CrossSiteGuard:
    """Refuses a page's form posted from another site; every other request goes on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ACTING and scope.get("path", "").startswith("/web"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if (why := cross_site(headers)) is not None:
                response = await run_in_threadpool(_refuse, Request(scope), why)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _refuse(request: Request, why: str):  # noqa: ANN202 - an HTMLResponse
    from api.web import COOKIE, _principal, error_page
    from registry.audit.log import record_refusal
    from registry.db import session_factory

    session = session_factory()()
    try:
        principal = _principal(session, request.cookies.get(COOKIE))
        record_refusal(actor=principal.actor if principal else "anonymous", action="request.refused",
                       agency_code=principal.agency_code if principal else None,
                       reason=f"a form posted from another site (cross-site request, {why}) is not acted on",
                       detail={"method": request.method, "path": request.url.path, "channel": "web"})
        return error_page(request, principal, 403, title="已拦截跨站提交",
                          problem="该表单不是从本平台的页面提交的（跨站请求），平台未作任何处理。"
                                  "请直接在本平台页面上操作；如果不是您本人发起的操作，请忽略并告知本机构数据资源管理员。")
    finally:
        session.close()
