"""Schema changes at the source: detected against the previous version, recorded (who, when, what), opening the
catalogue update obligation; compatible changes publish, incompatible ones stop with a clear error."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from samples.loaders import load_sqlite
from tests.helpers import (
    Hub,
    latest,
    read_version,
    register_resource,
    sync_runs,
    versions,
)


def _sync(hub: Hub, *, full: bool = False):  # noqa: ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, full=full)


def _retype(database: Path, replacements: dict[str, str]) -> None:
    """Recreate the table with changed declared types, keeping its rows."""
    with closing(sqlite3.connect(database)) as conn, conn:
        (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'enterprises'").fetchone()
        for old, new in replacements.items():
            assert old in ddl
            ddl = ddl.replace(old, new)
        conn.execute("ALTER TABLE enterprises RENAME TO enterprises_old")
        conn.execute(ddl)
        conn.execute("INSERT INTO enterprises SELECT * FROM enterprises_old")
        conn.execute("DROP TABLE enterprises_old")


def _recorded(code: str) -> list:
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.schema_changes import list_schema_changes

    with session_scope() as session:
        return list_schema_changes(session, resource=get_resource(session, code=code))


def _open_obligations(code: str) -> list:
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.catalog.models import UpdateObligation
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        resource = get_resource(session, code=code)
        return list(session.scalars(select(UpdateObligation).where(UpdateObligation.resource_id == resource.id,
                                                                   UpdateObligation.closed_on.is_(None))))


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=200, seed=17)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    _sync(hub)
    return hub, database


def test_widening_rules() -> None:
    from pipeline.schema_drift import blocking, compare, widens

    assert widens(pa.int32(), pa.int64()) and widens(pa.decimal128(18, 2), pa.decimal128(20, 4))
    assert widens(pa.int32(), pa.decimal128(12, 2)) and widens(pa.float32(), pa.float64())
    assert not widens(pa.int64(), pa.int32()) and not widens(pa.decimal128(18, 2), pa.decimal128(18, 4))
    assert not widens(pa.int64(), pa.string()) and not widens(pa.string(), pa.int64())
    before = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(10, 2))])
    after = pa.schema([("id", pa.string()), ("name", pa.large_string()), ("amount", pa.decimal128(12, 2)),
                       ("email", pa.string())])
    diff = compare(before, after)
    assert [a["name"] for a in diff.added] == ["email"] and not diff.dropped
    assert [(r["name"], r["widening"]) for r in diff.retyped] == [("id", False), ("amount", True)]  # large_string = string
    assert blocking(diff, key=("id",), cursor=None, contract_columns=set()) == [
        "column id (主键/key) changed type int64 -> string, which is not a widening"]
    assert blocking(diff, key=("uscc",), cursor=None, contract_columns={"amount"}) == []


def test_compatible_changes_publish_and_are_recorded_once(source: tuple[Hub, Path]) -> None:
    hub, database = source
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises ADD COLUMN email TEXT")
        conn.execute("UPDATE enterprises SET email = 'info' || id || '@example.cn' WHERE id <= 20")
    _retype(database, {"reg_capital NUMERIC(18, 2)": "reg_capital NUMERIC(20, 2)"})

    report = _sync(hub)  # an incremental run meets the change and re-reads everything
    assert report.version == 2 and report.mode == "full"
    v2 = latest(hub.resource_code)
    published = read_version(v2)
    assert published.schema.field("email").type == pa.string()
    assert published.schema.field("reg_capital").type == pa.decimal128(20, 2)
    assert published.column("email").to_pylist()[:2] == ["info1@example.cn", "info2@example.cn"]
    assert v2.manifest["schema_change"]["added"][0]["name"] == "email"
    assert v2.manifest["changes"]["schema_changed"] is True

    (change,) = _recorded(hub.resource_code)
    assert change.compatible and change.actor == "pipeline" and change.previous_version == 1
    assert [a["name"] for a in change.added] == ["email"]
    assert change.retyped == [{"name": "reg_capital", "from": "decimal128(18, 2)", "to": "decimal128(20, 2)",
                               "widening": True}]
    assert change.detected_at is not None and change.obligation
    (obligation,) = _open_obligations(hub.resource_code)
    assert "schema changed" in obligation.reason and str(obligation.id) == change.obligation

    # Nothing new at the source: nothing new recorded, no second obligation.
    _sync(hub)
    assert len(_recorded(hub.resource_code)) == 1 and len(_open_obligations(hub.resource_code)) == 1

    # An ordinary column dropped: recorded, still publishes (nothing the key, cursor or contract needs).
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises DROP COLUMN industry")
    report = _sync(hub)
    assert "industry" not in read_version(latest(hub.resource_code)).column_names
    assert [d["name"] for d in _recorded(hub.resource_code)[-1].dropped] == ["industry"]

    from cli.main import app

    result = CliRunner().invoke(app, ["schema-changes", hub.resource_code], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "email" in result.output and "industry" in result.output, result.output


def test_an_incompatible_change_publishes_nothing(source: tuple[Hub, Path]) -> None:
    hub, database = source
    v1 = latest(hub.resource_code)
    _retype(database, {"id INTEGER PRIMARY KEY": "id TEXT PRIMARY KEY"})

    from core.errors import FatalError

    with pytest.raises(FatalError) as stopped:
        _sync(hub, full=True)
    message = str(stopped.value)
    assert "column id (主键/key) changed type int64 -> string" in message and "Nothing was published" in message
    assert [v.number for v in versions(hub.resource_code)] == [1] and latest(hub.resource_code).id == v1.id
    assert sync_runs(hub.resource_code)[-1].status == "failed"
    (change,) = _recorded(hub.resource_code)
    assert change.compatible is False and "key" in change.reason and change.obligation
    assert len(_open_obligations(hub.resource_code)) == 1

    # The command line says it in one line, with the fatal exit status; a rerun records nothing new.
    from cli.main import app

    result = CliRunner().invoke(app, ["sync", hub.resource_code], env={"COLUMNS": "250"})
    assert result.exit_code == 3, result.output
    assert "changed incompatibly" in result.output and "Traceback" not in result.output
    assert len(_recorded(hub.resource_code)) == 1
    assert [v.number for v in versions(hub.resource_code)] == [1]


def test_a_column_the_contract_needs_cannot_be_dropped(hub_home: Path, tmp_path: Path) -> None:
    from core.errors import FatalError

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=60, seed=4)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    (hub_home / "contracts").mkdir(parents=True, exist_ok=True)
    (hub_home / "contracts" / "mini.yaml").write_text(
        f"name: mini\nkey: [id]\nresources: ['{hub.resource_code}']\ncolumns:\n"
        "  - {name: id, type: integer, nullable: false}\n  - {name: status, type: string}\n", encoding="utf-8")
    _sync(hub)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises DROP COLUMN status")
    with pytest.raises(FatalError, match=r"column status \(契约/contract\) was dropped"):
        _sync(hub, full=True)
    assert [v.number for v in versions(hub.resource_code)] == [1]
    (change,) = _recorded(hub.resource_code)
    assert change.compatible is False and change.dropped == [{"name": "status", "type": "string"}]


def test_an_unpublished_entry_carries_no_update_obligation(hub_home: Path, tmp_path: Path) -> None:
    """Only a published entry has something consumers rely on to keep up (article 16): a change at the source of a
    registered-only or draft entry is recorded but opens no obligation, which supervision had later counted as a
    late update (更新及时率). The entry, once published, describes the schema as it is then."""
    from datetime import timedelta

    from core import clock
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.supervision.evaluation import evaluate
    from schemas.catalog_metadata import CatalogEntryData
    from tests.helpers import PROVIDER, publish_entry

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=50, seed=17)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, publish=False)
    _sync(hub)
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises ADD COLUMN email TEXT")
    _sync(hub)  # registered only
    with session_scope() as session:
        upsert_entry(session, agency=PROVIDER[0], code=hub.resource_code, author="test", data=CatalogEntryData(
            classification="101001", name="企业基本信息", abstract="企业基本信息", format="database",
            data_items=[{"name": "统一社会信用代码", "column": "uscc", "data_type": "string"}],
            sharing_type="unconditional", sharing_modes=["file"], update_cycle="daily"))
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises DROP COLUMN industry")
    _sync(hub)  # a draft, never published

    first, second = _recorded(hub.resource_code)
    assert [a["name"] for a in first.added] == ["email"] and [d["name"] for d in second.dropped] == ["industry"]
    assert first.obligation is None and second.obligation is None and _open_obligations(hub.resource_code) == []

    with session_scope() as session:
        publish_entry(session, hub.resource_code)
    later = clock.today() + timedelta(days=10)
    with session_scope() as session:
        counts = [evaluate(session, period=str(year), as_of=later).standing(PROVIDER[0]).counts["update_timeliness"]
                  for year in {clock.today().year, later.year}]
    assert all(count == [0, 0] for count in counts), counts

    # Published now: the next change does open the obligation.
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("ALTER TABLE enterprises ADD COLUMN phone TEXT")
    _sync(hub)
    assert _recorded(hub.resource_code)[-1].obligation and len(_open_obligations(hub.resource_code)) == 1
