"""Airflow DAGs built from the registry's snapshot: one per resource with a source (TaskFlow, airflow.sdk).

Parsing reads only the JSON snapshot the registry writes (registry/dagspecs.py): no source and no
registry connection is opened at parse time. Connections open inside the tasks, when they run.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

SCHEDULES = {
    "realtime": "*/15 * * * *", "hourly": "@hourly", "daily": "@daily", "weekly": "@weekly",
    "monthly": "@monthly", "quarterly": "0 0 1 */3 *", "yearly": "@yearly",
}
DEFAULT_ARGS = {"owner": "govshare", "retries": 2, "retry_delay": timedelta(minutes=5),
                "retry_exponential_backoff": True, "execution_timeout": timedelta(hours=2)}


def read_specs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text()).get("resources", [])


def build_sync_dag(spec: dict[str, Any]):  # noqa: ANN201 - an airflow.sdk DAG
    import pendulum
    from airflow.sdk import dag, task

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
        @task
        def stage(params: dict | None = None) -> str:
            from pipeline.extract import stage_resource

            full = bool((params or {}).get("full", False))
            return stage_resource(resource_code=spec["resource_code"], full=full).folder

        @task
        def publish(folder: str) -> dict[str, Any]:
            from dataclasses import asdict

            from pipeline.sync import publish_run

            return asdict(publish_run(folder=folder))

        publish(stage())

    return sync_dag()


def build_sync_dags(specs_path: Path | None = None) -> dict[str, Any]:
    """{dag_id: DAG} for the DAG file's globals()."""
    if specs_path is None:
        from registry.dagspecs import dag_specs_path

        specs_path = dag_specs_path()
    return {spec["dag_id"]: build_sync_dag(spec) for spec in read_specs(specs_path)}
