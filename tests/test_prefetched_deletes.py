"""The rows a change set carries for its deletes are read by the key scan as it finds them (pipeline.row_store):
the rows written are the rows as last published, every column, whether they were read ahead, partly read ahead
(the prefetch is bounded) or read after the scan; a row read ahead whose key the run does not count as deleted is
not used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import pipeline.layer_changes
import pipeline.row_store
from samples.loaders import load_postgres
from tests.helpers import (
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    version_folder,
)
from tests.services import require_postgres

ROWS = 4_000
GONE = [7, 8, 1_200, 2_001, 2_002, 3_999]


@pytest.fixture
def source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=23, schema=schema)
        yield dsn, schema


def _synced_in_full(dsn: str, schema: str) -> str:
    """The source's table registered and synced once (v1); its resource code."""
    from pipeline.sync import sync_resource

    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret).resource_code
    sync_resource(resource_code=code)
    return code


def _deleted_rows(version) -> dict[int, dict]:  # noqa: ANN001 - DatasetVersion
    table = pq.read_table(version_folder(version) / "changes.parquet").to_pylist()
    return {row["id"]: {k: v for k, v in row.items() if k != "_change"} for row in table if row["_change"] == "delete"}


def _reads_after_the_scan(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the deleted rows the change set had to read after the key scan (not read ahead)."""
    counted: list[int] = []
    original = pipeline.layer_changes.rows_at

    def counting(part, positions):  # noqa: ANN001, ANN202
        counted.append(len(positions))
        return original(part, positions)

    monkeypatch.setattr(pipeline.layer_changes, "rows_at", counting)
    return counted


@pytest.mark.parametrize("limit", [None, 4], ids=["all-read-ahead", "read-ahead-bounded"])
def test_a_change_sets_deletes_carry_the_rows_as_published(hub_home: Path, source: tuple[str, str],
                                                           monkeypatch: pytest.MonkeyPatch, limit: int | None) -> None:
    from pipeline.sync import sync_resource

    dsn, schema = source
    code = _synced_in_full(dsn, schema)
    v1 = latest(code)
    assert list(version_folder(v1).glob("lookup/data/*.arrow")), "the full version has no row store to read ahead"
    published = {row["id"]: row for row in read_version(v1).to_pylist()}

    if limit is not None:
        monkeypatch.setattr(pipeline.row_store, "PREFETCH_ROWS", limit)
    after_scan = _reads_after_the_scan(monkeypatch)
    pg_execute(dsn, f'DELETE FROM "{schema}".enterprises WHERE id IN ({", ".join(map(str, GONE))})')
    report = sync_resource(resource_code=code)
    v2 = latest(code)

    assert report.mode == "incremental" and v2.number == 2 and v2.manifest["key_scan"]["method"] == "merge"
    assert v2.manifest["changes"]["deleted"] == len(GONE)
    gone = _deleted_rows(v2)
    assert sorted(gone) == GONE
    for key, row in gone.items():
        assert row == published[key], key  # every column as v1 published it
    # Read ahead, nothing is read after the scan; bounded, at least the rows past the bound are.
    assert (sum(after_scan) == 0) if limit is None else (sum(after_scan) >= len(GONE) - limit)


def test_prefetched_rows_answer_only_for_positions_they_hold(hub_home: Path, source: tuple[str, str]) -> None:
    from pipeline.layers import version_parts
    from pipeline.layer_changes import rows_at
    from pipeline.row_store import PrefetchedRows

    dsn, schema = source
    code = _synced_in_full(dsn, schema)
    part = version_parts(latest(code))[0]

    rows = PrefetchedRows(limit=5)
    reader = rows.reader()
    try:
        reader.read(part, np.array([30, 10, 20]))  # any order
        reader.read(part, np.array([40, 50, 60]))  # past the bound: not read
    finally:
        reader.close()
    wanted = np.array([10, 30])
    assert rows.rows_at(part, wanted).to_pylist() == rows_at(part, wanted).to_pylist()
    assert rows.rows_at(part, np.array([10, 40])) is None  # one of them was not read ahead
    assert rows.rows_at(part, np.array([31])) is None


def test_a_row_store_that_cannot_be_read_is_left_to_the_read_after_the_scan(hub_home: Path,
                                                                            source: tuple[str, str]) -> None:
    from pipeline.layers import version_parts
    from pipeline.lookup_index import published_stem, row_store_path
    from pipeline.row_store import PrefetchedRows

    dsn, schema = source
    code = _synced_in_full(dsn, schema)
    part = version_parts(latest(code))[0]
    store = row_store_path(published_stem(version_folder(latest(code)), part.entry["path"]))
    store.write_bytes(store.read_bytes()[:1000])  # cut short

    rows = PrefetchedRows()
    reader = rows.reader()
    try:
        reader.read(part, np.array([10, 20]))  # a read ahead only: it does not fail the scan
    finally:
        reader.close()
    assert rows.rows_at(part, np.array([10, 20])) is None
