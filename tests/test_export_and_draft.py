"""`govshare export` writes a published version (any version, Parquet or CSV) without the API, and verifies
against its manifest; `govshare contract draft` writes a valid contract from a PostgreSQL table's columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from samples.loaders import load_postgres, load_sqlite
from tests.helpers import (
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    sqlite_execute,
    sync,
    versions,
)
from tests.services import require_postgres


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_export_writes_any_published_version_and_it_verifies(hub_home: Path, tmp_path: Path) -> None:
    database = tmp_path / "market.db"
    load_sqlite(database, rows=120, seed=17)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    sync(hub)
    sqlite_execute(database, "UPDATE enterprises SET name = '上海导出测试有限公司', "
                             "updated_at = '2031-01-01T00:00:00+08:00' WHERE id = 5")
    sync(hub)
    v1, v2 = versions(hub.resource_code)

    parquet = tmp_path / "v1.parquet"
    done = _cli("export", hub.resource_code, "--version", "1", "--out", str(parquet))
    assert done.exit_code == 0, done.output
    assert pq.read_table(parquet).sort_by("id").equals(read_version(v1))
    assert _cli("verify", hub.resource_code, str(parquet), "--version", "1").exit_code == 0

    as_csv = tmp_path / "latest.csv"
    done = _cli("export", hub.resource_code, "--format", "csv", "--out", str(as_csv))
    assert done.exit_code == 0 and "v2" in done.output, done.output
    with as_csv.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == v2.row_count and {r["id"]: r["name"] for r in rows}["5"] == "上海导出测试有限公司"
    assert _cli("verify", hub.resource_code, str(as_csv), "--version", "2").exit_code == 0

    # a damaged or foreign file is a copy that differs, said in one line (it was an internal error)
    (tmp_path / "cut.parquet").write_bytes(parquet.read_bytes()[:-40])
    (tmp_path / "noise.csv").write_bytes(bytes(range(128, 256)) * 8)
    for damaged in ("cut.parquet", "noise.csv"):
        checked = _cli("verify", hub.resource_code, str(tmp_path / damaged), "--version", "1")
        assert checked.exit_code == 1 and "neither a readable Parquet file nor a UTF-8 CSV" in checked.output, \
            checked.output

    refused = _cli("export", hub.resource_code, "--version", "9", "--out", str(tmp_path / "v9.parquet"))
    assert refused.exit_code == 1 and "has no version 9" in refused.output
    from sqlalchemy import select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        exports = [e.detail for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "data.export"))]
    assert [(e["version"], e["format"]) for e in exports] == [(1, "parquet"), (2, "csv")]


def test_a_contract_drafted_from_a_postgresql_table_checks_and_attaches(hub_home: Path, tmp_path: Path) -> None:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=30, seed=5, schema=schema)
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret)
        out = hub_home / "contracts" / "enterprises_draft.yaml"
        done = _cli("contract", "draft", "--source", hub.source_name, "--table", "enterprises", "--out", str(out),
                    "--name", "enterprises_draft")
        assert done.exit_code == 0, done.output
        draft = yaml.safe_load(out.read_text(encoding="utf-8"))
        columns = {c["name"]: c for c in draft["columns"]}
        assert draft["key"] == ["id"] and draft["threshold"] == {"max_fraction": 0.05}
        assert columns["established"]["type"] == "date" and columns["reg_capital"]["type"] == "decimal"
        assert columns["updated_at"]["type"] == "timestamp" and columns["id"]["nullable"] is False
        assert columns["uscc"]["role"] == "subject_id_uscc" and columns["uscc"]["label"] == "统一社会信用代码"
        assert _cli("contract", "check", str(out)).exit_code == 0
        again = _cli("contract", "draft", "--source", hub.source_name, "--table", "enterprises", "--out", str(out))
        assert again.exit_code == 1 and "exists" in again.output  # an edited contract is never overwritten

        attached = _cli("contract", "attach", hub.resource_code, "enterprises_draft")
        assert attached.exit_code == 0, attached.output
        report = sync(hub)
        assert report.version == 1 and report.rows_quarantined == 0
        assert latest(hub.resource_code).row_count == 30


def test_a_draft_keeps_column_names_yaml_would_read_as_other_types(hub_home: Path, tmp_path: Path) -> None:
    """Columns named no (编号), on, y, off or null are names: written bare, YAML read `no` as False and the
    draft of such a table was refused as an invalid contract."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE {schema}.licences (no int PRIMARY KEY, "on" date, y text, off text, '
                        '"null" text)')
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="licences", key=("no",),
                                cursor=None)
        out = tmp_path / "licences.yaml"
        done = _cli("contract", "draft", "--source", hub.source_name, "--table", "licences", "--out", str(out))
        assert done.exit_code == 0, done.output
        draft = yaml.safe_load(out.read_text(encoding="utf-8"))
        assert draft["key"] == ["no"]
        assert [c["name"] for c in draft["columns"]] == ["no", "on", "y", "off", "null"]
        assert _cli("contract", "check", str(out)).exit_code == 0


def test_a_draft_of_a_table_with_chinese_names_and_arrays_attaches_and_syncs(hub_home: Path) -> None:
    """Columns named 统一社会信用代码 or "full name" made the whole draft invalid; an array or bytea column was
    declared string and every run failed "column type mismatch". Such columns are left out with a comment
    (they are published as read), and the draft attaches and syncs."""
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f'CREATE TABLE {schema}.licences (id int PRIMARY KEY, "统一社会信用代码" text, '
                        '"full name" text, tags text[], scores int[], scan bytea, issued date)')
        pg_execute(dsn, f"INSERT INTO {schema}.licences VALUES (1, '91310000000000001X', '张 三', "
                        "ARRAY['a', NULL], ARRAY[1, 2], '\\x00ff', '2026-01-02')")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="licences", key=("id",),
                                cursor=None)
        out = hub_home / "contracts" / "licences.yaml"
        done = _cli("contract", "draft", "--source", hub.source_name, "--table", "licences", "--out", str(out))
        assert done.exit_code == 0, done.output
        draft = yaml.safe_load(out.read_text(encoding="utf-8"))
        assert [c["name"] for c in draft["columns"]] == ["id", "issued"]
        text = out.read_text(encoding="utf-8")
        assert all(f'# "{name}"' in text for name in ("统一社会信用代码", "full name", "tags", "scores", "scan"))
        assert _cli("contract", "attach", hub.resource_code, "licences").exit_code == 0
        report = sync(hub)
        assert report.version == 1 and report.rows_quarantined == 0
        assert read_version(latest(hub.resource_code)).to_pylist()[0]["scores"] == [1, 2]


def test_arrays_are_discovered_as_arrays_and_a_contract_declaring_one_is_refused_on_attach(hub_home: Path) -> None:
    """A text[] or int4[] column was discovered as plain text (字符型) while every read delivers a list, and
    `contract attach` took a contract declaring it `string`: the next sync failed "column type mismatch".
    Discovery now says 数组型, and attach refuses the contract naming the column and both types."""
    from registry.catalog.import_export import discover_items
    from registry.catalog.resources import get_resource
    from registry.db import session_scope

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        pg_execute(dsn, f"CREATE TABLE {schema}.licences (id int PRIMARY KEY, tags text[], scores int4[], "
                        "codes varchar(6)[], issued date)")
        pg_execute(dsn, f"INSERT INTO {schema}.licences VALUES (1, ARRAY['a', NULL], ARRAY[1, 2], ARRAY['x'], "
                        "'2026-01-02')")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="licences", key=("id",),
                                cursor=None)
        with session_scope() as session:
            items = {i["column"]: i for i in discover_items(session, source=hub.source_name, table="licences")}
        assert [items[c]["data_type"] for c in ("tags", "scores", "codes")] == ["array"] * 3
        assert "length" not in items["codes"]  # its elements' length, not the item's
        shown = _cli("catalog", "discover", hub.source_name, "licences")
        assert shown.exit_code == 0 and shown.output.count("数组型") == 3, shown.output

        contracts = hub_home / "contracts"
        contracts.mkdir(parents=True, exist_ok=True)
        columns = ["{name: id, type: integer, nullable: false}", "{name: tags, type: string}",
                   "{name: issued, type: date}"]
        (contracts / "licences.yaml").write_text(
            "name: licences\nkey: [id]\ncolumns:\n" + "".join(f"  - {c}\n" for c in columns), encoding="utf-8")
        refused = _cli("contract", "attach", hub.resource_code, "licences")
        assert refused.exit_code == 1, refused.output
        assert "列 tags 在数据源中为 text[]（数组），契约声明为 string（文本）" in refused.output, refused.output
        assert "契约没有数组类型" in refused.output and "Traceback" not in refused.output
        with session_scope() as session:
            assert "contract" not in (get_resource(session, code=hub.resource_code).stream or {})

        # left out of the contract, the array is published as read
        del columns[1]
        (contracts / "licences.yaml").write_text(
            "name: licences\nkey: [id]\ncolumns:\n" + "".join(f"  - {c}\n" for c in columns), encoding="utf-8")
        assert _cli("contract", "attach", hub.resource_code, "licences").exit_code == 0
        report = sync(hub)
        assert report.version == 1 and report.rows_quarantined == 0
        assert read_version(latest(hub.resource_code)).to_pylist()[0]["tags"] == ["a", None]
