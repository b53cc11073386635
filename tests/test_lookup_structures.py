"""Lookup structures built at publish time (pipeline.lookup_index): a keyed lookup answers exactly what a scan of
the version's live rows answers, the publish leaves nothing for the first lookup to build, a layer reuses its
base's structures untouched, and a column first looked up later is indexed then and at every later publish.
Real pipeline runs over a SQLite source; nothing is mocked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from samples.loaders import load_sqlite
from tests.helpers import Hub, latest, read_version, register_resource, sqlite_execute, sync

ROWS = 300
LATER = "2026-07-01T10:00:00+08:00"


def _stream(code: str, **extra) -> None:  # noqa: ANN003 - stream settings
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        resource = get_resource(session, code=code)
        resource.stream = {**resource.stream, **extra}


@pytest.fixture
def source(hub_home: Path, tmp_path: Path) -> tuple[Hub, Path]:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=ROWS, seed=43)
    hub = register_resource(kind="sqlite", config={"path": str(database)})
    _stream(hub.resource_code, lookup_columns=["uscc"])
    sync(hub)
    return hub, database


def _find(version, column: str, value) -> list[dict]:  # noqa: ANN001 - DatasetVersion
    from delivery.partlookup import version_lookup

    found = version_lookup(version, primary_key=["id"]).find(column, value, columns=None)
    return sorted(found.to_pylist(), key=lambda row: row["id"])


def _scan(version, column: str, value) -> list[dict]:  # noqa: ANN001
    table = read_version(version)
    return sorted(table.filter(pc.equal(table.column(column), value)).to_pylist(), key=lambda row: row["id"])


def _lookup_files(folder: Path) -> dict[str, float]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in (folder / "lookup").rglob("*")
            if p.is_file()}


def test_a_publish_builds_what_a_lookup_needs_and_lookups_answer_as_a_scan(source) -> None:  # noqa: ANN001
    from pipeline.paths import resolve, storage_root

    hub, _ = source
    version = latest(hub.resource_code)
    files = _lookup_files(resolve(version.path))
    # the row store and the sorted USCCs of the one part; the integer key is the part's locator already
    assert set(files) == {"lookup/data/part-00000.arrow", "lookup/data/part-00000.uscc.keys.npy",
                          "lookup/data/part-00000.uscc.rows.npy"}
    table = read_version(version)
    for value in [*table.column("uscc").to_pylist()[::7], "91310000MA1FL0000X", ""]:
        assert _find(version, "uscc", value) == _scan(version, "uscc", value)
    for value in [1, 150, ROWS, ROWS + 1, -3]:
        assert _find(version, "id", value) == _scan(version, "id", value)
    assert not (storage_root() / "index").exists(), "the first lookups had to build something"


def test_a_layer_reuses_its_bases_structures_and_sees_only_live_rows(source) -> None:  # noqa: ANN001
    from pipeline.paths import resolve

    hub, database = source
    v1 = latest(hub.resource_code)
    base = _lookup_files(resolve(v1.path))
    before = {row["id"]: row for row in read_version(v1).to_pylist()}
    sqlite_execute(database, f"UPDATE enterprises SET uscc = '91310115MA1K4XXXX0', status = '注销', "
                             f"updated_at = '{LATER}' WHERE id = 5",
                   f"INSERT INTO enterprises SELECT 9001, uscc, '上海新设有限公司', legal_rep, legal_rep_id, "
                   f"reg_capital, established, status, address, industry, '{LATER}' FROM enterprises WHERE id = 9")
    report = sync(hub)
    v2 = latest(hub.resource_code)
    assert report.mode == "incremental" and any(e.get("folder") for e in v2.manifest["files"])
    # v2 built structures for its own delta only; v1's are the very same files, not rewritten
    assert {p.split(".")[0] for p in _lookup_files(resolve(v2.path))} == {"lookup/data/part-00000"}
    assert _lookup_files(resolve(v1.path)) == base
    old_uscc = before[5]["uscc"]
    assert _find(v2, "uscc", old_uscc) == _scan(v2, "uscc", old_uscc) == []  # its only row was replaced
    assert [r["status"] for r in _find(v2, "uscc", "91310115MA1K4XXXX0")] == ["注销"]
    assert [r["id"] for r in _find(v2, "uscc", before[9]["uscc"])] == [9, 9001]  # held twice now: both rows
    assert [r["status"] for r in _find(v2, "id", 5)] == ["注销"]
    assert _find(v1, "uscc", old_uscc) == [before[5]]  # the previous version still answers as it was


def test_a_column_looked_up_later_is_indexed_then_and_learned_by_the_next_publish(source) -> None:  # noqa: ANN001
    from pipeline.paths import resolve, storage_root

    hub, database = source
    v1 = latest(hub.resource_code)
    name = read_version(v1).column("name")[17].as_py()
    assert _find(v1, "name", name) == _scan(v1, "name", name)
    assert list((storage_root() / "index").rglob("*.name.keys.npy")), "built on demand, beside the version"
    sqlite_execute(database, f"UPDATE enterprises SET updated_at = '{LATER}' WHERE id = 3")
    sync(hub)
    v2 = latest(hub.resource_code)
    assert "lookup/data/part-00000.name.keys.npy" in _lookup_files(resolve(v2.path))


def test_text_keys_past_the_prefix_and_odd_values_are_found_exactly(hub_home: Path) -> None:
    """Keys longer than the 64-byte prefix, sharing it; empty strings; trailing NULs; nulls; timestamps by
    their text; floats."""
    from pipeline.lookup_index import MAX_KEY_BYTES, build_part, published_stem
    from pipeline.paths import storage_root
    from registry.exchange.models import DatasetVersion

    shared = "上海市浦东新区" * 5  # 105 bytes of UTF-8
    names = [shared + "甲", shared + "乙", "", "a", "a\x00", None, shared + "甲", "b" * MAX_KEY_BYTES]
    table = pa.table({"name": names, "score": [1.5, -0.0, 2.0, float("nan"), 3.0, None, 1.5, 0.0],
                      "at": pa.array([0, 1, 2, 3, 4, 5, 6, 7], pa.timestamp("us", tz="UTC"))})
    folder = storage_root() / "datasets/9/v000001-cccccccc"
    (folder / "data").mkdir(parents=True)
    pq.write_table(table, folder / "data/part-00000.parquet")
    build_part(folder / "data/part-00000.parquet", published_stem(folder, "data/part-00000.parquet"),
               ["name", "score", "at"])
    manifest = {"files": [{"path": "data/part-00000.parquet", "rows": table.num_rows}],
                "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    version = DatasetVersion(id=9, resource_id=9, number=1, run_id="c" * 32, path="datasets/9/v000001-cccccccc",
                             row_count=table.num_rows, manifest=manifest, manifest_sha256="0" * 64)
    from delivery.partlookup import version_lookup

    index = version_lookup(version, primary_key=None)

    def positions(column: str, value) -> list[int]:  # noqa: ANN001
        found = index.find(column, value, columns=list(dict.fromkeys([column, "at"]))).column("at")
        return [int(v.value) for v in found]

    assert positions("name", shared + "甲") == [0, 6]
    assert positions("name", shared + "乙") == [1]
    assert positions("name", shared) == []
    assert positions("name", "") == [2]
    assert positions("name", "a") == [3] and positions("name", "a\x00") == [4]
    assert positions("name", "b" * MAX_KEY_BYTES) == [7]
    assert positions("score", 1.5) == [0, 6] and positions("score", 0.0) == [1, 7]
    assert positions("score", float("nan")) == []
    at = table.column("at")[4].as_py()
    assert positions("at", at) == [4]
    keys = np.load(folder / "lookup/data/part-00000.name.keys.npy")
    assert len(keys) == 7 and keys.dtype.itemsize == MAX_KEY_BYTES  # nulls are never keys


def test_a_large_run_writes_two_parts_at_a_time_and_each_row_store_matches_its_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PARALLEL_FROM_ROWS batches alternate between two parts written in two threads: every row is in
    exactly one part, each part's row store holds that part's rows in its order, and near-unique columns
    are written without a dictionary."""
    from pipeline.lookup_index import published_stem, row_store_path
    from pipeline.staging import PartWriter

    monkeypatch.setattr("pipeline.staging.PARALLEL_FROM_ROWS", 100_000)  # the sizes scaled down tenfold
    monkeypatch.setattr("pipeline.staging.ROWS_PER_FILE", 100_000)
    batch_rows = 5_000
    total = 437_000  # both lanes roll over to new parts; the last batch is short
    writer = PartWriter(tmp_path / "data", lookup_owner=tmp_path)
    (tmp_path / "data").mkdir()
    for start in range(0, total, batch_rows):
        ids = np.arange(start, min(start + batch_rows, total), dtype=np.int64)
        writer.write(pa.record_batch({"id": ids, "kind": pa.array(ids % 3).cast(pa.string()),
                                      "code": pa.array([f"C{i:09d}" for i in ids])}))
    writer.close()
    assert len(writer.files) >= 3 and writer.rows == total
    seen = []
    for name in writer.files:
        part = pq.read_table(tmp_path / "data" / name)
        with pa.memory_map(str(row_store_path(published_stem(tmp_path, f"data/{name}")))) as source:
            assert pa.ipc.open_file(source).read_all().equals(part)
        seen += part.column("id").to_pylist()
        metadata = pq.ParquetFile(tmp_path / "data" / name).metadata.row_group(0)
        encodings = {metadata.column(i).path_in_schema: metadata.column(i).encodings for i in range(3)}
        assert "RLE_DICTIONARY" in encodings["kind"] and "RLE_DICTIONARY" not in encodings["code"]
    assert sorted(seen) == list(range(total))
    small = PartWriter(tmp_path / "small", lookup_owner=tmp_path)
    (tmp_path / "small").mkdir()
    for start in range(0, 100_000, batch_rows):
        small.write(pa.record_batch({"id": np.arange(start, start + batch_rows, dtype=np.int64)}))
    small.close()
    assert small.files == ["part-00000.parquet"]  # an incremental run's delta stays one part


def test_a_writer_kept_in_arrival_order_writes_one_part_at_a_time(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """File sources align a side file of ranks with the parts' rows in order: their writer never alternates."""
    from pipeline.staging import PartWriter

    monkeypatch.setattr("pipeline.staging.PARALLEL_FROM_ROWS", 10)
    monkeypatch.setattr("pipeline.staging.ROWS_PER_FILE", 40)
    (tmp_path / "data").mkdir()
    writer = PartWriter(tmp_path / "data")
    writer.keep_arrival_order()
    for start in range(0, 100, 10):
        writer.write(pa.record_batch({"id": np.arange(start, start + 10, dtype=np.int64)}))
    writer.close()
    ids = [i for name in writer.files for i in pq.read_table(tmp_path / "data" / name).column("id").to_pylist()]
    assert ids == list(range(100)) and len(writer.files) == 3
    late = PartWriter(tmp_path / "late")
    (tmp_path / "late").mkdir()
    for start in range(0, 30, 10):
        late.write(pa.record_batch({"id": np.arange(start, start + 10, dtype=np.int64)}))
    with pytest.raises(RuntimeError):
        late.keep_arrival_order()
    late.close()


def test_a_columns_keys_file_appears_only_with_its_rows_file(tmp_path: Path) -> None:
    """Readers take a column's keys file for the pair (pipeline.lookup_index.key_files): a lookup running beside
    the first build loaded the keys and found no rows file yet (FileNotFoundError under concurrent lookups).
    Whenever the keys file exists, its rows file does: watched by a thread polling while the pair is built."""
    import threading

    from pipeline.lookup_index import build_keys, key_files

    part = tmp_path / "part.parquet"
    pq.write_table(pa.table({"code": [f"{i:018d}" for i in range(300_000, 0, -1)]}), part)
    stem = tmp_path / "index" / "part"
    keys_file, rows_file = key_files(stem, "code")
    seen_alone, done, removing = [], threading.Event(), threading.Lock()

    def watch() -> None:
        while not done.is_set():
            with removing:  # the test's own removal of the pair is not the build's doing
                if keys_file.is_file() and not rows_file.is_file():
                    seen_alone.append(True)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for _ in range(3):  # built three times over: each time the keys file is replaced last
        build_keys(part, "code", stem)
        with removing:
            keys_file.unlink()
            rows_file.unlink()
    done.set()
    watcher.join()
    assert not seen_alone
