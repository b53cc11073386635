"""Every reader of a published version sees a layered version's live rows: referenced files minus their deletion
vectors, then the version's own delta, in manifest order. The version is built by hand in a real storage root
(real Parquet files, a real deletion vector), then read through each reader: nothing is mocked."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from core.errors import FatalError
from pipeline.layers import DELETES_DIR, Part, iter_parts, live_rows, live_sql, version_parts, write_deleted
from registry.exchange.models import DatasetVersion

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string()),
                    pa.field("at", pa.timestamp("us", tz="UTC"))])
V1 = "datasets/1/v000001-aaaaaaaa"
V2 = "datasets/1/v000002-bbbbbbbb"
# v1: two files. v2 drops ids 2 and 5 from the first (deletion vector at positions 1 and 4), keeps the second
# whole, and owns a delta with the new id 2 and id 11. Id 5 (deleted) is the newest row of all.
FIRST = [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five"), (6, "six")]
SECOND = [(7, "seven"), (8, "eight"), (9, "nine"), (10, "ten")]
DELTA = [(2, "two, corrected"), (11, "eleven")]
DELETED_POSITIONS = [1, 4]
EXPECTED = [(1, "one"), (3, "three"), (4, "four"), (6, "six"), *SECOND, *DELTA]


@dataclass
class Layered:
    version: DatasetVersion
    root: Path

    @property
    def parts(self) -> list[Part]:
        return version_parts(self.version)


def _at(row_id: int) -> datetime:
    # Every live row is three days old; the deleted id 5 is fresh, so a reader that keeps it looks fresh.
    return NOW - timedelta(hours=1) if row_id == 5 else NOW - timedelta(days=3)


def _write(path: Path, rows: list[tuple[int, str]]) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [r[0] for r in rows], "name": [r[1] for r in rows],
                             "at": [_at(r[0]) for r in rows]}, schema=SCHEMA), path, row_group_size=3)
    return {"rows": len(rows), "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def layered(hub_home: Path) -> Layered:
    from pipeline.paths import storage_root

    root = storage_root()
    first = _write(root / V1 / "data/part-00000.parquet", FIRST)
    second = _write(root / V1 / "data/part-00001.parquet", SECOND)
    delta = _write(root / V2 / "data/part-00000.parquet", DELTA)
    vector = root / V2 / DELETES_DIR / "v000001-part-00000.parquet"
    write_deleted(vector, np.array(DELETED_POSITIONS))
    manifest = {"row_count": len(EXPECTED), "schema": [{"name": f.name, "type": str(f.type)} for f in SCHEMA],
                "files": [{"path": "data/part-00000.parquet", "folder": V1, **first,
                           "deleted": {"path": vector.relative_to(root / V2).as_posix(),
                                       "rows": len(DELETED_POSITIONS), "sha256": _sha256(vector)}},
                          {"path": "data/part-00001.parquet", "folder": V1, **second},
                          {"path": "data/part-00000.parquet", **delta}]}
    (root / V2 / "manifest.json").write_text(json.dumps(manifest))
    version = DatasetVersion(id=2, resource_id=1, number=2, run_id="b" * 32, path=V2, row_count=len(EXPECTED),
                             manifest=manifest, manifest_sha256=_sha256(root / V2 / "manifest.json"))
    return Layered(version=version, root=root)


def _rows(batches) -> list[tuple[int, str]]:  # noqa: ANN001 - record batches or tables
    return [(r["id"], r["name"]) for b in batches for r in b.to_pylist()]


def test_iter_parts_yields_the_live_rows_in_manifest_order(layered: Layered) -> None:
    assert live_rows(layered.version.manifest) == len(EXPECTED)
    assert [p.live_rows for p in layered.parts] == [4, 4, 2]
    for size in (1, 2, 3, 65_536):  # deletions falling at, inside and across batch edges
        assert _rows(iter_parts(layered.parts, batch_size=size)) == EXPECTED
    only_ids = list(iter_parts(layered.parts, columns=["id"]))
    assert all(b.schema.names == ["id"] for b in only_ids)


def test_live_sql_holds_the_live_rows(layered: Layered) -> None:
    import duckdb

    connection = duckdb.connect()
    try:
        rows = connection.execute(f"SELECT id, name FROM {live_sql(layered.parts, connection)} ORDER BY id").fetchall()
    finally:
        connection.close()
    assert rows == sorted(EXPECTED)


def test_live_sql_reads_a_deeply_layered_version_within_a_small_budget(hub_home: Path) -> None:
    """Twenty-four layers, each with rows deleted by later ones: the full refresh after a month of incremental
    runs compares against such a version (pipeline.changes), and a scan per layer once ran out of memory."""
    import duckdb

    from pipeline.paths import storage_root

    rng = np.random.default_rng(5)
    parts, expected = [], {}
    for layer in range(24):
        path = storage_root() / f"datasets/9/layer-{layer:02d}/data/part-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.arange(layer * 20_000, (layer + 1) * 20_000)
        names = [f"企业{i}-" + "x" * int(rng.integers(20, 120)) for i in ids]
        pq.write_table(pa.table({"id": ids, "name": names}), path, row_group_size=4_096)
        dead = np.sort(rng.choice(len(ids), 2_000, replace=False))
        vector = path.parent.parent / DELETES_DIR / "part-00000.parquet"
        write_deleted(vector, dead)
        parts.append(Part(path=path, rows=len(ids), deleted=vector, deleted_rows=len(dead)))
        keep = np.ones(len(ids), dtype=bool)
        keep[dead] = False
        expected.update({int(i): n for i, n, k in zip(ids, names, keep) if k})
    connection = duckdb.connect(config={"threads": "2", "memory_limit": "24MB", "preserve_insertion_order": False,
                                        "temp_directory": str(storage_root() / "spill")})
    try:
        count, checksum = connection.execute(
            f"SELECT count(*), sum(hash(id, name)) FROM {live_sql(parts, connection)}").fetchone()
        sample = dict(connection.execute(
            f"SELECT id, name FROM {live_sql(parts, connection)} WHERE id % 997 = 0").fetchall())
        connection.register("expected_rows", pa.table({"id": list(expected), "name": list(expected.values())}))
        reference = connection.execute("SELECT sum(hash(id, name)) FROM expected_rows").fetchone()[0]
    finally:
        connection.close()
    assert count == len(expected) == 24 * 18_000
    assert checksum == reference
    assert sample == {i: n for i, n in expected.items() if i % 997 == 0}


def test_a_download_streams_the_live_rows(layered: Layered) -> None:
    from delivery.files import iter_batches, stream_version, version_schema

    assert version_schema(layered.version) == SCHEMA
    assert _rows(iter_batches(layered.version)) == EXPECTED
    as_parquet = b"".join(stream_version(layered.version, fmt="parquet"))
    assert _rows([pq.read_table(io.BytesIO(as_parquet))]) == EXPECTED
    as_csv = b"".join(stream_version(layered.version, fmt="csv", columns=["id", "name"]))
    table = pacsv.read_csv(io.BytesIO(as_csv.removeprefix("\ufeff".encode())))
    assert _rows([table]) == EXPECTED


def test_the_interface_schema_and_the_changes_schema_are_the_versions(layered: Layered) -> None:
    from delivery.interface import arrow_schema
    from pipeline.changes_feed import changes_schema

    assert arrow_schema(layered.version) == SCHEMA
    assert changes_schema(layered.version).names[:3] == SCHEMA.names


def test_a_sorted_copy_holds_only_the_live_rows(layered: Layered) -> None:
    from delivery.keyindex import sorted_copy

    copy = sorted_copy(layered.version, "id")
    assert copy.rows == len(EXPECTED)
    assert _rows([pq.read_table(copy.path)]) == sorted(EXPECTED)
    assert copy.find(2).column("name").to_pylist() == ["two, corrected"]
    assert copy.find(5).num_rows == 0


def test_the_authority_of_a_consistency_check_is_its_live_rows(layered: Layered) -> None:
    from pipeline.consistency import KEY, _authority_table

    table, ambiguous = _authority_table(layered.version, "id", ["name"])
    # the old and new rows of id 2 are not both there, so id 2 is not ambiguous and holds its corrected name
    assert ambiguous == 0
    assert dict(zip(table.column(KEY).to_pylist(), table.column("a.name").to_pylist())) == {
        str(i): name for i, name in EXPECTED}


def test_dataset_rules_over_a_version_ignore_deleted_rows(layered: Layered) -> None:
    from pipeline.expectations import version_batches
    from quality.checks import DatasetContext, rule_class

    read = version_batches(layered.version, batch_rows=2)
    assert _rows(read()) == EXPECTED
    context = DatasetContext(batches=read, rows=layered.version.row_count, run_time=NOW)
    fresh = rule_class("freshness").model_validate({"type": "freshness", "column": "at", "max_age_hours": 48})
    (stale,) = fresh.check_dataset(context)  # the fresh row (id 5) is deleted: the version is three days old
    assert "72.0 h old" in stale.message_en


def test_change_capture_carries_and_fills_from_the_live_rows(layered: Layered, tmp_path: Path) -> None:
    from connectors.base import ROW_PROBLEM_COLUMN
    from connectors.postgres_captured import UNCHANGED_COLUMN
    from pipeline.cdc_staging import fill_unchanged
    from pipeline.layering import carry_forward
    from pipeline.staging import PartWriter

    writer = PartWriter(tmp_path)
    carried = carry_forward(layered.parts, writer, ("id",), pa.array([3, 11], pa.int64()))
    writer.close()
    kept = [r for r in EXPECTED if r[0] not in (3, 11)]
    assert carried == len(kept)
    assert _rows([pq.read_table(tmp_path / f) for f in writer.files]) == kept

    # updates whose name the server did not resend: id 2 takes its live value, id 5 has none (deleted)
    update = pa.record_batch({"id": pa.array([2, 5], pa.int64()), "name": pa.array([None, None], pa.string()),
                              "at": pa.array([NOW, NOW], SCHEMA.field("at").type),
                              UNCHANGED_COLUMN: pa.array(["name", "name"])})
    filled = fill_unchanged(update, parts=layered.parts, key=("id",), contract=None).to_pylist()
    assert filled[0]["name"] == "two, corrected" and not filled[0].get(ROW_PROBLEM_COLUMN)
    assert filled[1]["name"] is None and "no earlier version" in filled[1][ROW_PROBLEM_COLUMN]


def test_verify_checks_every_part_and_deletion_vector(layered: Layered) -> None:
    from delivery.verify import WINDOW, _check_own_files, _is_own_file, _windows

    _check_own_files(layered.parts, resource_code="layered", number=2)
    # no single file is the version: its first file holds deleted rows, its delta only two rows
    assert not any(_is_own_file(layered.parts, part.path) for part in layered.parts)
    assert _rows(_windows(iter_parts(layered.parts, batch_size=WINDOW), size=3)) == EXPECTED
    vector = layered.parts[0].deleted
    write_deleted(vector, np.array([1]))  # someone "restores" a deleted row behind the registry's back
    with pytest.raises(FatalError, match=r"deletes/v000001-part-00000.parquet .* does not match"):
        _check_own_files(layered.parts, resource_code="layered", number=2)

