"""The demo's catalogue step: each provider's people, and its entry catalogued with all core elements, submitted,
confidentiality-reviewed and published by a designated reviewer (the real catalogue review, article 10). Only a
published entry is shared, so both of the demo's entries go through this review before anyone takes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

ENTERPRISE_ITEMS = [
    ("统一社会信用代码", "uscc", "string", "uscc", "18位法人和其他组织统一社会信用代码（GB 32100）"),
    ("企业名称", "name", "string", None, "营业执照登记的企业名称"),
    ("法定代表人", "legal_rep", "string", None, "营业执照登记的法定代表人姓名"),
    ("法定代表人身份证号码", "legal_rep_id", "string", "idcard", "法定代表人的公民身份号码（GB 11643），共享时脱敏"),
    ("注册资本（万元）", "reg_capital", "decimal", None, "登记的注册资本，单位万元，保留两位小数"),
    ("成立日期", "established", "date", None, "企业成立（营业执照签发）日期"),
    ("登记状态", "status", "string", None, "存续、在业、吊销、注销等登记状态"),
    ("住所", "address", "string", None, "营业执照登记的住所"),
    ("行业", "industry", "string", None, "国民经济行业分类（GB/T 4754）门类名称"),
    ("更新时间", "updated_at", "timestamp", None, "该条记录在登记系统中最后一次变更的时间"),
]
CREDIT_ITEMS = [
    ("统一社会信用代码", "uscc", "string", "uscc", "纳税人的统一社会信用代码（GB 32100）"),
    ("纳税人名称", "taxpayer_name", "string", None, "税务登记的纳税人名称"),
    ("纳税信用等级", "credit_grade", "string", None, "纳税信用评价结果：A、B、M、C、D 级"),
    ("评价年度", "rating_year", "integer", None, "纳税信用评价所属年度"),
    ("更新时间", "updated_at", "timestamp", None, "该条记录最后一次变更的时间"),
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


def _items(rows: list[tuple[str, str, str, str | None, str]]) -> list[dict[str, object]]:
    return [{"name": n, "column": c, "data_type": t, "subject_id": s, "description": d} for n, c, t, s, d in rows]


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
