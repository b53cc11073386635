"""The offline compiling tool and system docking (article 9): real .xlsx workbooks written, filled in with
openpyxl as a person would, imported (all or nothing), exported and imported again (no change); CSV and JSON
round trips; hostile files refused; the bulk API through the real FastAPI app; discover on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
import sqlite3
import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.helpers import OTHER_PROVIDER, PROVIDER, ensure_agency

ENTRY = {
    "classification": "101001", "name": "企业基本信息", "abstract": "本市登记注册的企业的基本登记信息",
    "format": "database", "sharing_type": "conditional", "sharing_condition": "仅用于行政审批和监管",
    "sharing_modes": ["interface", "file"], "update_cycle": "daily", "release_date": "2026-01-05",
    "data_items": [
        {"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "length": 18, "subject_id": "uscc"},
        {"name": "企业名称", "column": "name", "data_type": "string", "length": 200},
        {"name": "注册资本", "column": "reg_capital", "data_type": "decimal", "length": 18},
        {"name": "成立日期", "column": "established", "data_type": "date"},
    ],
}
SECOND = {
    "classification": "102003", "name": "个体工商户登记信息", "abstract": "个体工商户的登记信息",
    "sharing_type": "unconditional", "sharing_modes": ["file"], "update_cycle": "weekly", "open_to_public": True,
    "open_condition": "去除经营者身份证号码后开放",
    "data_items": [{"name": "经营者姓名", "column": "operator", "data_type": "string"},
                   {"name": "经营者身份证号码", "column": "operator_id", "data_type": "string", "subject_id": "idcard"}],
}


def _agencies() -> None:
    from registry.db import session_scope

    from registry.people.persons import add_person, designate

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        ensure_agency(session, *OTHER_PROVIDER)
        # the CLI imports as a named, designated cataloguer (`--as`)
        add_person(session, agency=PROVIDER[0], account="zhang.san", name="张三", actor="test")
        designate(session, account="zhang.san", role="cataloguer", valid_from=date(2024, 1, 1), actor="test")


def _revisions() -> int:
    from registry.catalog.models import CatalogRevision
    from registry.db import session_scope

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(CatalogRevision))


def _import(path: Path, agency: str = PROVIDER[0]):
    from registry.catalog.import_export import import_file
    from registry.db import session_scope

    with session_scope() as session:
        return import_file(session, path=path, agency=agency, author="zhang.san")


def _export(path: Path, **options: object) -> int:
    from registry.catalog.import_export import export_file
    from registry.db import session_scope

    with session_scope() as session:
        return export_file(session, path=path, actor="console:test", **options)


def _filled_template(path: Path) -> Path:
    """The template as a person fills it in: labels chosen from the drop-downs, a date typed as a date."""
    from datetime import datetime

    from cli.main import app

    assert CliRunner().invoke(app, ["catalog", "template", str(path)]).exit_code == 0
    wb = openpyxl.load_workbook(path)
    entries, items = wb["信息资源"], wb["信息项"]
    header = [c.value for c in entries[1]]
    row = dict.fromkeys(header)
    row.update({"条目键": "A", "信息资源分类": 101001, "信息资源名称": "企业基本信息", "信息资源摘要": "本市企业登记信息",
                "信息资源格式": "数据库", "共享类型": "有条件共享（按需共享）", "共享条件": "仅用于行政审批",
                "共享方式": "接口交换、文件下载", "是否向社会开放": "否", "更新周期": "每日",
                "发布日期": datetime(2026, 1, 5)})
    entries.append([row[h] for h in header])
    row = dict.fromkeys(header)
    row.update({"条目键": "B", "信息资源分类": "102003", "信息资源名称": "个体工商户登记信息", "信息资源摘要": "个体户",
                "共享类型": "无条件共享（普遍共享）", "共享方式": "文件下载", "是否向社会开放": "是",
                "开放条件": "去除身份证号码后开放", "更新周期": "每周", "信息资源格式": "电子表格"})
    entries.append([row[h] for h in header])
    items.append(["A", "统一社会信用代码", "uscc", "字符型", 18, "统一社会信用代码", None, None])
    items.append(["A", "企业名称", "name", "字符型", None, None, None, "登记名称"])
    items.append(["B", "经营者姓名", "operator", "字符型", None, None, None, None])
    wb.save(path)
    return path


def test_template_has_chinese_headers_drop_downs_and_instructions(tmp_path: Path) -> None:
    from schemas.catalog_metadata import code_list
    from schemas.catalog_xlsx import write_workbook

    wb = openpyxl.load_workbook(write_workbook(tmp_path / "模板.xlsx"))
    assert {"填写说明", "信息资源", "信息项"} <= set(wb.sheetnames)
    entries, items, codes = wb["信息资源"], wb["信息项"], wb["代码表"]
    headers = [c.value for c in entries[1]]
    assert headers[:3] == ["条目键", "信息资源分类", "信息资源名称"] and "共享类型" in headers
    assert [c.value for c in items[1]][:4] == ["条目键", "信息项名称", "字段名", "数据类型"]
    assert codes.sheet_state == "hidden"
    # every coded column has a list drop-down whose range holds exactly the code list's Chinese labels
    validations = {str(v.sqref).split(":")[0]: v for v in entries.data_validations.dataValidation}
    share_col = openpyxl.utils.get_column_letter(headers.index("共享类型") + 1)
    rule = validations[f"{share_col}2"]
    assert rule.type == "list"
    cells = codes[rule.formula1.split("!")[1].replace("$", "")]
    assert [c[0].value for c in cells] == list(code_list("sharing_types").values())
    for label in ("信息资源格式", "共享方式", "是否向社会开放", "更新周期"):
        assert f"{openpyxl.utils.get_column_letter(headers.index(label) + 1)}2" in validations, label
    item_rules = {str(v.sqref).split(":")[0] for v in items.data_validations.dataValidation}
    assert {"D2", "F2"} <= item_rules  # 数据类型, 主体标识
    assert "第八条" in " ".join(str(c.value) for c in wb["填写说明"]["A"])


def test_filled_workbook_imports_then_export_and_reimport_change_nothing(hub_home: Path, tmp_path: Path) -> None:
    from cli.main import app

    _agencies()
    result = CliRunner().invoke(app, ["catalog", "import", str(_filled_template(tmp_path / "filled.xlsx")),
                                      "--agency", PROVIDER[1], "--as", "zhang.san"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "新建 2 条" in result.output and "101001/0001" in result.output and "102003/0001" in result.output
    result = CliRunner().invoke(app, ["catalog", "export", str(tmp_path / "out.xlsx"), "--agency", PROVIDER[0]])
    assert result.exit_code == 0 and "已导出 2 条" in result.output, result.output
    revisions = _revisions()
    again = _import(tmp_path / "out.xlsx")
    assert again.unchanged == ["101001/0001", "102003/0001"] and not again.created and not again.updated
    assert _revisions() == revisions
    # an edit in the exported workbook becomes a new draft revision of that entry only
    wb = openpyxl.load_workbook(tmp_path / "out.xlsx")
    header = [c.value for c in wb["信息资源"][1]]
    wb["信息资源"].cell(row=2, column=header.index("信息资源摘要") + 1, value="本市企业登记信息（含注销）")
    wb.save(tmp_path / "edited.xlsx")
    edited = _import(tmp_path / "edited.xlsx")
    assert edited.updated == ["101001/0001"] and edited.unchanged == ["102003/0001"]
    from registry.catalog.entries import get_entry, latest_revision
    from registry.db import session_scope

    with session_scope() as session:
        latest = latest_revision(session, resource=get_entry(session, code="101001/0001"))
        assert latest.number == 2 and latest.content["abstract"] == "本市企业登记信息（含注销）"
        assert latest.content["release_date"] == "2026-01-05" and latest.content["sharing_modes"] == ["interface", "file"]


def test_bad_workbook_lists_every_problem_with_its_cell_and_imports_nothing(hub_home: Path, tmp_path: Path) -> None:
    from cli.main import app

    _agencies()
    path = _filled_template(tmp_path / "bad.xlsx")
    wb = openpyxl.load_workbook(path)
    entries, items = wb["信息资源"], wb["信息项"]
    header = [c.value for c in entries[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    entries.cell(row=3, column=col["共享类型"], value="不予共享")  # B: not shared, no legal basis, yet open
    entries.cell(row=3, column=col["开放条件"], value=None)
    entries.cell(row=2, column=col["更新周期"], value="每两天")  # A: not in the code list
    entries.cell(row=2, column=col["信息资源摘要"], value="=B2&C2")  # A: a formula
    items.append(["A", "注册资本", "reg capital", "货币", "十八", None, None, None])  # bad column, type, length
    items.append(["Z", "孤儿", None, "字符型", None, None, None, None])  # key of no entry
    wb.save(path)

    result = CliRunner().invoke(app, ["catalog", "import", str(path), "--agency", PROVIDER[0], "--as", "zhang.san"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    from registry.catalog.import_export import ImportRefused

    with pytest.raises(ImportRefused) as refused:
        _import(path)
    found = {(p.sheet, p.row, (p.column or "")[:1]) for p in refused.value.problems}
    col_letter = {h: openpyxl.utils.get_column_letter(i) for h, i in col.items()}
    assert ("信息资源", 2, col_letter["更新周期"]) in found
    assert ("信息资源", 2, col_letter["信息资源摘要"]) in found  # the formula
    assert ("信息资源", 3, col_letter["共享条件"]) in found  # article 8: not shared needs its legal basis
    assert ("信息项", 5, "C") in found and ("信息项", 5, "D") in found and ("信息项", 5, "E") in found
    assert ("信息项", 6, "A") in found
    messages = " ".join(p.message for p in refused.value.problems)
    assert "法律法规" in messages and "公式" in messages and "数据类型" in messages
    assert "未导入" in result.output and "信息项" in result.output
    assert _revisions() == 0  # entry B's neighbour A had problems, but nothing at all was imported


def test_code_of_another_agency_and_wrong_provider_are_refused(hub_home: Path, tmp_path: Path) -> None:
    from registry.catalog.import_export import ImportRefused
    from schemas.catalog_xlsx import write_workbook

    _agencies()
    _import(_filled_template(tmp_path / "filled.xlsx"))  # 101001/0001 belongs to PROVIDER
    theirs = write_workbook(tmp_path / "theirs.xlsx", [("101001/0001", ENTRY, OTHER_PROVIDER[1], OTHER_PROVIDER[0])])
    with pytest.raises(ImportRefused) as refused:
        _import(theirs, agency=OTHER_PROVIDER[0])
    assert any("属于其他机构" in p.message for p in refused.value.problems)
    wrong = write_workbook(tmp_path / "wrong.xlsx", [("101001/0001", ENTRY, OTHER_PROVIDER[1], OTHER_PROVIDER[0])])
    with pytest.raises(ImportRefused) as refused:
        _import(wrong)  # PROVIDER importing a workbook whose provider code column names another agency
    assert [p.column for p in refused.value.problems] == ["F（信息资源提供方代码）"]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_csv_and_json_round_trip(hub_home: Path, tmp_path: Path, suffix: str) -> None:
    _agencies()
    first = tmp_path / f"first{suffix}"
    document = {"entries": [ENTRY, SECOND]}
    if suffix == ".json":
        first.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    else:
        from schemas.catalog_metadata import CatalogEntryData
        from schemas.catalog_tabular import csv_text

        rows = [("", CatalogEntryData.model_validate(e).model_dump(mode="json"), "", "") for e in (ENTRY, SECOND)]
        text = csv_text(rows).replace("\n,", "\nx,")  # no code: keys must be non-empty, give them one
        lines = text.splitlines()
        lines = [lines[0]] + [("A" if "企业基本信息" in line else "B") + line[1:] for line in lines[1:]]
        first.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _import(first)
    assert report.created == ["101001/0001", "102003/0001"]
    out = tmp_path / f"out{suffix}"
    assert _export(out) == 2
    revisions = _revisions()
    assert _import(out).unchanged == ["101001/0001", "102003/0001"]
    assert _revisions() == revisions
    if suffix == ".csv":
        body = out.read_text(encoding="utf-8-sig").splitlines()
        assert body[0].startswith("条目键,信息资源分类,信息资源名称") and len(body) == 1 + 4 + 2  # one line per item
        assert "有条件共享（按需共享）" in body[1] and "接口交换、文件下载" in body[1]
    else:
        exported = json.loads(out.read_text(encoding="utf-8"))
        assert exported["entries"][0]["code"] == "101001/0001"
        assert exported["entries"][0]["provider_code"] == PROVIDER[0]


def test_csv_rows_of_one_entry_must_agree(hub_home: Path, tmp_path: Path) -> None:
    from registry.catalog.import_export import ImportRefused

    _agencies()
    out = tmp_path / "out.csv"
    _import(_filled_template(tmp_path / "filled.xlsx"))
    _export(out)
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    lines[2] = lines[2].replace("本市企业登记信息", "另一段摘要")  # second item row of 101001/0001
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as refused:
        _import(out)
    assert [(p.row, p.column) for p in refused.value.problems] == [(3, "G（信息资源摘要）")]


def test_json_problems_name_the_entry_and_element(hub_home: Path, tmp_path: Path) -> None:
    from registry.catalog.import_export import ImportRefused

    _agencies()
    bad = dict(ENTRY, sharing_type="not_shared", sharing_condition="", sharing_modes=[])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"entries": [SECOND, bad]}, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ImportRefused) as refused:
        _import(path)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"entries": [SECOND, ENTRY, dict(ENTRY, abstract="另一份")]}, ensure_ascii=False),
                     encoding="utf-8")
    with pytest.raises(ImportRefused) as doubled:
        _import(twice)  # without codes, one classification and name is one entry: twice in a file is a mistake
    assert [(p.row, p.column) for p in doubled.value.problems] == [(3, "信息资源名称")]
    assert [str(p) for p in refused.value.problems] == [
        ("bad.json 第2条 目录条目：不予共享的资源必须填写共享条件中的法律法规、规章政策或其他依据（第八条） / "
         "a not-shared resource needs its legal basis in sharing_condition (article 8)")]
    assert _revisions() == 0


def test_hostile_files_are_refused_clearly(hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ConfigError
    from registry.catalog.import_export import parse_file

    not_a_workbook = tmp_path / "目录.xlsx"
    not_a_workbook.write_text("名称,分类\n企业,101001\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="不是 Excel 工作簿"):
        parse_file(not_a_workbook)

    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 1024 * 1024))  # 8 MB of zeros: ~8 kB packed
    with pytest.raises(ConfigError, match="zip bomb"):
        parse_file(bomb)

    import schemas.catalog_xlsx

    monkeypatch.setattr(schemas.catalog_xlsx, "MAX_ROWS", 5)
    big = _filled_template(tmp_path / "big.xlsx")
    wb = openpyxl.load_workbook(big)
    for n in range(10):
        wb["信息项"].append(["A", f"项{n}", None, "字符型"])
    wb.save(big)
    with pytest.raises(ConfigError, match="超过"):
        parse_file(big)

    with pytest.raises(ConfigError, match="只支持"):
        parse_file(tmp_path / "目录.xls")

    _agencies()
    from schemas.catalog_xlsx import write_workbook

    with pytest.raises(ConfigError, match="没有填写任何条目"):
        _import(write_workbook(tmp_path / "empty.xlsx"))  # the blank template: said, not a silent "0 imported"


def test_bulk_api_upserts_own_entries_idempotently(hub_home: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.helpers import bearer, issue_token

    _agencies()
    token, other = issue_token(PROVIDER[0]), issue_token(OTHER_PROVIDER[0])
    client = TestClient(create_app())
    assert client.post("/api/v1/catalog/bulk", json={"entries": [ENTRY]}).status_code == 401
    first = client.post("/api/v1/catalog/bulk", json={"entries": [ENTRY, SECOND]}, headers=bearer(token)).json()
    assert [r["status"] for r in first["results"]] == ["created", "created"] and first["created"] == 2
    codes = [r["code"] for r in first["results"]]
    assert codes == ["101001/0001", "102003/0001"]
    by_code = [dict(ENTRY, code=codes[0]), dict(SECOND, code=codes[1])]
    again = client.post("/api/v1/catalog/bulk", json={"entries": by_code}, headers=bearer(token)).json()
    assert [r["status"] for r in again["results"]] == ["unchanged", "unchanged"]
    # what the catalogue API answers (with revision and status) can be posted back as it is
    read_back = [dict(by_code[0], provider=PROVIDER[1], provider_code=PROVIDER[0], revision=1, status="draft")]
    assert client.post("/api/v1/catalog/bulk", json={"entries": read_back},
                       headers=bearer(token)).json()["results"][0]["status"] == "unchanged"
    revisions = _revisions()
    changed = dict(by_code[0], abstract="新的摘要")
    broken = dict(SECOND, sharing_type="conditional", sharing_condition="")
    mixed = client.post("/api/v1/catalog/bulk", json={"entries": [changed, broken, by_code[1]]},
                        headers=bearer(token)).json()
    assert [r["status"] for r in mixed["results"]] == ["updated", "error", "unchanged"]
    assert "共享条件" in mixed["results"][1]["problems"][0]["message"]
    assert _revisions() == revisions + 1  # the error entry wrote nothing, the others went through
    # another agency's system may not touch these entries
    theirs = client.post("/api/v1/catalog/bulk", json={"entries": [dict(by_code[0], abstract="篡改")]},
                         headers=bearer(other)).json()
    assert theirs["results"][0]["status"] == "error" and "其他机构" in theirs["results"][0]["problems"][0]["message"]
    assert _revisions() == revisions + 1


def _discover_and_check(source: str, table: str, tmp_path: Path) -> None:
    from cli.main import app
    from registry.catalog.import_export import discover_items
    from registry.db import session_scope

    with session_scope() as session:
        items = {i["column"]: i for i in discover_items(session, source=source, table=table)}
    assert items["uscc"]["data_type"] == "string" and items["uscc"]["length"] == 18
    assert items["id"]["data_type"] == "integer"
    assert items["reg_capital"]["data_type"] == "decimal"
    assert items["established"]["data_type"] == "date"
    assert items["updated_at"]["data_type"] == "timestamp"
    assert items["active"]["data_type"] == "boolean"
    assert items["score"]["data_type"] == "float"
    out = tmp_path / f"{source}.xlsx"
    result = CliRunner().invoke(app, ["catalog", "discover", source, table, "--out", str(out), "--name", "企业基本信息",
                                      "--classification", "101001"])
    assert result.exit_code == 0, result.output
    # the draft is the import format: fill in what discovery cannot know, and it imports
    wb = openpyxl.load_workbook(out)
    header = [c.value for c in wb["信息资源"][1]]
    row = {h: c.value for h, c in zip(header, wb["信息资源"][2])}
    assert row["信息资源名称"] == "企业基本信息" and row["信息资源提供方代码"] == PROVIDER[0]
    assert [r[3].value for r in wb["信息项"].iter_rows(min_row=2)][:2] == ["整数型", "字符型"]
    for label, value in (("信息资源摘要", "企业登记信息"), ("共享类型", "无条件共享（普遍共享）"), ("共享方式", "文件下载")):
        wb["信息资源"].cell(row=2, column=header.index(label) + 1, value=value)
    wb.save(out)
    assert _import(out).created == ["101001/0001"]


ENTERPRISES_DDL = ("CREATE TABLE enterprises (id INTEGER PRIMARY KEY, uscc VARCHAR(18) NOT NULL, name TEXT, "
                   "reg_capital NUMERIC(18,2), established DATE, updated_at TIMESTAMP, active BOOLEAN, score {real})")


def test_discover_prefills_data_items_from_sqlite(hub_home: Path, tmp_path: Path) -> None:
    from registry.db import session_scope
    from registry.catalog.sources import add_source

    _agencies()
    db = tmp_path / "scjg.db"
    with sqlite3.connect(db) as conn:
        conn.execute(ENTERPRISES_DDL.format(real="REAL"))
    with session_scope() as session:
        add_source(session, name="scjg", agency=PROVIDER[0], kind="sqlite", config={"path": str(db)}, actor="test")
    _discover_and_check("scjg", "enterprises", tmp_path)


def test_discover_prefills_data_items_from_postgresql(hub_home: Path, tmp_path: Path) -> None:
    from registry.db import session_scope
    from registry.catalog.sources import add_source
    from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
    from tests.services import require_postgres

    dsn = require_postgres()
    _agencies()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"{ENTERPRISES_DDL.format(real='DOUBLE PRECISION').replace('enterprises', schema + '.enterprises')}")
        config, secret = pg_source_config(dsn, schema=schema)
        with session_scope() as session:
            add_source(session, name="scjg-pg", agency=PROVIDER[0], kind="postgresql", config=config, secret=secret,
                       actor="test")
        _discover_and_check("scjg-pg", "enterprises", tmp_path)


COMMENTS = {"uscc": "统一社会信用代码，18位，GB 32100", "name": "企业名称", "reg_capital": "注册资本(万元)"}


def _named_items(source: str, table: str) -> dict[str, dict]:
    from registry.catalog.import_export import discover_items
    from registry.db import session_scope

    with session_scope() as session:
        return {i["column"]: i for i in discover_items(session, source=source, table=table)}


def _assert_named(items: dict[str, dict]) -> None:
    """The comments name the items (their first clause), say the rest in the description; no comment, the
    column's name stays for the person to rename."""
    assert items["uscc"]["name"] == "统一社会信用代码" and items["uscc"]["description"] == COMMENTS["uscc"]
    assert items["name"]["name"] == "企业名称" and "description" not in items["name"]
    assert items["reg_capital"]["name"] == "注册资本(万元)"
    assert items["id"]["name"] == "id"


def test_discover_names_data_items_by_the_columns_comments(hub_home: Path) -> None:
    """Agencies' databases describe their columns in Chinese (COMMENT ON COLUMN, MySQL's COMMENT): the draft's
    data items take their names from them, on PostgreSQL and on MySQL."""
    import uuid

    import pymysql

    from registry.catalog.sources import add_source
    from registry.db import session_scope
    from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
    from tests.services import require_mysql, require_postgres

    dsn = require_postgres()
    _agencies()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, ENTERPRISES_DDL.format(real="DOUBLE PRECISION").replace("enterprises", f"{schema}.enterprises"))
        for column, comment in COMMENTS.items():
            pg_execute(dsn, f"COMMENT ON COLUMN {schema}.enterprises.{column} IS '{comment}'")
        config, secret = pg_source_config(dsn, schema=schema)
        with session_scope() as session:
            add_source(session, name="scjg-pg", agency=PROVIDER[0], kind="postgresql", config=config, secret=secret,
                       actor="test")
        _assert_named(_named_items("scjg-pg", "enterprises"))

    mysql = require_mysql()
    database = f"gs_t_{uuid.uuid4().hex[:10]}"
    connection = pymysql.connect(**mysql, charset="utf8mb4", autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
            columns = ", ".join(f"{c} VARCHAR(18) COMMENT '{COMMENTS[c]}'" if c in COMMENTS else f"{c} INT"
                                for c in ("id", "uscc", "name", "reg_capital"))
            cursor.execute(f"CREATE TABLE `{database}`.enterprises ({columns}, PRIMARY KEY (id))")
        with session_scope() as session:
            add_source(session, name="scjg-my", agency=PROVIDER[0], kind="mysql", actor="test",
                       config={"host": mysql["host"], "port": mysql["port"], "database": database,
                               "user": mysql["user"]}, secret={"password": mysql.get("password") or ""})
        _assert_named(_named_items("scjg-my", "enterprises"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        connection.close()


def test_text_that_looks_like_a_formula_stays_text_through_a_workbook(hub_home: Path, tmp_path: Path) -> None:
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from schemas.catalog_metadata import CatalogEntryData

    _agencies()
    with session_scope() as session:
        upsert_entry(session, agency=PROVIDER[0], data=CatalogEntryData.model_validate(dict(ENTRY, abstract="=见附件")),
                     author="zhang.san", actor="test")
    out = tmp_path / "out.xlsx"
    _export(out)
    wb = openpyxl.load_workbook(out)
    header = [c.value for c in wb["信息资源"][1]]
    cell = wb["信息资源"].cell(row=2, column=header.index("信息资源摘要") + 1)
    assert (cell.value, cell.data_type) == ("=见附件", "s")  # written as text, not as a formula Excel would run
    assert _import(out).unchanged == ["101001/0001"]


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])  # gb18030: "CSV" as Excel on Chinese Windows saves it
def test_hand_written_csv_with_only_the_needed_columns_imports(hub_home: Path, tmp_path: Path, encoding: str) -> None:
    _agencies()
    path = tmp_path / "手工.csv"
    path.write_text(
        "条目键,信息资源分类,信息资源名称,信息资源摘要,信息资源格式,共享类型,共享方式,是否向社会开放,更新周期,信息项名称,数据类型\n"
        "1,101001,企业基本信息,企业登记信息,数据库,无条件共享,接口交换;文件下载,否,每日,企业名称,字符型\n"
        "1,,,,,,,,,统一社会信用代码,字符型\n", encoding=encoding)
    report = _import(path)
    assert report.created == ["101001/0001"]
    from registry.catalog.entries import get_entry, latest_revision
    from registry.db import session_scope

    with session_scope() as session:
        content = latest_revision(session, resource=get_entry(session, code="101001/0001")).content
    assert [i["name"] for i in content["data_items"]] == ["企业名称", "统一社会信用代码"]
    assert content["sharing_modes"] == ["interface", "file"] and content["sharing_type"] == "unconditional"


def test_discover_and_draft_describe_the_named_schemas_table_not_a_namesake(hub_home: Path, tmp_path: Path) -> None:
    """`catalog discover SRC other_schema.t` and `contract draft --table other_schema.t` describe that table: they
    took the bare name and described the default schema's table of that name (another table's columns, silently),
    or found none; a composite primary key keeps its declared order."""
    import uuid

    import pymysql
    import yaml

    from registry.catalog.import_export import discover_items
    from registry.catalog.sources import add_source
    from registry.db import session_scope
    from registry.exchange.contracts import draft_contract
    from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
    from tests.services import require_mysql, require_postgres

    def described(source: str, table: str) -> tuple[list[str], list[str]]:
        with session_scope() as session:
            items = [i["column"] for i in discover_items(session, source=source, table=table)]
            draft = yaml.safe_load(draft_contract(session, source=source, table=table, name="draft"))
        assert [c["name"] for c in draft["columns"]] == items
        return items, draft["key"]

    dsn = require_postgres()
    _agencies()
    with pg_scratch_schema(dsn) as default, pg_scratch_schema(dsn) as other:
        pg_execute(dsn, f"CREATE TABLE {default}.licences (id int PRIMARY KEY, holder_secret text)")
        pg_execute(dsn, f"CREATE TABLE {other}.licences (region text, licence_no int, issued date, "
                        "PRIMARY KEY (licence_no, region))")
        config, secret = pg_source_config(dsn, schema=default)
        with session_scope() as session:
            add_source(session, name="scjg-pg", agency=PROVIDER[0], kind="postgresql", config=config, secret=secret,
                       actor="test")
        assert described("scjg-pg", f"{other}.licences") == (["region", "licence_no", "issued"],
                                                              ["licence_no", "region"])
        assert described("scjg-pg", "licences") == (["id", "holder_secret"], ["id"])

    mysql = require_mysql()
    databases = [f"gs_t_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    connection = pymysql.connect(**mysql, charset="utf8mb4", autocommit=True)
    try:
        with connection.cursor() as cursor:
            for database in databases:
                cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE TABLE `{databases[0]}`.licences (id INT PRIMARY KEY, holder_secret TEXT)")
            cursor.execute(f"CREATE TABLE `{databases[1]}`.licences (region VARCHAR(8), licence_no INT, issued DATE, "
                           "PRIMARY KEY (licence_no, region))")
        with session_scope() as session:
            add_source(session, name="scjg-my", agency=PROVIDER[0], kind="mysql", actor="test",
                       config={"host": mysql["host"], "port": mysql["port"], "database": databases[0],
                               "user": mysql["user"]}, secret={"password": mysql.get("password") or ""})
        assert described("scjg-my", f"{databases[1]}.licences") == (["region", "licence_no", "issued"],
                                                                    ["licence_no", "region"])
        assert described("scjg-my", "licences") == (["id", "holder_secret"], ["id"])
    finally:
        with connection.cursor() as cursor:
            for database in databases:
                cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        connection.close()


def _with_part(path: Path, part: str, edit) -> Path:  # noqa: ANN001 - bytes -> bytes
    """The workbook with its XML parts under `part` replaced by edit(xml), as another program might write them."""
    data = path.read_bytes()
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            target.writestr(item.filename, edit(content) if item.filename.startswith(part) else content)
    return path


def test_a_sheet_whose_stated_size_is_too_small_imports_every_row(hub_home: Path, tmp_path: Path) -> None:
    """A workbook saved by a program that wrote <dimension ref="A1:B2"/> on the 信息项 sheet: read-only openpyxl
    stopped at row 2, so data items were silently left out of the entry (and the row limit never checked)."""
    import re

    from registry.catalog.import_export import parse_file

    path = _with_part(_filled_template(tmp_path / "目录.xlsx"), "xl/worksheets/",
                      lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:B2"', xml))
    parsed, problems = parse_file(path)
    assert problems == []
    assert {p.key: [i["name"] for i in p.data.model_dump()["data_items"]] for p in parsed} == {
        "A": ["统一社会信用代码", "企业名称"], "B": ["经营者姓名"]}


def test_an_xml_entity_bomb_is_refused_in_one_line(hub_home: Path, tmp_path: Path) -> None:
    """expat stops an entity expansion, but its ParseError reached the command as an error the hub did not
    foresee (exit 70): it is a refusal saying what to do."""
    from core.errors import ConfigError
    from registry.catalog.import_export import parse_file

    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    path = _with_part(_filled_template(tmp_path / "目录.xlsx"), "xl/worksheets/", lambda xml: xml.replace(
        b"<worksheet ", f"<!DOCTYPE worksheet [{entities}]><worksheet ".encode(), 1).replace(
        "企业基本信息".encode(), b"&a9;", 1))
    with pytest.raises(ConfigError) as refused:
        parse_file(path)
    assert "目录.xlsx" in str(refused.value) and "另存为" in str(refused.value)


def test_text_that_looks_like_a_formula_is_safe_in_the_csv_and_comes_back_exactly(hub_home: Path,
                                                                                   tmp_path: Path) -> None:
    """The catalogue CSV is written for Excel (UTF-8 with a BOM): an abstract =HYPERLINK(...) ran as a live link
    in the reader's sheet, and importing the hub's own export again was refused ("formulas are not accepted")."""
    import csv

    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from schemas.catalog_metadata import CatalogEntryData

    hostile = '=HYPERLINK("http://evil.example","点我")'
    _agencies()
    items = [dict(ENTRY["data_items"][0], description="-2+3"), dict(ENTRY["data_items"][1], description="@SUM(A1)"),
             dict(ENTRY["data_items"][2], description="-5"), dict(ENTRY["data_items"][3], description="'+1+1")]
    with session_scope() as session:
        upsert_entry(session, agency=PROVIDER[0], data=CatalogEntryData.model_validate(
            dict(ENTRY, abstract=hostile, data_items=items)), author="zhang.san", actor="test")
    out = tmp_path / "out.csv"
    _export(out)

    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert rows[0]["信息资源摘要"] == "'" + hostile  # a text marker: the spreadsheet shows the text, runs nothing
    assert [r["说明"] for r in rows] == ["'-2+3", "'@SUM(A1)", "-5", "''+1+1"]  # a number is no formula
    assert _import(out).unchanged == ["101001/0001"]


def test_a_json_nested_beyond_reason_is_refused_in_one_line(hub_home: Path, tmp_path: Path) -> None:
    """100,000 nested brackets (a few hundred KB): json.loads ran out of recursion, which reached the command as
    an error the hub did not foresee (exit 70, "internal error")."""
    from cli.main import app

    _agencies()
    path = tmp_path / "目录.json"
    path.write_text('{"entries": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    result = CliRunner().invoke(app, ["catalog", "import", str(path), "--agency", PROVIDER[0], "--as", "zhang.san"])
    assert result.exit_code == 1, result.output
    assert "嵌套过深" in result.output and "内部错误" not in result.output


def test_a_literal_escape_typed_in_excel_imports_as_typed(hub_home: Path, tmp_path: Path) -> None:
    """Excel saves a typed `_x0041_` as `_x005F_x0041_` in its shared strings; openpyxl dropped the `x005F_` and
    the catalogue imported the abstract as `A见附件`."""
    from registry.catalog.import_export import parse_file
    from tests.file_helpers import with_shared_strings

    path = _filled_template(tmp_path / "目录.xlsx")
    wb = openpyxl.load_workbook(path)
    header = [c.value for c in wb["信息资源"][1]]
    wb["信息资源"].cell(row=2, column=header.index("信息资源摘要") + 1).value = "_x005F_x0041_见附件"
    wb.save(path)
    path.write_bytes(with_shared_strings(path.read_bytes()))

    parsed, problems = parse_file(path)

    assert problems == []
    assert {p.key: p.data.abstract for p in parsed}["A"] == "_x0041_见附件"


def test_bulk_api_refuses_the_same_entry_twice_in_one_request(hub_home: Path) -> None:
    """A file with one entry twice is refused (duplicates); the bulk API took both: the second silently replaced
    the first's draft and both were answered "updated" (or "created" then "updated" for a new entry), so the
    agency's system believed two different contents were both in the catalogue. The repeat is now an error
    naming the first, and writes nothing."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.helpers import bearer, issue_token

    _agencies()
    client, token = TestClient(create_app()), issue_token(PROVIDER[0])
    twice = client.post("/api/v1/catalog/bulk", json={"entries": [ENTRY, dict(ENTRY, abstract="另一种摘要")]},
                        headers=bearer(token)).json()["results"]
    assert [r["status"] for r in twice] == ["created", "error"]
    assert "第1条" in twice[1]["problems"][0]["message"] and "重复" in twice[1]["problems"][0]["message"]
    code = twice[0]["code"]
    revisions = _revisions()
    by_code = client.post("/api/v1/catalog/bulk", json={"entries": [dict(ENTRY, code=code, abstract="甲"),
                                                                     dict(ENTRY, code=code, abstract="乙")]},
                          headers=bearer(token)).json()["results"]
    assert [r["status"] for r in by_code] == ["updated", "error"] and _revisions() == revisions + 1


def test_a_file_naming_another_agency_as_provider_is_refused(hub_home: Path, tmp_path: Path) -> None:
    """A merged workbook of several agencies with the provider code column left blank: the rows that name another
    registered agency as 信息资源提供方 were imported as the importing agency's own entries. They are refused now,
    against the provider cell, and nothing is imported; a provider name that is the importer's own still imports."""
    from registry.catalog.import_export import ImportRefused

    _agencies()
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps({"entries": [dict(ENTRY, provider=PROVIDER[1]),
                                              dict(SECOND, provider=OTHER_PROVIDER[1])]}, ensure_ascii=False),
                      encoding="utf-8")
    revisions = _revisions()
    with pytest.raises(ImportRefused) as refused:
        _import(merged)
    [problem] = refused.value.problems
    assert (problem.row, problem.column) == (2, "信息资源提供方") and OTHER_PROVIDER[1] in problem.message
    assert _revisions() == revisions
    merged.write_text(json.dumps({"entries": [dict(ENTRY, provider=PROVIDER[1])]}, ensure_ascii=False),
                      encoding="utf-8")
    assert len(_import(merged).created) == 1
    from schemas.catalog_xlsx import write_workbook

    book = write_workbook(tmp_path / "merged.xlsx", [("102003/0009", SECOND, OTHER_PROVIDER[1], None)])
    with pytest.raises(ImportRefused) as refused:
        _import(book)
    assert [p.column for p in refused.value.problems] == ["E（信息资源提供方）"]
