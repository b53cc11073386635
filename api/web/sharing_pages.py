"""Web pages of the sharing workflow (按需共享申请与答复, article 14), in Chinese, beside the browsing pages.

A consumer's person applies for a conditional resource from its catalogue entry (scope, purpose, data items),
follows its applications (status, the 10-working-day due date, the generated 需求申请表 PDF) and sees the
decision; a provider's person decides from an inbox (approve all or some data items, or refuse, always with
reasons) and records the day the written form arrived; a consumer disputes a refusal or partial approval
(协调处理) and the coordination office's conclusion becomes the decision; a consumer withdraws an application not
yet answered (撤回申请, with the reason). Every action calls the registry services, which check roles and agencies
and write the audit log; a refusal those services did not already log is logged here, as the API's AuditedRoute
does.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep
from api.web import (
    SessionCookie,
    _entry_content,
    _login_redirect,
    _page,
    _principal,
    _problem,
    chinese_message,
    refusal_logged,
    shown_entry,
)
from core.errors import AccessDenied, ConfigError, NotFound

router = APIRouter(prefix="/web/applications", include_in_schema=False)


def _item_choices(session, resource) -> list[dict[str, str]]:
    """The entry's data items that name a column; without catalogue items, the published version's columns."""
    from registry.exchange.versions import latest_version

    content, _ = _entry_content(session, resource)
    items = [{"column": i["column"], "name": i["name"]} for i in content.get("data_items", []) if i.get("column")]
    if items:
        return items
    version = latest_version(session, resource=resource)
    schema = version.manifest.get("schema", []) if version else []
    return [{"column": f["name"], "name": f.get("label") or f["name"]} for f in schema if "name" in f]


def _labels(session, application) -> dict[str, str]:
    from registry.sharing.names import item_names

    return item_names(session, application.resource)


def _visible(session, principal, number: str):
    from registry.sharing.applications import get_application, may_see

    application = get_application(session, number=number)
    if not may_see(principal, application):
        raise AccessDenied("无权查看该申请", "you may not see this application")
    return application


@router.get("", response_class=HTMLResponse)
def listing(request: Request, session: SessionDep, token: SessionCookie = None) -> Response:
    """My agency's applications, and the applications to my agency's resources waiting for its decision."""
    from registry.sharing.applications import list_applications

    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    visible = list_applications(session, by=principal)
    mine = [a for a in visible if a.consumer_agency_id == principal.agency_id]
    to_decide = [a for a in visible if a.resource.agency_id == principal.agency_id]
    others = [a for a in visible if a not in mine and a not in to_decide]  # oversight roles see every agency's
    return _page(request, "applications.html", principal, mine=mine, to_decide=to_decide, others=others)


def _form(request: Request, session, principal, resource, status: int = 200, **values: Any) -> HTMLResponse:
    return _page(request, "apply.html", principal, status, resource=resource,
                 choices=_item_choices(session, resource), values=values)


@router.get("/new", response_class=HTMLResponse)
def new(request: Request, session: SessionDep, resource: str, token: SessionCookie = None) -> Response:
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    try:
        found = shown_entry(session, principal, resource)  # an entry not published is not applied for
    except NotFound as exc:
        return _problem(request, principal, exc)
    return _form(request, session, principal, found, scope="", purpose="", items=[])


@router.post("", response_class=HTMLResponse)
def submit(request: Request, session: SessionDep, resource: Annotated[str, Form()], scope: Annotated[str, Form()],
           purpose: Annotated[str, Form()], items: Annotated[list[str] | None, Form()] = None,
           token: SessionCookie = None) -> Response:
    from registry.catalog.resources import get_resource
    from registry.sharing.applications import apply

    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    values = {"scope": scope, "purpose": purpose, "items": items or []}
    try:
        found = get_resource(session, code=resource)
        application = apply(session, resource_code=resource, consumer=principal.agency_code or "", scope=scope,
                            purpose=purpose, items=items or [], by=principal)
    except AccessDenied as exc:
        refusal_logged(session, principal, request, exc, resource)
        return _problem(request, principal, exc)
    except NotFound as exc:
        return _problem(request, principal, exc)
    except ConfigError as exc:
        session.rollback()
        return _form(request, session, principal, found, exc.http_status, error=chinese_message(exc), **values)
    session.commit()
    return RedirectResponse(f"/web/applications/{application.number}", status_code=303)


def _detail(request: Request, session, principal, application, status: int = 200, **extra: Any) -> HTMLResponse:
    from registry.sharing.applications import grant_for
    from registry.sharing.disputes import DISPUTABLE, disputes_of
    from registry.sharing.names import actor_names, condition_text

    deciding = (application.status == "submitted" and principal.agency_id == application.resource.agency_id)
    disputing = application.status in DISPUTABLE and principal.agency_id == application.consumer_agency_id
    concluding = application.status == "disputed" and principal.kind == "user" and principal.has("coordination_office")
    # The consumer may take back an application the provider has not answered yet (the service checks the role).
    withdrawing = application.status == "submitted" and principal.agency_id == application.consumer_agency_id
    disputes = disputes_of(session, application_id=application.id)
    names = actor_names(session, [application.applicant, application.decided_by,
                                  *[d.opened_by for d in disputes], *[d.concluded_by for d in disputes]])
    labels = _labels(session, application)
    return _page(request, "application.html", principal, status, application=application, labels=labels,
                 grant=grant_for(session, application=application), deciding=deciding, disputing=disputing,
                 concluding=concluding, withdrawing=withdrawing, disputes=disputes, names=names,
                 condition=condition_text(application.row_filter, labels), **extra)


def _open_application(request: Request, session, token: str | None, number: str):  # noqa: ANN001, ANN202
    """(principal, application) for a signed-in person who may see it; otherwise the page to answer with
    (the sign-in redirect, or the refusal, which is logged)."""
    principal = _principal(session, token)
    if principal is None:
        return _login_redirect(request)
    try:
        return principal, _visible(session, principal, number)
    except (AccessDenied, NotFound) as exc:
        if isinstance(exc, AccessDenied):
            refusal_logged(session, principal, request, exc)
        return _problem(request, principal, exc)


@router.get("/{number}", response_class=HTMLResponse)
def detail(number: str, request: Request, session: SessionDep, token: SessionCookie = None) -> Response:
    opened = _open_application(request, session, token, number)
    if isinstance(opened, Response):
        return opened
    principal, application = opened
    return _detail(request, session, principal, application)


@router.get("/{number}/form.pdf")
def form_pdf(number: str, request: Request, session: SessionDep, token: SessionCookie = None) -> Response:
    """The generated 需求申请表, for the written submission."""
    from registry.sharing.application_form import render_form

    opened = _open_application(request, session, token, number)
    if isinstance(opened, Response):
        return opened
    _, application = opened
    return Response(render_form(application), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'})


def _approved(outcome: str, approved_items: list[str] | None) -> list[str] | None:
    """The ticked items of an approval (None for a refusal). The services read "no items" as "all items", so
    an approval with nothing ticked is refused here rather than approving everything."""
    if outcome != "approve":
        return None
    if not approved_items:
        raise ConfigError("请至少勾选一个同意共享的数据项，或选择“不予共享” / tick at least one data item to approve, "
                          "or choose to refuse (不予共享)")
    return approved_items


def _term(expires_on: str) -> date | None:
    """The term (有效期) a decision or conclusion form gives as a day, or None when left blank."""
    try:
        return date.fromisoformat(expires_on) if expires_on.strip() else None
    except ValueError:
        raise ConfigError(f"授权期限 {expires_on} 不是日期 / the term must be a day (YYYY-MM-DD)") from None


def _act(request: Request, session, token: str | None, number: str, action) -> Response:  # noqa: ANN001
    """Run one workflow action for the signed-in person: a stranger is refused (and logged) before anything
    else, a refused action is logged, a wrong input shows the page again with the reason; done, the page."""
    opened = _open_application(request, session, token, number)
    if isinstance(opened, Response):
        return opened
    principal, application = opened
    try:
        action(principal, application)
    except AccessDenied as exc:
        refusal_logged(session, principal, request, exc)
        return _problem(request, principal, exc)
    except NotFound as exc:
        return _problem(request, principal, exc)
    except ConfigError as exc:
        session.rollback()
        return _detail(request, session, principal, _visible(session, principal, number), exc.http_status,
                       error=chinese_message(exc))
    session.commit()
    return RedirectResponse(f"/web/applications/{number}", status_code=303)


@router.post("/{number}/decision", response_class=HTMLResponse)
def decision(number: str, request: Request, session: SessionDep, outcome: Annotated[str, Form()],
             reasons: Annotated[str, Form()] = "", approved_items: Annotated[list[str] | None, Form()] = None,
             unmask: Annotated[bool, Form()] = False, expires_on: Annotated[str, Form()] = "",
             token: SessionCookie = None) -> Response:
    """Approve the ticked data items (all of them: approve; some: partial) or refuse; reasons always; the
    term (有效期) when one is set, checked by the service as the API's and CLI's is."""
    from registry.sharing.applications import decide

    def act(principal, application) -> None:  # noqa: ANN001
        decide(session, number=number, outcome=outcome, reasons=reasons, by=principal,
               approved_items=_approved(outcome, approved_items), unmask=unmask, expires_on=_term(expires_on))

    return _act(request, session, token, number, act)


@router.post("/{number}/receipt", response_class=HTMLResponse)
def receipt(number: str, request: Request, session: SessionDep, received_on: Annotated[str, Form()],
            token: SessionCookie = None) -> Response:
    """The provider records the day the written 需求申请表 arrived; the 10 working days run from it."""
    from datetime import date

    from registry.sharing.applications import record_receipt

    def act(principal, application) -> None:  # noqa: ANN001
        try:
            day = date.fromisoformat(received_on)
        except ValueError:
            raise ConfigError(f"收到日期应为 YYYY-MM-DD / the day the form arrived, as YYYY-MM-DD (got {received_on!r})") \
                from None
        record_receipt(session, number=number, received_on=day, by=principal)

    return _act(request, session, token, number, act)


@router.post("/{number}/dispute", response_class=HTMLResponse)
def dispute(number: str, request: Request, session: SessionDep, grounds: Annotated[str, Form()] = "",
            token: SessionCookie = None) -> Response:
    """The consumer disagrees with a refusal or a partial approval and asks for coordination (协调处理)."""
    from registry.sharing.disputes import open_dispute

    return _act(request, session, token, number,
                lambda principal, application: open_dispute(session, number=number, grounds=grounds, by=principal))


@router.post("/{number}/withdrawal", response_class=HTMLResponse)
def withdrawal(number: str, request: Request, session: SessionDep, reason: Annotated[str, Form()] = "",
               token: SessionCookie = None) -> Response:
    """The consumer withdraws its unanswered application (撤回申请), with the reason; the provider is told."""
    from registry.sharing.withdrawal import withdraw_application

    return _act(request, session, token, number, lambda principal, application: withdraw_application(
        session, number=number, reason=reason, by=principal))


@router.post("/{number}/conclusion", response_class=HTMLResponse)
def conclusion(number: str, request: Request, session: SessionDep, outcome: Annotated[str, Form()],
               conclusion: Annotated[str, Form()] = "", approved_items: Annotated[list[str] | None, Form()] = None,
               expires_on: Annotated[str, Form()] = "", token: SessionCookie = None) -> Response:
    """The coordination office concludes the open dispute; its conclusion becomes the decision (and the term,
    when it sets one)."""
    from registry.sharing.disputes import conclude_dispute, disputes_of

    def act(principal, application) -> None:  # noqa: ANN001
        open_ones = [d for d in disputes_of(session, application_id=application.id) if d.status == "open"]
        if not open_ones:
            raise ConfigError(f"申请 {number} 没有待协调的异议 / application {number} has no open dispute")
        if not conclusion.strip():
            raise ConfigError("写明协调结论 / state the conclusion")
        conclude_dispute(session, dispute_id=open_ones[-1].id, outcome=outcome, conclusion=conclusion, by=principal,
                         approved_items=_approved(outcome, approved_items), expires_on=_term(expires_on))

    return _act(request, session, token, number, act)
