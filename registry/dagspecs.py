"""The snapshot the Airflow DAG factory reads, so parsing DAGs opens no database connection."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.settings import get_settings
from registry.db import session_scope
from registry.resources import list_resources


def dag_specs_path() -> Path:
    return get_settings().home / "dag_specs.json"


def dag_id_for(resource_code: str) -> str:
    return "govshare_sync_" + resource_code.replace("/", "_")


def write_dag_specs() -> Path:
    """Write one spec per resource that has a source; called after every catalogue change."""
    with session_scope() as session:
        specs: list[dict[str, Any]] = [
            {"dag_id": dag_id_for(r.code), "resource_code": r.code, "name": r.name, "agency_code": r.agency.code,
             "agency_name": r.agency.name, "update_cycle": r.update_cycle, "source_kind": r.source.kind,
             "sync_mode": (r.stream or {}).get("mode") or "auto"}
            for r in list_resources(session) if r.source is not None
        ]
    path = dag_specs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"resources": specs}, ensure_ascii=False, indent=2))
    os.replace(temporary, path)  # the DAG processor never reads a half-written file
    return path
