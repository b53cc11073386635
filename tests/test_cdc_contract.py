"""Change capture of a table whose data contract converts columns (text declared date, timestamp, decimal or
integer, pipeline.conform.contract_form), against a private PostgreSQL cluster with wal_level=logical
(tests/pg_cluster.py).

The published version holds the converted types (date32 where the table says text): change capture compared
them with the table's own types, so every run read a snapshot ("the source table's columns changed") and the
snapshot recorded a schema change each time. Now the table's columns are compared as the contract publishes
them, and the changes are stacked as layers. Every version is compared, column for column and type for type,
with a fresh full read of the same table under the same contract (a second resource in sync mode full)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.helpers import PROVIDER, latest, pg_execute, pg_source_config, read_version, versions
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import register, slot, slot_name_of

# Text columns, as a migrated legacy system keeps them: the contract says what they hold.
FILINGS = """
    CREATE TABLE filings (id integer PRIMARY KEY, name text NOT NULL, filed text, local_at text, zoned_at text,
                          amount text);
    INSERT INTO filings VALUES
        (1, '上海申城科技有限公司', '2024-03-01', '2024-03-01 09:30:00', '2024-03-01 09:30:00+08:00', '1000000.00'),
        (2, '上海浦江贸易有限公司', '2024-03-02', '2024-03-02 10:00:00', '2024-03-02 10:00:00+08:00', '500000.50'),
        (3, '上海黄浦物流有限公司', NULL, NULL, '2024-03-03 11:15:30+08:00', NULL),
        (4, '上海静安餐饮有限公司', '2024-03-04', '2024-03-04 08:00:00', NULL, '12345678.99'),
        (5, '上海徐汇咨询有限公司', '2024-03-05', '2024-03-05 17:45:00', '2024-03-05 17:45:00+08:00', '0.01');
    -- enough rows that the changes below stay layers (a fifth of dead rows would compact the version)
    INSERT INTO filings SELECT g, '企业' || g, '2023-01-01'::date + g, ('2023-01-01 08:00'::timestamp + g * interval '1 hour')::text,
        to_char('2023-01-01 08:00+08'::timestamptz + g * interval '1 hour', 'YYYY-MM-DD HH24:MI:SSOF'), g || '.5'
    FROM generate_series(100, 160) g"""
FILINGS_CONTRACT = """name: {name}
key: [id]
resources: [{codes}]
columns:
  - {{name: id, type: integer, nullable: false}}
  - {{name: name, type: string}}
  - {{name: filed, type: date}}
  - {{name: local_at, type: timestamp}}
  - {{name: zoned_at, type: timestamp}}
  - {{name: amount, type: decimal}}
"""


def _register_full(dsn: str, table: str, key: tuple[str, ...]) -> str:
    """The same table as a resource in sync mode full: what a fresh full read publishes."""
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source
    from registry.db import session_scope

    config, secret = pg_source_config(dsn)
    name = f"pg-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        add_source(session, name=name, agency=PROVIDER[0], kind="postgresql", config=config, secret=secret,
                   actor="test")
        return add_resource(session, name="企业备案信息（全量）", agency=PROVIDER[0], classification="101001",
                            source=name, table=table, primary_key=list(key),
                            update_cycle="daily", actor="test").code


def _contract(hub_home: Path, template: str, *codes: str) -> Path:
    folder = hub_home / "contracts"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"c{uuid.uuid4().hex[:8]}"
    path = folder / f"{name}.yaml"
    path.write_text(template.format(name=name, codes=", ".join(f"'{c}'" for c in codes)), encoding="utf-8")
    return path


def _assert_equals_full_read(code: str, full_code: str, key: str) -> None:
    """The change-capture version holds exactly what a fresh full read of the table publishes: every column,
    its type and every value."""
    from pipeline.sync import sync_resource

    sync_resource(resource_code=full_code, full=True)
    captured, fresh = read_version(latest(code), sort_by=key), read_version(latest(full_code), sort_by=key)
    assert [(f.name, f.type) for f in captured.schema] == [(f.name, f.type) for f in fresh.schema]
    assert captured.to_pylist() == fresh.to_pylist()


def _assert_layer(code: str, report, base) -> None:  # noqa: ANN001 - CdcReport, DatasetVersion
    version = latest(code)
    assert report.mode == "cdc" and report.version == version.number == base.number + 1, report
    assert version.manifest["mode"] == "cdc"
    assert base.path in {e.get("folder") for e in version.manifest["files"]}, "a layer on the previous version"


@pytest.fixture
def filings(pg_logical_database: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_CDC_SLOT_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    reset_settings()
    pg_execute(pg_logical_database, FILINGS)
    return pg_logical_database


def test_contract_converted_columns_stack_change_layers(filings: str, hub_home: Path) -> None:
    """A snapshot, then updates, inserts and deletes published as layers equal to a fresh full read; a change
    that leaves a converted column NULL in every changed row (the zone of a timestamp is decided by the values,
    and there are none) still takes the published type. A forced snapshot records no schema change."""
    from pipeline.cdc import sync_cdc

    code = register(filings, table="filings")
    full_code = _register_full(filings, "filings", ("id",))
    _contract(hub_home, FILINGS_CONTRACT, code, full_code)

    snapshot = sync_cdc(resource_code=code)
    assert snapshot.mode == "cdc-snapshot" and snapshot.version == 1
    v1 = latest(code)
    schema = read_version(v1).schema
    assert str(schema.field("filed").type) == "date32[day]" and str(schema.field("amount").type).startswith("decimal")
    assert schema.field("local_at").type.tz is None and schema.field("zoned_at").type.tz == "UTC"
    _assert_equals_full_read(code, full_code, "id")

    pg_execute(filings, "UPDATE filings SET filed = '2025-01-31', local_at = '2025-01-31 12:00:00' WHERE id = 1; "
                        "UPDATE filings SET name = '上海黄浦智慧物流有限公司', amount = '42.42' WHERE id = 3; "
                        "DELETE FROM filings WHERE id = 2; "
                        "INSERT INTO filings VALUES (6, '上海长宁设计有限公司', '2025-02-01', '2025-02-01 08:08:08', "
                        "'2025-02-01 08:08:08+08:00', '88.80')")
    report = sync_cdc(resource_code=code)
    _assert_layer(code, report, v1)
    changes = latest(code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 2, 1)
    _assert_equals_full_read(code, full_code, "id")

    v2 = latest(code)
    pg_execute(filings, "UPDATE filings SET local_at = NULL, zoned_at = NULL, filed = '  ' WHERE id IN (1, 3); "
                        "INSERT INTO filings VALUES (7, '上海普陀建材有限公司', NULL, NULL, NULL, '')")
    report = sync_cdc(resource_code=code)
    _assert_layer(code, report, v2)
    _assert_equals_full_read(code, full_code, "id")

    assert sync_cdc(resource_code=code).version is None, "a quiet run publishes nothing"
    assert slot(filings, slot_name_of(code)) is not None

    forced = sync_cdc(resource_code=code, full=True)
    assert forced.mode == "cdc-snapshot"
    assert all(not v.manifest.get("schema_change") for v in versions(code)), \
        "the snapshot compared the converted columns with the published ones"


PERMITS = """
    CREATE TABLE permits (permit_no text PRIMARY KEY, holder text NOT NULL, valid_until text);
    INSERT INTO permits VALUES ('1001', '上海申城科技有限公司', '2027-01-01'), ('1002', '上海浦江贸易有限公司', NULL),
                               ('1003', '上海黄浦物流有限公司', '2026-06-30');
    INSERT INTO permits SELECT (2000 + g)::text, '企业' || g, NULL FROM generate_series(1, 20) g"""
PERMITS_CONTRACT = """name: {name}
key: [permit_no]
resources: [{codes}]
columns:
  - {{name: permit_no, type: integer, nullable: false}}
  - {{name: holder, type: string}}
  - {{name: valid_until, type: date}}
"""


def test_a_key_the_contract_converts_replaces_its_published_row(filings: str, hub_home: Path) -> None:
    """The key itself is text declared integer: the keys the changes touched are matched with the published
    (converted) keys, so an update replaces its row and a delete removes it, never a second row."""
    from pipeline.cdc import sync_cdc

    pg_execute(filings, PERMITS)
    code = register(filings, table="permits", key=("permit_no",))
    full_code = _register_full(filings, "permits", ("permit_no",))
    _contract(hub_home, PERMITS_CONTRACT, code, full_code)
    assert sync_cdc(resource_code=code).version == 1
    v1 = latest(code)
    assert str(read_version(v1, sort_by="permit_no").schema.field("permit_no").type) == "int64"

    pg_execute(filings, "UPDATE permits SET valid_until = '2030-12-31' WHERE permit_no = '1002'; "
                        "DELETE FROM permits WHERE permit_no = '1003'; INSERT INTO permits VALUES ('1004', '上海新设有限公司', NULL)")
    report = sync_cdc(resource_code=code)
    _assert_layer(code, report, v1)
    changes = latest(code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 1, 1)
    _assert_equals_full_read(code, full_code, "permit_no")


DOSSIERS = """
    CREATE TABLE dossiers (case_no text PRIMARY KEY, holder text NOT NULL, body text);
    ALTER TABLE dossiers ALTER COLUMN body SET STORAGE EXTERNAL;  -- out of line and uncompressed: TOASTed
    INSERT INTO dossiers VALUES ('1001', '上海申城科技有限公司', repeat('卷', 4000)), ('1002', '上海浦江贸易有限公司', NULL),
                                ('1003', '上海黄浦物流有限公司', repeat('x', 10000));
    INSERT INTO dossiers SELECT (2000 + g)::text, '企业' || g, NULL FROM generate_series(1, 20) g"""
DOSSIERS_CONTRACT = """name: {name}
key: [case_no]
resources: [{codes}]
columns:
  - {{name: case_no, type: integer, nullable: false}}
  - {{name: holder, type: string}}
  - {{name: body, type: string}}
"""


def test_an_unchanged_large_value_is_kept_under_a_key_the_contract_converts(filings: str, hub_home: Path) -> None:
    """An UPDATE of another column does not resend a TOASTed value: the run takes it from the published row,
    found by the key as the published rows hold it (text declared integer), not as the server sent it."""
    from pipeline.cdc import sync_cdc

    pg_execute(filings, DOSSIERS)
    code = register(filings, table="dossiers", key=("case_no",))
    full_code = _register_full(filings, "dossiers", ("case_no",))
    _contract(hub_home, DOSSIERS_CONTRACT, code, full_code)
    assert sync_cdc(resource_code=code).version == 1
    v1 = latest(code)

    pg_execute(filings, "UPDATE dossiers SET holder = '上海申城数字科技有限公司' WHERE case_no = '1001'; "
                        "UPDATE dossiers SET holder = '上海黄浦智慧物流有限公司' WHERE case_no = '1003'")
    report = sync_cdc(resource_code=code)
    _assert_layer(code, report, v1)
    assert report.rows_quarantined == 0
    _assert_equals_full_read(code, full_code, "case_no")


def test_a_dropped_contract_column_stops_both_reads_with_the_same_message(filings: str, hub_home: Path) -> None:
    """A column the contract declares, dropped at the source: the change capture's snapshot judges the change
    with the contract's columns as the full read does, records it as incompatible and stops with the same
    message (it had recorded a compatible change and the contract's own check stopped the run otherwise)."""
    from core.errors import FatalError
    from pipeline.cdc import sync_cdc
    from pipeline.sync import sync_resource
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.schema_changes import list_schema_changes

    pg_execute(filings, PERMITS)
    code = register(filings, table="permits", key=("permit_no",))
    full_code = _register_full(filings, "permits", ("permit_no",))
    _contract(hub_home, PERMITS_CONTRACT, code, full_code)
    assert sync_cdc(resource_code=code).version == 1
    assert sync_resource(resource_code=full_code).version == 1

    pg_execute(filings, "ALTER TABLE permits DROP COLUMN valid_until")
    messages = {}
    for resource_code, run in ((code, sync_cdc), (full_code, sync_resource)):
        with pytest.raises(FatalError) as stopped:
            run(resource_code=resource_code)
        messages[resource_code] = str(stopped.value).replace(resource_code, "CODE")
        with session_scope() as session:
            (change,) = list_schema_changes(session, resource=get_resource(session, code=resource_code))
            assert not change.compatible and "valid_until (契约/contract) was dropped" in change.reason
        assert latest(resource_code).number == 1, "nothing was published"
    assert "column valid_until (契约/contract) was dropped" in messages[code]
    assert messages[code] == messages[full_code]


def test_a_snapshot_stopped_by_a_dropped_contract_column_repeats_quietly_until_the_contract_is_edited(
        filings: str, hub_home: Path) -> None:
    """Each later run stops the same way until someone acts: the message names the contract's file and what to
    change there, the repeats open nothing more (one schema change, one catalogue obligation, no "resync" mark:
    the slot ahead of the published position is the stopped snapshot's own, nothing was lost), and once the
    column is taken out of the contract the next run publishes. The repeats had marked a resync each run, saying
    "changes in between may be lost", which `govshare cdc status` showed as pending."""
    from sqlalchemy import func, select

    from core.errors import FatalError
    from pipeline.cdc import sync_cdc
    from pipeline.cdc_slots import cdc_status
    from registry.audit.models import AuditEvent
    from registry.catalog.obligations import list_obligations
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.notice_models import CdcResync
    from registry.exchange.schema_changes import list_schema_changes
    from tests.helpers import publish_entry

    pg_execute(filings, PERMITS)
    code = register(filings, table="permits", key=("permit_no",))
    with session_scope() as session:  # published: only a published entry carries the update obligation
        publish_entry(session, code, columns=("permit_no", "holder"))
    contract = _contract(hub_home, PERMITS_CONTRACT, code)
    assert sync_cdc(resource_code=code).version == 1
    pg_execute(filings, "ALTER TABLE permits DROP COLUMN valid_until; "
                        "UPDATE permits SET holder = '改' WHERE permit_no = '1001'")
    messages = []
    for _ in range(3):
        with pytest.raises(FatalError) as stopped:
            sync_cdc(resource_code=code)
        messages.append(str(stopped.value))
    assert len(set(messages)) == 1 and str(contract) in messages[0] and "valid_until" in messages[0]
    with session_scope() as session:
        resource = get_resource(session, code=code)
        assert len(list_schema_changes(session, resource=resource)) == 1
        assert [o.resource_id for o in list_obligations(session)].count(resource.id) == 1
        assert session.scalar(select(func.count()).select_from(CdcResync)
                              .where(CdcResync.resource_id == resource.id)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource_code == code, AuditEvent.action == "cdc.resync_mark")) == 0
    assert [s.resync_pending for s in cdc_status() if s.resource_code == code] == [None]
    assert latest(code).number == 1

    contract.write_text("\n".join(line for line in contract.read_text(encoding="utf-8").splitlines()
                                  if "valid_until" not in line) + "\n", encoding="utf-8")
    report = sync_cdc(resource_code=code)
    assert report.version == 2 and report.mode == "cdc-snapshot"
    published = read_version(latest(code), sort_by="permit_no")
    assert published.column_names == ["permit_no", "holder"] and published.column("holder")[0].as_py() == "改"
