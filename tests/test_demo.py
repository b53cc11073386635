"""`govshare demo` on the embedded default, in a temporary folder, twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

GOVSHARE = Path(sys.executable).with_name("govshare")


def _demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVSHARE_", "AIRFLOW"))}
    env["COLUMNS"] = "200"
    return subprocess.run([str(GOVSHARE), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


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
    versions = sorted(p for p in storage.glob("*/v*") if p.is_dir())
    assert len(versions) == 3  # enterprises v1 and v2, credit v1
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in versions[-1].glob("data/*.parquet"))
    assert rows in (20_000, 10_000)

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
