"""The demo's catalogue step: each provider's people, and its entry catalogued with all core elements, submitted,
confidentiality-reviewed and published by a designated reviewer (the real catalogue review, article 10). Only a
published entry is shared, so both of the demo's entries go through this review before anyone takes them."""

from __future__ import annotations

from dataclasses import dataclass
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
CREDIT_CONDITION = "仅限人力资源社会保障部门在就业参保登记时核验用人单位纳税信用，须说明共享范围和用途"


@dataclass(frozen=True)
class Cataloguers:
    """An agency's catalogue people (目录编制人员): who compiles, who reviews, who is filed as administrator."""

    cataloguer: tuple[str, str]  # (account, name)
    reviewer: tuple[str, str]
    administrator: tuple[str, str]


MARKET_PEOPLE = Cataloguers(("scjg-zhang", "张敏"), ("scjg-li", "李强"), ("scjg-chen", "陈静"))
TAX_PEOPLE = Cataloguers(("sw-wu", "吴刚"), ("sw-zheng", "郑丽"), ("sw-he", "何平"))


def _designate(session: Session, *, agency: str, people: Cataloguers) -> None:
    from registry.people.persons import add_person, designate

    since = date(2025, 1, 1)
    for role in ("cataloguer", "reviewer", "administrator"):
        account, name = getattr(people, role)
        add_person(session, agency=agency, account=account, name=name, office="信息中心", actor="demo")
        designate(session, account=account, role=role, valid_from=since, actor="demo")


def _publish(session: Session, *, agency: str, code: str, people: Cataloguers, note: str, **elements: object) -> int:
    """Compile the entry's elements, submit, record the confidentiality review, publish; the revision number."""
    from registry.catalog.entries import upsert_entry
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.people.persons import person_actor
    from schemas.catalog_metadata import CatalogEntryData

    _designate(session, agency=agency, people=people)
    author, reviewer = people.cataloguer[0], people.reviewer[0]
    revision = upsert_entry(session, agency=agency, data=CatalogEntryData.model_validate(
        {"classification": code.split("/")[0], "format": "database", **elements}), code=code, author=author,
        actor=person_actor(author))
    submit_revision(session, code=code, account=author)
    record_confidentiality_review(session, code=code, account=reviewer, passed=True, note=note)
    review_revision(session, code=code, account=reviewer, approve=True)
    return revision.number


def _items(rows: list[tuple[str, str, str, str | None]]) -> list[dict[str, object]]:
    return [{"name": n, "column": c, "data_type": t, "subject_id": s} for n, c, t, s in rows]


def catalogue_enterprises(session: Session, *, agency: str, code: str, abstract: str) -> int:
    """企业基本信息: shared unconditionally, also for online browsing (the ID numbers masked there)."""
    return _publish(session, agency=agency, code=code, people=MARKET_PEOPLE,
                    note="不涉及国家秘密；法定代表人身份证号码在线浏览时脱敏", name="企业基本信息", abstract=abstract,
                    data_items=_items(ENTERPRISE_ITEMS), sharing_type="unconditional",
                    sharing_modes=["interface", "file", "browse"], update_cycle="daily")


def catalogue_credit(session: Session, *, agency: str, code: str, abstract: str) -> int:
    """企业纳税信用等级: shared on application (按需共享), answered by the tax bureau within 10 working days."""
    return _publish(session, agency=agency, code=code, people=TAX_PEOPLE, note="不涉及国家秘密；涉及企业纳税信息，按需共享",
                    name="企业纳税信用等级", abstract=abstract, data_items=_items(CREDIT_ITEMS),
                    sharing_type="conditional", sharing_condition=CREDIT_CONDITION,
                    sharing_modes=["interface", "browse"], update_cycle="monthly")
