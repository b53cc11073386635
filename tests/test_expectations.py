"""The contract as a great-expectations 1.x suite, run over a published version in bounded batches; the results
are stored per run (results.json, report.html, an expectation_runs row) and never affect the publish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samples.loaders import load_postgres
from tests.helpers import (
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    register_resource,
)
from tests.services import require_postgres

ROWS = 250


@pytest.fixture
def published(hub_home: Path) -> Iterator[str]:
    """A PostgreSQL-fed resource with the enterprise contract, published with advisory (non-blocking) problems."""
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.exchange.contracts import attach_contract

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=9, schema=schema)
        pg_execute(dsn, f'UPDATE "{schema}".enterprises SET established = \'1900-01-01\' WHERE id IN (3, 120, 240)')
        pg_execute(dsn, f'UPDATE "{schema}".enterprises SET name = \'X\' WHERE id = 77')
        config, secret = pg_source_config(dsn, schema=schema)
        setup = register_resource(kind="postgresql", config=config, secret=secret)
        with session_scope() as session:
            attach_contract(session, resource_code=setup.resource_code, name="enterprises", actor="test")
        report = sync_resource(resource_code=setup.resource_code)
        assert report.rows_quarantined == 0  # advisory rules never quarantine
        yield setup.resource_code


def test_the_suite_runs_over_the_version_in_batches_and_its_results_are_stored(published: str) -> None:
    from pipeline.expectations import report_folder, validate_version
    from pipeline.paths import resolve

    result = validate_version(resource_code=published, batch_rows=64)

    assert result["rows"] == ROWS and result["batches"] == 4  # 250 rows in batches of 64
    by_rule = {entry["rule"]: entry for entry in result["results"]}
    established = by_rule["range_established"]
    assert established["expectation"] == "ExpectColumnValuesToBeBetween" and not established["success"]
    assert established["element_count"] == ROWS and established["unexpected_count"] == 3
    assert established["partial_unexpected_list"] == ["1900-01-01"]
    assert by_rule["pattern_name"]["unexpected_count"] == 1 and by_rule["pattern_name"]["partial_unexpected_list"] == ["X"]
    for rule in ("not_null_uscc", "identifier_uscc", "allowed_values_status", "range_reg_capital", "unique_key"):
        assert by_rule[rule]["success"] and by_rule[rule]["unexpected_count"] == 0, by_rule[rule]
    assert by_rule["row_count_change"]["engine"] == "govshare" and by_rule["row_count_change"]["success"]
    assert (result["status"], result["failed"]) == ("failed", 2)

    version = latest(published)
    folder = report_folder(version)
    stored = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert stored["version"] == version.number and stored["run_id"] == version.run_id
    assert stored["results"] == json.loads(json.dumps(result["results"], default=str))
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "数据质量校验报告" in page and "range_established" in page and "1900-01-01" in page
    # the published version itself is untouched: its folder holds only what its manifest lists
    assert not (resolve(version.path) / "results.json").exists()

    from pipeline.expectations import latest_run

    run = latest_run(resource_code=published)
    assert (run.status, run.failed, run.rows, run.batches, run.version_id) == ("failed", 2, ROWS, 4, version.id)
    assert run.report_path.endswith(folder.name)


def test_the_airflow_task_reports_and_never_raises(published: str) -> None:
    from pipeline.expectations import latest_run, run_after_publish

    version = latest(published)
    summary = run_after_publish({"resource_code": published, "version": version.number})
    assert summary["status"] == "failed" and summary["failed"] == 2 and summary["report_html"].endswith("report.html")

    # a broken validation (here: the version's files are gone) is recorded, not raised
    from pipeline.paths import resolve

    for entry in version.manifest["files"]:
        (resolve(version.path) / entry["path"]).rename(resolve(version.path) / (entry["path"] + ".moved"))
    summary = run_after_publish({"resource_code": published, "version": version.number})
    assert summary["status"] == "error" and "No such file" in summary["error"]
    run = latest_run(resource_code=published)
    assert run.status == "error" and "FileNotFoundError" in run.error


def test_the_cli_shows_the_results(published: str) -> None:
    from cli.main import app

    result = CliRunner().invoke(app, ["expectations", published])
    assert result.exit_code == 0, result.output
    assert "ExpectColumnValuesToBeBetween" in result.output and "failed: 2 of" in result.output
    missing = CliRunner().invoke(app, ["expectations", published, "--version", "9"])
    assert missing.exit_code == 1 and "has no version 9" in missing.output
