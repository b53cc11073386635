"""The Airflow DAG file: one sync DAG per resource with a source, built from the registry's JSON snapshot without
opening any connection; and a real run through Airflow's dag.test()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import (CONSUMER, OTHER_PROVIDER, PROVIDER, latest, read_version, register_resource, sync_runs,
                           versions)

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags"
MAINTENANCE_DAGS = {"govshare_maintenance", "govshare_notices", "govshare_supervision"}  # always there

# Runs in a fresh interpreter: every way to open a connection is replaced before the DAG file is parsed.
PARSE_WITHOUT_CONNECTIONS = textwrap.dedent("""
    import json, socket, sqlite3, sys

    import psycopg2

    attempts = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append(what)
            raise RuntimeError(f"{what} attempted while parsing DAGs")
        return refused

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    sqlite3.connect = refuse("sqlite3.connect")
    psycopg2.connect = refuse("psycopg2.connect")

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1])
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "schedule": str(dag.schedule),
            "retries": dag.default_args.get("retries"),
            "task_retries": {task.task_id: task.retries for task in dag.tasks},
            "task_timeouts": {task.task_id: task.execution_timeout.total_seconds() for task in dag.tasks
                              if task.execution_timeout},
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
        }
    print(json.dumps({"dags": dags, "attempts": attempts,
                      "import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
""")


def _parse_dags(dag_folder: Path, *, home: Path, airflow_home: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "GOVSHARE_HOME": str(home), "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag_folder), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    done = subprocess.run([sys.executable, "-c", PARSE_WITHOUT_CONNECTIONS, str(dag_folder)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def two_resources(hub_home: Path, tmp_path: Path) -> dict[str, dict]:
    """Two resources of two agencies, each fed by its own SQLite business database, and one without a source."""
    from registry.catalog.dagspecs import dag_id_for

    market_db, civil_db = tmp_path / "market.db", tmp_path / "civil.db"
    load_sqlite(market_db, rows=400, seed=41)
    load_sqlite(civil_db, rows=250, seed=42)
    market = register_resource(kind="sqlite", config={"path": str(market_db)}, name="企业基本信息",
                               classification="101001", provider=PROVIDER, update_cycle="daily")
    civil = register_resource(kind="sqlite", config={"path": str(civil_db)}, name="社会组织登记信息",
                              classification="102001", provider=OTHER_PROVIDER, update_cycle="weekly")
    register_resource(kind=None, name="政策文件目录", classification="103001", provider=PROVIDER,
                      consumer=CONSUMER)  # catalogued only: no source, so no DAG
    return {
        dag_id_for(market.resource_code): {"hub": market, "agency": PROVIDER, "schedule": "@daily", "kind": "sqlite"},
        dag_id_for(civil.resource_code): {"hub": civil, "agency": OTHER_PROVIDER, "schedule": "@weekly",
                                          "kind": "sqlite"},
    }


def test_dag_file_builds_one_dag_per_resource_without_connecting(two_resources: dict[str, dict], hub_home: Path,
                                                                   tmp_path: Path) -> None:
    assert (hub_home / "dag_specs.json").is_file()
    parsed = _parse_dags(DAGS_FOLDER, home=hub_home, airflow_home=tmp_path / "airflow")

    assert parsed["import_errors"] == {}
    assert parsed["attempts"] == [], "parsing the DAG file opened a connection"
    assert set(parsed["dags"]) == set(two_resources) | MAINTENANCE_DAGS
    for dag_id, expected in two_resources.items():
        dag = parsed["dags"][dag_id]
        code, name = expected["agency"]
        assert f"agency:{code}" in dag["tags"] and name in dag["tags"]
        assert "govshare" in dag["tags"] and expected["kind"] in dag["tags"]
        assert dag["schedule"] == expected["schedule"]
        assert dag["retries"] == 2
        assert dag["task_retries"] == {"stage": 2, "publish": 2, "after_publish": 0}
        assert dag["task_timeouts"] == {"stage": 7200, "publish": 7200, "after_publish": 3600}
        assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    maintenance = parsed["dags"]["govshare_maintenance"]
    assert maintenance["schedule"] == "30 2 * * *" and "maintenance" in maintenance["tags"]
    assert set(maintenance["task_retries"]) == {"clean_staging", "prune_versions"}
    assert parsed["dags"]["govshare_notices"]["schedule"] == "*/5 * * * *"


def test_dag_file_reads_only_the_snapshot(two_resources: dict[str, dict], hub_home: Path, tmp_path: Path) -> None:
    """With the registry database gone, the DAGs still build from the snapshot; without a snapshot there are none."""
    (hub_home / "govshare.db").rename(tmp_path / "moved-away.db")
    parsed = _parse_dags(DAGS_FOLDER, home=hub_home, airflow_home=tmp_path / "airflow")
    assert parsed["import_errors"] == {} and set(parsed["dags"]) == set(two_resources) | MAINTENANCE_DAGS

    (hub_home / "dag_specs.json").unlink()
    parsed = _parse_dags(DAGS_FOLDER, home=hub_home, airflow_home=tmp_path / "airflow")
    assert parsed["import_errors"] == {} and set(parsed["dags"]) == MAINTENANCE_DAGS


def test_the_no_connection_harness_catches_a_connecting_dag_file(hub_home: Path, tmp_path: Path) -> None:
    """The harness above would notice: a DAG file that opens SQLite at parse time is reported."""
    folder = tmp_path / "bad_dags"
    folder.mkdir()
    (folder / "connects.py").write_text(textwrap.dedent(f"""
        import sqlite3
        sqlite3.connect({str(hub_home / "govshare.db")!r})
        from airflow.sdk import dag
        @dag(dag_id="connects_at_parse_time", schedule=None)
        def connects():
            pass
        connects()
    """))
    parsed = _parse_dags(folder, home=hub_home, airflow_home=tmp_path / "airflow")
    assert parsed["attempts"] == ["sqlite3.connect"]
    assert parsed["dags"] == {} and parsed["import_errors"]


@pytest.mark.slow
def test_a_dag_runs_through_airflow_and_publishes(two_resources: dict[str, dict], tmp_path: Path) -> None:
    from pipeline.airflow_runner import run_dags

    dag_id, expected = next((k, v) for k, v in two_resources.items() if v["schedule"] == "@weekly")
    code = expected["hub"].resource_code
    assert latest(code) is None

    states = run_dags([dag_id], airflow_home=tmp_path / "airflow")

    assert states == {dag_id: "success"}
    assert [v.number for v in versions(code)] == [1]
    version = latest(code)
    assert version.row_count == 250
    assert read_version(version).column("id").to_pylist() == list(range(1, 251))
    from pipeline.expectations import latest_run

    assert latest_run(resource_code=code).status == "passed"  # the expectations task ran after the publish
    # The other resource's DAG did not run.
    other = next(v for k, v in two_resources.items() if k != dag_id)
    assert latest(other["hub"].resource_code) is None


@pytest.mark.slow
def test_sync_dags_run_against_postgresql_and_mariadb(hub_home: Path, tmp_path: Path) -> None:
    """dag.test() of two generated DAGs, one per real source database: stage, publish and notify each."""
    import uuid
    from contextlib import closing

    import pymysql

    from pipeline.airflow_runner import run_dags
    from registry.catalog.dagspecs import dag_id_for
    from registry.db import session_scope
    from registry.exchange.notices import list_notices
    from samples.loaders import load_mysql, load_postgres
    from tests.helpers import pg_execute, pg_scratch_schema, pg_source_config
    from tests.services import require_mysql, require_postgres

    dsn, mysql = require_postgres(), require_mysql()
    database = f"gs_dag_{uuid.uuid4().hex[:8]}"
    with closing(pymysql.connect(**mysql, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    try:
        with pg_scratch_schema(dsn) as schema:
            load_postgres(dsn, rows=300, seed=61, schema=schema)
            load_mysql(**{**mysql, "database": database}, rows=200, seed=62)
            config, secret = pg_source_config(dsn, schema=schema)
            pg_hub = register_resource(kind="postgresql", config=config, secret=secret, subscribe=True)
            my_hub = register_resource(
                kind="mysql", provider=OTHER_PROVIDER, classification="102001", name="社会组织登记信息",
                subscribe=True, secret={"password": mysql["password"]} if mysql["password"] else None,
                config={"host": mysql["host"], "port": mysql["port"], "database": database, "user": mysql["user"],
                        "datetime_timezone": "Asia/Shanghai"})
            dags = [dag_id_for(pg_hub.resource_code), dag_id_for(my_hub.resource_code)]

            states = run_dags(dags, airflow_home=tmp_path / "airflow")

            assert states == {dag: "success" for dag in dags}
            for hub, rows in ((pg_hub, 300), (my_hub, 200)):
                assert [v.number for v in versions(hub.resource_code)] == [1]
                version = latest(hub.resource_code)
                assert version.row_count == rows
                assert read_version(version).column("id").to_pylist() == list(range(1, rows + 1))
            with session_scope() as session:  # the notify task queued one notice per subscriber and version
                assert sorted((n.resource_code, n.version_number) for n in list_notices(session)) == sorted(
                    [(pg_hub.resource_code, 1), (my_hub.resource_code, 1)])

            # The source changes; the next DAG run publishes v2 incrementally with its change set, notified once.
            pg_execute(dsn, f'UPDATE "{schema}".enterprises SET status = \'注销\', updated_at = now() WHERE id <= 7')
            assert run_dags(dags[:1], airflow_home=tmp_path / "airflow") == {dags[0]: "success"}
            v2 = latest(pg_hub.resource_code)
            assert v2.number == 2 and v2.manifest["mode"] == "incremental"
            assert (v2.manifest["changes"]["updated"], v2.manifest["changes"]["inserted"]) == (7, 0)
            with session_scope() as session:
                assert [n.version_number for n in list_notices(session, resource_code=pg_hub.resource_code)] == [1, 2]

            # A scheduled run that finds no change publishes no version and notifies nobody, but is recorded.
            assert run_dags(dags[:1], airflow_home=tmp_path / "airflow") == {dags[0]: "success"}
            assert latest(pg_hub.resource_code).number == 2
            with session_scope() as session:
                assert [n.version_number for n in list_notices(session, resource_code=pg_hub.resource_code)] == [1, 2]
            assert sync_runs(pg_hub.resource_code)[-1].status == "unchanged"
    finally:
        with closing(pymysql.connect(**mysql, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.mark.slow
def test_the_maintenance_and_notices_dags_run(hub_home: Path, tmp_path: Path) -> None:
    import time as clock

    from pipeline import paths
    from pipeline.airflow_runner import run_dags

    leftover = paths.run_dir(1, "killed-long-ago")
    (leftover / "data").mkdir(parents=True)
    old = clock.time() - 48 * 3600
    for item in (leftover, leftover / "data"):
        os.utime(item, (old, old))
    fresh = paths.run_dir(1, "just-started")
    fresh.mkdir(parents=True)

    states = run_dags(["govshare_maintenance", "govshare_notices"], airflow_home=tmp_path / "airflow")

    assert states == {"govshare_maintenance": "success", "govshare_notices": "success"}
    assert not leftover.exists() and fresh.exists()


@pytest.mark.slow
def test_a_refused_login_fails_the_sync_task_at_once_without_retries(hub_home: Path, tmp_path: Path) -> None:
    """A wrong password is a configuration error: the stage task fails on its first try (the DAG's tasks
    otherwise retry twice), nothing is published, and the run says why."""
    import secrets
    import uuid
    from contextlib import closing

    import pymysql

    from pipeline.airflow_runner import run_dags
    from registry.catalog.dagspecs import dag_id_for
    from samples.loaders import load_mysql
    from tests.services import require_mysql

    mysql = require_mysql()
    database, user = f"gs_dag_{uuid.uuid4().hex[:8]}", f"gs_u_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    with closing(pymysql.connect(**mysql, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'")
    try:
        load_mysql(**{**mysql, "database": database}, rows=50, seed=63)
        hub = register_resource(kind="mysql", secret={"password": password + "-wrong"},
                                config={"host": mysql["host"], "port": mysql["port"], "database": database,
                                        "user": user})
        dag_id = dag_id_for(hub.resource_code)
        tasks: dict[str, dict] = {}

        states = run_dags([dag_id], airflow_home=tmp_path / "airflow", tasks=tasks)

        assert states == {dag_id: "failed"}
        assert tasks[dag_id]["stage"] == {"state": "failed", "try_number": 1}
        assert tasks[dag_id]["publish"]["state"] == "upstream_failed"
        assert versions(hub.resource_code) == []
        run = sync_runs(hub.resource_code)[-1]
        assert run.status == "failed" and "cannot log in" in run.error and password not in run.error
    finally:
        with closing(pymysql.connect(**mysql, autocommit=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_every_catalogue_update_cycle_has_its_own_schedule(tmp_path: Path) -> None:
    """A 每半年 resource was scheduled @daily (the fallback for a cycle the table lacked); each cycle of the
    catalogue's code list now names its schedule, 不定期 looked at daily."""
    import yaml

    from pipeline.airflow_dags import SCHEDULES, build_sync_dags

    cycles = yaml.safe_load((REPO / "schemas" / "labels.yaml").read_text(encoding="utf-8"))["update_cycles"]
    assert set(SCHEDULES) == set(cycles)
    specs = tmp_path / "dag_specs.json"
    specs.write_text(json.dumps({"resources": [
        {"dag_id": f"govshare_sync_{cycle}", "resource_code": f"10100{n}/0001", "name": "企业基本信息",
         "agency_code": PROVIDER[0], "agency_name": PROVIDER[1], "update_cycle": cycle, "source_kind": "sqlite",
         "sync_mode": "auto"} for n, cycle in enumerate(cycles)]}, ensure_ascii=False))
    built = build_sync_dags(specs)
    assert built["govshare_sync_half_yearly"].schedule == "0 0 1 1,7 *"
    assert built["govshare_sync_quarterly"].schedule == "0 0 1 */3 *"
    assert built["govshare_sync_irregular"].schedule == "@daily"
