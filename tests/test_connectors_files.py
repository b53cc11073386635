"""The files connector on a real folder: CSV (UTF-8 and GB18030) and Excel read into published versions through
the pipeline, faithful types, incremental reads by file modification time and name, malformed rows quarantined
with their reason, and one-line errors for a missing folder or heading."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.base import ROW_PROBLEM_COLUMN, ReadState, StreamSpec
from connectors.files import FilesConnector
from core.errors import ConfigError
from tests.helpers import (
    PROVIDER,
    cursor_value,
    ensure_agency,
    latest,
    read_version,
    register_resource,
    sync_runs,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADINGS = ["编号", "统一社会信用代码", "企业名称", "注册资本", "成立日期", "更新时间", "备注"]
COLUMNS = [
    {"name": "id", "type": "integer", "header": "编号"},
    {"name": "uscc", "type": "text", "header": "统一社会信用代码"},
    {"name": "name", "type": "text", "header": "企业名称"},
    {"name": "reg_capital", "type": "decimal(18,2)", "header": "注册资本"},
    {"name": "established", "type": "date", "header": "成立日期"},
    {"name": "updated_at", "type": "timestamptz", "header": "更新时间"},
    {"name": "note", "type": "text", "header": "备注"},
]


def enterprise_rows(start: int, count: int) -> list[list[str]]:
    """Rows as text, as an agency's export writes them: Chinese names, exact capital, local times, blanks."""
    rows = []
    for i in range(start, start + count):
        rows.append([str(i), f"91310000{i:09d}X", f"上海市第{i}号科技有限公司", f"{i * 1000}.{i % 100:02d}",
                     f"20{i % 20:02d}-0{1 + i % 9}-1{i % 10}", f"2026-03-0{1 + i % 9} 0{i % 10}:30:00",
                     "" if i % 3 else f"备注{i}"])
    return rows


def write_csv(path: Path, rows: list[list[str]], *, encoding: str = "utf-8", headings: list[str] = HEADINGS) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headings)
        writer.writerows(rows)
    return path


def expected(rows: list[list[str]]) -> list[dict]:
    return [{"id": int(r[0]), "uscc": r[1], "name": r[2], "reg_capital": Decimal(r[3]),
             "established": date.fromisoformat(r[4]),
             "updated_at": datetime.fromisoformat(r[5]).replace(tzinfo=SHANGHAI).astimezone(UTC),
             "note": r[6] or None} for r in rows]


def published(resource_code: str) -> list[dict]:
    table = read_version(latest(resource_code))
    return [{k: v for k, v in row.items() if not k.startswith("_file")} for row in table.to_pylist()]


def _sync(code: str, *, full: bool = False):
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=code, full=full)


def _config(folder: Path, **stream: object) -> dict:
    return {"path": str(folder), "streams": {"enterprises": {"pattern": "企业*.csv", "columns": COLUMNS, **stream}}}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "exchange"
    path.mkdir()
    return path


def test_csv_files_publish_faithful_types(hub_home: Path, folder: Path) -> None:
    first, second = enterprise_rows(1, 30), enterprise_rows(31, 25)
    write_csv(folder / "企业-01.csv", first)
    write_csv(folder / "企业-02.csv", second, encoding="gb18030")  # an older system's export, in GB18030
    write_csv(folder / "其他.csv", enterprise_rows(900, 3))          # not matched by the pattern
    hub = register_resource(kind="files", config=_config(folder), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (55, 55, 0)
    assert published(hub.resource_code) == expected(first + second)
    schema = read_version(latest(hub.resource_code)).schema
    assert schema.field("reg_capital").type == pa.decimal128(18, 2)
    assert schema.field("established").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")


def test_gb18030_detected_and_declared(folder: Path) -> None:
    rows = [["1", "91310000000000001X", "上海浦东𠀀发展银行股份有限公司", "12.50", "2020-01-01", "2026-01-01 08:00:00", "龘"]]
    write_csv(folder / "企业.csv", rows, encoding="gb18030")
    for encoding in ("auto", "gb18030"):
        connector = FilesConnector(name="gb", config=_config(folder, encoding=encoding))
        batches = list(connector.read(StreamSpec(table="enterprises"), ReadState()))
        assert [row["name"] for b in batches for row in b.to_pylist()] == ["上海浦东𠀀发展银行股份有限公司"]
        assert ROW_PROBLEM_COLUMN not in batches[0].schema.names
    # Declared UTF-8, the GB18030 heading is refused with the fix in the message.
    with pytest.raises(ConfigError) as raised:
        list(FilesConnector(name="gb", config=_config(folder, encoding="utf-8")).read(
            StreamSpec(table="enterprises"), ReadState()))
    assert "cannot be read as utf-8 text" in str(raised.value) and "gb18030" in str(raised.value)


def test_utf16_with_its_mark_is_read_in_auto_mode(folder: Path) -> None:
    """Excel's "Unicode text" export is UTF-16 with a byte-order mark: auto reads it (it was refused)."""
    rows = [["1", "91310000000000001X", "上海浦东𠀀发展银行股份有限公司", "12.50", "2020-01-01", "2026-01-01 08:00:00",
             ""]]
    for encoding in ("utf-16-le", "utf-16-be"):
        path = write_csv(folder / "企业.csv", rows, encoding=encoding)
        path.write_bytes(("\ufeff".encode(encoding)) + path.read_bytes())  # the mark Excel writes first
        batches = list(FilesConnector(name="u16", config=_config(folder)).read(StreamSpec(table="enterprises"),
                                                                               ReadState()))
        assert [row for b in batches for row in b.to_pylist()] == expected(rows)


def test_undecodable_row_is_flagged_not_garbled(folder: Path) -> None:
    """A UTF-8 export with one line pasted from a GB18030 file: that row is flagged, the others are read."""
    path = write_csv(folder / "企业.csv", enterprise_rows(1, 2))
    with path.open("ab") as handle:
        handle.write("3,91310000000000003X,黄浦区某公司,1.00,2020-01-01,2026-01-01 08:00:00,\n".encode("gb18030"))
    batches = list(FilesConnector(name="mixed", config=_config(folder)).read(StreamSpec(table="enterprises"),
                                                                           ReadState()))
    rows = [r for b in batches for r in b.to_pylist()]
    assert [r[ROW_PROBLEM_COLUMN] is None for r in rows] == [True, True, False]
    assert rows[2][ROW_PROBLEM_COLUMN].startswith("企业.csv line 4: name=十六进制 hex ")
    assert "黄浦区某公司".encode("gb18030").hex(" ") in rows[2][ROW_PROBLEM_COLUMN]  # the bytes as the file holds them
    assert "not text in the file's encoding" in rows[2][ROW_PROBLEM_COLUMN]
    pa.array([r["name"] for r in rows], pa.string())  # no lone surrogate reaches the data


def test_malformed_rows_are_quarantined_with_their_reason(hub_home: Path, folder: Path) -> None:
    from pipeline.paths import quarantine_file

    rows = enterprise_rows(1, 10)
    path = write_csv(folder / "企业.csv", rows)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write('11,91310000000000011X,多一列公司,1.00,2020-01-01,2026-01-01 08:00:00,,多余\n')
        handle.write('12,91310000000000012X,资本有误公司,十万元,2020-01-01,2026-01-01 08:00:00,\n')
        handle.write('13,91310000000000013X,"引号"未闭合公司,1.00,2020-01-01,2026-01-01 08:00:00,\n')
        handle.write('14,91310000000000014X,日期有误公司,1.00,2020-02-30,2026-01-01 08:00:00,\n')
        handle.write('15,91310000000000015X,正常公司,3.50,2021-05-06,2026-01-02 09:00:00,\n')
    hub = register_resource(kind="files", config=_config(folder), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (15, 11, 4)
    assert [r["id"] for r in published(hub.resource_code)] == list(range(1, 11)) + [15]
    run = sync_runs(hub.resource_code)[-1]
    quarantined = pq.read_table(quarantine_file(hub.resource_id, run.id)).to_pylist()
    reasons = sorted(row["_reason"] for row in quarantined)
    assert all(row["_rule"] == "type_conversion" for row in quarantined)
    assert reasons[0].startswith("企业.csv line 12: ") and "has 8 fields where the heading has 7" in reasons[0]
    assert "多余" in reasons[0]  # the whole line is kept in its reason
    assert reasons[1].startswith("企业.csv line 13: ") and "reg_capital='十万元'" in reasons[1]
    assert reasons[2].startswith("企业.csv line 14: ") and "malformed CSV" in reasons[2] and "引号" in reasons[2]
    assert reasons[3].startswith("企业.csv line 15: ") and "established='2020-02-30'" in reasons[3]


def test_excel_workbook_is_streamed_with_types(hub_home: Path, folder: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("登记")
    sheet.append(["企业登记信息导出"])  # a title line above the heading
    sheet.append(HEADINGS)
    for i in range(1, 41):
        sheet.append([i, f"91310000{i:09d}X", f"浦东新区第{i}号商店", i * 100 + 0.25, datetime(2020, 1, i % 28 + 1),
                      datetime(2026, 3, 1, 8, i % 60), None if i % 2 else "分店"])
    workbook.save(folder / "企业.xlsx")
    config = _config(folder, pattern="企业*.xlsx", sheet="登记", header_row=2)
    hub = register_resource(kind="files", config=config, cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_published, report.rows_quarantined) == (40, 0)
    rows = published(hub.resource_code)
    assert rows[6] == {"id": 7, "uscc": "91310000000000007X", "name": "浦东新区第7号商店",
                       "reg_capital": Decimal("700.25"), "established": date(2020, 1, 8),
                       "updated_at": datetime(2026, 3, 1, 0, 7, tzinfo=UTC), "note": None}
    batches = list(FilesConnector(name="xl", config=config).read(StreamSpec(table="enterprises", batch_rows=16),
                                                                  ReadState()))
    assert [b.num_rows for b in batches] == [16, 16, 8]


def _stamp(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def test_incremental_by_modification_time_reads_only_new_files(hub_home: Path, folder: Path) -> None:
    a, b = write_csv(folder / "企业-a.csv", enterprise_rows(1, 5)), write_csv(folder / "企业-b.csv", enterprise_rows(6, 5))
    _stamp(a, datetime(2026, 3, 1, 8, tzinfo=UTC))
    _stamp(b, datetime(2026, 3, 2, 8, tzinfo=UTC))
    hub = register_resource(kind="files", config=_config(folder), cursor="_file_modified")
    assert _sync(hub.resource_code).rows_published == 10
    assert cursor_value(hub.resource_code).startswith("2026-03-02 08:00:00")
    assert files_read(hub.resource_code) == ["企业-a.csv", "企业-b.csv"]

    c = write_csv(folder / "企业-c.csv", enterprise_rows(11, 4))  # a new file arrives
    _stamp(c, datetime(2026, 3, 3, 8, tzinfo=UTC))
    report = _sync(hub.resource_code)

    assert report.mode == "incremental"
    assert report.rows_read == 4  # c alone: a and b are recorded as read and unchanged (b was read again before)
    rows = published(hub.resource_code)
    assert [r["id"] for r in rows] == list(range(1, 15))
    assert cursor_value(hub.resource_code).startswith("2026-03-03 08:00:00")
    version = read_version(latest(hub.resource_code))
    assert version.column("_file_name").to_pylist()[-1] == "企业-c.csv"

    report = _sync(hub.resource_code)  # nothing changed: nothing read, nothing published
    assert (report.mode, report.rows_read, report.version) == ("incremental", 0, None)
    assert latest(hub.resource_code).number == 2


def files_read(resource_code: str) -> list[str]:
    """The resource's record of files read (已读文件清单), as the registry keeps it."""
    from sqlalchemy import select

    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.models import CursorFile

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        return sorted(session.scalars(select(CursorFile.path).where(CursorFile.resource_id == resource.id)))


@pytest.mark.parametrize("registry", ["hub_home", "pg_hub_home"])
def test_a_file_uploaded_with_its_old_time_kept_is_read_by_the_next_incremental_run(
        registry: str, request: pytest.FixtureRequest, folder: Path) -> None:
    """`scp -p`, `rsync -t` or an extracted archive keep a file's old time: it sorts before the watermark but is
    new, and is published by the next run, not the weekly full read. Its key that a newer file holds keeps the
    newer file's row, as a full read has it. The record of files read lives in either registry."""
    request.getfixturevalue(registry)
    a, b = write_csv(folder / "企业-a.csv", enterprise_rows(1, 5)), write_csv(folder / "企业-b.csv", enterprise_rows(6, 5))
    _stamp(a, datetime(2026, 3, 1, 8, tzinfo=UTC))
    _stamp(b, datetime(2026, 3, 2, 8, tzinfo=UTC))
    hub = register_resource(kind="files", config=_config(folder), cursor="_file_modified")
    assert _sync(hub.resource_code).version == 1

    late = enterprise_rows(20, 3) + [["1", "91310000000000001X", "迟到文件的1号", "1.00", "2020-01-01",
                                      "2026-01-01 00:00:00", ""],
                                     ["7", "91310000000000007X", "迟到文件的7号", "7.00", "2020-01-01",
                                      "2026-01-01 00:00:00", ""]]
    d = write_csv(folder / "企业-d.csv", late)
    _stamp(d, datetime(2026, 3, 1, 8, tzinfo=UTC))  # a day before the watermark (2026-03-02 08:00)
    report = _sync(hub.resource_code)

    assert report.mode == "incremental" and report.version == 2
    assert report.rows_read == 5 + 5  # d, and b ranked after it (a, older, not at all)
    names = {r["id"]: r["name"] for r in published(hub.resource_code)}
    assert {20, 21, 22} <= set(names) and len(names) == 13
    assert names[1] == "迟到文件的1号"  # d is newer than a (same time, later name)
    assert names[7] == "上海市第7号科技有限公司"  # b is newer than d
    assert cursor_value(hub.resource_code).startswith("2026-03-02 08:00:00")  # never moves back
    incremental = published(hub.resource_code)

    report = _sync(hub.resource_code, full=True)  # the full read agrees: nothing to publish
    assert report.version is None and published(hub.resource_code) == incremental


def test_the_record_of_a_large_folder_changes_by_the_files_read(tmp_path: Path) -> None:
    """100,000 recorded files, three new or changed and one gone: the run reads three and its difference to the
    record holds four entries, not the folder's 100,000."""
    from connectors.filelist import FileLedger, record_of
    from connectors.filesource import FileEntry

    moment = datetime(2026, 3, 1, 8, tzinfo=UTC)
    entries = [FileEntry(path=f"企业-{i:06d}.csv", modified=moment, size=100 + i, stamp=f"{i}:1")
               for i in range(100_000)]
    ledger = FileLedger(previous=record_of(entries), out=tmp_path / "files-read.parquet")
    listed = [*entries[1:50_000], FileEntry(path=entries[50_000].path, modified=moment, size=100 + 50_000,
                                            stamp="50000:2"),  # same time and size, rewritten
              *entries[50_001:], FileEntry(path="企业-new-1.csv", modified=moment, size=1),
              FileEntry(path="企业-new-2.csv", modified=moment, size=1)]
    changed = ledger.changed(listed)
    assert [e.path for e, c in zip(listed, changed) if c] == ["企业-050000.csv", "企业-new-1.csv", "企业-new-2.csv"]
    assert ledger.record(listed, changed) == 4
    delta = pq.read_table(ledger.out).to_pylist()
    assert [(r["path"], r["gone"]) for r in delta][-1] == ("企业-000000.csv", True)


def test_a_file_rewritten_with_its_time_and_size_kept_is_read_again(hub_home: Path, folder: Path) -> None:
    a, b = write_csv(folder / "企业-a.csv", enterprise_rows(1, 5)), write_csv(folder / "企业-b.csv", enterprise_rows(6, 5))
    _stamp(a, datetime(2026, 3, 1, 8, tzinfo=UTC))
    _stamp(b, datetime(2026, 3, 2, 8, tzinfo=UTC))
    hub = register_resource(kind="files", config=_config(folder), cursor="_file_modified")
    assert _sync(hub.resource_code).version == 1

    before = a.stat().st_size
    rows = enterprise_rows(1, 5)
    rows[2][2] = rows[2][2].replace("科技", "贸易")  # same length in bytes
    write_csv(a, rows)
    _stamp(a, datetime(2026, 3, 1, 8, tzinfo=UTC))
    assert a.stat().st_size == before
    report = _sync(hub.resource_code)

    assert report.mode == "incremental" and report.version == 2
    assert report.rows_read == 10 and report.changes["updated"] == 1
    assert {r["id"]: r["name"] for r in published(hub.resource_code)}[3] == "上海市第3号贸易有限公司"
    report = _sync(hub.resource_code)  # read once: nothing again
    assert (report.rows_read, report.version) == (0, None)


def test_a_key_in_several_files_takes_the_newest_files_row(hub_home: Path, folder: Path) -> None:
    """Files deliver updates: a key a newer file holds again takes that file's row (by modification time, then
    name), the older row superseded, not quarantined; only a key repeated within the newest file is a duplicate."""
    def renamed(rows: list[list[str]], suffix: str) -> list[list[str]]:
        return [[r[0], r[1], r[2] + suffix, *r[3:]] for r in rows]

    a = write_csv(folder / "企业-a.csv", enterprise_rows(1, 5))
    _stamp(a, datetime(2026, 3, 1, 8, tzinfo=UTC))
    hub = register_resource(kind="files", config=_config(folder), cursor="_file_modified")
    assert _sync(hub.resource_code).version == 1

    b = write_csv(folder / "企业-b.csv", renamed(enterprise_rows(2, 2), "（更名）") + enterprise_rows(6, 1))
    _stamp(b, datetime(2026, 3, 2, 8, tzinfo=UTC))
    report = _sync(hub.resource_code)  # b alone (a is recorded as read): its ids 2 and 3 update a's
    assert report.mode == "incremental" and (report.rows_read, report.rows_quarantined) == (3, 0)
    assert report.rows_published == 3
    names = {r["id"]: r["name"] for r in published(hub.resource_code)}
    assert names[2] == "上海市第2号科技有限公司（更名）" and names[3] == "上海市第3号科技有限公司（更名）"
    assert names[1] == "上海市第1号科技有限公司" and set(names) == {1, 2, 3, 4, 5, 6}
    changes = latest(hub.resource_code).manifest["changes"]
    assert (changes["inserted"], changes["updated"]) == (1, 2)

    c = write_csv(folder / "企业-c.csv", renamed(enterprise_rows(4, 1), "甲") + renamed(enterprise_rows(4, 1), "乙"))
    _stamp(c, datetime(2026, 3, 3, 8, tzinfo=UTC))
    report = _sync(hub.resource_code)  # c alone, whose two rows of id 4 cannot both be right
    assert report.rows_quarantined == 2 and report.version is None  # nothing else changed
    assert {r["id"]: r["name"] for r in published(hub.resource_code)}[4] == "上海市第4号科技有限公司"

    report = _sync(hub.resource_code, full=True)  # every file: 10 rows = 5 published + 2 quarantined + 3 replaced
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (10, 5, 2)
    assert sorted(r["id"] for r in published(hub.resource_code)) == [1, 2, 3, 5, 6]
    assert sync_runs(hub.resource_code)[-1].rows_published == 5


def test_incremental_by_file_name(folder: Path) -> None:
    for day, start in (("2026-03-01", 1), ("2026-03-02", 4), ("2026-03-03", 7)):
        write_csv(folder / f"企业-{day}.csv", enterprise_rows(start, 3))
    connector = FilesConnector(name="daily", config=_config(folder))
    stream = StreamSpec(table="enterprises", primary_key=("id",), cursor_column="_file_name")
    rows = [r for b in connector.read(stream, ReadState("企业-2026-03-02.csv")) for r in b.to_pylist()]
    assert [r["id"] for r in rows] == [4, 5, 6, 7, 8, 9]
    assert {r["_file_name"] for r in rows} == {"企业-2026-03-02.csv", "企业-2026-03-03.csv"}


def test_inferred_schema_keeps_codes_as_text(folder: Path) -> None:
    path = folder / "licences.csv"
    path.write_text("licence_no,area_code,fee,issued,valid\n"
                    "0012,310115,12.50,2026-01-02,true\n"
                    "0013,310104,3,2026-01-03,false\n"
                    "0014,310101,,2026-01-04,\n", encoding="utf-8")
    connector = FilesConnector(name="lic", config={"path": str(folder)})  # no streams: <stream>*.csv
    [table] = connector.discover()
    assert table.name == "licences"
    assert {c.name: c.arrow_type for c in table.columns} == {
        "licence_no": pa.string(), "area_code": pa.int64(), "fee": pa.decimal128(38, 2), "issued": pa.date32(),
        "valid": pa.bool_()}
    [batch] = list(connector.read(StreamSpec(table="licences"), ReadState()))
    assert batch.to_pylist()[2] == {"licence_no": "0014", "area_code": 310101, "fee": None,
                                    "issued": date(2026, 1, 4), "valid": None}


def _one_line(raised: pytest.ExceptionInfo, *must_say: str) -> str:
    message = str(raised.value)
    assert "source '企业文件'" in message and "\n" not in message, message
    for text in must_say:
        assert text in message, message
    return message


def test_missing_folder_and_headings_are_refused_in_one_line(folder: Path) -> None:
    missing = FilesConnector(name="企业文件", config=_config(folder / "nowhere"))
    with pytest.raises(ConfigError) as raised:
        missing.check()
    _one_line(raised, "nowhere", "does not exist")

    connector = FilesConnector(name="企业文件", config=_config(folder))
    with pytest.raises(ConfigError) as raised:
        connector.check(StreamSpec(table="enterprises"))
    _one_line(raised, "no file matches '企业*.csv'")

    write_csv(folder / "企业.csv", enterprise_rows(1, 2), headings=HEADINGS[:-1] + ["说明"])
    with pytest.raises(ConfigError) as raised:
        list(connector.read(StreamSpec(table="enterprises"), ReadState()))
    _one_line(raised, "企业.csv", "备注", "missing")

    with pytest.raises(ConfigError) as raised:
        connector.check(StreamSpec(table="licences"))
    _one_line(raised, "'licences' is not declared")


def test_cli_source_add_files_and_check(hub_home: Path, folder: Path) -> None:
    from cli.main import app
    from registry.db import session_scope

    write_csv(folder / "企业.csv", enterprise_rows(1, 3))
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
    streams = json.dumps({"enterprises": {"pattern": "企业*.csv", "columns": COLUMNS}}, ensure_ascii=False)
    runner = CliRunner()
    result = runner.invoke(app, ["source", "add", "scjg-files", "--agency", PROVIDER[0], "--kind", "files",
                                 "-o", f"path={folder}", "-o", f"streams={streams}"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["source", "check", "scjg-files", "--table", "enterprises"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "ok" in result.output, result.output
    result = runner.invoke(app, ["source", "check", "scjg-files", "--table", "people"], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "'people' is not declared" in result.output, result.output


def test_pattern_in_a_subfolder_and_settings_given_as_text(folder: Path) -> None:
    """Settings from `-o KEY=VALUE` arrive as text: header_row=1, file_columns=false must mean what they say."""
    (folder / "2026").mkdir()
    write_csv(folder / "2026" / "企业-03.csv", enterprise_rows(1, 2))
    write_csv(folder / "企业-old.csv", enterprise_rows(50, 2))  # not in the subfolder: not read
    config = _config(folder, pattern="2026/企业-*.csv", header_row="1", file_columns="false")
    [batch] = list(FilesConnector(name="sub", config=config).read(StreamSpec(table="enterprises"), ReadState()))
    assert batch.column("id").to_pylist() == [1, 2] and "_file_name" not in batch.schema.names
    config = _config(folder, pattern="2026/企业-*.csv", file_columns="true")
    [batch] = list(FilesConnector(name="sub", config=config).read(StreamSpec(table="enterprises"), ReadState()))
    assert batch.column("_file_name").to_pylist() == ["2026/企业-03.csv"] * 2


def test_a_file_still_being_written_stops_the_run_and_nothing_is_published(hub_home: Path, folder: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An agency's export lands while the hub reads it: the rows would end where the upload had got to, and a
    full read would take the rest for deleted. The file's size changed while it was read, so the run stops with
    a retriable error, the last version stays, and the next run (the upload done) reads the file whole."""
    from core.errors import RetriableError

    path = write_csv(folder / "企业.csv", enterprise_rows(1, 300))
    hub = register_resource(kind="files", config=_config(folder))
    assert _sync(hub.resource_code).rows_published == 300
    write_csv(path, enterprise_rows(1, 2_000))  # the next export: more rows

    connector = FilesConnector(name="市监局交换目录", config=_config(folder), secret={})
    batches = connector.read(StreamSpec(table="enterprises", batch_rows=100), ReadState())
    assert next(batches).num_rows == 100
    with path.open("a", encoding="utf-8", newline="") as handle:  # the upload goes on meanwhile
        csv.writer(handle).writerows(enterprise_rows(2_001, 500))
    with pytest.raises(RetriableError) as raised:
        for _ in batches:
            pass
    message = str(raised.value)
    assert "企业.csv changed while it was read" in message and "bytes" in message and "temporary name" in message

    # Through the pipeline: a write landing after the listing fails the run the same way, v1 stays.
    from connectors import files as files_module

    listed = files_module.FilesConnector._list

    def listing_then_upload(self, session, folder_name):  # noqa: ANN001, ANN202
        entries = listed(self, session, folder_name)
        with path.open("a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(enterprise_rows(3_001, 10))
        return entries

    monkeypatch.setattr(files_module.FilesConnector, "_list", listing_then_upload)
    with pytest.raises(RetriableError):
        _sync(hub.resource_code, full=True)
    monkeypatch.setattr(files_module.FilesConnector, "_list", listed)
    assert latest(hub.resource_code).number == 1 and len(published(hub.resource_code)) == 300
    assert sync_runs(hub.resource_code)[-1].status == "failed"
    assert _sync(hub.resource_code, full=True).rows_published == 2_510  # the upload complete: read whole


def test_a_number_beyond_its_column_is_flagged_not_published_changed(folder: Path) -> None:
    """1e400 in a column declared double became infinity, published as if the source had said so ("inf" as
    written stays infinity); an integer beyond 64 bits is flagged too, the other rows read."""
    path = folder / "测量.csv"
    path.write_text("编号,读数,计数\n1,1e400,3\n2,inf,4\n3,2.5,99999999999999999999\n4,0.5,5\n", encoding="utf-8")
    config = {"path": str(folder), "streams": {"readings": {"pattern": "测量*.csv", "columns": [
        {"name": "id", "type": "integer", "header": "编号"}, {"name": "value", "type": "double", "header": "读数"},
        {"name": "count", "type": "integer", "header": "计数"}]}}}
    connector = FilesConnector(name="监测目录", config=config, secret={})
    rows = [r for b in connector.read(StreamSpec(table="readings"), ReadState()) for r in b.to_pylist()]
    assert "value='1e400': is outside the range of double" in rows[0][ROW_PROBLEM_COLUMN]
    assert rows[1]["value"] == float("inf") and rows[1][ROW_PROBLEM_COLUMN] is None
    assert "count='99999999999999999999': is outside the range of int64" in rows[2][ROW_PROBLEM_COLUMN]
    assert (rows[3]["value"], rows[3]["count"], rows[3][ROW_PROBLEM_COLUMN]) == (0.5, 5, None)


def test_gbk_text_first_seen_past_the_sniffed_window_is_read_as_gbk(hub_home: Path, folder: Path) -> None:
    """An export with English headings, codes and numbers first: its first 64 KiB are plain ASCII, so the
    encoding is decided where the first Chinese text appears (it was taken for UTF-8 and every Chinese row
    quarantined as undecodable)."""
    headings = ["id", "uscc", "name", "reg_capital", "established", "updated_at", "note"]
    columns = [{**c, "header": h} for c, h in zip(COLUMNS, headings)]
    rows = [[str(i), f"91310000{i:09d}X", f"company-{i}", "1.00", "2020-01-01", "2026-01-01 08:00:00", ""]
            for i in range(1, 1500)]
    rows += [[str(i), f"91310000{i:09d}X", f"上海市第{i}号科技有限公司", "1.00", "2020-01-01",
              "2026-01-01 08:00:00", "龘𠀀"] for i in range(1500, 1503)]
    path = write_csv(folder / "企业.csv", rows, encoding="gb18030", headings=headings)
    assert not any(b > 127 for b in path.read_bytes()[:64 * 1024])
    hub = register_resource(kind="files", config={"path": str(folder), "streams": {
        "enterprises": {"pattern": "企业*.csv", "columns": columns}}}, cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (1502, 1502, 0)
    assert published(hub.resource_code) == expected(rows)


def test_a_field_longer_than_128_kib_is_published_whole(hub_home: Path, folder: Path) -> None:
    """A long text (a judgment, a contract's text) is data, not a malformed line: the csv module's default field
    limit of 128 KiB had it quarantined, without its key, as malformed CSV."""
    rows = enterprise_rows(1, 3)
    rows[1][6] = "判决书全文" * 60_000  # 300,000 characters
    write_csv(folder / "企业.csv", rows)
    hub = register_resource(kind="files", config=_config(folder), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 3, 0)
    assert published(hub.resource_code) == expected(rows)


def test_excel_serial_numbers_in_date_columns_are_the_dates_excel_shows(hub_home: Path, folder: Path) -> None:
    """A cell that lost its date format holds Excel's serial number (45000 is 2023-03-15, 45001.5 noon the next
    day, in the workbook's date system): read as that date in a column declared date or timestamptz (such rows
    were quarantined as "Invalid isoformat string")."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADINGS)
    sheet.append([1, "91310000000000001X", "甲公司", 10, 45000, 45001.5, None])
    sheet.append([2, "91310000000000002X", "乙公司", 20, datetime(2020, 1, 2), datetime(2026, 3, 1, 8, 0), None])
    sheet.append([3, "91310000000000003X", "丙公司", 30, 59, 45000.75, None])  # 59: before Excel's 1900-02-29
    sheet.append([5, "91310000000000005X", "戊公司", 50, 2958465, None, None])  # 9999-12-31: "no end"
    sheet.append([6, "91310000000000006X", "己公司", 60, 202001, None, None])  # a yyyymm code: no serial date
    workbook.save(folder / "企业.xlsx")
    mac = openpyxl.Workbook()
    mac.epoch = openpyxl.utils.datetime.MAC_EPOCH  # Excel for Mac's 1904 date system
    mac.active.append(HEADINGS)
    mac.active.append([4, "91310000000000004X", "丁公司", 40, 43538, 43538.25, None])
    mac.save(folder / "企业-mac.xlsx")
    hub = register_resource(kind="files", config=_config(folder, pattern="企业*.xlsx"), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_published, report.rows_quarantined) == (5, 1)
    rows = {r["id"]: (r["established"], r["updated_at"]) for r in published(hub.resource_code)}
    assert rows == {1: (date(2023, 3, 15), datetime(2023, 3, 16, 4, 0, tzinfo=UTC)),
                    2: (date(2020, 1, 2), datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
                    3: (date(1900, 2, 28), datetime(2023, 3, 15, 10, 0, tzinfo=UTC)),
                    5: (date(9999, 12, 31), None),
                    4: (date(2023, 3, 15), datetime(2023, 3, 14, 22, 0, tzinfo=UTC))}


def test_excel_numbers_beyond_the_serial_dates_are_quarantined_naming_column_and_value(hub_home: Path,
                                                                                      folder: Path) -> None:
    """A number past Excel's serial dates in a timestamptz or date column (a yyyymmdd code, epoch seconds) was
    read as ISO text: 20260101 was published as 2026-01-01 00:00 UTC, a time nobody wrote (and not even in the
    source's zone). Such a row is quarantined with a Chinese reason naming the column and the value."""
    import openpyxl

    from pipeline.paths import quarantine_file

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADINGS)
    sheet.append([1, "91310000000000001X", "甲公司", 10, 45000, 45001.5, None])  # serial dates: read as dates
    sheet.append([2, "91310000000000002X", "乙公司", 20, datetime(2020, 1, 2), 20260101, None])
    sheet.append([3, "91310000000000003X", "丙公司", 30, datetime(2020, 1, 2), 1767225600, None])
    sheet.append([4, "91310000000000004X", "丁公司", 40, 20200102, datetime(2026, 3, 1, 8, 0), None])
    workbook.save(folder / "企业.xlsx")
    hub = register_resource(kind="files", config=_config(folder, pattern="企业*.xlsx"), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_published, report.rows_quarantined) == (1, 3)
    assert [r["id"] for r in published(hub.resource_code)] == [1]
    run = sync_runs(hub.resource_code)[-1]
    quarantined = {int(row["id"]): row for row in pq.read_table(quarantine_file(hub.resource_id, run.id)).to_pylist()}
    for key, column, value, kind in ((2, "updated_at", "20260101", "时间"), (3, "updated_at", "1767225600", "时间"),
                                     (4, "established", "20200102", "日期")):
        reason = quarantined[key]["_reason"]
        assert reason.startswith(f"企业.xlsx row {key + 1}: {column}={value}: "), reason
        assert f"数字不能读作{kind}" in reason and "73050" in reason, reason
        assert quarantined[key][column] == value  # the value exactly as it was read, for the provider


@pytest.mark.parametrize("extension", ["csv", "xlsx"])
def test_a_file_removed_after_listing_is_a_retriable_error(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                          extension: str) -> None:
    """A clean-up job removes a file between the listing and its read: retriable, saying so (it was a
    ConfigError, "cannot open ...: No such file or directory", which `sync --attempts` never retries)."""
    import openpyxl

    from core.errors import RetriableError

    for name, rows in (("企业-01", enterprise_rows(1, 3)), ("企业-02", enterprise_rows(4, 3))):
        if extension == "csv":
            write_csv(folder / f"{name}.csv", rows)
        else:
            workbook = openpyxl.Workbook()
            workbook.active.append(HEADINGS)
            for row in rows:
                workbook.active.append(row)
            workbook.save(folder / f"{name}.xlsx")
    listed = FilesConnector._matching

    def listed_then_removed(self, session, settings):  # noqa: ANN001, ANN202
        entries = listed(self, session, settings)
        (folder / f"企业-02.{extension}").unlink()
        return entries

    monkeypatch.setattr(FilesConnector, "_matching", listed_then_removed)
    connector = FilesConnector(name="gone", config=_config(folder, pattern=f"企业*.{extension}"))
    with pytest.raises(RetriableError) as raised:
        list(connector.read(StreamSpec(table="enterprises"), ReadState()))
    assert "文件在列出后被删除" in str(raised.value) and f"企业-02.{extension} was removed" in str(raised.value)


def test_a_chinese_heading_as_key_says_how_to_name_the_column() -> None:
    """--key 编号 on a file stream: the refusal says to declare the column with a plain name and its heading
    (it only offered a --query, which file sources do not have)."""
    with pytest.raises(ConfigError) as raised:
        StreamSpec(table="enterprises", primary_key=("编号",))
    assert str(raised.value).startswith("名称须为") and '"header": "编号"' in str(raised.value)


def test_an_uncalculated_excel_formula_is_flagged_not_published_empty(hub_home: Path, folder: Path) -> None:
    """A workbook a program wrote holds formulas without saved values: such a cell was published as NULL,
    silently; its row is quarantined naming the cell and formula. A calculated formula's saved value is data."""
    import zipfile

    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(HEADINGS)
    workbook.active.append([1, "91310000000000001X", "甲公司", "=10+0.5", datetime(2020, 1, 2), None, None])
    workbook.active.append([2, "91310000000000002X", "乙公司", "=20+0.5", datetime(2020, 1, 3), None, None])
    written = folder / "written.xlsx"
    workbook.save(written)
    with zipfile.ZipFile(written) as source, zipfile.ZipFile(folder / "企业.xlsx", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":  # Excel saved row 2's value, never row 3's
                assert b"<f>10+0.5</f><v />" in data
                data = data.replace(b"<f>10+0.5</f><v />", b"<f>10+0.5</f><v>10.5</v>")
            target.writestr(item, data)
    written.unlink()
    hub = register_resource(kind="files", config=_config(folder, pattern="企业*.xlsx"), cursor=None)

    report = _sync(hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (2, 1, 1)
    assert [(r["id"], r["reg_capital"]) for r in published(hub.resource_code)] == [(1, Decimal("10.50"))]
    batches = list(FilesConnector(name="xl", config=_config(folder, pattern="企业*.xlsx")).read(
        StreamSpec(table="enterprises"), ReadState()))
    problems = [r[ROW_PROBLEM_COLUMN] for b in batches for r in b.to_pylist()]
    assert problems[0] is None and problems[1].startswith("企业.xlsx row 3: 公式未计算")
    assert "D3 =20+0.5" in problems[1]


def test_an_empty_file_or_sheet_is_named_not_published_without_columns(folder: Path) -> None:
    """A 0-byte file among a stream's files (an upload just begun) is retriable, said as such (it was "heading(s)
    ... missing (the file has: )"); an empty sheet with inferred columns is refused (a version without a single
    column was published); an Excel heading problem names the source once."""
    import openpyxl

    from core.errors import RetriableError

    write_csv(folder / "企业-01.csv", enterprise_rows(1, 2))
    (folder / "企业-02.csv").write_bytes(b"")
    with pytest.raises(RetriableError) as raised:
        list(FilesConnector(name="empty", config=_config(folder)).read(StreamSpec(table="enterprises"), ReadState()))
    assert "文件为空 / 企业-02.csv is empty (0 bytes)" in str(raised.value)

    openpyxl.Workbook().save(folder / "空表.xlsx")
    config = {"path": str(folder), "streams": {"blank": {"pattern": "空表.xlsx"}}}
    with pytest.raises(ConfigError) as refused:
        list(FilesConnector(name="empty", config=config).read(StreamSpec(table="blank"), ReadState()))
    assert "无标题行 / 空表.xlsx has no heading line" in str(refused.value)
    assert str(refused.value).count("source 'empty'") == 1


def test_parsing_settings_of_the_wrong_kind_are_refused_at_registration(folder: Path) -> None:
    """null_values "NA" (a text, not a list) made every cell reading N or A a NULL, silently; header_row "abc"
    was an internal error at the first read. Both are refused with the fix, for files and HTTP streams."""
    from connectors.http_api import HTTPConnector

    write_csv(folder / "企业.csv", [["1", "N", "A", "1.00", "2020-01-01", "2026-01-01 08:00:00", "NA"]])
    for stream, fix in (({"null_values": "NA"}, 'null_values must be a list of texts, e.g. ["", "NA", "-"]'),
                        ({"header_row": "abc"}, "header_row must be a whole number"),
                        ({"header_row": 0}, "header_row counts from 1")):
        with pytest.raises(ConfigError) as raised:
            FilesConnector(name="bad", config=_config(folder, **stream))
        assert fix in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        HTTPConnector(name="bad", config={"base_url": "http://127.0.0.1:9/api", "auth": "none",
                                          "streams": {"licences": {"path": "/licences", "null_values": "NA"}}})
    assert "null_values must be a list" in str(raised.value)
    rows = [r for b in FilesConnector(name="ok", config=_config(folder, null_values=["", "NA"])).read(
        StreamSpec(table="enterprises"), ReadState()) for r in b.to_pylist()]
    assert (rows[0]["uscc"], rows[0]["name"], rows[0]["note"]) == ("N", "A", None)


def test_cells_merged_down_rows_give_every_row_their_value(hub_home: Path, folder: Path) -> None:
    """A district merged down the rows of its enterprises (a common layout of agencies' sheets): every row
    spans it and reads it (only the first had it, the others were published NULL). A title merged across the
    first row is not spread."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["2026年企业名录"])
    sheet.merge_cells("A1:C1")
    sheet.append(["区县", "企业", "人数"])
    sheet.append(["浦东新区", "甲", 1])
    sheet.append([None, "乙", 2])
    sheet.append([None, "丙", 3])
    sheet.merge_cells("A3:A5")
    sheet.append(["黄浦区", "丁", 4])
    sheet.append(["合计", None, 10])
    sheet.merge_cells("A7:B7")
    workbook.save(folder / "名录.xlsx")
    config = {"path": str(folder), "streams": {"list": {"pattern": "名录.xlsx", "header_row": 2}}}
    rows = [r for b in FilesConnector(name="merged", config=config).read(StreamSpec(table="list"), ReadState())
            for r in b.to_pylist()]
    assert [(r["区县"], r["企业"], r["人数"]) for r in rows] == [
        ("浦东新区", "甲", 1), ("浦东新区", "乙", 2), ("浦东新区", "丙", 3), ("黄浦区", "丁", 4), ("合计", None, 10)]


def test_a_date_formatted_cell_reads_into_a_text_column_as_excel_shows_it(folder: Path) -> None:
    """A cell holding a day and a time of day but formatted yyyy-mm-dd shows the day alone in Excel; read into a
    text column it was published with its time (2026-01-05 08:30:00), a value the clerk never saw. A column
    typed timestamp keeps the time the cell holds."""
    import openpyxl

    from tests.file_helpers import stream_rows

    moment = datetime(2026, 1, 5, 8, 30)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["编号", "日期", "时刻", "时间戳"])
    sheet.append([1, moment, moment, moment])
    sheet["B2"].number_format = "yyyy-mm-dd"
    sheet["C2"].number_format = "yyyy-mm-dd hh:mm"
    sheet["D2"].number_format = "yyyy-mm-dd"
    workbook.save(folder / "日程.xlsx")

    rows = stream_rows(folder, pattern="日程*.xlsx", columns=[
        {"name": "id", "type": "integer", "header": "编号"}, {"name": "day", "type": "text", "header": "日期"},
        {"name": "moment", "type": "text", "header": "时刻"}, {"name": "at", "type": "timestamp", "header": "时间戳"}])

    assert [(r["day"], r["moment"], r["at"]) for r in rows] == [("2026-01-05", "2026-01-05 08:30:00", moment)]
