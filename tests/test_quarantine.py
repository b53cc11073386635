"""Quarantine on a real PostgreSQL source with planted bad rows: counts reconcile, the provider gets a ticket,
the exported rows come back fixed and are replayed into a new version; a run over its threshold publishes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samples.loaders import load_postgres
from tests.helpers import (
    OTHER_PROVIDER,
    PROVIDER,
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    sync_runs,
    versions,
    write_corrections,
)
from tests.services import require_postgres

ROWS = 300
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def hub(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")


@pytest.fixture
def source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        assert load_postgres(dsn, rows=ROWS, seed=5, schema=schema) == ROWS
        table = f'"{schema}".enterprises'
        # the business table lost its constraints: it can hold a null or a repeated id
        pg_execute(dsn, f"ALTER TABLE {table} DROP CONSTRAINT enterprises_pkey")
        pg_execute(dsn, f"ALTER TABLE {table} ALTER COLUMN id DROP NOT NULL")
        yield dsn, schema


def _typo(code: str) -> str:
    return code[:-1] + next(c for c in ALPHABET if c != code[-1])


def _plant(dsn: str, table: str, new_id: int | None, **changes: object) -> None:
    """Insert a copy of row 1 under ``new_id`` with some values changed."""
    columns = ["uscc", "name", "legal_rep", "legal_rep_id", "reg_capital", "established", "status", "address",
               "industry", "updated_at"]
    select = ", ".join("%s" if c in changes else f'"{c}"' for c in columns)
    params = [new_id, *[changes[c] for c in columns if c in changes]]
    pg_execute(dsn, f'INSERT INTO {table} (id, {", ".join(columns)}) SELECT %s, {select} FROM {table} WHERE id = 1',
               params)


def _register_with_contract(dsn: str, schema: str, **resource: object):  # noqa: ANN202
    from registry.db import session_scope
    from registry.exchange.contracts import attach_contract

    config, secret = pg_source_config(dsn, schema=schema)
    setup = register_resource(kind="postgresql", config=config, secret=secret, **resource)
    with session_scope() as session:
        attach_contract(session, resource_code=setup.resource_code, name="enterprises", actor="test")
    return setup


def _sync(code: str, *, full: bool = False):  # noqa: ANN202
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=code, full=full)


def _open_records(code: str) -> dict[tuple[str, str], str]:
    """(key, rule) -> reason of the resource's open quarantine records."""
    from registry.db import session_scope
    from registry.quality.quarantine import open_records
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        resource = get_resource(session, code=code)
        return {(r.key, r.rule): r.reason for r in open_records(session, resource_id=resource.id)}


def _tickets(code: str, status: str | None = "open") -> dict[str, int]:
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets

    with session_scope() as session:
        return {t.rule: t.rows for t in list_tickets(session, resource_code=code, status=status)}


def test_planted_bad_rows_are_quarantined_counted_ticketed_and_replayed(hub: Path, source: tuple[str, str],
                                                                       tmp_path: Path) -> None:
    from registry.db import session_scope
    from registry.quality.quarantine import list_quarantine
    from registry.quality.tickets import list_tickets

    dsn, schema = source
    table = f'"{schema}".enterprises'
    (uscc, person) = pg_execute(dsn, f"SELECT uscc, legal_rep_id FROM {table} WHERE id = 1")[0]
    _plant(dsn, table, 10001, uscc=_typo(uscc))
    _plant(dsn, table, 10002, legal_rep_id=_typo(person))
    _plant(dsn, table, 10003, reg_capital=-5)
    _plant(dsn, table, None)
    _plant(dsn, table, 10004, name="重复甲")
    _plant(dsn, table, 10004, name="重复乙")
    _plant(dsn, table, 10007, uscc=_typo(uscc), reg_capital=-7)  # one row, two broken rules
    setup = _register_with_contract(dsn, schema)

    report = _sync(setup.resource_code)

    # source rows = published + quarantined, on the run, the version and its manifest
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (ROWS + 7, ROWS, 7)
    run = sync_runs(setup.resource_code)[-1]
    assert run.rows_read == run.rows_published + run.rows_quarantined == ROWS + 7
    version = latest(setup.resource_code)
    assert version.row_count == ROWS and version.quarantined_count == 7
    published_ids = set(read_version(version).column("id").to_pylist())
    assert published_ids == set(range(1, ROWS + 1))

    # every rule a row breaks is recorded; one record per key and rule (a repeated key is one record)
    records = _open_records(setup.resource_code)
    null_key = next(k for k, rule in records if rule == "key_not_null")
    assert set(records) == {("10001", "identifier_uscc"), ("10002", "identifier_legal_rep_id"),
                            ("10003", "range_reg_capital"), (null_key, "key_not_null"), ("10004", "unique_key"),
                            ("10007", "identifier_uscc"), ("10007", "range_reg_capital")}
    assert null_key.startswith("row:") and "统一社会信用代码无效" in records[("10007", "identifier_uscc")]
    with session_scope() as session:
        (qset,) = list_quarantine(session, resource_code=setup.resource_code)
        assert (qset.rows, qset.status, qset.run_id) == (7, "open", run.id)
        assert qset.rules == {"identifier_uscc": 2, "identifier_legal_rep_id": 1, "range_reg_capital": 2,
                              "key_not_null": 1, "unique_key": 2}
        # one open ticket per rule, for the provider
        tickets = list_tickets(session, agency=PROVIDER[0], status="open")
        assert {t.rule: (t.kind, t.rows) for t in tickets} == {
            "identifier_uscc": ("quarantine", 2), "identifier_legal_rep_id": ("quarantine", 1),
            "range_reg_capital": ("quarantine", 2), "key_not_null": ("quarantine", 1), "unique_key": ("quarantine", 1)}
        assert all("请核实更正" in t.title for t in tickets)
        ticket_id = next(t.id for t in tickets if t.rule == "range_reg_capital")

    # the provider sees its ticket and the rows it lists: both rows breaking the range rule, with all their rules
    runner = CliRunner()
    from cli.main import app

    shown = runner.invoke(app, ["ticket", "show", str(ticket_id)], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "-5.00" in shown.output and "-7.00" in shown.output and "identifier_uscc;range_reg_capital" in shown.output
    assert f"工单 {ticket_id}（待处理）" in shown.output  # its status in Chinese (rich ate [open] as markup)
    tickets_listed = runner.invoke(app, ["ticket", "list", "--resource", setup.resource_code], env={"COLUMNS": "250"})
    assert tickets_listed.exit_code == 0 and "隔离数据待更正" in tickets_listed.output, tickets_listed.output
    assert "quarantine" not in tickets_listed.output  # the kind as its label
    listed = runner.invoke(app, ["quarantine", "list", setup.resource_code])
    assert listed.exit_code == 0 and "待处理 open: 7" in listed.output

    # export for the provider: rules, reasons and the source values, each bad row once
    export = tmp_path / "fix.csv"
    result = runner.invoke(app, ["quarantine", "export", setup.resource_code, "-o", str(export)])
    assert result.exit_code == 0, result.output
    with export.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and {r["_run_id"] for r in rows} == {run.id}
    by_rule = {r["_rule"]: r for r in rows}
    assert by_rule["identifier_uscc"]["uscc"] == _typo(uscc)
    assert "统一社会信用代码无效" in by_rule["identifier_uscc"]["_reason"]
    assert by_rule["range_reg_capital"]["reg_capital"] == "-5.00"
    assert by_rule["key_not_null"]["id"] == ""
    both = by_rule["identifier_uscc;range_reg_capital"]
    assert both["id"] == "10007" and len(both["_reason"].splitlines()) == 2

    # the provider fixes five problems and leaves the null key as it is
    for row in rows:
        if "identifier_uscc" in row["_rule"]:
            row["uscc"] = uscc
        if row["_rule"] == "identifier_legal_rep_id":
            row["legal_rep_id"] = person
        if "range_reg_capital" in row["_rule"]:
            row["reg_capital"] = "5.00"
        if row["name"] == "重复乙":
            row["id"] = "10005"
    fixed = tmp_path / "fixed.csv"
    write_corrections(fixed, rows)

    result = runner.invoke(app, ["quarantine", "replay", setup.resource_code, "--file", str(fixed)])
    assert result.exit_code == 0, result.output
    v2 = latest(setup.resource_code)
    assert [v.number for v in versions(setup.resource_code)] == [1, 2]
    assert v2.row_count == ROWS + 6 and v2.quarantined_count == 1
    data = read_version(v2)
    assert set(data.column("id").to_pylist()) == set(range(1, ROWS + 1)) | {10001, 10002, 10003, 10004, 10005,
                                                                              10007}
    capital = dict(zip(data.column("id").to_pylist(), data.column("reg_capital").to_pylist()))
    assert str(capital[10003]) == str(capital[10007]) == "5.00"
    replay_run = sync_runs(setup.resource_code)[-1]
    assert replay_run.mode == "replay" and (replay_run.rows_read, replay_run.rows_published) == (7, 6)
    # a replay version has a change set like any other: consumers keep following `changes --since`
    assert v2.manifest["changes"]["inserted"] == 6 and v2.manifest["changes"]["file"] == "changes.parquet"

    # the replayed keys' records are closed as fixed; the null key is recorded again, its ticket still open
    assert set(_open_records(setup.resource_code)) == {(null_key, "key_not_null")}
    assert _tickets(setup.resource_code) == {"key_not_null": 1}
    with session_scope() as session:
        sets = list_quarantine(session, resource_code=setup.resource_code)
        assert [(s.status, s.rows) for s in sets] == [("open", 1), ("resolved", 7)]
        assert sets[0].rules == {"key_not_null": 1} and sets[1].replay_run_id == replay_run.id
        closed = list_tickets(session, resource_code=setup.resource_code, status="closed")
        assert len(closed) == 4 and all("更正" in t.note for t in closed)

    # the excel export carries the remaining row
    xlsx = tmp_path / "left.xlsx"
    assert runner.invoke(app, ["quarantine", "export", setup.resource_code, "-o", str(xlsx)]).exit_code == 0
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx, read_only=True).worksheets[0]
    header, *left = list(sheet.iter_rows(values_only=True))
    assert header[:3] == ("_run_id", "_rule", "_reason") and len(left) == 1 and left[0][1] == "key_not_null"

    # the provider fills in the missing id in Excel and hands the workbook back
    book = load_workbook(xlsx)
    book.worksheets[0].cell(row=2, column=header.index("id") + 1, value=10006)
    book.save(xlsx)
    result = runner.invoke(app, ["quarantine", "replay", setup.resource_code, "--file", str(xlsx)])
    assert result.exit_code == 0, result.output
    v3 = latest(setup.resource_code)
    assert (v3.number, v3.row_count, v3.quarantined_count) == (3, ROWS + 7, 0)
    assert 10006 in read_version(v3).column("id").to_pylist()
    assert _open_records(setup.resource_code) == {} and _tickets(setup.resource_code) == {}
    with session_scope() as session:
        assert {s.status for s in list_quarantine(session, resource_code=setup.resource_code)} == {"resolved"}


def test_reading_bad_rows_again_keeps_one_record_per_key_and_rule(hub: Path, source: tuple[str, str]) -> None:
    """Re-read: superseded, not piled up; fixed at the source: closed as fixed; deleted: closed as deleted; one
    open ticket per rule throughout."""
    from registry.db import session_scope
    from registry.quality.models import QuarantineRecord

    dsn, schema = source
    table = f'"{schema}".enterprises'
    (uscc, person) = pg_execute(dsn, f"SELECT uscc, legal_rep_id FROM {table} WHERE id = 1")[0]
    _plant(dsn, table, 10001, uscc=_typo(uscc))
    _plant(dsn, table, 10002, legal_rep_id=_typo(person))
    _plant(dsn, table, 10007, uscc=_typo(uscc), reg_capital=-7)
    setup = _register_with_contract(dsn, schema)
    code = setup.resource_code
    assert _sync(code).rows_quarantined == 3
    first = _open_records(code)
    assert len(first) == 4

    for _ in range(3):  # three more full reads of the same bad rows: still four records, three tickets
        report = _sync(code, full=True)
        assert report.rows_quarantined == 3 and report.version is None  # nothing else changed: no version
    assert _open_records(code) == first
    assert _tickets(code) == {"identifier_uscc": 2, "identifier_legal_rep_id": 1, "range_reg_capital": 1}
    with session_scope() as session:
        statuses = [r.status for r in session.query(QuarantineRecord).order_by(QuarantineRecord.id)]
        assert statuses.count("open") == 4 and statuses.count("superseded") == 12

    # At the source: 10001's code corrected, 10002 deleted, 10007's capital corrected (its code still wrong).
    pg_execute(dsn, f"UPDATE {table} SET uscc = %s, updated_at = now() WHERE id = 10001", (uscc,))
    pg_execute(dsn, f"DELETE FROM {table} WHERE id = 10002")
    pg_execute(dsn, f"UPDATE {table} SET reg_capital = 7, updated_at = now() WHERE id = 10007")
    report = _sync(code)
    assert report.mode == "incremental" and report.rows_quarantined == 1
    assert set(_open_records(code)) == {("10007", "identifier_uscc")}
    assert _tickets(code) == {"identifier_uscc": 1}
    assert set(_tickets(code, status="closed")) == {"identifier_legal_rep_id", "range_reg_capital"}
    with session_scope() as session:
        closed = {(r.key, r.rule): r.closed_reason for r in session.query(QuarantineRecord)
                  .filter(QuarantineRecord.status == "closed")}
    assert closed == {("10001", "identifier_uscc"): "fixed", ("10002", "identifier_legal_rep_id"): "deleted",
                      ("10007", "range_reg_capital"): "fixed"}
    version = latest(code)
    assert 10001 in read_version(version).column("id").to_pylist()


def test_one_open_ticket_per_provider_and_rule_across_its_resources(hub: Path, source: tuple[str, str]) -> None:
    """Two resources of one provider break the same rule: one ticket lists both resources' rows and stays open
    until both are fixed; another provider breaking that rule gets a ticket of its own."""
    from cli.main import app
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets

    dsn, schema = source
    for table in ("licences", "branches"):
        load_postgres(dsn, table=table, rows=60, seed=6, schema=schema)
    (uscc,) = pg_execute(dsn, f'SELECT uscc FROM "{schema}".enterprises WHERE id = 1')[0]
    _plant(dsn, f'"{schema}".enterprises', 10001, uscc=_typo(uscc))
    for table, new_id in (("licences", 10002), ("licences", 10003), ("branches", 10004)):
        pg_execute(dsn, f'INSERT INTO "{schema}".{table} SELECT %s, %s, name, legal_rep, legal_rep_id, reg_capital, '
                        f'established, status, address, industry, updated_at FROM "{schema}".{table} WHERE id = 1',
                   (new_id, _typo(uscc)))
    first = _register_with_contract(dsn, schema)
    second = _register_with_contract(dsn, schema, table="licences", name="许可信息", classification="101002")
    other = _register_with_contract(dsn, schema, table="branches", name="分支机构", classification="101003",
                                    provider=OTHER_PROVIDER)
    for setup in (first, second, other):
        assert _sync(setup.resource_code).rows_quarantined == (2 if setup is second else 1)

    with session_scope() as session:
        mine = list_tickets(session, agency=PROVIDER[0], status="open")
        theirs = list_tickets(session, agency=OTHER_PROVIDER[0], status="open")
        assert [(t.rule, t.rows) for t in mine] == [("identifier_uscc", 3)]
        assert mine[0].detail["resources"] == {first.resource_code: 1, second.resource_code: 2}
        assert [(t.rule, t.rows) for t in theirs] == [("identifier_uscc", 1)]
        ticket_id = mine[0].id
    # listed under either resource of the provider, once, naming both
    assert _tickets(first.resource_code) == _tickets(second.resource_code) == {"identifier_uscc": 3}
    listed = CliRunner().invoke(app, ["ticket", "list", "--resource", second.resource_code],
                                env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and f"{first.resource_code}, {second.resource_code}" in listed.output
    shown = CliRunner().invoke(app, ["ticket", "show", str(ticket_id)], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    for key in ("10001", "10002", "10003"):
        assert key in shown.output
    assert "10004" not in shown.output and second.resource_code in shown.output

    # the first resource's row is fixed: the same ticket stays open for the other resource's two rows
    pg_execute(dsn, f'UPDATE "{schema}".enterprises SET uscc = %s, updated_at = now() WHERE id = 10001', (uscc,))
    _sync(first.resource_code)
    assert _tickets(second.resource_code) == {"identifier_uscc": 2}
    with session_scope() as session:
        (still,) = list_tickets(session, agency=PROVIDER[0], status="open")
        assert still.id == ticket_id
        assert still.detail["resources"] == {first.resource_code: 0, second.resource_code: 2}
    # ... and closes once the second resource's rows are gone from the source
    pg_execute(dsn, f'DELETE FROM "{schema}".licences WHERE id IN (10002, 10003)')
    _sync(second.resource_code)
    with session_scope() as session:
        assert list_tickets(session, agency=PROVIDER[0], status="open") == []
        assert [t.id for t in list_tickets(session, agency=PROVIDER[0], status="closed")] == [ticket_id]
        assert len(list_tickets(session, agency=OTHER_PROVIDER[0], status="open")) == 1


def test_a_run_over_its_threshold_publishes_nothing_and_says_why(hub_home: Path, source: tuple[str, str]) -> None:
    from core.errors import FatalError
    from pipeline.paths import storage_root
    from registry.db import session_scope
    from registry.quality.quarantine import list_quarantine

    dsn, schema = source
    table = f'"{schema}".enterprises'
    setup = _register_with_contract(dsn, schema)
    assert _sync(setup.resource_code).version == 1
    # 20 negative capitals out of 320 rows: 6.25% > the contract's 5%
    pg_execute(dsn, f"UPDATE {table} SET reg_capital = -1, updated_at = now() WHERE id <= 20")
    pg_execute(dsn, f"INSERT INTO {table} SELECT id + 1000, uscc, name, legal_rep, legal_rep_id, reg_capital, "
                    f"established, status, address, industry, now() FROM {table} WHERE id > 280")

    with pytest.raises(FatalError) as caught:
        from pipeline.sync import sync_resource

        sync_resource(resource_code=setup.resource_code, full=True)

    message = str(caught.value)
    assert "publishes nothing" in message and "range_reg_capital=20" in message
    assert "20 rows quarantined (range_reg_capital=20) of a dataset of 320" in message
    assert "max_fraction 5.00%" in message
    assert [v.number for v in versions(setup.resource_code)] == [1]  # the previous version stays served
    failed = sync_runs(setup.resource_code)[-1]
    assert failed.status == "failed" and "隔离总数超过阈值" in failed.error
    assert [p.name for p in (storage_root() / "datasets" / str(setup.resource_id)).iterdir()] == \
        [Path(versions(setup.resource_code)[0].path).name]  # the failed run's own folder is gone
    with session_scope() as session:
        assert list_quarantine(session, resource_code=setup.resource_code) == []


def test_the_threshold_is_a_share_of_the_dataset_not_of_the_run(hub_home: Path, source: tuple[str, str]) -> None:
    """max_fraction (5 % here) is measured against the dataset's rows: an incremental run that reads 25 rows,
    3 of them bad (12 % of the run, 1 % of the table), publishes the 22 good ones."""
    from pipeline.expectations import latest_run

    dsn, schema = source
    table = f'"{schema}".enterprises'
    setup = _register_with_contract(dsn, schema)
    assert _sync(setup.resource_code).version == 1
    pg_execute(dsn, f"UPDATE {table} SET status = '注销', updated_at = now() WHERE id BETWEEN 1 AND 22")
    pg_execute(dsn, f"UPDATE {table} SET reg_capital = -1, updated_at = now() WHERE id BETWEEN 23 AND 25")
    report = _sync(setup.resource_code)
    assert report.mode == "incremental" and report.version == 2
    # 25 changed rows and the row at the previous watermark, read again (cursor ties)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (26, 23, 3)
    # ids 23-25's published rows are withdrawn, as a full read of the table publishes none for them
    assert latest(setup.resource_code).row_count == ROWS - 3
    assert latest(setup.resource_code).manifest["changes"]["deleted"] == 3
    # the post-publish path ran after this command-line sync too: the version's great-expectations report
    assert latest_run(resource_code=setup.resource_code).version_id == latest(setup.resource_code).id


def test_replay_after_a_contract_fix_rechecks_the_stored_rows(hub_home: Path, source: tuple[str, str],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import yaml

    dsn, schema = source
    table = f'"{schema}".enterprises'
    pg_execute(dsn, f"UPDATE {table} SET status = '歇业' WHERE id IN (7, 8)")
    setup = _register_with_contract(dsn, schema)
    report = _sync(setup.resource_code)
    assert report.rows_quarantined == 2

    # the operator learns 歇业 is a lawful status and corrects the contract in GOVSHARE_HOME/contracts
    from schemas.contract_store import SHIPPED

    own = hub_home / "contracts"
    own.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((SHIPPED / "enterprises.yaml").read_text(encoding="utf-8"))
    data["rules"][0]["values"].append("歇业")
    (own / "enterprises.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    from pipeline.replay import replay_quarantine

    replay = replay_quarantine(resource_code=setup.resource_code)
    assert (replay.rows_replayed, replay.rows_fixed, replay.rows_still_failing) == (2, 2, 0)
    v2 = latest(setup.resource_code)
    assert v2.row_count == ROWS and v2.quarantined_count == 0

    # A replay version has a change set and its own expectations report, like any version: a consumer holding
    # v1 follows the changes.
    from pipeline.changes_feed import changes_since
    from pipeline.expectations import latest_run
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    assert v2.manifest["changes"]["inserted"] == 2 and latest_run(resource_code=setup.resource_code).version_id == v2.id
    with session_scope() as session:
        span = changes_since(session, resource=get_resource(session, code=setup.resource_code), since=1)
        assert span.counts == {"inserted": 2, "updated": 0, "deleted": 0}  # rows 7 and 8, never published before
    statuses = dict(zip(read_version(v2).column("id").to_pylist(), read_version(v2).column("status").to_pylist()))
    assert statuses[7] == statuses[8] == "歇业"
    # replaying again finds nothing open
    from core.errors import NotFound

    with pytest.raises(NotFound, match="no open quarantined rows"):
        replay_quarantine(resource_code=setup.resource_code)
    shutil.rmtree(own)


def test_a_run_that_does_not_reconcile_is_not_published(hub_home: Path, source: tuple[str, str]) -> None:
    """The check every publish makes: rows read = rows published (new, not carried) + rows quarantined."""
    import json

    from core.errors import FatalError
    from pipeline.extract import stage_resource
    from pipeline.sync import publish_run

    dsn, schema = source
    _plant(dsn, f'"{schema}".enterprises', None)
    setup = _register_with_contract(dsn, schema)
    staged = stage_resource(resource_code=setup.resource_code)
    assert (staged.rows_read, staged.rows_staged, staged.rows_quarantined) == (ROWS + 1, ROWS, 1)
    record = Path(staged.folder) / "staged.json"
    data = json.loads(record.read_text())
    data["rows_quarantined"] = 0  # as if a quarantined row had been lost on the way
    record.write_text(json.dumps(data))

    with pytest.raises(FatalError, match=f"does not reconcile: read {ROWS + 1} rows, published {ROWS}, "
                                         "quarantined 0 and superseded 0"):
        publish_run(folder=staged.folder)
    assert versions(setup.resource_code) == []
    assert sync_runs(setup.resource_code)[-1].status == "failed"
    assert not Path(staged.folder).exists()


@pytest.mark.parametrize("range_rows", [1_000_000, 37], ids=["one-key-range", "many-key-ranges"])
def test_the_sorted_key_check_quarantines_every_row_of_a_repeated_key(hub_home: Path, source: tuple[str, str],
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       range_rows: int) -> None:
    """An integer key is checked on the parts' sorted keys merged one key range at a time (bounded memory at
    any size); with tiny ranges a repeated key still falls in one of them."""
    from pipeline import locator

    monkeypatch.setattr(locator, "DUPLICATES_RANGE_ROWS", range_rows)
    dsn, schema = source
    table = f'"{schema}".enterprises'
    _plant(dsn, table, 10004, name="重复甲")
    _plant(dsn, table, 10004, name="重复乙")
    setup = _register_with_contract(dsn, schema)
    report = _sync(setup.resource_code)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (ROWS + 2, ROWS, 2)


def _exported(source: tuple[str, str], names: list[str], exported: Path) -> str:
    """Rows named `names` planted with a negative capital (quarantined), synced and exported through the CLI
    to `exported`; the resource's code."""
    from cli.main import app

    dsn, schema = source
    for key, name in enumerate(names, start=10001):
        _plant(dsn, f'"{schema}".enterprises', key, reg_capital=-5 - (key - 10001), name=name)
    code = _register_with_contract(dsn, schema).resource_code
    assert _sync(code).rows_quarantined == len(names)
    result = CliRunner().invoke(app, ["quarantine", "export", code, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    return code


def _replayed_names(code: str, fixed: Path) -> dict:
    """The provider's corrected file replayed through the CLI; the published names by id."""
    from cli.main import app

    result = CliRunner().invoke(app, ["quarantine", "replay", code, "--file", str(fixed)])
    assert result.exit_code == 0, result.output
    version = read_version(latest(code))
    return dict(zip(version.column("id").to_pylist(), version.column("name").to_pylist()))


def _capital_corrected(exported: Path) -> None:
    """The provider's correction of every exported row's capital, saved as openpyxl saves a workbook."""
    from openpyxl import load_workbook

    book = load_workbook(exported)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        row[header.index("reg_capital")].value = "5.00"
    book.save(exported)


def test_an_excel_export_keeps_hostile_values_as_text_through_replay(hub_home: Path, source: tuple[str, str],
                                                                     tmp_path: Path) -> None:
    """The rows sent to a provider are the source's worst: a name that Excel would run as a formula, one with
    a control character (XML cannot hold it: the export failed). Both are written as text; the provider fixes
    the capital in Excel, and the replay publishes the names exactly as the source had them."""
    from openpyxl import load_workbook

    from core.xlsx import unescaped

    formula, control = '=HYPERLINK("http://evil.example","打开")', "第一行\x01第二行"
    exported = tmp_path / "fix.xlsx"
    code = _exported(source, [formula, control], exported)
    book = load_workbook(exported)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        name = row[header.index("name")]
        assert name.data_type == "s" and unescaped(name.value) in (formula, control)
        row[header.index("reg_capital")].value = "5.00"  # the provider's correction, in Excel
    book.save(exported)
    names = _replayed_names(code, exported)
    assert (names[10001], names[10002]) == (formula, control)


def test_a_csv_export_never_runs_a_formula_and_replays_exactly(hub_home: Path, source: tuple[str, str],
                                                               tmp_path: Path) -> None:
    """The CSV of quarantined rows is for the provider to correct in Excel (it has a BOM for that): a name
    =HYPERLINK(...) ran there as a live link. It is written after the text marker ' and replayed without it;
    a negative amount is no formula and stays as it was."""
    import csv

    formula, sign = '=HYPERLINK("http://evil.example","打开")', "+1+1"
    exported = tmp_path / "fix.csv"
    code = _exported(source, [formula, sign], exported)
    with exported.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["name"], r["reg_capital"]) for r in rows) == [("'" + sign, "-6.00"), ("'" + formula, "-5.00")]
    for row in rows:
        row["reg_capital"] = "5.00"  # the provider's correction
    with exported.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    names = _replayed_names(code, exported)
    assert (names[10001], names[10002]) == (formula, sign)


def test_a_returned_csv_with_a_stray_quote_or_comma_is_refused_not_replayed_shifted(
        hub_home: Path, source: tuple[str, str], tmp_path: Path) -> None:
    """A provider fixing the CSV in a text editor: a quote never closed made every later line part of one name
    (published as that name, the other corrections lost), and a comma outside quotes shifted the values and
    dropped the last one. Either refuses the file, naming the record; nothing is replayed."""
    from cli.main import app

    exported = tmp_path / "fix.csv"
    code = _exported(source, ["公司甲", "公司乙", "公司丙"], exported)
    before = latest(code).number
    lines = exported.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    capital = header.index("reg_capital")

    def fixed(line: str) -> str:
        cells = line.split(",")
        cells[capital] = "5.00"
        return ",".join(cells)

    for broken, replaced, said in ((1, '"公司甲', "第2行起"), (2, "上海市,浦东新区", "第3条记录")):
        rows = [fixed(line) for line in lines[1:]]
        rows[broken - 1] = rows[broken - 1].replace(["公司甲", "公司乙"][broken - 1], replaced)
        exported.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8-sig")
        result = CliRunner().invoke(app, ["quarantine", "replay", code, "--file", str(exported)])
        assert result.exit_code == 1, result.output
        assert said in result.output and "fix.csv" in result.output, result.output
        assert latest(code).number == before


def test_a_returned_workbook_is_read_past_its_stated_size(hub_home: Path, source: tuple[str, str],
                                                          tmp_path: Path) -> None:
    """The corrected workbook comes back from the provider's own tools: one that states <dimension ref="A1:Z2"/>
    had every row below row 2 silently left out of the replay (read-only openpyxl stops there)."""
    import io
    import re
    import zipfile

    from pipeline.replay import replay_quarantine

    exported = tmp_path / "fix.xlsx"
    code = _exported(source, ["公司甲", "公司乙", "公司丙"], exported)
    _capital_corrected(exported)
    data = exported.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as source_zip, zipfile.ZipFile(exported, "w") as target:
        for item in source_zip.infolist():
            part = source_zip.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                part = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:Z2"', part)
            target.writestr(item, part)

    report = replay_quarantine(resource_code=code, file=exported)

    assert (report.rows_fixed, report.rows_still_failing) == (3, 0)


def test_a_replay_keeps_the_cursor_state_as_it_stands(hub_home: Path, source: tuple[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A table read's replay version names the position the resource holds and says it is a replay; the cursor
    state stays exactly as it stands. After a stream edit reset the cursor (the next run must read in full), a
    replay had written the latest version's watermark back into it, and the next run read incrementally from
    the old cursor's value."""
    import yaml

    dsn, schema = source
    pg_execute(dsn, f"UPDATE \"{schema}\".enterprises SET status = '歇业' WHERE id = 7")
    setup = _register_with_contract(dsn, schema)
    assert _sync(setup.resource_code).rows_quarantined == 1
    v1 = latest(setup.resource_code)
    assert v1.manifest["watermark"]["value"] is not None

    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.streams import set_stream
    from tests.helpers import cursor_value

    with session_scope() as session:  # another cursor column: the next run reads in full
        assert set_stream(session, resource=get_resource(session, code=setup.resource_code),
                          cursor_column="established", actor="test")
    assert cursor_value(setup.resource_code) is None

    from schemas.contract_store import SHIPPED

    own = hub_home / "contracts"
    own.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((SHIPPED / "enterprises.yaml").read_text(encoding="utf-8"))
    data["rules"][0]["values"].append("歇业")
    (own / "enterprises.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    from pipeline.replay import replay_quarantine

    assert replay_quarantine(resource_code=setup.resource_code).rows_fixed == 1
    replayed = latest(setup.resource_code).manifest
    assert replayed["mode"] == "replay" and replayed["watermark"].get("replay") is True, replayed["watermark"]
    assert replayed["watermark"].get("value") is None, "the replay names a position the resource does not hold"
    assert cursor_value(setup.resource_code) is None, "the replay set the cursor back to the old watermark"
    assert _sync(setup.resource_code).mode == "full"


def test_a_returned_workbook_saved_by_excel_keeps_a_literal_escape(hub_home: Path, source: tuple[str, str],
                                                                   tmp_path: Path) -> None:
    """A name holding the text `_x0041_` is exported as `_x005F_x0041_` (its underscore escaped); Excel keeps
    that in its shared strings when the provider saves the corrections, and openpyxl dropped the `x005F_`, so the
    replay published the name as `A公司`."""
    from tests.file_helpers import with_shared_strings

    exported = tmp_path / "fix.xlsx"
    code = _exported(source, ["_x0041_公司", "x005F_公司"], exported)
    _capital_corrected(exported)
    exported.write_bytes(with_shared_strings(exported.read_bytes()))

    names = _replayed_names(code, exported)

    assert (names[10001], names[10002]) == ("_x0041_公司", "x005F_公司")
