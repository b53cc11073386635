"""The demo's catalogue step (issue 3): each provider's people, and its resource catalogued with all core
elements, submitted, confidentiality-reviewed and published by a designated reviewer. Only a published entry is
shared, so both of the demo's entries go through this review before anyone subscribes."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

ENTERPRISE_ITEMS = [
    ("统一社会信用代码", "uscc", "string", "uscc"), ("企业名称", "name", "string", None),
    ("法定代表人", "legal_rep", "string", None), ("法定代表人身份证号码", "legal_rep_id", "string", "idcard"),
    ("注册资本（万元）", "reg_capital", "decimal", None), ("成立日期", "established", "date", None),
    ("登记状态", "status", "string", None), ("住所", "address", "string", None), ("行业", "industry", "string", None),
    ("更新时间", "updated_at", "timestamp", None),
]
CREDIT_ITEMS = [
    ("统一社会信用代码", "uscc", "string", "uscc"), ("纳税人名称", "taxpayer_name", "string", None),
    ("纳税信用等级", "credit_grade", "string", None), ("评价年度", "rating_year", "integer", None),
    ("更新时间", "updated_at", "timestamp", None),
]
# (account, name, role) of each provider's designated people
MARKET_PEOPLE = [("scjg-zhang", "张敏", "cataloguer"), ("scjg-li", "李强", "reviewer"),
                 ("scjg-chen", "陈静", "administrator")]
TAX_PEOPLE = [("sw-wang", "王芳", "cataloguer"), ("sw-zhao", "赵磊", "reviewer")]


def publish_through_review(session: Session, *, agency: str, code: str, name: str, abstract: str,
                           items: list[tuple[str, str, str, str | None]], people: list[tuple[str, str, str]],
                           update_cycle: str, note: str) -> int:
    """Designate the agency's people and publish the entry's full elements through review; the revision number."""
    from registry.catalog import upsert_entry
    from registry.catalog_review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.people import add_person, designate, person_actor
    from schemas.catalog_metadata import CatalogEntryData

    for account, person, role in people:
        add_person(session, agency=agency, account=account, name=person, office="信息中心", actor="demo")
        designate(session, account=account, role=role, valid_from=date(2025, 1, 1), actor="demo")
    cataloguer = next(a for a, _, role in people if role == "cataloguer")
    reviewer = next(a for a, _, role in people if role == "reviewer")
    data = CatalogEntryData(
        classification=code.split("/")[0], name=name, abstract=abstract, format="database",
        data_items=[{"name": n, "column": c, "data_type": t, "subject_id": s} for n, c, t, s in items],
        sharing_type="unconditional", sharing_modes=["interface", "file"], update_cycle=update_cycle)
    revision = upsert_entry(session, agency=agency, data=data, code=code, author=cataloguer,
                            actor=person_actor(cataloguer))
    submit_revision(session, code=code, account=cataloguer)
    record_confidentiality_review(session, code=code, account=reviewer, passed=True, note=note)
    review_revision(session, code=code, account=reviewer, approve=True)
    return revision.number


def catalogue_enterprises(session: Session, *, agency: str, code: str, abstract: str) -> int:
    return publish_through_review(session, agency=agency, code=code, name="企业基本信息", abstract=abstract,
                                  items=ENTERPRISE_ITEMS, people=MARKET_PEOPLE, update_cycle="daily",
                                  note="不涉及国家秘密；法定代表人身份证号码按申请授权提供")


def catalogue_credit(session: Session, *, agency: str, code: str, abstract: str) -> int:
    return publish_through_review(session, agency=agency, code=code, name="企业纳税信用等级", abstract=abstract,
                                  items=CREDIT_ITEMS, people=TAX_PEOPLE, update_cycle="monthly",
                                  note="不涉及国家秘密、商业秘密和个人隐私")
