"""The supervision web page: a signed-in person sees their agency's standing in the evaluation and its
open items; the supervisor and the coordination office see every agency's score, may open any agency's page and
download the periodic notice (评估定期通报) as a PDF. Same session cookie and checks as the other web pages
(api/web); the data comes from api/routes/supervision.py `standing_view` and registry/supervision/report.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep
from api.routes.supervision import SEE_ALL, standing_view
from api.web import SessionCookie, _login_redirect, _page, _principal, _problem, refusal_logged
from core.errors import AccessDenied, GovshareError
from core.calendar.due_days import schedule_warning
from registry.supervision.evaluation import CLOCKS
from registry.supervision.models import VIOLATION_CASES
from schemas.evaluation_config import METRICS

router = APIRouter(prefix="/web/supervision", include_in_schema=False)


@router.get("/report.pdf")
def notice_pdf(request: Request, session: SessionDep, token: SessionCookie = None, period: str | None = None
               ) -> Response:
    """The periodic notice of every agency (the supervisor and the coordination office only)."""
    from core import clock
    from registry.audit.log import record_event
    from registry.supervision.periods import current_quarter, parse_period
    from registry.supervision.report_writer import write_report

    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    try:
        if not principal.has(*SEE_ALL):
            raise AccessDenied("只有监督机构和领导小组办公室可以下载评估定期通报",
                               "only the supervisor or the coordination office downloads the periodic notice")
        # the audit names the period reported: without ?period= that is this quarter (it recorded null)
        reported = parse_period(period or current_quarter(clock.today())).code
        with tempfile.TemporaryDirectory() as folder:
            out = write_report(session, period=reported, fmt="pdf",
                               out=Path(folder) / "notice.pdf")
            body = out.read_bytes()
    except GovshareError as exc:
        if isinstance(exc, AccessDenied):
            refusal_logged(session, principal, request, exc)
        return _problem(request, principal, exc)
    record_event(session, actor=principal.actor, action="supervision.notice_read", detail={"period": reported})
    session.commit()
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="evaluation-notice.pdf"'})


@router.get("", response_class=HTMLResponse)
@router.get("/{code}", response_class=HTMLResponse)
def standing_page(request: Request, session: SessionDep, token: SessionCookie = None, code: str | None = None,
                  period: str | None = None) -> Response:
    from registry.supervision.evaluation import evaluate
    from registry.supervision.periods import parse_period

    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    try:
        view = standing_view(session, principal=principal, code=code or principal.agency_code or "", period=period)
    except GovshareError as exc:
        if isinstance(exc, AccessDenied):  # another agency's standing: the refusal is evidence, as over the API
            refusal_logged(session, principal, request, exc)
        return _problem(request, principal, exc)
    ranking = evaluate(session, period=view["period"]).agencies if principal.has(*SEE_ALL) else []
    warning = schedule_warning()
    return _page(request, "supervision.html", principal, view=view, metrics=METRICS, clocks=CLOCKS,
                 cases=VIOLATION_CASES, period_label=parse_period(view["period"]).label, ranking=ranking,
                 schedule_warning=warning.zh if warning else None)
