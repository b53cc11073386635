"""`govshare demo` on the embedded default, in a temporary folder, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

GOVSHARE = Path(sys.executable).with_name("govshare")


def _demo(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVSHARE_", "AIRFLOW"))}
    env["COLUMNS"] = "200"
    env.update(settings)
    return subprocess.run([str(GOVSHARE), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _evaluation(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`govshare evaluate` of the demo's registry for the year the demo ran in (its own clock, as the demo's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVSHARE_", "AIRFLOW"))}
    env.update(COLUMNS="250", GOVSHARE_HOME=str(cwd / "var"), GOVSHARE_DEMO="1")
    year = subprocess.run([sys.executable, "-c", "from core import clock; print(clock.today().year)"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    return subprocess.run([str(GOVSHARE), "evaluate", "--period", year], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_demo_runs_the_whole_story_and_can_run_again(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "fresh demo" in out
    assert out.count("success") == 2, out  # both sync DAGs ran through Airflow
    assert "401" in out and "缺少访问令牌" in out  # the anonymous request was refused
    assert "200 20000 rows, v2" in out  # the consumer got the incremental v2 as Parquet
    assert "govshare serve" in out and "http://127.0.0.1:8000/docs" in out
    # what a new user does next in the browser: the URL, the accounts, the application waiting for an answer
    assert "http://127.0.0.1:8000/ " in out and "govshare-demo" in out and "XQSQ-" in out
    assert all(name in out for name in ("zhang.wei", "wang.fang", "li.na", "zhao.lei", "sun.min"))

    storage = tmp_path / "var" / "storage" / "datasets"
    versions = sorted(p.parent for p in storage.glob("*/*/manifest.json"))  # each run's own folder, published
    assert len(versions) == 3  # enterprises v1 and v2, credit v1
    # The snapshots hold the whole tables (market 20,000 enterprises, tax 10,000 credit rows).
    snapshots = sorted(sum(pq.ParquetFile(f).metadata.num_rows for f in v.glob("data/*.parquet"))
                       for v in versions if json.loads((v / "manifest.json").read_text())["mode"] == "full")
    assert snapshots == [10_000, 20_000]

    # The supervising office's view of the demo: both providers' entries carry every element, each data item
    # mapped to its column and described, so 目录要素完整率 is 100% for both (it was 0%: no item described).
    evaluation = _evaluation(tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    ranked = [line for line in evaluation.stdout.splitlines() if line.startswith("│") and "上海市" in line]
    assert len(ranked) == 2, evaluation.stdout  # the ranking, then one table of metrics per agency
    rows = [line.split("│") for line in evaluation.stdout.splitlines() if "目录要素完整率" in line]
    assert len(rows) == 2 and all(row[2].strip() == "100.0%" for row in rows), evaluation.stdout

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "starting over" in second.stdout
    assert second.stdout.count("success") == 2


def test_demo_refuses_a_registry_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "govshare.db").write_bytes(b"")
    done = _demo(tmp_path)
    assert done.returncode == 1
    assert "did not create" in done.stderr


@pytest.mark.slow
def test_demo_runs_the_whole_story_on_an_object_store(tmp_path: Path, s3_server) -> None:  # noqa: ANN001
    """The same story with GOVSHARE_STORAGE naming an S3 bucket: every version, report and export in the store."""
    import pyarrow.fs as pafs

    bucket = s3_server.new_bucket()
    done = _demo(tmp_path, **s3_server.environment(bucket))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("success") == 2, out  # both sync DAGs ran through Airflow, on the store
    assert "401" in out and "缺少访问令牌" in out
    assert "200 20000 rows, v2" in out  # the consumer's download streamed from the store

    store = s3_server.filesystem()
    names = [info.path for info in store.get_file_info(pafs.FileSelector(f"{bucket}/govshare", recursive=True))]
    manifests = [n for n in names if n.endswith("/manifest.json")]
    assert len(manifests) == 3  # enterprises v1 and v2, credit v1: published in the store
    for name in manifests:  # every file a manifest lists is in the store, with the size it records
        with store.open_input_stream(name) as handle:
            manifest = json.loads(handle.read())
        folder = name.rpartition("/")[0]
        own = [f for f in manifest["files"] if not f.get("folder")]
        assert own and all(store.get_file_info(f"{folder}/{f['path']}").size == f["bytes"] for f in own)
    assert any("/expectations/" in n and n.endswith("report.html") for n in names)
    assert not (tmp_path / "var" / "storage" / "datasets").exists()  # nothing went to the local folder
