"""What follows every publish, whatever started it (CLI sync, Airflow, replay, change capture, API): one path.

1. update notices (更新通知, article 16) to the subscribers, once per version (pipeline/notify.py, idempotent);
2. the great-expectations report of the new version (pipeline/expectations.py: reported, never blocking);
3. the DAG schedules (dag_specs.json, registry/catalog/dagspecs.py), so Airflow runs each resource on its current cycle.

A run that published nothing (no change) sends no notice and has no new version to validate; the schedules
are still refreshed. Each step's failure is logged and returned, never raised: the version is already
published and served, and each step can be repeated (`govshare notices queue`, `govshare expectations`).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
STEPS = ("notices", "expectations", "schedule")


def after_publish(*, resource_code: str, version: int | None, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    """Run the post-publish steps for ``version`` of the resource (None: the run published nothing).

    ``steps`` leaves some out only where a caller measures the publish alone (benchmarks)."""
    result: dict[str, Any] = {"resource_code": resource_code, "version": version, "errors": {}}
    for step in steps:
        if step in ("notices", "expectations") and version is None:
            continue
        try:
            result[step] = _STEPS[step](resource_code, version)
        except Exception as exc:  # noqa: BLE001 - the version is published; a follow-up problem must not hide it
            log.exception("%s v%s published, but %s failed", resource_code, version, step)
            result["errors"][step] = f"{type(exc).__name__}: {exc}"[:2000]
    return result


def _notices(resource_code: str, version: int) -> int:
    from pipeline.notify import queue_notices

    return queue_notices(resource_code=resource_code, version_number=version)


def _expectations(resource_code: str, version: int) -> dict[str, Any]:
    from pipeline.expectations import run_after_publish

    return run_after_publish({"resource_code": resource_code, "version": version})


def _schedule(resource_code: str, version: int | None) -> str:
    from registry.catalog.dagspecs import write_dag_specs

    return str(write_dag_specs())


_STEPS = {"notices": _notices, "expectations": _expectations, "schedule": _schedule}
