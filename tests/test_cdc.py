"""Change capture from PostgreSQL (pgoutput logical replication) into published versions, against a private
PostgreSQL 15 cluster with wal_level=logical (tests/pg_cluster.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.helpers import (
    CONSUMER,
    PROVIDER,
    ensure_agency,
    first_difference,
    latest,
    pg_execute,
    pg_rows,
    pg_source_config,
    read_version,
    table_rows,
    versions,
)
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("id", "uscc", "name", "reg_capital", "established", "status", "updated_at")
runner = CliRunner()


@pytest.fixture
def source(pg_logical_database: str, hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """A hub (SQLite registry) and a source database with an enterprises table of five rows."""
    from core.settings import reset_settings

    # Slot names are cluster-wide: a prefix of its own keeps this test's slots apart from any other's.
    monkeypatch.setenv("GOVSHARE_CDC_SLOT_PREFIX", f"t{uuid.uuid4().hex[:8]}")
    reset_settings()
    pg_execute(pg_logical_database, """
        CREATE TABLE enterprises (id integer PRIMARY KEY, uscc char(18) NOT NULL, name text NOT NULL,
            reg_capital numeric(18, 2), established date, status text, updated_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO enterprises (id, uscc, name, reg_capital, established, status) VALUES
            (1, '91310000MA1FL0001X', '上海申城科技有限公司', 1000000.00, '2015-03-01', '存续'),
            (2, '91310000MA1FL0002X', '上海浦江贸易有限公司', 500000.50, '2016-07-15', '存续'),
            (3, '91310000MA1FL0003X', '上海黄浦物流有限公司', NULL, '2017-01-20', '在业'),
            (4, '91310000MA1FL0004X', '上海静安餐饮有限公司', 12345678.99, NULL, '存续'),
            (5, '91310000MA1FL0005X', '上海徐汇咨询有限公司', 0.01, '2020-12-31', '注销')""")
    return pg_logical_database


def register(dsn: str, table: str = "enterprises", key: tuple[str, ...] = ("id",)) -> str:
    from registry.db import session_scope
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source

    config, secret = pg_source_config(dsn)
    name = f"pg-{uuid.uuid4().hex[:6]}"
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        ensure_agency(session, *CONSUMER)
        add_source(session, name=name, agency=PROVIDER[0], kind="postgresql", config=config, secret=secret, actor="test")
        resource = add_resource(session, name="企业基本信息", agency=PROVIDER[0], classification="101001", source=name,
                                table=table, primary_key=list(key), sync_mode="cdc", update_cycle="realtime",
                                actor="test")
        return resource.code


def assert_published_matches_source(code: str, dsn: str) -> None:
    published = table_rows(read_version(latest(code)), COLUMNS)
    expected = pg_rows(dsn, "enterprises", columns=COLUMNS)
    assert len({row[0] for row in published}) == len(published), "a key was published twice"
    assert published == [tuple(r) for r in expected] or first_difference(published, expected) == "no difference", \
        first_difference(published, expected)


def slot(dsn: str, name: str) -> tuple | None:
    rows = pg_execute(dsn, "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = %s",
                      (name,))
    return rows[0] if rows else None


def cursor(code: str) -> str | None:
    from tests.helpers import cursor_value

    return cursor_value(code)


def lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def slot_name_of(code: str) -> str:
    from connectors.postgres_cdc import slot_name
    from core.settings import get_settings

    return slot_name(get_settings().cdc_slot_prefix, code)


def crash_run(code: str, where: str) -> None:
    """A sync in a child process killed with SIGKILL at `where` (before_confirm or before_publish)."""
    script = (
        "import os, signal, sys\n"
        "import pipeline.cdc as cdc\n"
        "import pipeline.cdc_staging as cdc_staging\n"
        "from connectors.postgres_cdc import ChangeCapture\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "if sys.argv[2] == 'before_confirm':\n"
        "    ChangeCapture.advance = die\n"
        "else:\n"
        "    cdc_staging.finish_checks = die\n"
        "cdc.sync_cdc(resource_code=sys.argv[1])\n")
    child = subprocess.run([sys.executable, "-c", script, code, where], cwd=REPO, env=dict(os.environ),
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


def test_inserts_updates_and_deletes_are_captured_and_published(source: str) -> None:
    """Through the command line: register with --mode cdc, sync (snapshot), change the table, sync again."""
    from cli.main import app

    config, _ = pg_source_config(source)
    env = {"COLUMNS": "200"}
    for step in (["agency", "add", PROVIDER[0], PROVIDER[1]],
                 ["source", "add", "scjg-pg", "--agency", PROVIDER[0], "--kind", "postgresql",
                  "-o", f"host={config['host']}", "-o", f"port={config['port']}", "-o", f"dbname={config['dbname']}",
                  "-o", "user=postgres"],
                 ["resource", "add", "企业基本信息", "--agency", PROVIDER[0], "--classification", "101001",
                  "--source", "scjg-pg", "--table", "enterprises", "--key", "id", "--mode", "cdc",
                  "--cycle", "realtime"]):
        result = runner.invoke(app, step, env=env)
        assert result.exit_code == 0, result.output
    code = "101001/0001"

    first = runner.invoke(app, ["sync", code], env=env)
    assert first.exit_code == 0, first.output
    assert "变更捕获全量快照" in first.output  # the run's mode as staff read it (run_modes)
    assert latest(code).manifest["mode"] == "cdc-snapshot"
    assert_published_matches_source(code, source)

    pg_execute(source, """
        INSERT INTO enterprises (id, uscc, name, reg_capital, established, status) VALUES
            (6, '91310000MA1FL0006X', '上海长宁设计有限公司', 88.80, '2021-05-05', '存续'),
            (7, '91310000MA1FL0007X', '上海普陀建材有限公司', 7.00, '2022-02-02', '存续');
        UPDATE enterprises SET name = '上海申城数字科技有限公司', reg_capital = 2000000.00 WHERE id = 1;
        DELETE FROM enterprises WHERE id = 2""")
    pg_execute(source, "UPDATE enterprises SET id = 30 WHERE id = 3")  # a changed key: 3 is gone, 30 is new
    pg_execute(source, "INSERT INTO enterprises (id, uscc, name) VALUES (99, '91310000MA1FL0099X', '临时'); "
                       "DELETE FROM enterprises WHERE id = 99")  # born and gone between two runs: never published

    second = runner.invoke(app, ["sync", code], env=env)
    assert second.exit_code == 0, second.output
    version = latest(code)
    assert version.number == 2 and version.manifest["mode"] == "cdc"
    assert_published_matches_source(code, source)
    changes = version.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (3, 1, 2)
    # The changes are a layer on v1's files (pipeline.layering): v1's rows are referenced, not rewritten,
    # and a delete carries the row as last published.
    from pipeline.paths import resolve

    v1 = versions(code)[0]
    assert {e.get("folder") for e in version.manifest["files"]} == {v1.path, None}  # v1's files, and the delta
    deleted = pq.read_table(resolve(version.path) / "changes.parquet").to_pylist()
    assert {(r["id"], r["name"]) for r in deleted if r["_change"] == "delete"} == {
        (row[0], row[2]) for row in table_rows(read_version(v1), COLUMNS) if row[0] in (2, 3)}
    published = {row[0]: row for row in table_rows(read_version(version), COLUMNS)}
    assert published[1][2] == "上海申城数字科技有限公司" and 2 not in published and 99 not in published
    # The position confirmed to the slot is the one committed with the version.
    assert slot(source, slot_name_of(code))[0] == cursor(code)
    # The one post-publish path ran after the change capture too: the version has its expectations report.
    from pipeline.expectations import latest_run

    assert latest_run(resource_code=code).version_id == version.id

    quiet = runner.invoke(app, ["sync", code], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert "no change" in quiet.output
    assert [v.number for v in versions(code)] == [1, 2]

    status = runner.invoke(app, ["cdc", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert slot_name_of(code) in status.output and code in status.output and "MB" in status.output


def test_crash_before_confirmation_redelivers_without_duplicates(source: str) -> None:
    from pipeline.cdc import sync_cdc

    code = register(source)
    sync_cdc(resource_code=code)
    name = slot_name_of(code)
    confirmed_at_v1 = slot(source, name)[0]

    # Killed after the version committed but before the slot was advanced.
    pg_execute(source, "UPDATE enterprises SET status = '吊销' WHERE id = 4; DELETE FROM enterprises WHERE id = 5")
    crash_run(code, "before_confirm")
    assert latest(code).number == 2
    assert_published_matches_source(code, source)
    assert slot(source, name)[0] == confirmed_at_v1, "the slot moved although the run never confirmed"
    assert lsn(cursor(code)) > lsn(confirmed_at_v1)

    # Killed while staging, before anything was committed: nothing is published, nothing confirmed.
    pg_execute(source, "INSERT INTO enterprises (id, uscc, name, reg_capital) VALUES "
                       "(8, '91310000MA1FL0008X', '上海闵行机械有限公司', 300.00)")
    crash_run(code, "before_publish")
    assert latest(code).number == 2
    assert slot(source, name)[0] == confirmed_at_v1

    # The next run gets everything again: the published part is skipped, the rest applied once.
    report = sync_cdc(resource_code=code)
    assert report.redelivered >= 1 and report.mode == "cdc"
    version = latest(code)
    assert version.number == 3
    assert (version.manifest["changes"]["inserted"], version.manifest["changes"]["updated"],
            version.manifest["changes"]["deleted"]) == (1, 0, 0)
    assert_published_matches_source(code, source)
    assert slot(source, name)[0] == cursor(code)


def test_stale_slot_is_dropped_and_the_next_run_reads_everything(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings
    from pipeline.cdc import sync_cdc
    from pipeline.cdc_slots import cdc_status, guard_all
    from registry.db import session_scope
    from registry.exchange.notice_models import CdcResync

    code = register(source)
    sync_cdc(resource_code=code)
    name = slot_name_of(code)
    assert guard_all() == []  # within the limit: kept

    # The hub is "stopped" while the source keeps writing: WAL piles up behind the slot.
    pg_execute(source, "DELETE FROM enterprises WHERE id = 1; UPDATE enterprises SET status = '迁出' WHERE id = 2")
    pg_execute(source, "CREATE TABLE noise AS SELECT g AS n, md5(g::text) AS pad FROM generate_series(1, 30000) g")
    pg_execute(source, "SELECT pg_switch_wal()")
    monkeypatch.setenv("GOVSHARE_CDC_MAX_RETAINED_MB", "1")
    reset_settings()

    results = guard_all()
    assert [(r.resource_code, r.dropped) for r in results] == [(code, True)]
    assert slot(source, name) is None
    with session_scope() as session:
        marks = session.query(CdcResync).all()
        assert len(marks) == 1 and marks[0].slot == name and marks[0].retained_bytes > 1024 * 1024
    assert cdc_status()[0].resync_pending

    monkeypatch.setenv("GOVSHARE_CDC_MAX_RETAINED_MB", "1024")
    reset_settings()
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc-snapshot" and report.version == 2
    assert_published_matches_source(code, source)
    assert latest(code).manifest["changes"]["deleted"] == 1
    assert slot(source, name) is not None  # capture goes on with a new slot
    status = cdc_status()[0]
    assert status.exists and status.resync_pending is None


def test_a_slot_nobody_confirmed_for_too_long_is_dropped(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from core import clock
    from core.settings import reset_settings
    from pipeline.cdc import sync_cdc
    from pipeline.cdc_slots import guard_all
    from registry.db import session_scope
    from registry.exchange.models import CursorState

    code = register(source)
    sync_cdc(resource_code=code)
    monkeypatch.setenv("GOVSHARE_CDC_MAX_LAG_MINUTES", "60")
    reset_settings()
    assert guard_all() == []
    with session_scope() as session:  # the hub was last heard of two hours ago
        for state in session.query(CursorState).all():
            state.updated_at = clock.now() - timedelta(hours=2)
    results = guard_all()
    assert [r.dropped for r in results] == [True] and "GOVSHARE_CDC_MAX_LAG_MINUTES" in results[0].reason
    assert slot(source, slot_name_of(code)) is None


def test_table_without_primary_key_is_refused(source: str) -> None:
    from core.errors import ConfigError
    from pipeline.cdc import sync_cdc

    pg_execute(source, "CREATE TABLE contacts (uscc char(18), phone text); "
                       "INSERT INTO contacts VALUES ('91310000MA1FL0001X', '021-12345678')")
    code = register(source, table="contacts", key=())
    with pytest.raises(ConfigError, match="no primary key") as refused:
        sync_cdc(resource_code=code)
    assert "没有主键" in str(refused.value) and "ADD PRIMARY KEY" in str(refused.value)
    assert latest(code) is None
    assert pg_execute(source, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                      (slot_name_of(code),)) == [(0,)]


def test_unchanged_large_values_added_columns_and_truncate(source: str) -> None:
    """An update that leaves a TOASTed value out of the stream keeps it; a column added at the source makes
    the next run read the table again (the change is recorded by the schema-change detection); a TRUNCATE
    empties the next version but for the rows inserted after it."""
    from pipeline.cdc import sync_cdc

    pg_execute(source, "ALTER TABLE enterprises ADD COLUMN charter text")
    big = "".join(uuid.uuid4().hex for _ in range(400))  # 12,800 hard-to-compress characters: stored out of line
    pg_execute(source, "UPDATE enterprises SET charter = %s WHERE id = 1", (big,))
    code = register(source)
    sync_cdc(resource_code=code)
    pg_execute(source, "UPDATE enterprises SET status = '迁入' WHERE id = 1")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.version == 2
    row = read_version(latest(code)).to_pylist()[0]
    assert row["id"] == 1 and row["status"] == "迁入" and row["charter"] == big

    pg_execute(source, "ALTER TABLE enterprises ADD COLUMN district text; UPDATE enterprises SET district = '黄浦区'")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc-snapshot" and report.version == 3
    table = read_version(latest(code))
    assert "district" in table.column_names and set(table.column("district").to_pylist()) == {"黄浦区"}
    assert latest(code).manifest["schema_change"]

    pg_execute(source, "TRUNCATE enterprises; INSERT INTO enterprises (id, uscc, name) VALUES "
                       "(42, '91310000MA1FL0042X', '上海新设有限公司')")
    report = sync_cdc(resource_code=code)
    assert report.mode == "cdc" and report.version == 4
    assert read_version(latest(code)).column("id").to_pylist() == [42]
    assert latest(code).manifest["changes"]["deleted"] == 5


def test_a_source_without_logical_wal_is_refused_with_the_fix(pg_database: str, hub_home: Path) -> None:
    """The machine's own PostgreSQL runs with wal_level=replica: change capture says what to change."""
    from core.errors import ConfigError
    from pipeline.cdc import sync_cdc

    if pg_execute(pg_database, "SHOW wal_level") == [("logical",)]:
        pytest.skip("this PostgreSQL already has wal_level=logical")
    pg_execute(pg_database, "CREATE TABLE enterprises (id integer PRIMARY KEY, name text)")
    code = register(pg_database)
    with pytest.raises(ConfigError, match="wal_level = logical"):
        sync_cdc(resource_code=code)
    assert latest(code) is None


def test_disabling_capture_drops_the_slot_and_enabling_starts_with_a_snapshot(source: str) -> None:
    from cli.main import app

    code = register(source)
    env = {"COLUMNS": "200"}
    assert runner.invoke(app, ["sync", code], env=env).exit_code == 0
    name = slot_name_of(code)
    assert slot(source, name) is not None

    disabled = runner.invoke(app, ["cdc", "disable", code], env=env)
    assert disabled.exit_code == 0, disabled.output
    assert slot(source, name) is None, "a slot left behind would hold WAL on the source for ever"
    assert pg_execute(source, "SELECT count(*) FROM pg_publication WHERE pubname = %s", (name,)) == [(0,)]
    pg_execute(source, "DELETE FROM enterprises WHERE id = 5")
    table_read = runner.invoke(app, ["sync", code], env=env)
    assert table_read.exit_code == 0, table_read.output
    assert latest(code).manifest["mode"] == "full"
    assert_published_matches_source(code, source)

    assert runner.invoke(app, ["cdc", "enable", code], env=env).exit_code == 0
    pg_execute(source, "UPDATE enterprises SET status = '存续' WHERE id = 3")
    again = runner.invoke(app, ["sync", code], env=env)
    assert again.exit_code == 0, again.output
    assert latest(code).manifest["mode"] == "cdc-snapshot" and slot(source, name) is not None
    assert_published_matches_source(code, source)


@pytest.mark.slow
def test_a_cdc_resource_runs_as_one_capture_task_in_airflow(source: str, tmp_path: Path) -> None:
    from pipeline.airflow_runner import run_dags
    from registry.catalog.dagspecs import dag_id_for, write_dag_specs

    code = register(source)
    write_dag_specs()
    dag_id = dag_id_for(code)
    assert run_dags([dag_id], airflow_home=tmp_path / "airflow") == {dag_id: "success"}
    assert latest(code).manifest["mode"] == "cdc-snapshot"
    pg_execute(source, "DELETE FROM enterprises WHERE id = 3")
    assert run_dags([dag_id], airflow_home=tmp_path / "airflow") == {dag_id: "success"}
    assert latest(code).manifest["mode"] == "cdc" and latest(code).number == 2
    assert_published_matches_source(code, source)


@pytest.mark.parametrize("command", [["cdc", "status"], ["cdc", "guard"], ["cdc", "enable"], ["cdc", "disable"]],
                         ids=" ".join)
def test_cdc_commands_explain_themselves(command: list[str]) -> None:
    from cli.main import app

    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Example" in result.output and "govshare " + " ".join(command) in result.output


def test_a_composite_primary_key(source: str) -> None:
    from pipeline.cdc import sync_cdc

    pg_execute(source, """
        CREATE TABLE licences (uscc char(18), seq integer, kind text, valid_until date, PRIMARY KEY (uscc, seq));
        INSERT INTO licences VALUES ('91310000MA1FL0001X', 1, '食品经营', '2027-01-01'),
                                    ('91310000MA1FL0001X', 2, '酒类零售', '2026-06-30'),
                                    ('91310000MA1FL0002X', 1, '食品经营', NULL)""")
    code = register(source, table="licences", key=("uscc", "seq"))
    sync_cdc(resource_code=code)
    pg_execute(source, "UPDATE licences SET valid_until = '2028-01-01' WHERE seq = 1 AND uscc LIKE '%0001X'; "
                       "DELETE FROM licences WHERE seq = 2; "
                       "INSERT INTO licences VALUES ('91310000MA1FL0002X', 2, '药品零售', '2030-12-31')")
    assert sync_cdc(resource_code=code).version == 2
    columns = ("uscc", "seq", "kind", "valid_until")
    published = table_rows(read_version(latest(code), sort_by=None).sort_by([("uscc", "ascending"),
                                                                            ("seq", "ascending")]), columns)
    assert published == pg_rows(source, "licences", columns=columns, order_by="uscc, seq")


def test_change_capture_versions_get_the_expectations_report(source: str) -> None:
    """The one run lifecycle's follow-up runs for change capture as for table reads: each published version
    (the snapshot and a change run's layer) gets its great-expectations report and expectation run."""
    from sqlalchemy import select

    from core.storage import get_storage
    from pipeline.cdc import sync_cdc
    from registry.db import session_scope
    from registry.exchange.models import DatasetVersion
    from registry.quality.models import ExpectationRun

    code = register(source)
    snapshot = sync_cdc(resource_code=code)
    pg_execute(source, "UPDATE enterprises SET status = '注销' WHERE id = 2; DELETE FROM enterprises WHERE id = 5")
    changes = sync_cdc(resource_code=code)
    assert (snapshot.mode, snapshot.version, changes.mode, changes.version) == ("cdc-snapshot", 1, "cdc", 2)

    with session_scope() as session:
        runs = {number: (run.rows, run.status, run.report_path) for number, run in session.execute(
            select(DatasetVersion.number, ExpectationRun).join(ExpectationRun,
                                                              ExpectationRun.version_id == DatasetVersion.id))}
    assert sorted(runs) == [1, 2]
    assert runs[1][0] == 5 and runs[2][0] == 4  # the suite read each version's live rows
    assert all(status in ("passed", "failed") for _, status, _ in runs.values())
    for _, _, report in runs.values():
        assert get_storage().exists(f"{report}/report.html")


def test_a_change_the_slot_never_saw_is_found_by_the_periodic_full_read(source: str) -> None:
    """A cdc resource never got the safety-net full read (GOVSHARE_FULL_REFRESH_DAYS applied to incremental
    resources only): a change the slot never decoded (here a slot advanced by hand with the stored position,
    as a restore or an operator's repair leaves it) stayed published for good. Once the last full read is that
    old, the run reads a fresh snapshot, and the version's change set shows the drift."""
    from datetime import timedelta

    from core import clock
    from pipeline.cdc import sync_cdc
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.versions import cursor_state
    from tests.clock import pinned

    code = register(source)
    assert sync_cdc(resource_code=code).mode == "cdc-snapshot"
    name = slot_name_of(code)
    pg_execute(source, "UPDATE enterprises SET status = '吊销' WHERE id = 4")
    [(skipped,)] = pg_execute(source, "SELECT lsn::text FROM pg_replication_slot_advance(%s, pg_current_wal_lsn()) "
                                      "AS advanced(slot, lsn)", (name,))
    with session_scope() as session:
        cursor_state(session, resource=get_resource(session, code=code)).cursor_value = skipped

    within = sync_cdc(resource_code=code)
    assert within.mode == "cdc"  # the slot has nothing: the drift stays published until the full read
    assert read_version(latest(code)).to_pylist()[3]["status"] == "存续"

    with pinned(clock.now() + timedelta(days=8)):
        due = sync_cdc(resource_code=code)
        assert due.mode == "cdc-snapshot" and due.version == 2
        assert_published_matches_source(code, source)
        assert latest(code).manifest["changes"]["updated"] == 1
        assert sync_cdc(resource_code=code).mode == "cdc"  # and then the slot's changes again, for a week
