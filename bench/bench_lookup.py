"""Keyed lookups of the interface exchange (接口交换) under load: p99 latency at a fixed request rate.

A version of GOVSHARE_BENCH_LOOKUP_ROWS enterprises (default 5,000,000) is published into a scratch hub
(var/bench-lookup), granted to a consumer with some columns and a row condition, and served by `govshare serve`
in its own process. An open-loop load generator on loopback then sends GOVSHARE_BENCH_LOOKUP_RPS lookups per
second (default 200) by USCC for GOVSHARE_BENCH_LOOKUP_SECONDS (default 20): each request is due at a fixed
time and its latency counts from then, so a slow server cannot hide its queue (no coordinated omission).
Every request goes the whole way: token check, grant decision, index lookup, restriction, audit record.
Targets: lookup_p99_ms < 50 at 200 req/s on 5 M rows, the server's CPU per lookup
(`lookup_server_cpu_ms_per_request`: token, grant, index probe, row fetch, JSON, audit record) <= 0.5 ms, and
the first lookup after the publish (`lookup_first_after_publish_s`: the structures are built by the publish,
the server only maps them) <= 1 s. `lookup_load_average_1m` says how busy the machine was meanwhile. Then the whole granted version is downloaded as Parquet and CSV (the
export written once, then served from disk), with the server's memory growth: it stays flat whatever the size.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

ROWS = int(os.environ.get("GOVSHARE_BENCH_LOOKUP_ROWS", "5000000"))
RATE = float(os.environ.get("GOVSHARE_BENCH_LOOKUP_RPS", "200"))
SECONDS = float(os.environ.get("GOVSHARE_BENCH_LOOKUP_SECONDS", "20"))
HOME = Path("var/bench-lookup").resolve()
# Raise the server's and the load generator's CPU priority when allowed (root), so that unrelated work on a
# shared machine does not decide the figure; 0 leaves it. lookup_load_average_1m records what else ran.
PRIORITY = int(os.environ.get("GOVSHARE_BENCH_LOOKUP_NICE", "-10"))
WORKERS = int(os.environ.get("GOVSHARE_BENCH_LOOKUP_WORKERS", "1"))  # SQLite registry: one writer process
TARGET_P99_MS = 50.0

SETUP = r"""
import json, random, uuid
import pyarrow.parquet as pq
from pipeline import paths
from pipeline.publish import publish_staged
from pipeline.staging import StagedRun
from registry.people.agencies import add_agency
from registry.people.auth import console
from registry.db import session_scope
from registry.sharing.grants import create_grant
from registry.migrate import upgrade
from registry.catalog.resources import add_resource
from registry.people.tokens import issue_token
from samples.enterprises import iter_enterprise_batches

ROWS = {rows}
upgrade()
with session_scope() as s:
    provider = add_agency(s, code="113100000024200171", name="上海市市场监督管理局")
    consumer = add_agency(s, code="1131000000242101XC", name="上海市人力资源和社会保障局")
    resource = add_resource(s, name="企业基本信息", agency=provider.code, classification="101001",
                            sharing_type="conditional", sharing_condition="仅限就业登记核验",
                            sharing_modes=["interface", "file"])
    # The enterprise contract names uscc a subject identifier: the publish builds its lookup structures.
    resource.stream = {{"primary_key": ["id"], "contract": "enterprises"}}
    # Shared only once published (article 19); the catalogue's review workflow is not what is measured here.
    resource.catalog_status = "published"
    create_grant(s, resource=resource, agency=consumer, origin="approval", purpose="就业登记核验", by=console("bench"),
                 columns=["id", "uscc", "name", "status", "reg_capital", "established"],
                 row_filter={{"column": "status", "op": "ne", "value": "迁出"}})
    code, resource_id = resource.code, resource.id
    token = issue_token(s, agency=consumer.code, name="bench-system", days=1)
run_id = uuid.uuid4().hex
folder = paths.run_dir(resource_id, run_id)
folder.mkdir(parents=True)
files, writer, in_file, keys = [], None, 0, []
rng = random.Random(7)
for batch in iter_enterprise_batches(rows=ROWS, seed=11, batch_rows=100_000):
    if writer is None or in_file >= 1_000_000:
        if writer is not None:
            writer.close()
        files.append(f"part-{{len(files):05d}}.parquet")
        writer, in_file = pq.ParquetWriter(folder / files[-1], batch.schema, compression="snappy"), 0
    writer.write_batch(batch)
    in_file += batch.num_rows
    uscc = batch.column("uscc").to_pylist()
    keys.extend(rng.sample(uscc, 40))
writer.close()
staged = StagedRun(run_id=run_id, resource_id=resource_id, resource_code=code, mode="full", folder=str(folder),
                   rows_read=ROWS, rows_staged=ROWS, files=files)
publish_staged(staged)
rng.shuffle(keys)
print(json.dumps({{"code": code, "token": token, "keys": keys}}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env.update(GOVSHARE_HOME=str(HOME), GOVSHARE_DEMO="1", GOVSHARE_RATE_LIMIT_RPS=str(RATE * 5),
               GOVSHARE_RATE_LIMIT_BURST=str(int(RATE * 5)))
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prioritise(pid: int) -> None:
    import psutil

    if PRIORITY and os.geteuid() == 0:
        psutil.Process(pid).nice(PRIORITY)


def _serve(port: int) -> subprocess.Popen:
    log = (HOME / "server.log").open("wb")  # a file, not a pipe: an undrained pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port),
                               "--workers", str(WORKERS), "--no-access-log"],  # every read is audited anyway
                              env=_env(), stdout=log, stderr=subprocess.STDOUT)
    _prioritise(server.pid)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API server stopped: {(HOME / 'server.log').read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the API server did not start within 60 s")


def _load(url: str, token: str, keys: list[str]) -> tuple[list[float], int, float]:
    """Open loop: request i is due at start + i / RATE and its latency counts from that moment. asyncio with
    raw keep-alive HTTP/1.1 connections keeps the generator's own cost far below the server's."""
    raised = bool(PRIORITY) and os.geteuid() == 0
    if raised:
        os.nice(PRIORITY)
    try:
        return asyncio.run(_open_loop(url, token, keys))
    finally:
        if raised:
            os.nice(-PRIORITY)  # back to where the other benchmarks run


async def _open_loop(url: str, token: str, keys: list[str]) -> tuple[list[float], int, float]:
    from urllib.parse import quote, urlsplit

    parts = urlsplit(url)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0

    async def send(connection, key: str) -> bool:
        reader, writer = connection
        writer.write((f"GET {parts.path}?column=uscc&value={quote(key)} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200")

    async def one(scheduled: float, key: str) -> None:
        nonlocal errors
        ok = False
        for attempt in range(2):  # a kept-alive connection the server has just closed is retried once, fresh
            reused = bool(idle) and attempt == 0
            connection = idle.pop() if reused else await asyncio.open_connection(parts.hostname, parts.port)
            try:
                ok = await send(connection, key)
                idle.append(connection)
                break
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
                connection[1].close()
                if not reused:
                    break
        latencies.append(time.perf_counter() - scheduled)
        errors += 0 if ok else 1

    loop = asyncio.get_running_loop()
    tasks = []
    started = time.perf_counter()
    for i in range(int(RATE * SECONDS)):
        scheduled = started + i / RATE
        pause = scheduled - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(loop.create_task(one(scheduled, keys[i % len(keys)])))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    elapsed = time.perf_counter() - started
    for _, writer in idle:
        writer.close()
    return latencies, errors, elapsed


class _PeakRss:
    """The highest resident memory of a process while the block runs, sampled every 50 ms."""

    def __init__(self, process) -> None:
        self.process = process
        self.base = self.peak = process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def _downloads(port: int, world: dict, server) -> dict[str, float]:
    """File download of the whole granted version (article 16): the first request writes the export (streamed
    record batches), a second is served from it; the server's memory is sampled throughout."""
    import requests

    figures: dict[str, float] = {}
    url = f"http://127.0.0.1:{port}/api/v1/resources/{world['code']}/files"
    for fmt in ("parquet", "csv"):
        timings, size = [], 0
        with _PeakRss(server) as memory:
            for _ in range(2):  # materialise, then from the cached export
                started, size = time.monotonic(), 0
                with requests.get(url, params={"format": fmt}, headers={"Authorization": f"Bearer {world['token']}"},
                                  stream=True, timeout=900) as response:
                    response.raise_for_status()
                    for chunk in response.iter_content(1 << 20):
                        size += len(chunk)
                timings.append(time.monotonic() - started)
        figures[f"download_{fmt}_export_s"] = round(timings[0], 1)
        figures[f"download_{fmt}_cached_s"] = round(timings[1], 2)
        figures[f"download_{fmt}_mib"] = round(size / 2**20, 1)
        # bounded by the source's row groups (decoded one at a time), not by the version's size
        figures[f"download_{fmt}_server_rss_growth_mib"] = round((memory.peak - memory.base) / 2**20, 1)
    return figures


def _profile(pid: int) -> subprocess.Popen | None:
    """With GOVSHARE_BENCH_PROFILE=FILE, py-spy samples the server through the load (a flame graph in SVG,
    or speedscope JSON when FILE ends in .json): where a lookup's CPU goes."""
    target = os.environ.get("GOVSHARE_BENCH_PROFILE")
    if not target:
        return None
    fmt = "speedscope" if target.endswith(".json") else "flamegraph"
    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--rate",
                             "250", "--duration", str(int(SECONDS)), "--format", fmt, "--output", target,
                             "--nonblocking", *(["--gil"] if os.environ.get("GOVSHARE_BENCH_PROFILE_GIL") else [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run() -> dict[str, float | int]:
    import requests

    shutil.rmtree(HOME, ignore_errors=True)
    started = time.monotonic()
    setup = subprocess.run([sys.executable, "-c", SETUP.format(rows=ROWS)], check=False, env=_env(),
                           capture_output=True,
                           text=True)
    if setup.returncode != 0:
        raise RuntimeError(f"publishing the benchmark version failed:\n{setup.stderr[-3000:]}")
    world = json.loads(setup.stdout.strip().splitlines()[-1])
    published = time.monotonic() - started
    print(f"   published {ROWS:,} rows in {published:.1f} s (lookup structures included)", flush=True)
    port = _free_port()
    server = _serve(port)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/resources/{world['code']}/lookup"
        auth = {"Authorization": f"Bearer {world['token']}"}
        started = time.monotonic()
        answer = requests.get(url, params={"column": "uscc", "value": world["keys"][0]}, headers=auth, timeout=600)
        if answer.status_code != 200:
            raise RuntimeError(f"warm-up lookup failed: {answer.status_code} {answer.text[:500]}")
        first = time.monotonic() - started  # the publish built the structures: the server maps them
        for key in world["keys"][:50]:  # warm the connection pool and caches, as a running service is
            requests.get(url, params={"column": "uscc", "value": key}, headers=auth, timeout=30)
        import psutil

        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]

        def cpu_seconds() -> tuple[float, float]:
            times = [p.cpu_times() for p in processes]
            return sum(t.user for t in times), sum(t.system for t in times)

        user_before, system_before = cpu_seconds()
        profiler = _profile(server.pid)
        latencies, errors, elapsed = _load(url, world["token"], world["keys"])
        if profiler is not None:
            profiler.wait(timeout=60)
        user, system = (after - before for after, before in zip(cpu_seconds(), (user_before, system_before)))
        cpu = user + system
        downloads = _downloads(port, world, processes[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
    p99 = _percentile(latencies, 0.99) * 1000
    print(f"   p99 {p99:.1f} ms at {len(latencies) / elapsed:.0f} req/s: target < {TARGET_P99_MS:g} ms "
          f"{'met' if p99 < TARGET_P99_MS and not errors else 'NOT met'}", flush=True)
    return {
        "lookup_rows": ROWS,
        "lookup_setup_and_publish_s": round(published, 1),
        "lookup_server_workers": WORKERS,
        "lookup_priority_nice": PRIORITY if os.geteuid() == 0 else 0,
        "lookup_rate_target_rps": RATE,
        "lookup_rate_rps": round(len(latencies) / elapsed, 1),
        "lookup_requests": len(latencies),
        "lookup_errors": errors,
        "lookup_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "lookup_p99_ms": round(p99, 2),
        "lookup_max_ms": round(max(latencies) * 1000, 2),
        "lookup_p99_target_ms": TARGET_P99_MS,
        "lookup_first_after_publish_s": round(first, 2),
        "lookup_first_target_s": 1.0,
        **downloads,
        "lookup_server_cpu_ms_per_request": round(cpu / max(len(latencies), 1) * 1000, 2),
        "lookup_server_cpu_target_ms": 0.5,
        "lookup_server_cpu_seconds": round(cpu, 2),
        # the kernel's share (sockets on loopback, the audit log's writes) beside the server's own code
        "lookup_server_cpu_system_share": round(system / cpu, 2) if cpu else 0.0,
        # other work on the machine during the run (a shared 2-core machine): read p99 with it in mind
        "lookup_load_average_1m": round(os.getloadavg()[0], 2),
    }
