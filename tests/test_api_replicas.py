"""Several API processes (多进程/多副本): two real `govshare serve` servers on loopback, one of them with two
uvicorn workers, on one PostgreSQL registry and one Redis, as replicas behind a proxy would run. What must be
shared is: a consumer's rate limit counts its requests on every replica, and a signed link made by one replica
downloads from the other (the key is derived from the one GOVSHARE_SECRET_KEY)."""

from __future__ import annotations

import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from tests.delivery_helpers import expected_rows, make_delivery
from tests.helpers import REPO, bearer, child_env, issue_token, latest

BURST = 4  # requests a consumer may send before it must wait, counted over both servers


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _serve(*args: str) -> Iterator[str]:
    """`govshare serve` in a process group of its own (uvicorn's workers included); its base URL."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--no-access-log", *args], cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert server.poll() is None, f"govshare serve exited: {server.stderr.read()[-3000:]}"
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("govshare serve did not answer /healthz")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_replicas_share_rate_limits_and_signed_links(pg_hub_home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import reset_settings
    from tests.services import require_redis

    monkeypatch.setenv("GOVSHARE_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("GOVSHARE_REDIS_URL", require_redis())
    # At most BURST requests per 400 s: no request of this test gets its allowance back while it runs.
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_RPS", str(BURST / 400))
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_BURST", str(BURST))
    reset_settings()
    made = make_delivery(tmp_path, rows=300, serve=False)
    code = made.hub.resource_code
    records = f"/api/v1/resources/{code}/records"

    with _serve("--workers", "2") as first, _serve() as second:
        # A signed link made by the first server downloads from the second, without a credential.
        link = requests.post(f"{first}/api/v1/resources/{code}/links", json={"format": "parquet"},
                             headers=bearer(made.hub.token), timeout=60)
        assert link.status_code == 200, link.text
        assert link.json()["url"].startswith(first)
        on_second = second + link.json()["url"][len(first):]
        fetched = requests.get(on_second, timeout=60)
        assert fetched.status_code == 200, fetched.text
        rows = sorted(pq.read_table(io.BytesIO(fetched.content)).to_pylist(), key=lambda r: r["id"])
        assert rows == sorted(expected_rows(latest(code)), key=lambda r: r["id"])
        # A forged one is refused there too.
        forged = on_second[:-4] + ("AAAA" if not on_second.endswith("AAAA") else "BBBB")
        assert requests.get(forged, timeout=60).status_code in (403, 404)

        # Another credential of the consumer: its requests count on both servers together.
        token = issue_token(made.hub.consumer_code)
        codes = [requests.get(f"{base}{records}", headers=bearer(token), params={"limit": 1}, timeout=60).status_code
                 for base in (first, second, first, second)]
        assert codes == [200] * BURST
        for base in (first, second):
            limited = requests.get(f"{base}{records}", headers=bearer(token), params={"limit": 1}, timeout=60)
            assert limited.status_code == 429, limited.text
            assert int(limited.headers["Retry-After"]) >= 1
            assert "rate limit" in limited.json()["detail"] and "请求过于频繁" in limited.json()["detail_zh"]
        # Each consumer has its own allowance, shared or not.
        assert requests.get(f"{second}{records}", headers=bearer(made.hub.token), params={"limit": 1},
                            timeout=60).status_code == 200


def test_without_redis_each_process_keeps_limiting_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    """Redis down (nothing listens on the port): consumers are still limited, by this process alone, and the
    operator is told once."""
    from delivery.ratelimit import RateLimited, SharedRateLimiter

    limiter = SharedRateLimiter(rate=0.01, burst=2, url=f"redis://127.0.0.1:{_free_port()}/0")
    with caplog.at_level("WARNING", logger="delivery.ratelimit"):
        limiter.check("token:a")
        limiter.check("token:a")
        with pytest.raises(RateLimited, match="rate limit exceeded"):
            limiter.check("token:a")
        limiter.check("token:b")  # another consumer's own allowance
    warnings = [r.getMessage() for r in caplog.records if "shared rate limits unavailable" in r.getMessage()]
    assert len(warnings) == 1, warnings
