"""A seeded year (2026) of activity across three provider agencies and one consumer, with known violations,
for the supervision tests. Everything goes through the service functions (catalogue review, syncs,
subscriptions, applications, grants, tokens, reads, rectification); the platform stamps some moments with the
wall clock, so those are then moved back to the day the story says (``_on``). Rows are written directly only
where no service exists for a fact from outside (a schema change seen at the source, a consistency check's
outcome, a run's quarantine, webhook outcomes).

Agencies: A = market regulator (PROVIDER), B = civil affairs (OTHER_PROVIDER), C = Pudong district market
regulator (DISTRICT); consumer = human resources (CONSUMER); supervisor user in the commission (COMMISSION).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from core.clock import BEIJING_TIME as BEIJING
from samples.loaders import load_sqlite
from tests.catalog_helpers import DISTRICT
from tests.helpers import CONSUMER, OTHER_PROVIDER, PROVIDER, ensure_agency, person_of
from tests.sharing_world import COMMISSION, PASSWORD

AS_OF = date(2026, 11, 25)
A, B, C = PROVIDER, OTHER_PROVIDER, DISTRICT
ROWS = 50  # rows in each sample source table


def on_day(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), BEIJING)


def _item(name: str, column: str, data_type: str = "string", description: str = "说明", **extra: Any) -> dict:
    return {"name": name, "column": column, "data_type": data_type, "description": description, **extra}


def _entry(classification: str, name: str, *, items: list[dict], sharing_type: str = "unconditional",
           release: bool = True, cycle: str = "daily", condition: str = ""):
    from schemas.catalog_metadata import CatalogEntryData

    return CatalogEntryData.model_validate({
        "classification": classification, "name": name, "abstract": f"{name}（测试摘要）", "format": "database",
        "data_items": items, "sharing_type": sharing_type, "sharing_condition": condition,
        "sharing_modes": [] if sharing_type == "not_shared" else ["interface", "file"], "update_cycle": cycle,
        "release_date": "2026-01-01" if release else None})


ENTERPRISE_ITEMS = [_item("统一社会信用代码", "uscc", subject_id="uscc"), _item("企业名称", "name"),
                    _item("登记状态", "status")]


@dataclass
class SupervisionWorld:
    codes: dict[str, str] = field(default_factory=dict)  # A1, A2, ... -> resource code
    ids: dict[str, int] = field(default_factory=dict)  # named records -> ids
    consumer_token: str = ""
    provider_b_token: str = ""
    supervisor_session: str = ""
    provider_b_session: str = ""


def _people(session) -> None:
    from registry.people.persons import add_person, designate

    for key, agency in (("a", A), ("b", B), ("c", C)):
        for role in ("cataloguer", "reviewer"):
            account = f"{key}_{role}"
            add_person(session, agency=agency[0], account=account, name=f"{key.upper()}{role}", actor="test")
            designate(session, account=account, role=role, valid_from=date(2024, 1, 1), actor="test")


def _publish(session, code: str, key: str, day: date) -> None:
    """Submit, pass the confidentiality review and approve on `day`; the publication is stamped that day."""
    from sqlalchemy import select

    from registry.catalog.models import CatalogRevision
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )

    submit_revision(session, code=code, account=f"{key}_cataloguer", on=day)
    record_confidentiality_review(session, code=code, account=f"{key}_reviewer", passed=True, note="不涉密", on=day)
    revision = review_revision(session, code=code, account=f"{key}_reviewer", approve=True, on=day)
    revision.published_at = on_day(day)
    assert session.scalar(select(CatalogRevision.id).where(CatalogRevision.id == revision.id))


def _new(session, world: SupervisionWorld, name: str, agency: tuple[str, str], data, created: date) -> str:
    from registry.catalog.entries import upsert_entry

    revision = upsert_entry(session, agency=agency[0], data=data, author=f"{name[0].lower()}_cataloguer", actor="test")
    revision.resource.created_at = on_day(created)
    world.codes[name], world.ids[name] = revision.resource.code, revision.resource.id
    return revision.resource.code


def _sync(world: SupervisionWorld, name: str, source: str, finished: date) -> None:
    from sqlalchemy import select

    from pipeline.sync import sync_resource
    from registry.catalog.entries import attach_stream
    from registry.db import session_scope
    from registry.exchange.models import DatasetVersion, SyncRun

    with session_scope() as session:
        attach_stream(session, code=world.codes[name], source=source, table="enterprises", primary_key=["id"],
                      cursor_column="updated_at", actor="test")
    sync_resource(resource_code=world.codes[name], full=True)
    with session_scope() as session:
        for run in session.scalars(select(SyncRun).where(SyncRun.resource_id == world.ids[name])):
            run.started_at, run.finished_at = on_day(finished, 9), on_day(finished)
        for version in session.scalars(select(DatasetVersion).where(DatasetVersion.resource_id == world.ids[name])):
            version.created_at = on_day(finished)
            world.ids[f"{name}.version"] = version.id


def build(tmp_path: Path) -> SupervisionWorld:
    from sqlalchemy import select

    from registry.sharing.applications import apply, decide
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.exchange.delivery_models import Delivery
    from registry.catalog.elements import add_element
    from registry.exchange.models import SchemaChange, SyncRun
    from registry.sharing.models import Grant, Subscription
    from registry.exchange.notice_models import Notice
    from registry.catalog.obligations import open_update_obligation, reconfirm_entry
    from registry.quality.models import ConsistencyCheck, QuarantineSet
    from registry.quality.quarantine import Findings, settle_quarantine
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source
    from registry.sharing.subscriptions import subscribe
    from registry.people.tokens import issue_token
    from registry.people.users import add_user, login

    admin = console("test")
    world = SupervisionWorld()
    database = tmp_path / "source.db"
    load_sqlite(database, rows=ROWS, seed=7)
    with session_scope() as session:
        for agency in (A, B, C, CONSUMER, COMMISSION):
            ensure_agency(session, *agency)
        _people(session)
        sources = {}
        for key, agency in (("A", A), ("B", B), ("C", C)):
            sources[key] = f"sqlite-{key}-{uuid.uuid4().hex[:6]}"
            add_source(session, name=sources[key], agency=agency[0], kind="sqlite", config={"path": str(database)},
                       actor="test")
        # A: two published entries (A1 complete; A2 conditional without release date) and one registered stream
        _new(session, world, "A1", A, _entry("101001", "企业基本信息", items=ENTERPRISE_ITEMS), date(2026, 2, 1))
        _publish(session, world.codes["A1"], "a", date(2026, 2, 10))
        _new(session, world, "A2", A, _entry("101002", "企业年报信息", items=ENTERPRISE_ITEMS, release=False,
                                             sharing_type="conditional", condition="仅用于履职核验", cycle="monthly"),
             date(2026, 2, 20))
        _publish(session, world.codes["A2"], "a", date(2026, 3, 2))
        a3 = add_resource(session, name="企业变更记录", agency=A[0], classification="101003", actor="test")
        a3.created_at, world.codes["A3"], world.ids["A3"] = on_day(date(2026, 11, 20)), a3.code, a3.id
        # B: B1 carries the enterprise-name element A is authoritative for; B2 never gets data; B3 not shared,
        # last maintained in 2024
        _new(session, world, "B1", B, _entry("102001", "社会组织登记信息", cycle="weekly", items=[
            _item("统一社会信用代码", "uscc", subject_id="uscc"), _item("名称", "name", element_code="QYMC")]),
             date(2026, 1, 5))
        _publish(session, world.codes["B1"], "b", date(2026, 1, 15))
        _new(session, world, "B2", B, _entry("102002", "养老机构信息", sharing_type="conditional",
                                             condition="仅用于养老服务监管", items=[
            _item("统一社会信用代码", "uscc"), _item("机构名称", "name", description="")]), date(2026, 8, 20))
        _publish(session, world.codes["B2"], "b", date(2026, 9, 1))
        _new(session, world, "B3", B, _entry("102003", "困难群众救助对象", sharing_type="not_shared",
                                             condition="《社会救助暂行办法》规定的个人隐私保护",
                                             items=[_item("身份证号码", "idcard")]), date(2024, 5, 6))
        _publish(session, world.codes["B3"], "b", date(2024, 6, 3))
        # C: C1 shared; C2 not shared, reconfirmed this year; C3 a draft never reviewed
        _new(session, world, "C1", C, _entry("103001", "浦东企业名录", cycle="irregular", items=ENTERPRISE_ITEMS),
             date(2026, 4, 20))
        _publish(session, world.codes["C1"], "c", date(2026, 5, 6))
        _new(session, world, "C2", C, _entry("103002", "浦东执法案件", sharing_type="not_shared",
                                             condition="《行政处罚法》规定的未结案件信息",
                                             items=[_item("案件编号", "case_no")]), date(2025, 2, 20))
        _publish(session, world.codes["C2"], "c", date(2025, 3, 3))
        _new(session, world, "C3", C, _entry("103003", "浦东广告登记", items=ENTERPRISE_ITEMS), date(2026, 9, 1))
    for name, key, day in (("A1", "A", date(2026, 11, 24)), ("A2", "A", date(2026, 11, 2)),
                           ("B1", "B", date(2026, 10, 15)), ("C1", "C", date(2026, 10, 15))):
        _sync(world, name, sources[key], day)

    with session_scope() as session:
        add_element(session, code="QYMC", name="企业名称", agency=A[0], resource_code=world.codes["A1"], column="name",
                    key_column="uscc", actor="test")
        reconfirm_entry(session, code=world.codes["C2"], account="c_reviewer", on=date(2026, 11, 3))
        # update clocks: A2 kept (opened 10-12, published 10-13), B1 missed (still open), C1 missed (closed late)
        world.ids["A2.obligation"] = open_update_obligation(
            session, resource_code=world.codes["A2"], reason="信息项调整", actor="test", kind="elements",
            opened_on=date(2026, 10, 12)).id
        from registry.catalog.entries import upsert_entry

        upsert_entry(session, agency=A[0], code=world.codes["A2"], author="a_cataloguer", actor="test",
                     data=_entry("101002", "企业年报信息", items=ENTERPRISE_ITEMS[:2], release=False,
                                 sharing_type="conditional", condition="仅用于履职核验", cycle="monthly"))
        _publish(session, world.codes["A2"], "a", date(2026, 10, 13))
        world.ids["B1.obligation"] = open_update_obligation(
            session, resource_code=world.codes["B1"], reason="数据资源变化", actor="test", opened_on=date(2026, 10, 19)).id
        world.ids["C1.obligation"] = open_update_obligation(
            session, resource_code=world.codes["C1"], reason="信息项说明调整", actor="test", kind="elements",
            opened_on=date(2026, 11, 2)).id
        upsert_entry(session, agency=C[0], code=world.codes["C1"], author="c_cataloguer", actor="test",
                     data=_entry("103001", "浦东企业名录", cycle="irregular",
                                 items=[*ENTERPRISE_ITEMS[:2], _item("登记状态", "status", description="存续、注销等")]))
        _publish(session, world.codes["C1"], "c", date(2026, 11, 6))
        # the source started collecting a column C's catalogue does not declare (23.2: widened collection)
        change = SchemaChange(resource_id=world.ids["C1"], run_id="run-c1-drift", previous_version=1,
                              signature="c1-drift", added=[{"name": "mobile", "type": "string", "nullable": True}],
                              dropped=[], retyped=[], compatible=True, reason="source added a column", actor="test")
        session.add(change)
        # a run of C1 in which 30 of 200 rows failed the quality rules (15% > 5%), not yet corrected
        session.add(SyncRun(id="run-c1-bad", resource_id=world.ids["C1"], status="published", mode="incremental",
                            started_at=on_day(date(2026, 11, 10), 9), finished_at=on_day(date(2026, 11, 10)),
                            rows_read=200, rows_published=170, rows_quarantined=30))
        session.flush()
        world.ids["C1.change"] = change.id
        settle_quarantine(session, resource_id=world.ids["C1"], run_id="run-c1-bad", version_id=None,
                          path="quarantine/c1/run-c1-bad.parquet", rows=30, rules={"identifier_uscc": 30},
                          findings=Findings(entries=[(str(k), "identifier_uscc", "统一社会信用代码无效 / invalid")
                                                     for k in range(1, 31)]))
        world.ids["C1.quarantine"] = session.scalar(select(QuarantineSet.id).where(
            QuarantineSet.run_id == "run-c1-bad"))
        # B1 is a copy that disagrees with the authority in 3 places
        check = ConsistencyCheck(resource_id=world.ids["B1"], copy_version_id=world.ids["B1.version"],
                                 elements={"QYMC": {"mismatches": 3}}, rows_compared=ROWS, mismatches=3, missing=0)
        session.add(check)
        session.flush()
        world.ids["B1.check"] = check.id

        # sharing: the consumer subscribes to A1 and C1; applies for A2 (decided in time) and B2 (never decided)
        subscribe(session, resource_code=world.codes["A1"], agency=CONSUMER[0], purpose="就业登记核验", actor="test")
        world.ids["A1.grant"] = session.scalar(select(Grant.id).where(Grant.resource_id == world.ids["A1"]))
        subscribe(session, resource_code=world.codes["C1"], agency=CONSUMER[0], purpose="就业登记核验", actor="test")
        world.ids["C1.grant"] = session.scalar(select(Grant.id).where(Grant.resource_id == world.ids["C1"]))
        a2_application = apply(session, resource_code=world.codes["A2"], consumer=CONSUMER[0], scope="本市企业",
                               purpose="社保稽核", items=["uscc", "name"], by=admin,
                               submitted_at=on_day(date(2026, 10, 9)))
        decide(session, number=a2_application.number, outcome="approve", reasons="符合履职需要",
               by=person_of(session, a2_application.resource.agency.code, "data_admin"))
        a2_application.decided_at = on_day(date(2026, 10, 20))
        b2_application = apply(session, resource_code=world.codes["B2"], consumer=CONSUMER[0], scope="养老机构",
                               purpose="养老保险核验", items=["uscc", "name"], by=admin,
                               submitted_at=on_day(date(2026, 10, 26)))
        world.ids["A2.application"], world.ids["B2.application"] = a2_application.id, b2_application.id

        # delivery outcomes: A1's update notice delivered and its SFTP push failed; C1's notice delivered
        consumer_id = ensure_agency(session, *CONSUMER).id
        subscriptions = {s.resource_id: s.id for s in session.scalars(select(Subscription).where(
            Subscription.agency_id == consumer_id))}
        for name in ("A1", "C1"):
            session.add(Notice(subscription_id=subscriptions[world.ids[name]], version_id=world.ids[f"{name}.version"],
                               resource_id=world.ids[name], agency_id=consumer_id, resource_code=world.codes[name],
                               version_number=1, payload={}, status="delivered", created_at=on_day(date(2026, 11, 12))))
        session.add(Delivery(agency_id=consumer_id, resource_id=world.ids["A1"], version_id=world.ids["A1.version"],
                             kind="full", channel="sftp", status="failed", attempts=5, last_error="connection refused",
                             created_at=on_day(date(2026, 11, 12))))
        world.consumer_token = issue_token(session, agency=CONSUMER[0], name="hr-system", days=30, actor="test")
        world.provider_b_token = issue_token(session, agency=B[0], name="mz-system", days=30, actor="test")
        add_user(session, username="inspector", agency=COMMISSION[0], roles=["supervisor"], password=PASSWORD,
                 by=admin)
        add_user(session, username="mz.admin", agency=B[0], roles=["data_admin"], password=PASSWORD, by=admin)
    with session_scope() as session:
        world.supervisor_session = login(session, username="inspector", password=PASSWORD)
        world.provider_b_session = login(session, username="mz.admin", password=PASSWORD)
    _reads(world)
    return world


def _reads(world: SupervisionWorld) -> None:
    """A lawful read, then the planted ones: after the grant's revocation, for another purpose, a revoked token."""
    import pytest
    from sqlalchemy import select

    from core.errors import AuthenticationFailed
    from delivery.access import audit_read, authorize_read
    from registry.audit.log import record_event
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.sharing.grants import revoke_grant
    from registry.people.models import ApiToken
    from registry.people.tokens import issue_token, revoke_token

    with session_scope() as session:
        decision = authorize_read(session, token=world.consumer_token, resource_code=world.codes["A1"], channel="file")
        audit_read(session, decision=decision, rows=ROWS, fmt="csv")
        granted = decision.columns or "all"  # a subscription grants its entry's items: the misuse reads only those
        revoked = revoke_grant(session, grant_id=world.ids["C1.grant"], reason="用途已结束", by=console("test"))
        # revoked an hour ago: well past the moment a cached interface decision may still answer
        revoked.revoked_at = revoked.revoked_at - timedelta(hours=1)
    with session_scope() as session:
        # a channel that kept serving after the revocation (23.4), and a read declared for marketing (23.5)
        world.ids["outside.event"] = record_event(
            session, actor="system:hr-system", action="data.read", agency_code=CONSUMER[0],
            resource_code=world.codes["C1"], detail={"channel": "interface", "rows": 10, "columns": "all",
                                                     "purpose": "就业登记核验", "grant": world.ids["C1.grant"]}).id
        world.ids["purpose.event"] = record_event(
            session, actor="system:hr-system", action="data.read", agency_code=CONSUMER[0],
            resource_code=world.codes["A1"], detail={"channel": "file", "rows": 50, "columns": granted,
                                                     "purpose": "商业营销推广", "grant": world.ids["A1.grant"]}).id
        leaked = issue_token(session, agency=CONSUMER[0], name="leaked-system", days=30, actor="test")
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "leaked-system"))
        revoke_token(session, token_id=token_id, actor="test")
        world.ids["leaked.token"] = token_id
    for _ in range(2):
        with session_scope() as session, pytest.raises(AuthenticationFailed):
            authorize_read(session, token=leaked, resource_code=world.codes["A1"], channel="file")
