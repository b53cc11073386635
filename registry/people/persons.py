"""People of an agency and their dated designations (指定专人, articles 10 and 21).

A designation names a person for a role from a day (inclusive) to an optional last day (inclusive). Ending
one sets its last day; nothing is deleted, so "who was the reviewer on that day" can always be answered.
The data resource administrators (数据资源管理员) are filed with the commission (市经济信息化委, article 21):
`administrators_rows` gives the list and `write_administrators` writes it as .xlsx or .csv.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied, ConfigError, NotFound
from core.sheet_text import checked_name, for_people
from core.xlsx import append_row
from registry.audit.log import record_event
from registry.people.agencies import get_agency
from registry.people.models import DESIGNATION_ROLES, Designation, Person
from registry.seals import edited, intact

__all__ = [
    "ADMINISTRATOR_HEADERS",
    "act_day",
    "add_person",
    "administrators_rows",
    "designate",
    "designated_people",
    "designations",
    "end_designation",
    "get_person",
    "list_people",
    "person_actor",
    "require_designated",
    "write_administrators",
]

ADMINISTRATOR_HEADERS = ("机构名称", "统一社会信用代码", "层级", "区县", "姓名", "账号", "处室", "电话", "电子邮箱",
                         "指定日期", "终止日期")


def act_day(on: date | None) -> date:
    """The day an act (submission, review, reconfirmation) counts for: today, or an earlier day being recorded."""
    today = clock.today()
    if on is not None and on > today:
        raise ConfigError(f"日期 {on} 晚于今天 {today}，不能预先办理 / an act cannot be dated in the future")
    return on or today


def _role(role: str) -> str:
    for code, label in DESIGNATION_ROLES.items():
        if role in (code, label):
            return code
    raise ConfigError(f"角色 {role!r} 无效，可选：{'、'.join(DESIGNATION_ROLES.values())} / role must be one of {', '.join(DESIGNATION_ROLES)}")


def add_person(session: Session, *, agency: str, account: str, name: str, phone: str = "", email: str = "",
               office: str = "", actor: str = "cli") -> Person:
    owner = get_agency(session, ref=agency)
    account = account.strip()
    if not account or not name.strip():
        raise ConfigError("人员需要账号和姓名 / a person needs an account and a name")
    checked_name(account, what_zh="账号", what_en="an account")
    checked_name(name.strip(), what_zh="姓名", what_en="a person's name")
    checked_name(office, what_zh="处室", what_en="an office")
    if session.scalar(select(Person).where(Person.account == account)):
        raise ConfigError(f"账号 {account} 已存在 / account {account} already exists; `govshare person list` shows it")
    person = Person(agency_id=owner.id, account=account, name=name.strip(), phone=phone, email=email, office=office)
    session.add(person)
    session.flush()
    record_event(session, actor=actor, action="person.add", agency_code=owner.code,
                 detail={"account": account, "name": person.name})
    return person


def get_person(session: Session, *, account: str) -> Person:
    person = session.scalar(select(Person).where(Person.account == account.strip()))
    if person is None:
        raise NotFound(f"没有账号为 {account!r} 的人员（`govshare person list`） / no person with account {account!r}")
    return person


def list_people(session: Session, *, agency: str | None = None) -> list[Person]:
    query = select(Person).order_by(Person.agency_id, Person.account)
    if agency:
        query = query.where(Person.agency_id == get_agency(session, ref=agency).id)
    return list(session.scalars(query))


def designate(session: Session, *, account: str, role: str, valid_from: date | None = None,
              valid_to: date | None = None, note: str = "", actor: str = "cli") -> Designation:
    """Designate a person of an agency for a role from `valid_from` (default today, Beijing time)."""
    person = get_person(session, account=account)
    role = _role(role)
    start = valid_from or clock.today()
    if valid_to is not None and valid_to < start:
        raise ConfigError(f"终止日期 {valid_to} 早于指定日期 {start} / the designation would end before it starts")
    for existing in _designations_of(session, person=person, role=role):
        end = existing.valid_to or date.max
        if existing.valid_from <= (valid_to or date.max) and start <= end:
            raise ConfigError(f"{person.name}（{account}）在 {existing.valid_from} 起已被指定为{DESIGNATION_ROLES[role]}，期间重叠"
                              f" / overlaps an existing designation; end it first (`govshare person undesignate`)")
    designation = Designation(person_id=person.id, agency_id=person.agency_id, role=role, valid_from=start,
                              valid_to=valid_to, note=note)
    session.add(designation)
    session.flush()
    record_event(session, actor=actor, action="person.designate", agency_code=person.agency.code,
                 detail={"account": account, "role": role, "from": start, "to": valid_to})
    return designation


def end_designation(session: Session, *, account: str, role: str, last_day: date | None = None,
                    actor: str = "cli") -> Designation:
    """End a person's open designation for a role; `last_day` (default yesterday) is its last valid day."""
    person = get_person(session, account=account)
    role = _role(role)
    last_day = last_day or clock.today() - timedelta(days=1)
    current = [d for d in _designations_of(session, person=person, role=role) if d.valid_to is None]
    if not current:
        raise ConfigError(f"{person.name}（{account}）没有在任的{DESIGNATION_ROLES[role]}指定 / no open designation to end")
    designation = current[0]
    if last_day < designation.valid_from - timedelta(days=1):
        raise ConfigError(f"终止日期 {last_day} 早于指定日期 {designation.valid_from} / ends before it started")
    designation.valid_to = last_day
    record_event(session, actor=actor, action="person.undesignate", agency_code=person.agency.code,
                 detail={"account": account, "role": role, "last_day": last_day})
    return designation


def _designations_of(session: Session, *, person: Person, role: str) -> list[Designation]:
    return list(session.scalars(select(Designation).where(Designation.person_id == person.id,
                                                          Designation.role == role)))


def designations(session: Session, *, agency: str | None = None, role: str | None = None,
                 on: date | None = None) -> list[Designation]:
    """Designations (history included), or only those in force on day `on`."""
    query = select(Designation).order_by(Designation.agency_id, Designation.role, Designation.valid_from)
    if agency:
        query = query.where(Designation.agency_id == get_agency(session, ref=agency).id)
    if role:
        query = query.where(Designation.role == _role(role))
    if on:
        query = query.where(Designation.valid_from <= on,
                            or_(Designation.valid_to.is_(None), Designation.valid_to >= on))
    return list(session.scalars(query))


def designated_people(session: Session, *, agency: str, role: str, on: date | None = None) -> list[Person]:
    """Who held the role at the agency on that day (default today)."""
    return [d.person for d in designations(session, agency=agency, role=role, on=on or clock.today())]


def person_actor(account: str) -> str:
    """How the audit names a person acting on their own designation (the same as a signed-in user)."""
    return f"user:{account}"


def require_designated(session: Session, *, account: str, agency_id: int, roles: tuple[str, ...],
                       on: date) -> Person:
    """The person, if designated by that agency for one of `roles` on day `on`; otherwise AccessDenied."""
    person = get_person(session, account=account)
    wanted = "或".join(DESIGNATION_ROLES[r] for r in roles)
    if person.agency_id != agency_id:
        raise AccessDenied(f"{person.name}（{account}）不属于该目录条目的提供方，不能作为其{wanted}",
                           f"{account} belongs to another agency than the entry's provider")
    held = list(session.scalars(select(Designation).where(
        Designation.person_id == person.id, Designation.role.in_(roles), Designation.valid_from <= on,
        or_(Designation.valid_to.is_(None), Designation.valid_to >= on))))
    if held and not any(intact(d) for d in held):  # its dates, role or person set outside the hub
        raise AccessDenied(*edited(zh=f"{person.name}（{account}）的指定", en=f"designation of {account}"))
    if not held:
        raise AccessDenied(f"{person.name}（{account}）在 {on} 未被本机构指定为{wanted}",
                           f"{account} was not designated as {' or '.join(roles)} by the agency on {on}")
    return person


def administrators_rows(session: Session, *, agency: str | None = None, on: date | None = None) -> list[tuple]:
    """The data resource administrators in force on `on` (default today), one row each, for filing."""
    rows = []
    for d in designations(session, agency=agency, role="administrator", on=on or clock.today()):
        a, p = d.person.agency, d.person
        rows.append((a.name, a.code, {"city": "市级"}.get(a.level, "区县级"), a.district or "", p.name, p.account,
                     p.office, p.phone, p.email, d.valid_from.isoformat(), d.valid_to.isoformat() if d.valid_to else ""))
    return rows


def write_administrators(rows: list[tuple], path: Path) -> Path:
    """Write the filing list as .xlsx (openpyxl) or .csv (UTF-8 with BOM, so Excel reads the Chinese)."""
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.title = "数据资源管理员"
        sheet.append(ADMINISTRATOR_HEADERS)
        for row in rows:
            append_row(sheet, row)  # names as text, never formulas (core.xlsx)
        book.save(path)
    elif path.suffix.lower() == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(ADMINISTRATOR_HEADERS)
            writer.writerows([for_people(v) for v in row] for row in rows)  # never a formula: core/sheet_text.py
    else:
        raise ConfigError(f"{path.name}: 仅支持 .xlsx 或 .csv / write .xlsx or .csv")
    return path
