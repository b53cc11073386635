"""Duplicate keys are found across all staged parts by a bounded-memory query, in key_array's own form, so the
rows to quarantine are matched exactly whatever the key's types (一数一源: every row of a duplicated key)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.validate import duplicated_keys_in_files, key_array


def _parts(tmp_path: Path, tables: list[pa.Table]) -> list[Path]:
    paths = []
    for number, table in enumerate(tables):
        path = tmp_path / f"part-{number}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def test_single_key_duplicates_across_parts(tmp_path: Path) -> None:
    files = _parts(tmp_path, [pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}),
                              pa.table({"id": [3, 4, 4, 5], "v": ["d", "e", "f", "g"]})])
    dupes = duplicated_keys_in_files(files, ("id",), scratch=tmp_path / "scratch")
    assert sorted(dupes.to_pylist()) == [3, 4]


def test_composite_key_with_dates_decimals_and_timestamps_matches_key_array(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    schema = pa.schema([("uscc", pa.string()), ("day", pa.date32()), ("amount", pa.decimal128(12, 2)),
                        ("at", pa.timestamp("us", tz="UTC"))])
    rows = [("91310000MA1FL0001X", date(2026, 1, 1), Decimal("1.50"), when),
            ("91310000MA1FL0001X", date(2026, 1, 2), Decimal("1.50"), when),
            ("91310000MA1FL0002Y", date(2026, 1, 1), Decimal("2.00"), when)]
    table = pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)
    files = _parts(tmp_path, [table, table.slice(0, 1)])
    key = ("uscc", "day", "amount", "at")
    dupes = duplicated_keys_in_files(files, key, scratch=tmp_path / "scratch")
    assert len(dupes) == 1
    matched = pc.is_in(key_array(table, key), value_set=dupes).to_pylist()
    assert matched == [True, False, False]


def test_no_parts_no_duplicates(tmp_path: Path) -> None:
    assert len(duplicated_keys_in_files([], ("id",), scratch=tmp_path / "scratch")) == 0


def test_sorted_key_ranges_find_exactly_the_repeated_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The locators' merge, one key range at a time, against a plain count, with keys repeated inside a part,
    across parts, on range edges, and negative ones."""
    import numpy as np

    from pipeline import locator

    rng = np.random.default_rng(5)
    parts = [rng.integers(-5_000, 5_000, size=n) for n in (3_000, 1, 0, 4_000)]
    stems = []
    for index, keys in enumerate(parts):
        path = tmp_path / f"part-{index}.parquet"
        pq.write_table(pa.table({"id": pa.array(keys, pa.int64())}), path)
        stems.append(tmp_path / f"locator/part-{index}")
        locator.build(path, "id", stems[-1])
    values, counts = np.unique(np.concatenate(parts), return_counts=True)
    for range_rows in (1_000_000, 500, 7, 1):
        monkeypatch.setattr(locator, "DUPLICATES_RANGE_ROWS", range_rows)
        assert sorted(locator.duplicates(stems).to_pylist()) == values[counts > 1].tolist()
    assert locator.duplicates([]).to_pylist() == []
