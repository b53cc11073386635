"""A clerk drops the agency's full export into the folder every day and syncs by `--cursor _file_modified`:
where a row came from (its `_file_name`, `_file_modified`) is not a change. Only rows whose content changed are
updates; a re-delivery with nothing new publishes no version and sends no notice (ARCHITECTURE.md, decisions)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import latest, read_version, register_resource

DAY_1, DAY_2, DAY_3 = (datetime(2026, 3, d, 18, tzinfo=UTC) for d in (2, 3, 4))
COLUMNS = [{"name": "id", "type": "integer", "header": "编号"},
           {"name": "name", "type": "text", "header": "企业名称"},
           {"name": "capital", "type": "decimal(18,2)", "header": "注册资本"}]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "exchange"
    path.mkdir()
    return path


def _export(folder: Path, name: str, rows: list[tuple[int, str, str]], moment: datetime) -> None:
    path = folder / name
    path.write_text("编号,企业名称,注册资本\n" + "".join(f"{i},{n},{c}\n" for i, n, c in rows), encoding="utf-8")
    import os

    os.utime(path, (moment.timestamp(), moment.timestamp()))


def _notices(resource_code: str) -> list:
    from registry.db import session_scope
    from registry.exchange.notices import list_notices

    with session_scope() as session:
        return list_notices(session, resource_code=resource_code)


def _sync(code: str, *, full: bool = False):  # noqa: ANN202 - pipeline.sync's report
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=code, full=full)


@pytest.mark.parametrize("cursor", ["_file_modified", "_file_name"])
def test_a_daily_full_export_delivered_again_changes_only_the_rows_whose_content_changed(
        hub_home: Path, folder: Path, cursor: str) -> None:
    first = [(i, f"上海市第{i}号科技有限公司", f"{i * 100}.00") for i in range(1, 21)]
    _export(folder, "企业-20260302.csv", first, DAY_1)
    hub = register_resource(kind="files", cursor=cursor, subscribe=True, config={
        "path": str(folder), "streams": {"enterprises": {"pattern": "企业-*.csv", "columns": COLUMNS}}})
    assert _sync(hub.resource_code).version == 1
    assert len(_notices(hub.resource_code)) == 1

    second = [*first, (21, "上海市第21号科技有限公司", "2100.00")]
    second[2] = (3, "上海市第3号贸易有限公司", "300.00")  # renamed
    _export(folder, "企业-20260303.csv", second, DAY_2)
    report = _sync(hub.resource_code)

    assert report.mode == "incremental" and report.version == 2
    changes = latest(hub.resource_code).manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (1, 1, 0)
    rows = {r["id"]: r for r in read_version(latest(hub.resource_code)).to_pylist()}
    assert len(rows) == 21
    # An unchanged row keeps the provenance of the file that last changed it; a changed or new one the new file's.
    assert rows[5]["_file_name"] == "企业-20260302.csv" and rows[5]["_file_modified"] == DAY_1
    assert rows[3]["_file_name"] == rows[21]["_file_name"] == "企业-20260303.csv"
    assert rows[3]["_file_modified"] == DAY_2 and rows[3]["name"] == "上海市第3号贸易有限公司"
    assert len(_notices(hub.resource_code)) == 2

    _export(folder, "企业-20260304.csv", second, DAY_3)  # the same export again, the next day
    report = _sync(hub.resource_code)

    assert report.rows_read == 21 and report.version is None and latest(hub.resource_code).number == 2
    assert len(_notices(hub.resource_code)) == 2

    report = _sync(hub.resource_code, full=True)  # the weekly full read of every file agrees: nothing changed
    assert report.version is None and latest(hub.resource_code).number == 2
    assert len(_notices(hub.resource_code)) == 2


def test_a_database_column_named_like_a_files_provenance_is_content(hub_home: Path, tmp_path: Path) -> None:
    """Only a file source's `_file_name` / `_file_modified` are provenance; a table's column of that name is data,
    and a change in it is an update like any other."""
    import sqlite3

    database = tmp_path / "biz.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE enterprises (id INTEGER PRIMARY KEY, name TEXT, _file_name TEXT)")
        connection.executemany("INSERT INTO enterprises VALUES (?, ?, ?)",
                               [(i, f"企业{i}", f"档案-{i}.pdf") for i in range(1, 6)])
    hub = register_resource(kind="sqlite", config={"path": str(database)}, cursor=None)
    assert _sync(hub.resource_code).version == 1
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE enterprises SET _file_name = '档案-2-更正.pdf' WHERE id = 2")

    report = _sync(hub.resource_code)

    assert report.version == 2 and latest(hub.resource_code).manifest["changes"]["updated"] == 1


def test_parts_given_back_their_provenance_keep_the_runs_encoding(hub_home: Path, folder: Path) -> None:
    """The provenance rewrite opened a Parquet writer of its own: it dictionary-encoded every column, near-unique
    ones too, where every other part of a run keeps dictionaries for the columns that repeat (pipeline/staging)."""
    import pyarrow.parquet as pq

    from tests.helpers import version_folder

    rows = [(i, f"上海市第{i}号科技有限公司", "100.00") for i in range(1, 2001)]
    _export(folder, "企业-20260302.csv", rows, DAY_1)
    hub = register_resource(kind="files", cursor="_file_modified", config={
        "path": str(folder), "streams": {"enterprises": {"pattern": "企业-*.csv", "columns": COLUMNS}}})
    assert _sync(hub.resource_code).version == 1
    _export(folder, "企业-20260303.csv", [*rows[:-1], (2000, "上海市第2000号贸易有限公司", "100.00")], DAY_2)
    assert _sync(hub.resource_code).version == 2

    parts = sorted(version_folder(latest(hub.resource_code)).glob("data/*.parquet"))  # the run's, rewritten
    assert parts
    for part in parts:
        metadata = pq.ParquetFile(part).metadata
        group = metadata.row_group(0)
        encoded = {group.column(i).path_in_schema: group.column(i).has_dictionary_page
                   for i in range(group.num_columns)}
        assert encoded["name"] is False and encoded["capital"] is True and encoded["_file_name"] is True, part
