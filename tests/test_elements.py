"""One data, one source (一数一源): the data-element registry, duplicate collection between two agencies, and the
consistency of a non-authoritative copy with the authoritative dataset (SQLite sources, real syncs)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from samples.demo_sources import TAX, make_market_db, make_tax_db
from tests.helpers import PROVIDER, register_resource

ROWS = 200
TAX_AGENCY = (TAX.code, TAX.name)


def _valid_uscc(body: str) -> str:
    from quality.identifiers import orgcode_check_char, uscc_check_char

    first17 = "91310000" + body + orgcode_check_char(body)
    return first17 + uscc_check_char(first17)


def _market(tmp_path: Path):  # noqa: ANN202
    db = tmp_path / "market.db"
    make_market_db(db, rows=ROWS)
    return register_resource(kind="sqlite", config={"path": str(db)}, provider=PROVIDER, consumer=TAX_AGENCY)


def _sync(code: str) -> None:
    from pipeline.sync import sync_resource

    sync_resource(resource_code=code)


def renamed_tax_copy(tmp_path: Path) -> tuple[Path, list[str]]:
    """The tax bureau's taxpayer table, three enterprises' names changed from the authority's (旧名 added)."""
    tax_db = tmp_path / "tax.db"
    make_tax_db(tax_db, rows=ROWS)
    with closing(sqlite3.connect(tax_db)) as connection, connection:
        changed = [r[0] for r in connection.execute("SELECT uscc FROM taxpayer_credit ORDER BY uscc LIMIT 3")]
        connection.executemany("UPDATE taxpayer_credit SET taxpayer_name = taxpayer_name || '（旧名）' WHERE uscc = ?",
                               [(u,) for u in changed])
    return tax_db, changed


def _add_name_element(resource_code: str, code: str = "DE0001") -> None:
    from registry.db import session_scope
    from registry.catalog.elements import add_element

    with session_scope() as session:
        add_element(session, code=code, name="企业名称", agency=PROVIDER[0], resource_code=resource_code,
                    column="name", key_column="uscc", subject_key="uscc", actor="test")


def test_duplicate_collection_between_two_agencies_names_the_authority(hub_home: Path, tmp_path: Path) -> None:
    from core.errors import ConfigError
    from registry.db import session_scope
    from registry.catalog.elements import add_element, check_duplicate_collection

    market = _market(tmp_path)
    _sync(market.resource_code)
    _add_name_element(market.resource_code)

    with session_scope() as session:
        findings = check_duplicate_collection(session, agency_code=TAX.code, element_codes=["DE0001", "de0001", "DE9"])
        self_check = check_duplicate_collection(session, agency_code=PROVIDER[0], element_codes=["DE0001"])

    assert [f.kind for f in findings] == ["duplicate_collection", "unknown_element"]
    duplicate = findings[0]
    assert (duplicate.authoritative_agency_code, duplicate.authoritative_agency_name) == PROVIDER
    assert duplicate.resource_code == market.resource_code and duplicate.element_name == "企业名称"
    assert "重复采集" in duplicate.message_zh and "obtain it by sharing" in duplicate.message_en
    assert f"govshare subscribe {market.resource_code} --agency {TAX.code}" in duplicate.suggestion
    assert "DE9" in findings[1].message and "govshare element add" in findings[1].message_en
    assert self_check == []  # the authority itself collects its own element

    with session_scope() as session:
        with pytest.raises(ConfigError, match="already has its one authoritative agency"):
            add_element(session, code="de0001", name="企业名称", agency=PROVIDER[0],
                        resource_code=market.resource_code, column="name")
        with pytest.raises(ConfigError, match="has no column\\(s\\) nom"):
            add_element(session, code="DE0002", name="企业名称", agency=PROVIDER[0],
                        resource_code=market.resource_code, column="nom")
        with pytest.raises(ConfigError, match="belongs to 上海市市场监督管理局"):
            add_element(session, code="DE0003", name="法定代表人", agency=TAX.code,
                        resource_code=market.resource_code, column="legal_rep")


def test_a_copy_is_compared_with_the_authority_and_both_agencies_hear_of_mismatches(hub_home: Path,
                                                                                      tmp_path: Path) -> None:
    from cli.main import app
    from pipeline.paths import resolve
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets

    market = _market(tmp_path)
    tax_db, changed = renamed_tax_copy(tmp_path)
    with closing(sqlite3.connect(tax_db)) as connection, connection:
        connection.execute("UPDATE taxpayer_credit SET taxpayer_name = '  ' || taxpayer_name || ' ' "
                           "WHERE uscc = (SELECT uscc FROM taxpayer_credit ORDER BY uscc DESC LIMIT 1)")
        connection.execute("INSERT INTO taxpayer_credit VALUES (?, '外省企业', 'B', 2025, '2026-01-01 00:00:00')",
                           (_valid_uscc("MA1FL000"),))
    tax = register_resource(kind="sqlite", config={"path": str(tax_db)}, table="taxpayer_credit", key=("uscc",),
                            name="纳税信用等级", classification="102001", provider=TAX_AGENCY, consumer=PROVIDER)
    _sync(market.resource_code)
    _sync(tax.resource_code)

    runner = CliRunner()
    added = runner.invoke(app, ["element", "add", "DE0001", "企业名称", "--agency", PROVIDER[1],
                                "--resource", market.resource_code, "--column", "name"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["element", "list"])
    assert "DE0001" in listed.output and market.resource_code in listed.output

    # the copy's contract says which column copies which element, and which column is the subject key
    attached = runner.invoke(app, ["contract", "attach", tax.resource_code, "taxpayer_credit"])
    assert attached.exit_code == 0, attached.output
    result = runner.invoke(app, ["consistency", tax.resource_code])
    assert result.exit_code == 0, result.output
    assert "DE0001" in result.output

    from sqlalchemy import select

    from registry.quality.models import ConsistencyCheck

    with session_scope() as session:
        check = session.scalar(select(ConsistencyCheck))
        # surrounding blanks are not a difference; the renamed three are; the out-of-town enterprise is missing
        assert (check.rows_compared, check.mismatches, check.missing) == (ROWS, 3, 1)
        assert check.elements["DE0001"]["mismatches"] == 3
        mismatches = pq.read_table(resolve(check.path)).to_pylist()
        tax_tickets = list_tickets(session, agency=TAX.code, status="open")
        market_tickets = list_tickets(session, agency=PROVIDER[0], status="open")
    assert sorted(m["key"] for m in mismatches) == sorted(changed)
    assert all(m["copy_value"] == m["authoritative_value"] + "（旧名）" for m in mismatches)
    assert {m["authoritative_resource"] for m in mismatches} == {market.resource_code}
    assert [(t.kind, t.rows) for t in tax_tickets] == [("consistency", 3)]
    assert [(t.kind, t.rows) for t in market_tickets] == [("consistency", 3)]
    assert "副本" in tax_tickets[0].title and "权威来源" in market_tickets[0].title

    # the agencies' systems read their own tickets over the API; another agency's ticket is refused
    import requests

    from tests.helpers import bearer, issue_token, running_api

    tax_token = issue_token(TAX.code)
    with running_api() as api:
        mine = requests.get(f"{api.base_url}/api/v1/tickets", headers=bearer(tax_token), timeout=10).json()
        assert [(t["id"], t["kind"], t["rows"]) for t in mine] == [(tax_tickets[0].id, "consistency", 3)]
        rows = requests.get(f"{api.base_url}/api/v1/tickets/{tax_tickets[0].id}", headers=bearer(tax_token),
                            timeout=10).json()
        assert sorted(r[rows["columns"].index("key")] for r in rows["data"]) == sorted(changed)
        other = requests.get(f"{api.base_url}/api/v1/tickets/{market_tickets[0].id}", headers=bearer(tax_token),
                             timeout=10)
        assert other.status_code == 403 and "another agency" in other.json()["detail"]
        check = requests.post(f"{api.base_url}/api/v1/elements/duplicate-check", headers=bearer(tax_token),
                              json={"element_codes": ["DE0001"]}, timeout=10).json()
        assert [(f["kind"], f["resource_code"]) for f in check] == [("duplicate_collection", market.resource_code)]
        assert requests.get(f"{api.base_url}/api/v1/tickets", timeout=10).status_code == 401

    shown = runner.invoke(app, ["ticket", "show", str(tax_tickets[0].id)])
    assert shown.exit_code == 0 and "（旧名）" in shown.output
    closed = runner.invoke(app, ["ticket", "close", str(tax_tickets[0].id), "--note", "已按市场监管局数据更正"])
    assert closed.exit_code == 0, closed.output
    again = runner.invoke(app, ["ticket", "close", str(tax_tickets[0].id), "--note", "x"])
    assert again.exit_code == 1 and "already closed" in again.output


def test_consistency_refuses_unclear_requests(hub_home: Path, tmp_path: Path) -> None:
    from core.errors import ConfigError, NotFound
    from pipeline.consistency import check_consistency

    market = _market(tmp_path)
    _sync(market.resource_code)
    _add_name_element(market.resource_code)
    with pytest.raises(ConfigError, match="itself the authority for DE0001"):
        check_consistency(resource_code=market.resource_code, mapping={"name": "DE0001"}, key_column="uscc")
    with pytest.raises(NotFound, match="no data element DE404"):
        check_consistency(resource_code=market.resource_code, mapping={"name": "DE404"}, key_column="uscc")


def test_a_catalogue_entry_collecting_another_agencys_element_is_flagged(hub_home: Path, tmp_path: Path) -> None:
    """Article 11: the tax office catalogues an enterprise-name item the market regulator is authoritative for."""
    from sqlalchemy import select

    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.audit.models import AuditEvent
    from schemas.catalog_metadata import CatalogEntryData
    from tests.helpers import ensure_agency

    market = _market(tmp_path)
    _add_name_element(market.resource_code)
    items = [{"name": "统一社会信用代码", "data_type": "string", "subject_id": "uscc"},
             {"name": "企业名称", "data_type": "string", "element_code": "DE0001"}]
    data = CatalogEntryData(classification="102001", name="纳税人登记信息", abstract="纳税人基本登记信息",
                            data_items=items, sharing_type="unconditional", sharing_modes=["interface"])
    with session_scope() as session:
        ensure_agency(session, *TAX_AGENCY)
        taxed = upsert_entry(session, agency=TAX.code, data=data, author="wang")
        own = upsert_entry(session, agency=PROVIDER[0], author="zhang",
                           data=data.model_copy(update={"classification": "101009", "name": "企业名称库"}))
        flagged = session.scalars(select(AuditEvent).where(AuditEvent.action == "catalog.duplicate_collection")).all()
        tax_code, own_code = taxed.resource.code, own.resource.code
    assert [e.resource_code for e in flagged] == [tax_code]  # the authority cataloguing its own element is fine
    assert flagged[0].detail["findings"][0]["resource"] == market.resource_code
    shown = CliRunner().invoke(_cli(), ["catalog", "show", tax_code, "--revision", "1"])
    assert shown.exit_code == 0, shown.output
    findings = shown.output.split("一数一源")[1]
    assert "重复采集" in findings and market.resource_code in findings and "subscribe" in findings
    assert "重复采集" not in CliRunner().invoke(_cli(), ["catalog", "show", own_code, "--revision", "1"]).output


def _cli():  # noqa: ANN202
    from cli.main import app

    return app
