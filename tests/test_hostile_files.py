"""Hostile and careless source files (恶意或粗心的源文件): what a careless clerk or a hostile insider drops in an
exchange folder is read with every row accounted for, or refused with what to do, never silently published or
dropped: a quote never closed, two exports joined with `cat`, NUL bytes, a heading named like the hub's own
row flags, a pattern that climbs out of the source's folder, a workbook whose stated size lies, an XML entity
bomb and a zip bomb."""

from __future__ import annotations

import io
from collections.abc import Iterator
import zipfile
from pathlib import Path

import pytest

from connectors.base import ROW_PROBLEM_COLUMN
from core.errors import ConfigError
from tests import file_helpers
from tests.file_helpers import stream_rows, with_shared_strings, workbook_bytes
from tests.helpers import latest, read_version, register_resource

folder = file_helpers.folder  # the exchange folder fixture, shared with the other file-source tests


def _with_sheet(package: bytes, edit) -> bytes:  # noqa: ANN001 - bytes -> bytes
    """The workbook with its first sheet's XML replaced by edit(xml)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item.filename, edit(data) if item.filename == "xl/worksheets/sheet1.xml" else data)
    return out.getvalue()


def test_a_quote_never_closed_quarantines_its_line_and_the_rows_after_it_are_read(hub_home: Path, folder: Path) -> None:
    """One stray quote at line 3 swallowed every later line into a single quarantined "row" whose reason kept
    the first 2,000 characters: the other 40 rows vanished from the counts and from the quarantine."""
    from pipeline.sync import sync_resource

    lines = ["编号,姓名", "1,张三", '2,"李四', *[f"{i},王{i}" for i in range(3, 43)]]
    (folder / "人员.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    hub = register_resource(kind="files", config={"path": str(folder), "streams": {"enterprises": {
        "pattern": "人员*.csv", "columns": [{"name": "id", "type": "integer", "header": "编号"},
                                          {"name": "name", "type": "text", "header": "姓名"}]}}}, cursor=None)

    report = sync_resource(resource_code=hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (42, 41, 1)
    assert sorted(r["id"] for r in read_version(latest(hub.resource_code)).to_pylist()) == [1, *range(3, 43)]
    flagged = [r for r in stream_rows(folder, pattern="人员*.csv") if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 1 and "人员.csv line 3" in flagged[0][ROW_PROBLEM_COLUMN]
    assert "引号未闭合" in flagged[0][ROW_PROBLEM_COLUMN] and "'2,\"李四'" in flagged[0][ROW_PROBLEM_COLUMN]


def test_a_quoted_field_over_several_lines_is_still_one_value(folder: Path) -> None:
    (folder / "人员.csv").write_text('编号,地址\n1,"上海市\n浦东新区"\n2,"a ""b"" c"\n', encoding="utf-8")
    assert [(r["编号"], r["地址"]) for r in stream_rows(folder, pattern="人员*.csv")] == [
        (1, "上海市\n浦东新区"), (2, 'a "b" c')]


def test_two_exports_joined_with_cat_quarantine_the_second_heading_and_the_mark(folder: Path) -> None:
    """`cat a.csv b.csv` (or copy /b) puts the second file's byte-order mark and heading in the middle: the
    heading was published as a row (编号 = '\\ufeff编号'), and a value with an invisible U+FEFF matched nothing."""
    bom = "\ufeff"
    (folder / "人员.csv").write_text(f"{bom}编号,姓名\n1,张三\n{bom}编号,姓名\n2,李四\n3,{bom}王五\n", encoding="utf-8")

    rows = stream_rows(folder, pattern="人员*.csv", columns=[{"name": "id", "type": "text", "header": "编号"},
                                                     {"name": "name", "type": "text", "header": "姓名"}])

    assert [(r["id"], r["name"]) for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [("1", "张三"), ("2", "李四")]
    flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 2 and all("字节顺序标记" in p and "BOM" in p for p in flagged)
    assert "line 3" in flagged[0] and "line 5" in flagged[1]


def test_a_nul_byte_quarantines_its_row(folder: Path) -> None:
    """A NUL byte (a file padded by a crashed copy, a UTF-16 export without its mark) was published as part of
    the text; PostgreSQL, where most consumers load the data, cannot hold it."""
    (folder / "人员.csv").write_bytes("编号,姓名\n1,张\x00三\n2,李四\n".encode())
    rows = stream_rows(folder, pattern="人员*.csv", columns=[{"name": "id", "type": "integer", "header": "编号"},
                                                     {"name": "name", "type": "text", "header": "姓名"}])
    assert [r["id"] for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [2]
    assert "NUL" in rows[0][ROW_PROBLEM_COLUMN] and "line 2" in rows[0][ROW_PROBLEM_COLUMN]


@pytest.mark.parametrize("heading", ["__govshare_row_problem", "__govshare_row_raw"])
def test_a_heading_named_like_the_hubs_row_flag_is_refused(folder: Path, heading: str) -> None:
    """A column headed __govshare_row_problem was taken for the hub's own flag: each row's value became the
    reason it was quarantined, and the column was never published."""
    (folder / "人员.csv").write_text(f"编号,{heading}\n1,x\n2,\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        stream_rows(folder, pattern="人员*.csv")
    assert heading in str(refused.value) and "保留" in str(refused.value)


@pytest.mark.parametrize("pattern", ["../other/*.csv", "sub/../../other/*.csv", "/etc/host*"])
def test_a_pattern_cannot_leave_the_sources_folder(tmp_path: Path, folder: Path, pattern: str) -> None:
    """The stream's pattern read files outside the source's folder (another agency's folder beside it, or any
    file the hub can read) and published them as this source's data."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "人员.csv").write_text("编号\n1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        stream_rows(folder, pattern=pattern)
    assert pattern in str(refused.value)
    assert "源文件夹之外" in str(refused.value)


def test_a_workbook_whose_stated_size_is_too_small_is_read_whole(folder: Path) -> None:
    """A program that writes <dimension ref="A1:B2"/> and then 40 rows: openpyxl's read-only mode trusts the
    stated size, so rows 3-41 were silently not read, and a column beyond B neither."""
    rows = [["编号", "姓名", "备注"], *[[i, f"王{i}", f"备注{i}"] for i in range(1, 41)]]
    stated = _with_sheet(workbook_bytes(rows),
                         lambda xml: xml.replace(b'<dimension ref="A1:C41"', b'<dimension ref="A1:B2"'))
    assert b'<dimension ref="A1:B2"' in zipfile.ZipFile(io.BytesIO(stated)).read("xl/worksheets/sheet1.xml")
    (folder / "人员.xlsx").write_bytes(stated)

    read = stream_rows(folder, pattern="人员*.xlsx")

    assert [(r["编号"], r["备注"]) for r in read] == [(i, f"备注{i}") for i in range(1, 41)]


def test_an_xml_entity_bomb_is_refused_with_what_to_do(folder: Path) -> None:
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    bomb = _with_sheet(workbook_bytes([["编号", "姓名"], [1, "x"]]), lambda xml: xml.replace(
        b"<worksheet ", f"<!DOCTYPE worksheet [{entities}]><worksheet ".encode(), 1).replace(b">x<", b">&a9;<"))
    (folder / "人员.xlsx").write_bytes(bomb)
    with pytest.raises(ConfigError) as refused:
        stream_rows(folder, pattern="人员*.xlsx")
    assert "人员.xlsx" in str(refused.value) and "另存为" in str(refused.value)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(folder: Path) -> None:
    """A sheet of 100 MB that packs to 100 KB: it was unpacked and parsed (1.6 GB of memory and a minute of the
    worker for one of 800 MB)."""
    bomb = _with_sheet(workbook_bytes([["编号", "姓名"], [1, "x"]]),
                       lambda xml: xml.replace(b">x<", b">" + b"A" * 100_000_000 + b"<"))
    (folder / "人员.xlsx").write_bytes(bomb)
    assert (folder / "人员.xlsx").stat().st_size < 2_000_000
    with pytest.raises(ConfigError) as refused:
        stream_rows(folder, pattern="人员*.xlsx")
    assert "人员.xlsx" in str(refused.value) and "zip bomb" in str(refused.value)


def test_a_carriage_return_excel_wrote_as_its_escape_is_read_as_the_character(folder: Path) -> None:
    """Excel writes a CR in a cell (text pasted from a Windows program) and other control characters as OOXML's
    _x000D_ escape; it was published as the seven characters "_x000D_"."""
    (folder / "人员.xlsx").write_bytes(_with_sheet(workbook_bytes([["编号", "地址"], [1, "上海市CRLF浦东新区"]]),
                                                 lambda xml: xml.replace(b"CRLF", b"_x000D_\n")))
    assert [r["地址"] for r in stream_rows(folder, pattern="人员*.xlsx")] == ["上海市\r\n浦东新区"]


@pytest.mark.parametrize("encoding", ["auto", "gb18030", "gbk"])
def test_utf8_lines_past_the_judged_gbk_window_are_quarantined_not_published_garbled(folder: Path,
                                                                                      encoding: str) -> None:
    """Two exports joined, the older system's GBK first and the newer one's UTF-8 after it: only the first 64 KiB
    of text were judged, and GB18030 decodes almost any bytes, so 上海 was published as 涓婃捣 with no flag."""
    gbk = [f"{i},上海市第{i}号科技有限公司\n" for i in range(1, 4000)]  # UTF-8 上海 reads as GBK 涓婃捣
    utf8 = [f"{i},{name}\n" for i, name in zip(range(4000, 4003), ["上海", "上海浦东", "深圳"])]
    data = "编号,名称\n".encode("gbk") + "".join(gbk).encode("gbk") + "".join(utf8).encode("utf-8")
    assert len("".join(gbk).encode("gbk")) > 64 * 1024
    (folder / "企业.csv").write_bytes(data)

    rows = stream_rows(folder, pattern="企业*.csv", encoding=encoding,
                       columns=[{"name": "id", "type": "integer", "header": "编号"},
                                {"name": "name", "type": "text", "header": "名称"}])

    good = [r for r in rows if not r.get(ROW_PROBLEM_COLUMN)]
    assert [(r["id"], r["name"]) for r in good] == [(i, f"上海市第{i}号科技有限公司") for i in range(1, 4000)]
    flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 3 and all("UTF-8" in p and "编码" in p for p in flagged)
    assert "企业.csv line 4001" in flagged[0]


@pytest.fixture
def field_bound(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """GOVSHARE_CSV_MAX_FIELD_CHARS set low (4,096 characters), so that a file of a few lines passes it."""
    from core.settings import reset_settings

    monkeypatch.setenv("GOVSHARE_CSV_MAX_FIELD_CHARS", "4096")
    reset_settings()
    yield 4096
    reset_settings()


def test_a_quote_never_closed_stops_at_the_field_bound(folder: Path, field_bound: int) -> None:
    """The lines a quote never closed swallowed were held until the end of the file or the 256 Mi-character
    field limit (a 100 MB field took 663 MB): they are held up to the bound, then read again on their own."""
    lines = ["编号,姓名", "1,张三", '2,"李四', *[f"{i},王{i}-{'x' * 100}" for i in range(3, 203)]]
    (folder / "人员.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    rows = stream_rows(folder, pattern="人员*.csv", columns=[{"name": "id", "type": "integer", "header": "编号"},
                                                     {"name": "name", "type": "text", "header": "姓名"}])

    assert [r["id"] for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [1, *range(3, 203)]
    flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 1 and "人员.csv line 3" in flagged[0] and "4,096" in flagged[0]
    assert "GOVSHARE_CSV_MAX_FIELD_CHARS" in flagged[0] and "'2,\"李四'" in flagged[0]


@pytest.mark.parametrize("quoted", [False, True])
def test_a_line_longer_than_the_field_bound_is_quarantined_unread(folder: Path, field_bound: int,
                                                                  quoted: bool) -> None:
    """One field of 100 MB on a line was read whole into memory (663 MB peak, past the hub's 512 MiB): a line
    past the bound is quarantined, naming it, and the lines around it are read."""
    long = "长" * (field_bound * 3)
    long = f'"{long}"' if quoted else long
    (folder / "人员.csv").write_text(f"编号,姓名\n1,张三\n2,{long}\n3,王五\n", encoding="utf-8")

    rows = stream_rows(folder, pattern="人员*.csv", columns=[{"name": "id", "type": "integer", "header": "编号"},
                                                     {"name": "name", "type": "text", "header": "姓名"}])

    assert [(r["id"], r["name"]) for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [(1, "张三"), (3, "王五")]
    flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 1 and "人员.csv line 3" in flagged[0] and "4,096" in flagged[0]
    assert len(flagged[0]) < 3000  # an excerpt, not the line


def test_a_long_line_inside_a_quote_never_closed_is_quarantined_on_its_own(folder: Path, field_bound: int) -> None:
    (folder / "人员.csv").write_text(f'编号,姓名\n1,"张三\n2,{"长" * field_bound * 2}\n3,王五\n', encoding="utf-8")

    rows = stream_rows(folder, pattern="人员*.csv", columns=[{"name": "id", "type": "integer", "header": "编号"},
                                                     {"name": "name", "type": "text", "header": "姓名"}])

    assert [(r["id"], r["name"]) for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [(3, "王五")]
    flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert len(flagged) == 2 and "人员.csv line 2" in flagged[0] and "引号未闭合" in flagged[0]
    assert "人员.csv line 3" in flagged[1] and "行超过" in flagged[1]


def test_an_escape_typed_as_text_in_excel_is_read_as_typed(folder: Path) -> None:
    """Excel saves a typed `_x0041_` as `_x005F_x0041_` (its underscore escaped) and a CR as `_x000D_`; openpyxl
    dropped the `x005F_` of shared strings, so the typed text was published as `A`."""
    rows = [["编号", "备注"], [1, "_x005F_x0041_"], [2, "a_x000D_b"], [3, "x005F_1"], [4, "普通"]]
    (folder / "人员.xlsx").write_bytes(with_shared_strings(workbook_bytes(rows)))
    assert b'<v>' in zipfile.ZipFile(folder / "人员.xlsx").read("xl/worksheets/sheet1.xml")

    read = stream_rows(folder, pattern="人员*.xlsx")

    assert [r["备注"] for r in read] == ["_x0041_", "a\rb", "x005F_1", "普通"]


def test_an_undecodable_value_is_quarantined_with_the_files_own_bytes(hub_home: Path, folder: Path,
                                                                      tmp_path: Path) -> None:
    """A GBK export with a stray byte (0xFF) in a name: the quarantine quoted the value re-encoded as UTF-8
    (李 as e6 9d 8e), bytes the file never held, so the provider could not find what to fix. It now gives the
    file's own bytes, in hex, and names the encoding they were read in."""
    import csv

    from typer.testing import CliRunner

    from cli.main import app
    from pipeline.sync import sync_resource

    (folder / "人员.csv").write_bytes("编号,姓名\n1,张三\n2,李".encode("gbk") + b"\xff" + "四\n".encode("gbk"))
    hub = register_resource(kind="files", config={"path": str(folder), "streams": {"enterprises": {
        "pattern": "人员*.csv", "encoding": "gbk",
        "columns": [{"name": "id", "type": "integer", "header": "编号"},
                    {"name": "name", "type": "text", "header": "姓名"}]}}}, cursor=None)
    assert sync_resource(resource_code=hub.resource_code).rows_quarantined == 1

    exported = tmp_path / "fix.csv"
    result = CliRunner().invoke(app, ["quarantine", "export", hub.resource_code, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    with exported.open(encoding="utf-8-sig", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["id"] == "2" and row["name"] == "李\ufffd四"
    assert "c0 ee ff cb c4" in row["_reason"] and "gbk" in row["_reason"]
    assert "e6 9d 8e" not in row["_reason"] and "\\xe6" not in row["_reason"]


def test_a_gbk_line_that_also_reads_as_utf8_is_published_as_gbk_not_quarantined(folder: Path) -> None:
    """GBK 椁风肠 is, byte for byte, valid UTF-8 too (餷糦, two CJK characters): every line of a GBK export
    holding such a name was quarantined as "UTF-8 text in a file read as GBK". The reading with fewer characters
    outside GB2312 wins; a UTF-8 line joined after it is still flagged."""
    assert "椁风肠".encode("gbk").decode("utf-8") == "餷糦"
    gbk = [f"{i},椁风肠\n" for i in range(1, 4)]
    data = "编号,名称\n".encode("gbk") + "".join(gbk).encode("gbk") + "4,上海浦东\n".encode("utf-8")
    (folder / "企业.csv").write_bytes(data)

    for encoding in ("gbk", "gb18030", "auto"):
        rows = stream_rows(folder, pattern="企业*.csv", encoding=encoding,
                           columns=[{"name": "id", "type": "integer", "header": "编号"},
                                    {"name": "name", "type": "text", "header": "名称"}])
        good = [(r["id"], r["name"]) for r in rows if not r.get(ROW_PROBLEM_COLUMN)]
        assert good == [(1, "椁风肠"), (2, "椁风肠"), (3, "椁风肠")], encoding
        flagged = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
        assert len(flagged) == 1 and "UTF-8" in flagged[0] and "上海浦东" in flagged[0], encoding


def test_a_utf8_line_whose_gbk_reading_is_as_common_is_quarantined_not_published_garbled(folder: Path) -> None:
    """UTF-8 两人 read as GBK is 涓や汉, every character of it common (GB2312) as 两人's are: neither reading is
    the likelier, and publishing the file's reading would hand consumers 涓や汉 unflagged. A tie is held."""
    assert "两人".encode("utf-8").decode("gbk") == "涓や汉"
    data = "编号,名称\n1,椁风肠\n".encode("gbk") + "2,两人\n".encode("utf-8")
    (folder / "企业.csv").write_bytes(data)

    rows = stream_rows(folder, pattern="企业*.csv", encoding="gbk",
                       columns=[{"name": "id", "type": "integer", "header": "编号"},
                                {"name": "name", "type": "text", "header": "名称"}])
    assert [(r["id"], r["name"]) for r in rows if not r.get(ROW_PROBLEM_COLUMN)] == [(1, "椁风肠")]
    (flagged,) = [r[ROW_PROBLEM_COLUMN] for r in rows if r.get(ROW_PROBLEM_COLUMN)]
    assert "UTF-8" in flagged and "两人" in flagged
