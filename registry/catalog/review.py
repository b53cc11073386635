"""Review and publication of catalogue entries (articles 10 and 19).

draft -> submitted -> published, or -> returned with comments per element and per data item. A designated
cataloguer (编目人员) submits; only a reviewer (审核人员) designated by the entry's own agency on the day of the
decision may decide, and never for a revision they wrote or submitted. A passed confidentiality review (保密审查,
article 19) of the very revision, by someone other than its author or submitter, is required before it is
published. Neither is dated before the submission's day. While an edit is under review the
previously published revision stays the one consumers see. Every step is an audit event.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied, ConfigError
from registry.audit.log import record_event
from registry.catalog.entries import apply_to_resource, canonical, get_entry, item_columns, latest_revision
from registry.catalog.models import (
    CatalogRevision,
    REVISION_STATUSES,
    ConfidentialityReview,
    Reconfirmation,
    Resource,
    UpdateObligation,
)
from registry.catalog.obligations import close_obligations
from registry.people.models import Person
from registry.people.persons import act_day, person_actor, require_designated
from schemas.catalog_metadata import CatalogEntryData, label_of, metadata
from schemas.presentation import label

__all__ = ["confidentiality_of", "record_confidentiality_review", "review_revision", "submit_revision",
           "withdraw_entry"]


def _open_revision(session: Session, resource: Resource, allowed: tuple[str, ...], doing: str) -> CatalogRevision:
    revision = latest_revision(session, resource=resource)
    if revision is None:
        raise ConfigError(f"目录条目 {resource.code} 还没有编目内容，请先 `govshare catalog edit` / nothing to {doing}")
    if revision.status not in allowed:
        zh, en = doing.split(" ", 1)
        state = REVISION_STATUSES.get(revision.status, revision.status)
        can = "、".join(REVISION_STATUSES.get(s, s) for s in allowed)
        raise ConfigError(f"目录条目 {resource.code} 第{revision.number}版{state}，不能{zh}（只有{can}的版本可以{zh}） / "
                          f"revision {revision.number} is {revision.status}; only {', '.join(allowed)} can be {en}")
    return revision


def submit_revision(session: Session, *, code: str, account: str, on: date | None = None,
                    actor: str | None = None) -> CatalogRevision:
    """Submit the entry's latest draft (or a returned revision, unchanged) for review."""
    resource = get_entry(session, code=code)
    day = act_day(on)
    require_designated(session, account=account, agency_id=resource.agency_id, roles=("cataloguer",), on=day)
    actor = person_actor(account)  # the acting person is what is recorded
    revision = _open_revision(session, resource, ("draft", "returned"), "提交 submitted")
    revision.status, revision.submitted_by, revision.submitted_at = "submitted", account, clock.now()
    revision.submitted_on = day
    record_event(session, actor=actor, action="catalog.submit", agency_code=resource.agency.code,
                 resource_code=code, detail={"revision": revision.number, "by": account, "on": day})
    return revision


def confidentiality_of(session: Session, *, revision: CatalogRevision) -> ConfidentialityReview | None:
    """The latest confidentiality review of a revision (a later one replaces an earlier verdict)."""
    return session.scalar(select(ConfidentialityReview).where(ConfidentialityReview.revision_id == revision.id)
                          .order_by(ConfidentialityReview.id.desc()).limit(1))


def record_confidentiality_review(session: Session, *, code: str, account: str, passed: bool, note: str = "",
                                  on: date | None = None) -> ConfidentialityReview:
    """Record the agency's own confidentiality review (保密审查) of the entry's pending revision."""
    resource = get_entry(session, code=code)
    day = act_day(on)
    checker = require_designated(session, account=account, agency_id=resource.agency_id,
                                 roles=("reviewer", "administrator"), on=day)
    actor = person_actor(account)  # the acting person is what is recorded
    revision = _open_revision(session, resource, ("draft", "submitted", "returned"), "保密审查 reviewed")
    _not_own_revision(checker, revision, "保密审查", "do the confidentiality review of")
    _not_before_submission(revision, day)
    if not passed and not note.strip():
        raise ConfigError("保密审查未通过时须说明原因 / a failed confidentiality review needs its reason (--note)")
    review = ConfidentialityReview(revision_id=revision.id, reviewer=account, reviewed_on=day, passed=passed,
                                   note=note)
    session.add(review)
    session.flush()
    record_event(session, actor=actor, action="catalog.confidentiality", agency_code=resource.agency.code,
                 resource_code=code, result="ok" if passed else "failed",
                 detail={"revision": revision.number, "by": account, "on": day, "passed": passed, "note": note})
    return review


def _not_own_revision(person: Person, revision: CatalogRevision, act_zh: str, act_en: str) -> None:
    """Four-eyes: neither the confidentiality review (article 19, the agency's check of what was written) nor the
    review decision may be done by whoever wrote or submitted the revision."""
    if {person.account, person.name} & {revision.author, revision.submitted_by}:
        raise AccessDenied(f"不能{act_zh}自己编制或提交的目录（第{revision.number}版由 {revision.author} 编制，"
                           f"请由本机构其他指定人员办理）",
                           f"nobody may {act_en} a revision they wrote or submitted")


def _not_before_submission(revision: CatalogRevision, day: date) -> None:
    """A decision is dated between the revision's submission and today (act_day refuses the future): dated
    earlier, a reviewer whose designation has ended could still decide inside their old designation period. A
    draft never submitted holds to the day it was made instead (created_on): its 保密审查 cannot predate it."""
    if revision.submitted_on is not None:
        if day < revision.submitted_on:
            raise ConfigError(f"办理日期 {day} 早于第{revision.number}版的提交日 {revision.submitted_on}，请以实际办理日"
                              f"（不早于提交日）登记 / a decision cannot be dated before the revision was submitted "
                              f"({revision.submitted_on})")
    elif revision.created_on is not None and day < revision.created_on:
        raise ConfigError(f"办理日期 {day} 早于第{revision.number}版草稿的编制日 {revision.created_on}，请以实际办理日"
                          f"（不早于草稿编制日）登记 / a decision cannot be dated before the draft was made "
                          f"({revision.created_on})")


def _element_field(key: str) -> str:
    for element in metadata()["elements"]:
        if key in (element["field"], element["label"]):
            return element["field"]
    labels = "、".join(e["label"] for e in metadata()["elements"])
    raise ConfigError(f"意见针对的要素 {key!r} 不存在，可选：{labels} / unknown element {key!r}")


def review_revision(session: Session, *, code: str, account: str, approve: bool,
                    comments: dict[str, str] | None = None, item_comments: dict[str, str] | None = None,
                    on: date | None = None) -> CatalogRevision:
    """Approve (publish) or return the submitted revision, by a reviewer designated by the entry's agency."""
    resource = get_entry(session, code=code)
    day = act_day(on)
    reviewer = require_designated(session, account=account, agency_id=resource.agency_id, roles=("reviewer",), on=day)
    actor = person_actor(account)  # the acting person is what is recorded
    revision = _open_revision(session, resource, ("submitted",), "审核 reviewed")
    _not_own_revision(reviewer, revision, "审核", "decide on")
    _not_before_submission(revision, day)
    element_notes = {_element_field(k): v for k, v in (comments or {}).items() if v.strip()}
    names = {item["name"] for item in revision.content.get("data_items", [])}
    if unknown := sorted(set(item_comments or {}) - names):
        raise ConfigError(f"意见针对的信息项 {'、'.join(unknown)} 不在第{revision.number}版中 / unknown data items")
    item_notes = {k: v for k, v in (item_comments or {}).items() if v.strip()}
    if not approve and not (element_notes or item_notes):
        raise ConfigError("退回修改须逐条说明意见（针对要素或信息项） / a return needs comments per element or data item")
    revision.reviewed_by, revision.reviewed_at = account, clock.now()
    revision.review_comments = {"elements": element_notes, "data_items": item_notes}
    detail = {"revision": revision.number, "by": account, "on": day, "comments": revision.review_comments}
    if not approve:
        revision.status = "returned"
        record_event(session, actor=actor, action="catalog.return", agency_code=resource.agency.code,
                     resource_code=code, detail=detail)
        return revision
    secrecy = confidentiality_of(session, revision=revision)
    if secrecy is None or not secrecy.passed:
        why = "尚未进行保密审查" if secrecy is None else f"保密审查未通过（{secrecy.note}）"
        raise AccessDenied(f"第{revision.number}版{why}，不能发布（第十九条） / a passed confidentiality review "
                           "of this revision is required before publication (article 19)",
                           "a passed confidentiality review of this revision is required before publication")
    _not_before_the_change(session, resource, day)
    for previous in session.scalars(select(CatalogRevision).where(
            CatalogRevision.resource_id == resource.id, CatalogRevision.status == "published")):
        previous.status = "superseded"
    _set_release_date(session, resource, revision, day)
    revision.status, revision.published_at = "published", clock.now()
    was_shared = resource.sharing_type
    apply_to_resource(resource, CatalogEntryData.model_validate(revision.content))
    resource.catalog_status = "published"
    if resource.sharing_type not in (was_shared, "unconditional"):  # 普遍共享 takes nobody's grant away
        _end_grants(session, resource=resource, account=account,
                    reason=f"目录条目共享类型变更为{label('sharing_types', resource.sharing_type)}（第{revision.number}版）",
                    keep_applications=resource.sharing_type == "conditional")
    _follow_items(session, resource=resource, revision=revision, account=account)
    # A publication after element-by-element review is also that year's full maintenance (全面维护).
    session.add(Reconfirmation(resource_id=resource.id, revision_id=revision.id, confirmed_on=day,
                               confirmed_by=account, note="审核发布 / published after review"))
    record_event(session, actor=actor, action="catalog.publish", agency_code=resource.agency.code,
                 resource_code=code, detail=detail)
    close_obligations(session, resource=resource, revision=revision, on=day, actor=actor)
    return revision


def _not_before_the_change(session: Session, resource: Resource, day: date) -> None:
    """A publication that answers an update obligation cannot be dated before the change that opened it: it would
    close the obligation before it existed, and in time whatever day it really came."""
    pending = session.scalar(select(UpdateObligation).where(
        UpdateObligation.resource_id == resource.id, UpdateObligation.closed_on.is_(None))
        .order_by(UpdateObligation.opened_on).limit(1))
    if pending is not None and day < pending.opened_on:
        raise ConfigError(f"发布日期 {day} 早于待完成更新的发生日 {pending.opened_on}（{pending.reason}），"
                          f"请以实际办理日（不早于 {pending.opened_on}）审核发布 / a publication cannot be dated before "
                          f"the change it answers ({pending.opened_on})")


def _set_release_date(session: Session, resource: Resource, revision: CatalogRevision, day: date) -> None:
    """发布日期 is set at publication when the revision leaves it empty: the entry's first publication day (an
    earlier published revision's date), else this one. The revision's digest follows its content."""
    if revision.content.get("release_date"):
        return
    earlier = [r.content.get("release_date") for r in session.scalars(select(CatalogRevision).where(
        CatalogRevision.resource_id == resource.id, CatalogRevision.published_at.is_not(None),
        CatalogRevision.id != revision.id))]
    released = min((d for d in earlier if d), default=None) or day.isoformat()
    content, digest = canonical(CatalogEntryData.model_validate({**revision.content, "release_date": released}))
    revision.content, revision.content_sha256 = content, digest
def withdraw_entry(session: Session, *, code: str, account: str, reason: str,
                   on: date | None = None) -> Resource:
    """Withdraw a published entry (撤销发布), by a reviewer designated by its agency: it leaves the catalogue
    consumers see and every grant on it ends at once (only published entries are shared)."""
    resource = get_entry(session, code=code)
    day = act_day(on)
    require_designated(session, account=account, agency_id=resource.agency_id, roles=("reviewer",), on=day)
    if resource.catalog_status != "published":
        raise ConfigError(f"目录条目 {code} 未发布（{resource.catalog_status}），无需撤销 / the entry is not published")
    if not reason.strip():
        raise ConfigError("撤销发布须说明理由 / a withdrawal needs its reason (--reason)")
    for revision in session.scalars(select(CatalogRevision).where(
            CatalogRevision.resource_id == resource.id, CatalogRevision.status == "published")):
        revision.status = "superseded"
    resource.catalog_status = "withdrawn"
    actor = person_actor(account)
    record_event(session, actor=actor, action="catalog.withdraw", agency_code=resource.agency.code,
                 resource_code=code, detail={"by": account, "on": day, "reason": reason})
    close_obligations(session, resource=resource, revision=None, on=day, actor=actor)
    _end_grants(session, resource=resource, account=account, reason=f"目录条目已撤销发布：{reason}")
    return resource


def _end_grants(session: Session, *, resource: Resource, account: str, reason: str,
                keep_applications: bool = False) -> None:
    """End the live grants the entry no longer supports, as the reviewer whose decision took their basis away:
    all of them, or (an entry now shared on application) those a subscription made, whose holders must apply."""
    from registry.sharing.grants import LIVE, end_grant
    from registry.sharing.models import Grant

    by = _reviewer(resource, account)
    for grant in session.scalars(select(Grant).where(Grant.resource_id == resource.id, Grant.status.in_(LIVE))):
        if not (keep_applications and grant.application_id is not None):
            end_grant(session, grant=grant, reason=reason, by=by)  # the consumer is told there


def _follow_items(session: Session, *, resource: Resource, revision: CatalogRevision, account: str) -> None:
    """The grants still live follow the published items (registry/sharing/entry_items.py)."""
    from registry.sharing.entry_items import follow_entry_items

    follow_entry_items(session, resource=resource, items=item_columns(revision),  # the revision just published
                       revision=revision.number, by=_reviewer(resource, account))


def _reviewer(resource: Resource, account: str):  # noqa: ANN202 - a Principal
    from registry.people.auth import Principal

    return Principal(kind="user", name=account, agency_id=resource.agency_id, agency_code=resource.agency.code)


def comment_lines(revision: CatalogRevision) -> list[tuple[str, str]]:
    """(where, comment) pairs of a review, Chinese labels, for the CLI and pages."""
    notes = revision.review_comments or {}
    return ([(label_of(f), text) for f, text in notes.get("elements", {}).items()]
            + [(f"信息项「{name}」", text) for name, text in notes.get("data_items", {}).items()])
