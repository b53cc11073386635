"""Airflow DAGs built from the registry's snapshot: one per resource with a source (TaskFlow, airflow.sdk).

Parsing reads only the JSON snapshot the registry writes (registry/catalog/dagspecs.py): no source and no
registry connection is opened at parse time. Connections open inside the tasks, when they run.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

SCHEDULES = {
    "realtime": "*/15 * * * *", "hourly": "@hourly", "daily": "@daily", "weekly": "@weekly",
    "monthly": "@monthly", "quarterly": "0 0 1 */3 *", "half_yearly": "0 0 1 1,7 *", "yearly": "@yearly",
    "irregular": "@daily",  # 不定期: no cycle to follow, so looked at daily (a run without a change publishes nothing)
}
LOCK_WAIT_SECONDS = 300  # a run of the same resource started elsewhere (CLI): wait, then Airflow retries
DEFAULT_ARGS = {"owner": "govshare", "retries": 2, "retry_delay": timedelta(minutes=5),
                "retry_exponential_backoff": True, "execution_timeout": timedelta(hours=2)}


def read_specs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text()).get("resources", [])


def _by_cause(call):  # noqa: ANN001, ANN202 - a task's body
    """Run a task's body; an error retrying cannot fix (configuration: a refused password, a missing column;
    fatal: a broken contract; access) fails the task at once, without Airflow's retries."""
    from core.errors import AccessDenied, ConfigError, FatalError

    try:
        return call()
    except (ConfigError, FatalError, AccessDenied) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


def build_sync_dag(spec: dict[str, Any]):  # noqa: ANN201 - an airflow.sdk DAG
    import pendulum
    from airflow.sdk import dag, task

    @task(task_id="capture")
    def cdc_task(params: dict | None = None) -> dict[str, Any]:
        from dataclasses import asdict

        from pipeline.cdc import sync_cdc

        full = bool((params or {}).get("full", False))
        return _by_cause(lambda: asdict(sync_cdc(resource_code=spec["resource_code"], full=full,
                                                 wait_seconds=LOCK_WAIT_SECONDS)))

    @dag(
        dag_id=spec["dag_id"],
        description=f"同步 {spec['name']} ({spec['resource_code']}) from {spec['agency_name']}",
        schedule=SCHEDULES.get(spec["update_cycle"], "@daily"),
        start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["govshare", f"agency:{spec['agency_code']}", spec["agency_name"], spec["source_kind"]],
        params={"full": False},
    )
    def sync_dag() -> None:
        if spec.get("sync_mode") == "cdc":  # change capture: one task guards and streams the slot, publishes,
            cdc_task()                       # confirms, and runs the post-publish path itself (pipeline/cdc.py)
            return

        @task
        def stage(params: dict | None = None) -> str:
            from pipeline.extract import stage_resource

            full = bool((params or {}).get("full", False))
            # This process ends with the task: the lock is handed over to the publish task explicitly.
            return _by_cause(lambda: stage_resource(resource_code=spec["resource_code"], full=full,
                                                    wait_seconds=LOCK_WAIT_SECONDS, hand_over=True).folder)

        @task
        def publish(folder: str) -> dict[str, Any]:
            from dataclasses import asdict

            from pipeline.run import lifecycle

            return _by_cause(lambda: asdict(lifecycle.publish(folder=folder, wait_seconds=LOCK_WAIT_SECONDS)))

        @task(retries=0, execution_timeout=timedelta(hours=1))
        def after_publish(report: dict[str, Any]) -> dict[str, Any]:
            from pipeline.run import lifecycle

            # The one post-publish path (notices, expectations, schedules), as after a CLI sync, a change
            # capture run or a replay; each step reports its own failure and never undoes the publish.
            return lifecycle.follow_up(resource_code=report["resource_code"], version=report["version"])

        after_publish(publish(stage()))

    return sync_dag()


def build_sync_dags(specs_path: Path | None = None) -> dict[str, Any]:
    """{dag_id: DAG} for the DAG file's globals()."""
    if specs_path is None:
        from registry.catalog.dagspecs import dag_specs_path

        specs_path = dag_specs_path()
    return {spec["dag_id"]: build_sync_dag(spec) for spec in read_specs(specs_path)}


def build_maintenance_dags() -> dict[str, Any]:
    """Housekeeping daily, and the notice delivery sweep every five minutes (webhook retries come due)."""
    import pendulum
    from airflow.sdk import dag, task

    start = pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai")
    common = {"start_date": start, "catchup": False, "max_active_runs": 1, "default_args": DEFAULT_ARGS}

    @dag(dag_id="govshare_maintenance", description="运维清理: expired staging, old versions by the retention rule",
         schedule="30 2 * * *", tags=["govshare", "maintenance"], params={"keep_last": 5, "keep_days": 30}, **common)
    def maintenance() -> None:
        @task(execution_timeout=timedelta(minutes=30))
        def clean_staging() -> list[str]:
            from pipeline.housekeeping import clean_staging as clean

            return clean(max_age_hours=24)

        @task(execution_timeout=timedelta(minutes=30))
        def prune_versions(params: dict | None = None) -> list[str]:
            from pipeline.housekeeping import prune_versions as prune

            params = params or {}
            return prune(keep_last=int(params.get("keep_last", 5)), keep_days=int(params.get("keep_days", 30)))

        clean_staging() >> prune_versions()

    @dag(dag_id="govshare_notices", description="更新通知: queue missed notices, deliver due webhook notices, with retries "
                                                "and backoff",
         schedule="*/5 * * * *", tags=["govshare", "notices"], **common)
    def notices() -> None:
        @task(execution_timeout=timedelta(minutes=4))
        def deliver() -> dict[str, int]:
            from pipeline.notify import deliver_pending, queue_missed

            missed = queue_missed()  # versions whose publish died before queuing their notices
            report = deliver_pending()
            return {"missed": missed, "delivered": len(report.delivered), "retrying": len(report.retrying),
                    "failed": len(report.failed), "deferred": len(report.deferred),
                    "released": len(report.released), "superseded": len(report.superseded)}

        deliver()

    built = [maintenance(), notices()]
    return {d.dag_id: d for d in built}
