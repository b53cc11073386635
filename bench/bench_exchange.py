"""Exchange engine against raw PostgreSQL COPY and dlt, on one table of realistic enterprise rows.

Figures: rows/s of raw binary `COPY ... TO STDOUT`, of the engine's full sync (extract, validate, publish) and
of dlt's `sql_database` (pyarrow backend) to Parquet, the time of an incremental sync with deletes (the median
of five runs of one worker, each after 10,000 rows changed, 1,000 deleted and 1,000 inserted; each run scans
every key of the table to find the deletes; the worker's first run, a quiet one that pays the process's
one-time imports, is reported as `incremental_first_run_seconds`; `incremental_key_scan_seconds` is the key
scan's own time, beside the cursor read, and `incremental_key_scan_waited_seconds` how long the run waited for
it), the weekly full refresh against the version those runs layered (`refresh_layered_*`, after one more round
of changes, which it must find exactly), and the engine's peak memory. The table is vacuumed once after
loading, as autovacuum would (it is off on the shared server). Each contender runs in its own process, so its
peak RSS is its own. Rows: GOVSHARE_BENCH_ROWS (default 5,000,000; another count suffixes every figure, e.g.
`full_peak_rss_mib_20m`); server: GOVSHARE_BENCH_PG_DSN. GOVSHARE_BENCH_FULL_ONLY=1 measures COPY and the full
sync only (the memory bound on a large table); GOVSHARE_BENCH_PROFILE_DIR=DIR records a py-spy profile of the
full sync there.

Beside each figure: the CPU seconds of the measured process (`*_cpu_seconds`, every thread of it; the
database server's own work is not in it) and the machine's load average when it started: on a shared
2-core machine other work moves every elapsed figure, far less the CPU seconds.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DSN = os.environ.get("GOVSHARE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROWS = int(os.environ.get("GOVSHARE_BENCH_ROWS", "5000000"))
DATABASE = f"govshare_bench_{os.getpid()}"  # one of its own: other benchmarks may run on the same server
CHANGED = 10_000
DELETED = 1_000  # and as many inserted, in each measured incremental run
REPEATS = 5  # incremental runs measured; the figure is their median (single runs vary by ±30% here)


def _bench_dsn() -> str:
    return DSN.rpartition("/")[0] + "/" + DATABASE


def _prepare() -> None:
    import psycopg2

    from samples.loaders import load_postgres

    admin = psycopg2.connect(DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    admin.close()
    started = time.monotonic()
    load_postgres(_bench_dsn(), table="enterprises", rows=ROWS, seed=7)
    # What autovacuum does to a freshly loaded table on a production server (autovacuum_vacuum_insert_threshold;
    # the shared bench server runs with autovacuum off): statistics, and the visibility map that lets the key
    # scan read the primary key's index alone. The changes of the measured runs are not vacuumed (10,000 rows
    # of 5 M stay under autovacuum's thresholds), so their pages still cost heap fetches.
    admin = psycopg2.connect(_bench_dsn())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE enterprises")
    admin.close()
    print(f"   loaded and vacuumed {ROWS:,} rows in {time.monotonic() - started:.1f} s", flush=True)


def _child(code: str, env: dict[str, str] | None = None, *, profile: str | None = None) -> dict:
    """Run a contender in a fresh interpreter; it prints one JSON line with its figures, its peak RSS and the
    CPU seconds it used (every thread of it: the figure that tells a slow run from a disturbed one)."""
    wrapped = code + (
        "\nimport resource, json, sys\nUSAGE = resource.getrusage(resource.RUSAGE_SELF)\n"
        "RESULT['peak_rss_mib'] = USAGE.ru_maxrss / 1024\nRESULT['cpu_seconds'] = USAGE.ru_utime + USAGE.ru_stime\n"
        "print('BENCH_RESULT ' + json.dumps(RESULT), flush=True)\n")
    command = [sys.executable, "-c", wrapped]
    if profile and (folder := os.environ.get("GOVSHARE_BENCH_PROFILE_DIR")):
        # py-spy samples the contender (every thread): where its time goes
        Path(folder).mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "200", "--threads",
                   "--format", "speedscope", "--output", f"{folder}/{profile}.json", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    # Libraries log to stdout too (alembic, Airflow's structlog): the result is the line with its marker.
    marked = re.findall(r"BENCH_RESULT (\{.*\})", done.stdout)
    if not marked:
        raise RuntimeError(f"benchmark child printed no result:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(marked[-1])


COPY = """
import time, psycopg2
class Sink:
    n = 0
    def write(self, data):
        self.n += len(data)
connection = psycopg2.connect({dsn!r})
sink = Sink()
started = time.perf_counter()
connection.cursor().copy_expert("COPY enterprises TO STDOUT (FORMAT binary)", sink)
RESULT = {{"seconds": time.perf_counter() - started, "bytes": sink.n}}
"""

ENGINE_SETUP = """
from core.settings import reset_settings
from registry.db import session_scope
from registry.migrate import upgrade
from registry.people.agencies import add_agency
from registry.catalog.sources import add_source
from registry.catalog.resources import add_resource
from samples.demo_sources import MARKET
upgrade()
with session_scope() as s:
    add_agency(s, code=MARKET.code, name=MARKET.name)
    add_source(s, name="bench", agency=MARKET.name, kind="postgresql",
               config={{"host": {host!r}, "port": {port}, "dbname": {db!r}, "user": {user!r}}})
    add_resource(s, name="企业基本信息", agency=MARKET.name, classification="101001", source="bench",
                 table="enterprises", primary_key=["id"], cursor_column="updated_at")
RESULT = {{}}
"""

ENGINE_SYNC = """
import time
from pipeline.sync import sync_resource
started = time.perf_counter()
report = sync_resource(resource_code="101001/0001", full={full}, after=("notices",))
RESULT = {{"seconds": time.perf_counter() - started, "rows_read": report.rows_read,
          "rows_published": report.rows_published, "mode": report.mode}}
"""

ENGINE_INCREMENTAL = """
import os, statistics, subprocess, sys, time
from pipeline.sync import sync_resource
from registry.db import session_scope
from registry.catalog.resources import get_resource
from registry.exchange.versions import latest_version
# A worker's first run pays the process's one-time costs (pyarrow's pandas shim, the database driver, the
# registry engine): about 0.3 s whatever the change. It is measured on a quiet run (nothing changed since
# the full sync: nothing is published) and reported on its own. The figure is the median of the next
# {repeats} runs, each after {changed} rows changed one by one (each at its own instant: rows changed by one
# batch job share one instant, and the next run reads them again, which is a different workload), {deleted}
# rows deleted and {deleted} inserted. Each run reads the changed rows by the cursor and scans every key of the
# table to find the deletes (pipeline/deletes.py); each stacks one more layer. The sync is measured up to its
# commit: the post-publish path (notices, the great-expectations report: bench_gx) is left out. The changes are
# written by a process of their own: picking the rows to change reads every id of the table into Python (some
# 300 MB), which is the benchmark's work, not the worker's, and would count in the worker's peak memory.
AFTER = ("notices",)
CHANGE = ("from samples.loaders import churn_postgres, mutate_postgres\\n"
          "mutate_postgres({{dsn!r}}, 'enterprises', changed={{changed}}, seed={{seed}}, one_by_one=True)\\n"
          "churn_postgres({{dsn!r}}, 'enterprises', deleted={{deleted}}, inserted={{deleted}}, seed={{seed}})\\n")
started = time.perf_counter()
sync_resource(resource_code="101001/0001", after=AFTER)
first = time.perf_counter() - started
runs, reports, scans = [], [], []
for seed in range(11, 11 + {repeats}):
    subprocess.run([sys.executable, "-c", CHANGE.format(dsn={dsn!r}, changed={changed}, deleted={deleted}, seed=seed)],
                   check=True)
    os.sync()  # the writes of the change and of the run before are on disk, not competing with this run
    started = time.perf_counter()
    reports.append(sync_resource(resource_code="101001/0001", after=AFTER))
    runs.append(time.perf_counter() - started)
    with session_scope() as session:
        scans.append(latest_version(session, resource=get_resource(session, code="101001/0001")).manifest["key_scan"])
report = reports[0]
RESULT = {{"seconds": statistics.median(runs), "runs": runs, "first_run_seconds": first,
          "rows_read": report.rows_read, "rows_published": report.rows_published, "mode": report.mode,
          "changes": report.changes, "key_scan_seconds": statistics.median(s["seconds"] for s in scans),
          "key_scan_waited_seconds": statistics.median(s.get("waited", s["seconds"]) for s in scans),
          "key_scan_method": scans[0]["method"]}}
"""

# The weekly safety net (GOVSHARE_FULL_REFRESH_DAYS) after the incremental runs: a full read compared with the
# version their layers built, after one more round of changes (which the refresh must find exactly).
ENGINE_REFRESH = """
import subprocess, sys, time
from pipeline.sync import sync_resource
subprocess.run([sys.executable, "-c", {change!r}], check=True)
started = time.perf_counter()
report = sync_resource(resource_code="101001/0001", full=True, after=("notices",))
RESULT = {{"seconds": time.perf_counter() - started, "changes": report.changes, "mode": report.mode}}
"""
REFRESH_CHANGE = ("from samples.loaders import churn_postgres, mutate_postgres\n"
                  "mutate_postgres({dsn!r}, 'enterprises', changed={changed}, seed=99, one_by_one=True)\n"
                  "churn_postgres({dsn!r}, 'enterprises', deleted={deleted}, inserted={deleted}, seed=99)\n")

DLT = """
import time, dlt
from dlt.sources.sql_database import sql_table
table = sql_table(credentials={url!r}, table="enterprises", backend="pyarrow", chunk_size=100000)
pipeline = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.filesystem({out!r}),
                        dataset_name="bench", pipelines_dir={pipes!r})
started = time.perf_counter()
info = pipeline.run(table, loader_file_format="parquet")
RESULT = {{"seconds": time.perf_counter() - started}}
"""


def _drop() -> None:
    import psycopg2

    admin = psycopg2.connect(DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.close()


def run() -> dict[str, float]:
    try:
        return _run()
    finally:
        _drop()


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _run() -> dict[str, float]:
    from urllib.parse import urlsplit

    _prepare()
    parts = urlsplit(_bench_dsn())
    suffix = "" if ROWS == 5_000_000 else f"_{ROWS // 1_000_000}m"
    with tempfile.TemporaryDirectory(prefix="govshare-bench-") as work:
        copy_load = _load()
        copy = _child(COPY.format(dsn=_bench_dsn()))
        env = {"GOVSHARE_HOME": f"{work}/hub", "GOVSHARE_DEMO": "1"}
        _child(ENGINE_SETUP.format(host=parts.hostname, port=parts.port or 5432, db=DATABASE,
                                   user=parts.username or "postgres"), env)
        os.sync()
        load_before = _load()
        full = _child(ENGINE_SYNC.format(full=True), env, profile="full-sync")
        if os.environ.get("GOVSHARE_BENCH_FULL_ONLY") == "1":
            return {f"{key}{suffix}": value for key, value in {
                "bench_rows": float(ROWS), "copy_seconds": copy["seconds"], "copy_cpu_seconds": copy["cpu_seconds"],
                "copy_load_average_1m": copy_load, "full_seconds": full["seconds"],
                "full_cpu_seconds": full["cpu_seconds"], "full_vs_copy_ratio": copy["seconds"] / full["seconds"],
                "full_peak_rss_mib": full["peak_rss_mib"], "full_load_average_1m": load_before}.items()}
        os.sync()  # the full version's files are written out before the next measurement starts
        incremental_load = _load()
        incremental = _child(ENGINE_INCREMENTAL.format(dsn=_bench_dsn(), changed=CHANGED, deleted=DELETED,
                                                       repeats=REPEATS), env)
        changes = incremental["changes"]
        if incremental["mode"] != "incremental" or (changes["inserted"], changes["deleted"]) != (DELETED, DELETED) \
                or changes["updated"] + DELETED < CHANGED:  # a changed row may be among the deleted
            raise RuntimeError(f"the incremental run did not see the {CHANGED} changed, {DELETED} deleted and "
                               f"{DELETED} inserted rows: {incremental}")
        refresh = _child(ENGINE_REFRESH.format(change=REFRESH_CHANGE.format(dsn=_bench_dsn(), changed=CHANGED,
                                                                            deleted=DELETED)), env)
        found = refresh["changes"]
        if refresh["mode"] != "full" or (found["inserted"], found["deleted"]) != (DELETED, DELETED) \
                or found["updated"] + DELETED < CHANGED:
            raise RuntimeError(f"the full refresh did not find the {CHANGED} changed, {DELETED} deleted and "
                               f"{DELETED} inserted rows: {refresh}")
        dlt_load = _load()
        dlt_run = _child(DLT.format(url=_bench_dsn().replace("postgresql://", "postgresql+psycopg2://"),
                                    out=f"file://{work}/dlt", pipes=f"{work}/dlt-pipelines"),
                         {"RUNTIME__LOG_LEVEL": "WARNING", "DLT_DATA_DIR": f"{work}/dlt-data"})
    copy_rps = ROWS / copy["seconds"]
    engine_rps = ROWS / full["seconds"]
    dlt_rps = ROWS / dlt_run["seconds"]
    return {f"{key}{suffix}": value for key, value in {
        "bench_rows": float(ROWS),
        "copy_rows_per_s": copy_rps,
        "copy_cpu_seconds": copy["cpu_seconds"],
        "copy_load_average_1m": copy_load,
        "full_rows_per_s": engine_rps,
        "dlt_rows_per_s": dlt_rps,
        "full_vs_copy_ratio": engine_rps / copy_rps,
        "full_vs_dlt_ratio": engine_rps / dlt_rps,
        "full_seconds": full["seconds"],
        "full_cpu_seconds": full["cpu_seconds"],
        "full_peak_rss_mib": full["peak_rss_mib"],
        "full_vs_copy_target_ratio": 0.75,
        # incremental with deletes: 10,000 updated, 1,000 deleted, 1,000 inserted; target under 0.10 of the full sync
        "incremental_deletes_seconds": incremental["seconds"],
        "incremental_deletes_fraction": incremental["seconds"] / full["seconds"],
        "incremental_key_scan_seconds": incremental["key_scan_seconds"],  # beside the cursor read, in a thread
        "incremental_key_scan_waited_seconds": incremental["key_scan_waited_seconds"],  # the run waiting for it
        "incremental_first_run_seconds": incremental["first_run_seconds"],
        "incremental_max_seconds": max(incremental["runs"]),
        "incremental_cpu_seconds": incremental["cpu_seconds"],  # the worker: first run and five measured ones
        "incremental_load_average_1m": incremental_load,
        "incremental_peak_rss_mib": incremental["peak_rss_mib"],  # the worker, over all its runs
        # the weekly full refresh against the layered version the incremental runs built (one more round of changes)
        "refresh_layered_seconds": refresh["seconds"],
        "refresh_layered_vs_full_ratio": refresh["seconds"] / full["seconds"],
        "refresh_layered_cpu_seconds": refresh["cpu_seconds"],
        "refresh_layered_peak_rss_mib": refresh["peak_rss_mib"],
        "peak_rss_mib": max(full["peak_rss_mib"], incremental["peak_rss_mib"], refresh["peak_rss_mib"]),
        "dlt_peak_rss_mib": dlt_run["peak_rss_mib"],
        "dlt_cpu_seconds": dlt_run["cpu_seconds"],
        "dlt_load_average_1m": dlt_load,
        "exchange_load_average_1m": load_before,  # when the full sync started: other work moves every figure
    }.items()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
