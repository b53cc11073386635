"""The snapshot the Airflow DAG factory reads, so parsing DAGs opens no database connection.

It is rewritten whenever a resource's schedule-relevant fields change, whatever changed them (a CLI command,
the API's catalogue review, an import, a service call): a session hook notices the change at flush and
rewrites the file after the commit. The post-publish path rewrites it too (pipeline/after_publish.py).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from core.settings import get_settings
from registry.catalog.models import Resource
from registry.catalog.resources import list_resources
from registry.db import session_scope

log = logging.getLogger(__name__)
# A resource field the DAG snapshot shows: a change to one of these reschedules or renames its DAG.
SCHEDULE_FIELDS = ("code", "name", "update_cycle", "source_id", "stream", "agency_id")
_STALE = "govshare_dag_specs_stale"


def dag_specs_path() -> Path:
    return get_settings().home / "dag_specs.json"


def dag_id_for(resource_code: str) -> str:
    return "govshare_sync_" + resource_code.replace("/", "_")


def write_dag_specs() -> Path:
    """Write one spec per resource that has a source (only when it changed: the DAG processor re-parses a
    rewritten file)."""
    with session_scope() as session:
        specs: list[dict[str, Any]] = [
            {"dag_id": dag_id_for(r.code), "resource_code": r.code, "name": r.name, "agency_code": r.agency.code,
             "agency_name": r.agency.name, "update_cycle": r.update_cycle, "source_kind": r.source.kind,
             "sync_mode": (r.stream or {}).get("mode") or "auto"}
            for r in list_resources(session) if r.source is not None
        ]
    path = dag_specs_path()
    text = json.dumps({"resources": specs}, ensure_ascii=False, indent=2)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)  # the DAG processor never reads a half-written file
    return path


def _schedule_changed(session: Session) -> bool:
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Resource):
            return True
    for obj in session.dirty:
        if isinstance(obj, Resource):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in SCHEDULE_FIELDS):
                return True
    return False


@event.listens_for(Session, "before_flush")
def _note_schedule_change(session: Session, _context, _instances) -> None:  # noqa: ANN001 - SQLAlchemy hook
    if _schedule_changed(session):
        session.info[_STALE] = True


@event.listens_for(Session, "after_commit")
def _refresh_after_commit(session: Session) -> None:
    if session.info.pop(_STALE, False):
        try:
            write_dag_specs()
        except Exception:  # noqa: BLE001 - the change is committed; the next publish or `govshare init` rewrites it
            log.warning("dag_specs.json could not be rewritten after a catalogue change", exc_info=True)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_STALE, None)
