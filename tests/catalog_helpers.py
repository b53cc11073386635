"""Setup for the catalogue tests: a registry on SQLite or PostgreSQL with two agencies, their
designated people, and entries driven through the same service functions as the CLI and API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import OTHER_PROVIDER, PROVIDER

BACKENDS = ["sqlite", "postgresql"]
# 浦东新区 agency under the city's market regulator (article 25); a valid code (GB 32100 check characters).
DISTRICT = ("11310115MB2F39586Q", "上海市浦东新区市场监督管理局")
DESIGNATED_FROM = date(2024, 1, 1)


@pytest.fixture(params=BACKENDS, name="catalog_home")
def catalog_home_fixture(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated registry on each backend, with a calendar folder of its own (no operator schedule leaks in;
    it holds only the test schedule conftest installs in December, see ``without_schedules``)."""
    from core.settings import reset_settings
    from core.calendar.workdays import reload_calendars

    monkeypatch.setenv("GOVSHARE_CALENDAR_DIR", str(tmp_path / "calendars"))
    home = request.getfixturevalue("hub_home" if request.param == "sqlite" else "pg_hub_home")
    reset_settings()
    reload_calendars()
    yield home
    reload_calendars()


def without_schedules() -> None:
    """Empty the hub's calendar folder: for tests of a year the library does not know, whatever the date."""
    from core.settings import get_settings
    from core.calendar.workdays import reload_calendars

    for schedule in get_settings().calendar_dir.glob("*.json"):
        schedule.unlink()
    reload_calendars()


def entry_data(**changes: Any):
    from schemas.catalog_metadata import CatalogEntryData

    content: dict[str, Any] = {
        "classification": "101001", "name": "企业基本信息", "abstract": "本市登记注册企业的名称、统一社会信用代码和登记状态",
        "format": "database",
        "data_items": [{"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "subject_id": "uscc"},
                       {"name": "企业名称", "column": "name", "data_type": "string"},
                       {"name": "注册资本", "column": "reg_capital", "data_type": "decimal"}],
        "sharing_type": "unconditional", "sharing_modes": ["interface", "file"], "update_cycle": "daily",
    }
    content.update(changes)
    return CatalogEntryData.model_validate(content)


def setup_people(session) -> None:
    """Provider with cataloguer zhang, reviewer li, administrator chen; another agency with reviewer zhao."""
    from registry.people.persons import add_person, designate
    from tests.helpers import ensure_agency

    ensure_agency(session, *PROVIDER)
    ensure_agency(session, *OTHER_PROVIDER)
    for account, name, agency, role in [("zhang", "张三", PROVIDER, "cataloguer"), ("li", "李四", PROVIDER, "reviewer"),
                                        ("chen", "陈五", PROVIDER, "administrator"),
                                        ("zhao", "赵六", OTHER_PROVIDER, "reviewer")]:
        add_person(session, agency=agency[0], account=account, name=name, phone="021-12345678", actor="test")
        designate(session, account=account, role=role, valid_from=DESIGNATED_FROM, actor="test")


def publish(session, code: str, *, on: date | None = None, reviewer: str = "li") -> None:
    """Submit, pass the confidentiality review and approve the entry's latest revision."""
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )

    submit_revision(session, code=code, account="zhang", on=on)
    record_confidentiality_review(session, code=code, account=reviewer, passed=True, note="不涉密", on=on)
    review_revision(session, code=code, account=reviewer, approve=True, on=on)


def new_entry(session, **changes: Any) -> str:
    from registry.catalog.entries import upsert_entry

    return upsert_entry(session, agency=PROVIDER[0], data=entry_data(**changes), author="zhang", actor="test").resource.code


def audit_actions(session, code: str) -> list[str]:
    from sqlalchemy import select

    from registry.audit.models import AuditEvent

    return list(session.scalars(select(AuditEvent.action).where(AuditEvent.resource_code == code)
                                .order_by(AuditEvent.id)))


def received_applications(received: date, count: int) -> list[str]:
    """The provider's conditional entry (published 2026-10-12) and `count` applications of the consumer for it
    received on `received`, each in a session of that day; their numbers."""
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.sharing.applications import apply
    from tests.clock import on, pinned
    from tests.helpers import CONSUMER, ensure_agency

    with pinned(on(received)), session_scope() as session:
        setup_people(session)
        ensure_agency(session, *CONSUMER)
        code = new_entry(session, classification="101001", name="企业基本信息", sharing_type="conditional",
                         sharing_condition="仅用于履职核验")
        publish(session, code, on=date(2026, 10, 12))
        return [apply(session, resource_code=code, consumer=CONSUMER[0], scope="本市企业", purpose="社保稽核",
                      items=["uscc", "name"], by=console("test"), submitted_at=on(received)).number
                for _ in range(count)]
