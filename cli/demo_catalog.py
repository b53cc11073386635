"""The demo's catalogue step (issue 3): the market regulator's people, and its enterprise resource catalogued
with all core elements, submitted, confidentiality-reviewed and published by a designated reviewer."""

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


def catalogue_enterprises(session: Session, *, agency: str, code: str, abstract: str) -> int:
    """Designate the agency's people and publish the entry's full elements through review; the revision number."""
    from registry.catalog import upsert_entry
    from registry.catalog_review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.people import add_person, designate
    from schemas.catalog_metadata import CatalogEntryData

    since = date(2025, 1, 1)
    for account, name, role in [("scjg-zhang", "张敏", "cataloguer"), ("scjg-li", "李强", "reviewer"),
                                ("scjg-chen", "陈静", "administrator")]:
        add_person(session, agency=agency, account=account, name=name, office="信息中心")
        designate(session, account=account, role=role, valid_from=since)
    data = CatalogEntryData(
        classification=code.split("/")[0], name="企业基本信息", abstract=abstract, format="database",
        data_items=[{"name": n, "column": c, "data_type": t, "subject_id": s} for n, c, t, s in ENTERPRISE_ITEMS],
        sharing_type="unconditional", sharing_modes=["interface", "file"], update_cycle="daily")
    revision = upsert_entry(session, agency=agency, data=data, code=code, author="scjg-zhang")
    submit_revision(session, code=code, account="scjg-zhang")
    record_confidentiality_review(session, code=code, account="scjg-li", passed=True,
                                  note="不涉及国家秘密；法定代表人身份证号码按申请授权提供")
    review_revision(session, code=code, account="scjg-li", approve=True)
    return revision.number
