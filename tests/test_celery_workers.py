"""Airflow on Celery workers (多机运行): two resources' sync DAGs run at the same time on two Celery workers,
through the real scheduler (not dag.test), with Airflow's metadata and the hub's registry on PostgreSQL and the
queue in Redis; both versions are published in the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import (
    OTHER_PROVIDER,
    PROVIDER,
    REPO,
    latest,
    read_version,
    register_resource,
    versions,
)

pytestmark = pytest.mark.slow

WORKERS = ["worker-a.govshare.test", "worker-b.govshare.test"]
FINISHED = ("success", "failed")


def test_two_sync_dags_run_at_once_on_two_celery_workers(pg_hub_home: Path, tmp_path: Path) -> None:
    from registry.catalog.dagspecs import dag_id_for
    from tests.airflow_celery import celery_airflow
    from tests.services import require_postgres, require_redis

    admin_dsn, redis_url = require_postgres(), require_redis()
    sources = {}
    for name, rows, seed, provider, classification in (("企业基本信息", 400, 41, PROVIDER, "101001"),
                                                        ("社会组织登记信息", 250, 42, OTHER_PROVIDER, "102001")):
        database = tmp_path / f"source-{seed}.db"
        load_sqlite(database, rows=rows, seed=seed)
        hub = register_resource(kind="sqlite", config={"path": str(database)}, name=name, provider=provider,
                                classification=classification, update_cycle="daily")
        sources[dag_id_for(hub.resource_code)] = (hub, rows)
    dags = sorted(sources)

    with celery_airflow(admin_dsn=admin_dsn, redis_url=redis_url, home=tmp_path / "airflow",
                        workers=WORKERS) as airflow:
        airflow.wait_for("the dag-processor to serialise both DAGs", lambda: len(airflow.query(
            "SELECT dag_id FROM serialized_dag WHERE dag_id = ANY(%s)", dags)) == 2, timeout=600)
        for dag_id in dags:
            airflow.airflow("dags", "unpause", dag_id)
        # Both runs are created at once: two CLI processes side by side.
        triggers = [subprocess.Popen([sys.executable, "-m", "airflow", "dags", "trigger", dag_id, "--run-id",
                                      f"celery-{n}"], env=airflow.env, cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True) for n, dag_id in enumerate(dags)]
        for trigger in triggers:
            _, errors = trigger.communicate(timeout=300)
            assert trigger.returncode == 0, errors[-3000:]

        def runs() -> list[tuple]:
            return airflow.query("SELECT dag_id, state, start_date, end_date FROM dag_run "
                                 "WHERE dag_id = ANY(%s) AND run_type = 'manual' ORDER BY dag_id", dags)

        airflow.wait_for("both DAG runs to finish", lambda: [r[1] for r in runs()] in (
            [a, b] for a in FINISHED for b in FINISHED), timeout=1200)
        finished = runs()
        tasks = airflow.query("SELECT dag_id, task_id, state, hostname, queue FROM task_instance "
                              "WHERE dag_id = ANY(%s) ORDER BY dag_id, task_id", dags)
        assert [(r[0], r[1]) for r in finished] == [(d, "success") for d in dags], airflow.log_tails()

    # Every task succeeded, from the cluster's own queue, and the tasks ran on both workers.
    assert tasks and all(t[2] in ("success", "skipped") for t in tasks), tasks
    assert {t[4] for t in tasks} == {airflow.queue}
    assert {t[3] for t in tasks if t[2] == "success"} == set(WORKERS), tasks
    # At once: each run started before the other ended.
    (_, _, start_a, end_a), (_, _, start_b, end_b) = finished
    assert start_a < end_b and start_b < end_a, finished
    # The data is published in the registry, one version each, with the source's rows.
    for hub, rows in sources.values():
        assert [v.number for v in versions(hub.resource_code)] == [1]
        version = latest(hub.resource_code)
        assert version.row_count == rows
        assert read_version(version).column("id").to_pylist() == list(range(1, rows + 1))
