"""The full sync and the download on both storage backends, in one run: the local folder and an S3 store.

The same PostgreSQL table (GOVSHARE_BENCH_ROWS rows, default 5,000,000; another count suffixes every figure)
is synced in full into a hub on the local folder and into a hub whose GOVSHARE_STORAGE is a bucket of an S3
server on loopback (moto's standalone server, tests/s3_server.py: no MinIO build installs here), each in a
process of its own. Then a fresh process (an API worker that never saw the version: on the object store its
working copy is empty) streams the whole version as Parquet, as a download does. Figures: seconds, rows/s,
CPU seconds and peak memory of each, and the ratio object store / local folder for the sync and the download.
"""

from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit

from bench.bench_exchange import DSN, ENGINE_SETUP, ENGINE_SYNC, ROWS, _child, _load

DATABASE = f"govshare_bench_storage_{os.getpid()}"

DOWNLOAD = """
import time
from delivery.files import stream_version
from registry.db import session_scope
from registry.catalog.resources import get_resource
from registry.exchange.versions import latest_version
with session_scope() as s:
    version = latest_version(s, resource=get_resource(s, code="101001/0001"))
    s.expunge(version)
started = time.perf_counter()
size = sum(len(chunk) for chunk in stream_version(version, fmt="parquet"))
RESULT = {"seconds": time.perf_counter() - started, "bytes": size, "rows": version.row_count}
"""


def _dsn() -> str:
    return DSN.rpartition("/")[0] + "/" + DATABASE


def _database(create: bool) -> None:
    import psycopg2

    admin = psycopg2.connect(DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        if create:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    admin.close()


def run() -> dict[str, float]:
    from samples.loaders import load_postgres
    from tests.s3_server import S3Server

    _database(create=True)
    server = S3Server().start()
    try:
        load_postgres(_dsn(), table="enterprises", rows=ROWS, seed=7)
        parts = urlsplit(_dsn())
        setup = ENGINE_SETUP.format(host=parts.hostname, port=parts.port or 5432, db=DATABASE,
                                    user=parts.username or "postgres")
        figures: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="govshare-bench-storage-") as work:
            for backend in ("local", "s3"):
                env = {"GOVSHARE_HOME": f"{work}/{backend}", "GOVSHARE_DEMO": "1"}
                if backend == "s3":
                    env.update(server.environment(server.new_bucket()))
                _child(setup, env)
                os.sync()
                figures[f"storage_{backend}_load_average_1m"] = _load()
                sync = _child(ENGINE_SYNC.format(full=True), env)
                download = _child(DOWNLOAD, {**env, "GOVSHARE_STORAGE_CACHE": f"{work}/{backend}-fresh-worker"})
                figures.update({
                    f"storage_{backend}_full_seconds": sync["seconds"],
                    f"storage_{backend}_full_rows_per_s": ROWS / sync["seconds"],
                    f"storage_{backend}_full_cpu_seconds": sync["cpu_seconds"],
                    f"storage_{backend}_full_peak_rss_mib": sync["peak_rss_mib"],
                    f"storage_{backend}_download_seconds": download["seconds"],
                    f"storage_{backend}_download_rows_per_s": ROWS / download["seconds"],
                    f"storage_{backend}_download_cpu_seconds": download["cpu_seconds"],
                    f"storage_{backend}_download_peak_rss_mib": download["peak_rss_mib"],
                })
    finally:
        server.stop()
        _database(create=False)
    figures["storage_full_s3_vs_local_ratio"] = figures["storage_s3_full_seconds"] / figures["storage_local_full_seconds"]
    figures["storage_download_s3_vs_local_ratio"] = (figures["storage_s3_download_seconds"]
                                                     / figures["storage_local_download_seconds"])
    suffix = "" if ROWS == 5_000_000 else f"_{ROWS // 1_000_000}m" if ROWS >= 1_000_000 else f"_{ROWS // 1_000}k"
    return {f"{key}{suffix}": value for key, value in {"storage_bench_rows": float(ROWS), **figures}.items()}
