"""An S3-compatible object store on loopback for the tests, and the storage backends a test runs on.

No MinIO, SeaweedFS or Garage server build installs from the package registries this project reaches (PyPI,
Debian, npm were searched), so the store is moto's standalone server: a real HTTP server on 127.0.0.1 that
speaks the S3 protocol (signed requests, multipart uploads, ranged GETs, listings), implemented in Python.
It is started once per test session, on a free port; each test gets a bucket of its own. `make bench`
(bench/bench_storage.py) starts one the same way.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import services_required

ACCESS_KEY, SECRET_KEY = "govshare-test", "govshare-test-secret"
BACKENDS = ("local", "s3")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_command(port: int) -> list[str] | None:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    return [found, "-H", "127.0.0.1", "-p", str(port)] if found else None


class S3Server:
    """moto's S3 server as a child process."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> S3Server:
        command = _server_command(self.port)
        if command is None:
            raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]'): no S3 server to start")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the S3 server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def filesystem(self):  # noqa: ANN201 - pyarrow.fs.S3FileSystem
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1",
                                 endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 allow_bucket_creation=True, allow_bucket_deletion=True)

    def new_bucket(self) -> str:
        bucket = f"govshare-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(bucket)
        return bucket

    def remove_bucket(self, bucket: str) -> None:
        self.filesystem().delete_dir(bucket)

    def environment(self, bucket: str) -> dict[str, str]:
        """The settings that point the hub at ``bucket``."""
        return {"GOVSHARE_STORAGE": f"s3://{bucket}/govshare", "GOVSHARE_STORAGE_ENDPOINT": self.endpoint,
                "GOVSHARE_STORAGE_ACCESS_KEY": ACCESS_KEY, "GOVSHARE_STORAGE_SECRET_KEY": SECRET_KEY,
                "GOVSHARE_STORAGE_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        server = S3Server().start()
    except FileNotFoundError as missing:
        if services_required():
            pytest.fail(f"{missing} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(f"{missing}; the object-store tests cannot run")
    try:
        yield server
    finally:
        server.stop()
