"""Benchmark: the great-expectations suite of the enterprise contract over one version, in bounded batches.

``run()`` streams ``ROWS`` synthetic enterprise rows (samples.enterprises) into a Parquet file, then validates
it in a child process exactly as the post-publish task does (quality.gx_suite.SuiteRunner over record batches
of pipeline.expectations.GX_BATCH_ROWS rows), so the child's peak resident memory is GX's alone. Figures:
``gx_seconds`` (time per version), ``gx_rows_per_s``, ``gx_peak_rss_mb`` (must stay under 512), the child's
``gx_cpu_seconds`` and the load average when it ran (``gx_load_average_1m``): on a shared machine the elapsed
figures move with other work, the CPU seconds much less.

Run: ``PYTHONPATH=. .venv/bin/python -m bench gx``; ``GOVSHARE_BENCH_GX_ROWS`` changes the row count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROWS = int(os.environ.get("GOVSHARE_BENCH_GX_ROWS", "1000000"))


def _write_version(path: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    from samples.enterprises import enterprise_schema, iter_enterprise_batches

    with pq.ParquetWriter(path, enterprise_schema(), compression="snappy") as writer:
        for batch in iter_enterprise_batches(rows=rows, seed=7, batch_rows=100_000):
            writer.write_batch(batch)


def _measure(path: str) -> dict[str, float]:
    """In the child: validate the file batch by batch; seconds exclude importing GX (paid once per worker)."""
    import resource
    import time

    import pyarrow.parquet as pq

    from pipeline.expectations import GX_BATCH_ROWS
    from quality.contracts import load_contract
    from quality.gx_suite import SuiteRunner
    from schemas.contract_store import SHIPPED

    contract = load_contract(SHIPPED / "enterprises.yaml")
    runner = SuiteRunner(contract)
    from pipeline.layers import Part, iter_parts

    started, cpu = time.perf_counter(), time.process_time()
    rows = pq.ParquetFile(path).metadata.num_rows
    for batch in iter_parts([Part(path=Path(path), rows=rows)], batch_size=GX_BATCH_ROWS):  # as the task reads
        runner.validate(batch)
    result = runner.results()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": result["rows"], "batches": result["batches"],
            "peak_rss_mb": peak_mb, "failed": result["failed"], "expectations": result["evaluated"]}


def run() -> dict[str, float]:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="govshare-bench-gx-") as folder:
        path = Path(folder) / "version.parquet"
        _write_version(path, ROWS)
        env = {**os.environ, "GX_ANALYTICS_ENABLED": "False",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        done = subprocess.run([sys.executable, "-m", "bench.bench_gx", "--child", str(path)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"GX benchmark child failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"GX suite ({figures['expectations']} expectations): {figures['rows']:,} rows in {figures['batches']} "
          f"batches, {figures['seconds']:.1f} s, peak memory {figures['peak_rss_mb']:.0f} MiB")
    return {"gx_seconds": figures["seconds"], "gx_rows": float(figures["rows"]),
            "gx_rows_per_s": figures["rows"] / figures["seconds"], "gx_peak_rss_mb": figures["peak_rss_mb"],
            "gx_peak_rss_target_mb": 512.0, "gx_cpu_seconds": figures["cpu_seconds"],
            "gx_load_average_1m": round(load, 2)}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_measure(sys.argv[2])))
    else:
        run()
