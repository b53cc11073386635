"""The storage interface on pyarrow.fs (core/storage.py) against a real S3 server on loopback: what is
written under a run's prefix, ranged reads, pulls of published folders, and clear errors for a wrong setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.s3_server import S3Server


@pytest.fixture
def on_store(hub_home: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - Storage
    from core.settings import reset_settings
    from core.storage import get_storage

    for name, value in s3_server.environment(s3_server.new_bucket()).items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return get_storage()


def test_push_pull_and_ranged_reads_go_through_the_store(on_store) -> None:  # noqa: ANN001
    from delivery.exports import read_range

    storage = on_store
    assert storage.remote and storage.root != Path(storage.base)
    folder = storage.local("datasets/3/run-a")
    (folder / "data").mkdir(parents=True)
    body = bytes(range(256)) * 8192  # 2 MiB: more than one copy chunk
    (folder / "data" / "part-00000.parquet").write_bytes(body)
    (folder / "manifest.json").write_text("{}")
    storage.push(folder, skip=("manifest.json",))
    assert storage.exists("datasets/3/run-a/data/part-00000.parquet")
    assert not storage.exists("datasets/3/run-a/manifest.json")  # the manifest goes last, on its own
    storage.push(folder / "manifest.json")
    assert storage.size("datasets/3/run-a/data/part-00000.parquet") == len(body)

    # A byte range is read from the store itself, whatever this worker holds.
    (folder / "data" / "part-00000.parquet").write_bytes(b"not what the store holds")
    assert b"".join(read_range(folder / "data" / "part-00000.parquet", 1_000_000, 1_000_009)) == \
        body[1_000_000:1_000_010]

    # Another worker (an empty working copy) pulls a published folder whole, once.
    import shutil

    shutil.rmtree(storage.root / "datasets")
    pulled = storage.pull("datasets/3/run-a")
    assert (pulled / "data" / "part-00000.parquet").read_bytes() == body
    assert (pulled / "manifest.json").read_text() == "{}"

    storage.delete("datasets/3/run-a")
    assert not storage.exists("datasets/3/run-a") and not pulled.exists()


def test_a_missing_bucket_or_an_unreachable_store_is_one_clear_line(hub_home: Path, s3_server: S3Server,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app
    from core.errors import ConfigError, RetriableError
    from core.settings import reset_settings
    from core.storage import get_storage

    settings = s3_server.environment("no-such-bucket")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    with pytest.raises(ConfigError, match="bucket no-such-bucket .* does not exist"):
        get_storage()
    result = CliRunner().invoke(app, ["housekeep"], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "对象存储桶不存在" in result.output and "Traceback" not in result.output

    monkeypatch.setenv("GOVSHARE_STORAGE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    reset_settings()
    with pytest.raises(RetriableError, match="cannot be reached"):
        get_storage()
