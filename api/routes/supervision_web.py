"""The supervision web page (issue 8): a signed-in person sees their agency's standing in the evaluation and its
open items; the supervisor and the coordination office may open any agency's. Same session cookie and checks as
the other web pages (api/web); the data comes from api/routes/supervision.py `standing_view`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep
from api.routes.supervision import standing_view
from api.web import SessionCookie, _login_redirect, _page, _principal, _problem
from core.errors import GovshareError
from registry.due_days import schedule_warning
from registry.supervision_models import VIOLATION_CASES
from schemas.evaluation_config import METRICS

router = APIRouter(prefix="/web/supervision", include_in_schema=False)
CLOCK_LABELS = {"update": "目录更新（2个工作日）", "application": "申请答复（10个工作日）",
                "reconfirmation": "年度全面维护", "rectification": "限期整改"}


@router.get("", response_class=HTMLResponse)
@router.get("/{code}", response_class=HTMLResponse)
def standing_page(request: Request, session: SessionDep, token: SessionCookie = None, code: str | None = None,
                  period: str | None = None) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    try:
        view = standing_view(session, principal=principal, code=code or principal.agency_code or "", period=period)
    except GovshareError as exc:
        session.commit()
        return _problem(request, principal, exc)
    warning = schedule_warning()
    return _page(request, "supervision.html", principal, view=view, metrics=METRICS, clocks=CLOCK_LABELS,
                 cases=VIOLATION_CASES, schedule_warning=warning.zh if warning else None)
