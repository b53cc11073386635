"""The change set of a full refresh (变更集) stays within its memory budget against a deeply layered version.

The weekly full read (GOVSHARE_FULL_REFRESH_DAYS) compares the source with a version that weeks of incremental
runs have stacked into layers with deletion vectors. DuckDB misjudged such a version's live rows (its estimate
is a fraction of them) and built the deletes' join on the old rows' whole columns: on a 5 M-row table the
refresh then failed with "Out of Memory". A source emptied at once failed the same way from the other side.
Here the same shapes, scaled down with the budget, on real Parquet files: nothing is mocked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import changes
from pipeline.layers import DELETES_DIR, Part, write_deleted

LAYERS, ROWS, DEAD = 24, 20_000, 2_000
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("address", pa.string())])


def _layered(root: Path) -> tuple[list[Part], dict[int, tuple[str, str]]]:
    """Twenty-four layers, each with rows deleted by later ones; the live rows by id."""
    rng = np.random.default_rng(5)
    parts, live = [], {}
    for layer in range(LAYERS):
        path = root / f"datasets/9/layer-{layer:02d}/data/part-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.arange(layer * ROWS, (layer + 1) * ROWS)
        names = [f"企业{i}-" + "x" * int(rng.integers(20, 120)) for i in ids]
        addresses = [f"上海市某区某路{i}号" + "y" * int(rng.integers(40, 160)) for i in ids]
        pq.write_table(pa.table({"id": ids, "name": names, "address": addresses}, schema=SCHEMA), path,
                       row_group_size=4_096)
        dead = np.sort(rng.choice(len(ids), DEAD, replace=False))
        vector = path.parent.parent / DELETES_DIR / "part-00000.parquet"
        write_deleted(vector, dead)
        parts.append(Part(path=path, rows=len(ids), deleted=vector, deleted_rows=len(dead)))
        keep = np.ones(len(ids), dtype=bool)
        keep[dead] = False
        live.update({int(i): (n, a) for i, n, a, k in zip(ids, names, addresses, keep) if k})
    return parts, live


def _write_source(path: Path, rows: dict[int, tuple[str, str]]) -> Path:
    ids = sorted(rows)
    pq.write_table(pa.table({"id": ids, "name": [rows[i][0] for i in ids], "address": [rows[i][1] for i in ids]},
                            schema=SCHEMA), path, row_group_size=8_192)
    return path


def _change_set(parts: list[Part], new: Path, scratch: Path) -> tuple[changes.ChangeSet, pa.Table]:
    out = scratch.parent / "changes.parquet"
    result = changes.compute_changes(new_files=[new], previous_parts=parts, key=("id",), schema=SCHEMA,
                                     previous_schema=SCHEMA, out=out, since_version=24, scratch=scratch)
    return result, pq.read_table(out)


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MEMORY_LIMIT", "48MB")  # 432,000 live rows: the joins of whole rows failed here


def test_a_full_refresh_against_a_deeply_layered_version(hub_home: Path, tmp_path: Path, small_budget: None) -> None:
    from pipeline.paths import storage_root

    parts, live = _layered(storage_root())
    rng = np.random.default_rng(9)
    ids = np.array(sorted(live))
    deleted = set(rng.choice(ids, 3_000, replace=False).tolist())
    updated = set(rng.choice(np.array(sorted(set(ids.tolist()) - deleted)), 500, replace=False).tolist())
    source = {i: ((row[0] + " 已更正", row[1]) if i in updated else row) for i, row in live.items() if i not in deleted}
    inserted = {10_000_000 + i: (f"新企业{i}", f"新地址{i}") for i in range(200)}
    source.update(inserted)

    result, table = _change_set(parts, _write_source(tmp_path / "source.parquet", source), tmp_path / "scratch")

    assert (result.inserted, result.updated, result.deleted) == (len(inserted), len(updated), len(deleted))
    kinds = dict(zip(table.column("id").to_pylist(), table.column("_change").to_pylist()))
    assert {i for i, k in kinds.items() if k == "delete"} == deleted
    assert {i for i, k in kinds.items() if k == "update"} == updated
    assert {i for i, k in kinds.items() if k == "insert"} == set(inserted)
    # a delete carries the row as last published, every column of it
    gone = table.filter(pa.compute.equal(table.column("_change"), "delete"))
    assert {r["id"]: (r["name"], r["address"]) for r in gone.to_pylist()} == {i: live[i] for i in deleted}


def test_a_source_emptied_at_once_deletes_every_live_row(hub_home: Path, tmp_path: Path, small_budget: None) -> None:
    from pipeline.paths import storage_root

    parts, live = _layered(storage_root())
    kept = {i: live[i] for i in sorted(live)[:10]}

    result, table = _change_set(parts, _write_source(tmp_path / "source.parquet", kept), tmp_path / "scratch")

    assert (result.inserted, result.updated, result.deleted) == (0, 0, len(live) - len(kept))
    gone = table.filter(pa.compute.equal(table.column("_change"), "delete"))
    assert gone.num_rows == len(live) - len(kept)
    sample = {r["id"]: (r["name"], r["address"]) for r in gone.slice(0, 5_000).to_pylist()}
    assert sample == {i: live[i] for i in sample}
    assert set(gone.column("id").to_pylist()) == set(live) - set(kept)
