"""Helpers for tests of file sources: an exchange folder, a stream read straight from the connector, a workbook."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from connectors.base import ReadState, StreamSpec
from connectors.files import FilesConnector


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "exchange"
    path.mkdir()
    return path


def stream_rows(folder: Path, **stream: object) -> list[dict]:
    """Every row the files connector reads from `folder` for one stream of these settings (flags included)."""
    connector = FilesConnector(name="clerk", config={"path": str(folder), "streams": {"people": stream}})
    return [row for batch in connector.read(StreamSpec(table="people"), ReadState()) for row in batch.to_pylist()]


def workbook_bytes(rows: list[list[object]]) -> bytes:
    """An .xlsx of these rows as openpyxl saves it (a number as Excel saves it: a double, 15 significant digits)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    data = io.BytesIO()
    workbook.save(data)
    return data.getvalue()


def with_shared_strings(package: bytes) -> bytes:
    """The workbook with the text cells of every sheet in one shared string table, as Excel saves them (openpyxl
    writes them inline, where openpyxl's reader keeps Excel's escapes as they are)."""
    texts: list[str] = []

    def shared(match: re.Match) -> bytes:
        texts.append(match.group(2).decode())
        return match.group(1) + b' t="s"><v>' + str(len(texts) - 1).encode() + b"</v></c>"

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", item.filename):
                data = re.sub(rb'(<c r="[A-Z]+\d+")(?: s="\d+")? t="inlineStr"><is><t>(.*?)</t></is></c>', shared, data)
            elif item.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            target.writestr(item.filename, data)
        table = "".join(f"<si><t>{t}</t></si>" for t in texts)
        target.writestr("xl/sharedStrings.xml", '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
                        f'main" count="{len(texts)}" uniqueCount="{len(texts)}">{table}</sst>')
    return out.getvalue()
