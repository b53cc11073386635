"""Helpers for tests of file sources: an exchange folder, a stream read straight from the connector, a workbook."""

from __future__ import annotations

import io
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
