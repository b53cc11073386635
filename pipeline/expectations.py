"""great-expectations on each published version: its own Airflow task after publish, never in its way.

The version's live rows (pipeline.layers) are read in bounded record batches (``GX_BATCH_ROWS`` rows, one column
set at a time in memory), validated with the contract's suite (quality/gx_suite.py) and the results stored per run:
``storage/expectations/<resource id>/<version folder>/results.json`` and a readable ``report.html``, plus one
``expectation_runs`` row. The version folder itself is not touched (its manifest and hashes stay as published).
A resource without a contract gets the key's not-null and unique expectations.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import clock
from core.storage import get_storage
from pipeline import paths
from pipeline.layers import iter_parts, version_parts

if TYPE_CHECKING:
    from quality.checks import BatchReader

# GX holds several pandas copies of a batch while it validates: 50,000 rows keep the step near 450 MiB
# (great_expectations itself is 300 MiB of it), well under its 512 MiB bound; 100,000 reach about 500.
GX_BATCH_ROWS = 50_000
log = logging.getLogger(__name__)


def _contract(resource) -> Any:  # noqa: ANN001, ANN401 - Resource -> Contract
    from quality.contracts import parse_contract
    from schemas.contract_store import contract_for

    contract = contract_for(resource_code=resource.code, stream=resource.stream)
    if contract is not None:
        return contract
    key = list((resource.stream or {}).get("primary_key") or [])
    return parse_contract({"name": "key_only", "key": key}, source=f"{resource.code} (key only)")


def report_folder(version) -> Path:  # noqa: ANN001 - DatasetVersion
    return paths.storage_root() / "expectations" / str(version.resource_id) / Path(version.path).name


def version_batches(version, *, batch_rows: int = GX_BATCH_ROWS) -> BatchReader:  # noqa: ANN001 - DatasetVersion
    """The version's live rows for the suite and the dataset rules; never its files whole: a layered version's
    files hold rows it no longer has (pipeline.layers)."""
    return partial(iter_parts, version_parts(version), batch_size=batch_rows)


def validate_version(*, resource_code: str, version_number: int | None = None,
                     batch_rows: int = GX_BATCH_ROWS) -> dict[str, Any]:
    """Run the suite over one published version (default: the latest) and store the results."""
    from core.errors import NotFound
    from quality.checks import DatasetContext
    from quality.gx_suite import SuiteRunner, render_html
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import list_versions, require_latest_version

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        if version_number is None:
            version = require_latest_version(session, resource=resource)
        else:
            version = next((v for v in list_versions(session, resource=resource) if v.number == version_number), None)
            if version is None:
                raise NotFound(f"resource {resource_code} has no version {version_number}; `govshare versions "
                               f"{resource_code}` lists them")
        previous = [v for v in list_versions(session, resource=resource) if v.number < version.number]
        previous_rows = previous[0].row_count if previous else None
        contract = _contract(resource)
        session.expunge(version)
    started = time.monotonic()
    read = version_batches(version, batch_rows=batch_rows)
    runner = SuiteRunner(contract)
    for batch in read():
        runner.validate(batch)
    dataset = DatasetContext(batches=read, rows=version.row_count, run_time=clock.now(),
                             previous_rows=previous_rows)
    result = runner.results(dataset=dataset)
    result.update({"resource": resource_code, "version": version.number, "run_id": version.run_id,
                   "seconds": time.monotonic() - started, "validated_at": clock.now().isoformat()})
    out = report_folder(version)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    (out / "report.html").write_text(render_html(result), encoding="utf-8")
    result["report_html"] = str(out / "report.html")
    get_storage().push(out)
    _record(version, result=result, report=out)
    return result


def _record(version, *, result: dict[str, Any] | None, report: Path | None, error: str | None = None) -> None:  # noqa: ANN001
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.catalog.models import Resource
    from registry.quality.models import ExpectationRun

    result = result or {}
    with session_scope() as session:
        session.add(ExpectationRun(
            resource_id=version.resource_id, version_id=version.id, status=result.get("status", "error"),
            success=bool(result.get("success")), evaluated=result.get("evaluated", 0), failed=result.get("failed", 0),
            rows=result.get("rows", 0), batches=result.get("batches", 0), seconds=result.get("seconds", 0.0),
            report_path=report.relative_to(paths.storage_root()).as_posix() if report else None, error=error))
        resource = session.get(Resource, version.resource_id)
        record_event(session, actor="pipeline", action="version.expectations", resource_code=resource.code,
                     result="ok" if result.get("success") else "failed",
                     detail={"version": version.number, "status": result.get("status", "error"),
                             "failed": result.get("failed"), "error": error})


def run_after_publish(report: dict[str, Any]) -> dict[str, Any]:
    """The Airflow task after ``publish`` (given the publish task's report): validate the new version. Failed
    expectations are reported, not raised; an error is recorded and logged, and the published version stays."""
    try:
        result = validate_version(resource_code=report["resource_code"], version_number=report["version"])
        return {key: result[key] for key in ("resource", "version", "status", "evaluated", "failed", "rows",
                                             "seconds", "report_html")}
    except Exception as exc:  # noqa: BLE001 - the publish is done; a broken report must not undo or block it
        log.exception("great-expectations validation of %s v%s failed", report.get("resource_code"),
                      report.get("version"))
        _record_error(report, exc)
        return {"resource": report.get("resource_code"), "version": report.get("version"), "status": "error",
                "error": str(exc)[:2000]}


def _record_error(report: dict[str, Any], exc: Exception) -> None:
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import list_versions

    try:
        with session_scope() as session:
            resource = get_resource(session, code=report["resource_code"])
            version = next(v for v in list_versions(session, resource=resource) if v.number == report["version"])
            session.expunge(version)
        _record(version, result=None, report=None, error=f"{type(exc).__name__}: {exc}"[:2000])
    except Exception:  # noqa: BLE001 - bookkeeping must not hide the original error in the log
        log.exception("could not record the failed validation")


def latest_run(*, resource_code: str) -> Any:  # noqa: ANN401 - ExpectationRun | None
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.quality.models import ExpectationRun
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        return session.scalar(select(ExpectationRun).where(ExpectationRun.resource_id == resource.id)
                              .order_by(ExpectationRun.id.desc()).limit(1))
