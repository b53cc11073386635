"""The part of the demo a person walks through in the browser: web accounts at each agency, the enterprise data
offered for online browsing with the legal representatives' ID numbers masked, and an application for the tax
bureau's conditional entry waiting for its answer. README.md ("Try it in the browser") follows these steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from core import clock
from samples.demo_sources import HR, MARKET, TAX, DemoAgency, agency_code

PASSWORD = "govshare-demo"  # demo accounts only: `govshare user password NAME` sets a real one
OFFICE = DemoAgency(agency_code("00242004"), "上海市人民政府办公厅")
COMMISSION = DemoAgency(agency_code("00242005"), "上海市经济和信息化委员会")
APPLICATION_ITEMS = ["uscc", "taxpayer_name", "credit_grade"]


@dataclass(frozen=True)
class DemoUser:
    username: str
    name: str
    agency: DemoAgency
    role: str
    does: str  # what a new user does with this account (printed by the demo, told by the README)


USERS = (
    DemoUser("zhang.wei", "张伟", HR, "data_admin", "资源需求方：查目录、在线浏览（身份证号脱敏）、申请按需共享、提请协调"),
    DemoUser("wang.fang", "王芳", TAX, "data_admin", "资源提供方：答复纳税信用等级的共享申请"),
    DemoUser("li.na", "李娜", MARKET, "data_admin", "资源提供方：企业基本信息（看本机构数据不脱敏）"),
    DemoUser("zhao.lei", "赵磊", OFFICE, "coordination_office", "领导小组办公室：对有异议的答复作出协调结论"),
    DemoUser("sun.min", "孙敏", COMMISSION, "supervisor", "监督：查看各机构评估与监督情况"),
)


def add_oversight_agencies(session: Session) -> None:
    from registry.people.agencies import add_agency

    for agency in (OFFICE, COMMISSION):
        add_agency(session, code=agency.code, name=agency.name, actor="demo")


def add_people(session: Session) -> None:
    """One web account per role a new user plays, with their names (shown on every page) and the demo password."""
    from registry.people.auth import console
    from registry.people.users import add_user

    for user in USERS:
        add_user(session, username=user.username, display_name=user.name, agency=user.agency.code, roles=[user.role],
                 password=PASSWORD, by=console("demo"))


def mask_identifiers(session: Session, *, resource_code: str, scan_folder: Path) -> None:
    """The market regulator's secrecy review marks the legal representatives' ID numbers as personal data, so
    every consumer browses them masked (unless a decision lifts it), and records the secrecy agreement the HR
    bureau signed, without which a marked resource is not shared at all (article 14)."""
    from registry.sharing.agreements import add_agreement, set_sensitivity
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    provider = user_principal(get_user(session, username="li.na"))
    set_sensitivity(session, resource_code=resource_code, by=provider, personal_privacy=True,
                    personal_columns=["legal_rep_id"], note="法定代表人身份证号码属于个人隐私，在线浏览时脱敏")
    today = clock.today()
    add_agreement(session, resource_code=resource_code, consumer=HR.code, parties=[MARKET.name, HR.name],
                  signed_on=today, valid_until=today.replace(year=today.year + 1) - timedelta(days=1),
                  scan=_agreement_scan(scan_folder / "保密协议-演示.pdf"), by=provider)


def _agreement_scan(path: Path) -> Path:
    """A stand-in for the signed scan of the agreement (a one-page PDF saying what it stands for)."""
    from reportlab.pdfgen import canvas

    from schemas.pdf_font import cjk_font

    font = cjk_font()
    page = canvas.Canvas(str(path), initialFontName=font)
    page.setFont(font, 16)
    page.drawString(72, 760, "政务数据资源共享安全保密协议（演示用扫描件）")
    page.setFont(font, 11)
    page.drawString(72, 730, f"甲方：{MARKET.name}　乙方：{HR.name}　资源：企业基本信息")
    page.save()
    return path


def apply_for_credit(session: Session, *, resource_code: str) -> str:
    """张伟 of the HR bureau applies for three data items of the tax credit entry; its number."""
    from registry.sharing.applications import apply
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    applicant = user_principal(get_user(session, username="zhang.wei"))
    application = apply(session, resource_code=resource_code, consumer=HR.code, scope="本市新办就业参保登记的用人单位",
                        purpose="就业参保登记时核验用人单位纳税信用等级", items=APPLICATION_ITEMS, by=applicant)
    return application.number
