"""The sftp connector against a real OpenSSH sshd on loopback (started here on a free port, with a throwaway host
key and user key): password and key logins, host key verification, missing folders, incremental reads by
modification time, GB18030 CSV and Excel files, and a read into a published version through the pipeline."""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import ReadState, StreamSpec
from connectors.sftp import SFTPConnector
from core.errors import ConfigError, RetriableError
from tests.helpers import cursor_value, latest, read_version, register_resource
from tests.services import services_required
from tests.test_connectors_files import COLUMNS, enterprise_rows, expected, write_csv

SSHD = Path("/usr/sbin/sshd")
SFTP_USER_PREFIX = "gs-sftp-"


@dataclass
class SSHServer:
    port: int
    user: str
    password: str | None   # None when the tests do not run as root (no system user to give a password)
    private_key: str
    host_key_line: str     # the known_hosts line for [127.0.0.1]:port
    host_fingerprint: str
    data: Path             # the user's folder on the server (a local folder: the server is on loopback)
    pid: int               # the listening sshd; each connection is served by a child of it
    rsa_host_key_line: str  # the server's other host key (RSA), as a known_hosts line

    def drop_connections(self) -> int:
        """Kill the processes serving the open connections: the descendants of the sshd this fixture started
        (a per-connection monitor and, under privilege separation, the user's session process below it)."""
        parents: dict[int, int] = {}
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat_file.parent.name)] = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        descendants, frontier = [], [self.pid]
        while frontier:
            children = [pid for pid, parent in parents.items() if parent in frontier]
            descendants += children
            frontier = children
        for pid in descendants:
            os.kill(pid, signal.SIGKILL)
        return len(descendants)


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set GOVSHARE_REQUIRE_SERVICES=1 to make this a failure")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)], check=True)


def _create_user(password: str, home: Path) -> str:
    """A login with a known password for the password tests, named uniquely: test runs in parallel (other
    modules use this fixture too) must not reset each other's password or delete each other's user."""
    user = f"{SFTP_USER_PREFIX}{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin", user],
                   check=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    return user


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        _unavailable(f"OpenSSH server not installed ({SSHD}); `apt-get install openssh-server`")
    folder = tmp_path_factory.mktemp("sshd")
    _keygen(folder / "host_key", "govshare-test-host")
    _keygen(folder / "host_key_rsa", "govshare-test-host", "rsa")  # a second host key, of another type
    _keygen(folder / "user_key", "govshare-test-user")
    root = os.geteuid() == 0
    # The served folder and authorized_keys are read as the login user: outside pytest's private (0700) tree.
    data = Path(tempfile.mkdtemp(prefix="govshare-sftp-"))
    data.chmod(0o755)
    keys = Path(tempfile.mkdtemp(prefix="govshare-sftp-keys-"))
    keys.chmod(0o755)
    shutil.copy(folder / "user_key.pub", keys / "authorized_keys")
    (keys / "authorized_keys").chmod(0o644)
    password, created = None, None
    if root:
        password = secrets.token_urlsafe(12)
        created = _create_user(password, data)
        shutil.chown(data, user=created)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    user = created or subprocess.run(["id", "-un"], capture_output=True, check=True, text=True).stdout.strip()
    port = _free_port()
    (folder / "sshd_config").write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_key
HostKey {folder}/host_key_rsa
PidFile {folder}/sshd.pid
AuthorizedKeysFile {keys}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers {user}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
LogLevel ERROR
""")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"sshd did not start: {process.stderr.read().decode(errors='replace')[:500]}")
            time.sleep(0.05)
        host_pub = (folder / "host_key.pub").read_text().split()
        rsa_pub = (folder / "host_key_rsa.pub").read_text().split()
        fingerprint = subprocess.run(["ssh-keygen", "-lf", str(folder / "host_key.pub")], capture_output=True,
                                     text=True, check=True).stdout.split()[1]
        yield SSHServer(port=port, user=user, password=password, private_key=(folder / "user_key").read_text(),
                        host_key_line=f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}", host_fingerprint=fingerprint,
                        data=data, pid=process.pid,
                        rsa_host_key_line=f"[127.0.0.1]:{port} {rsa_pub[0]} {rsa_pub[1]}")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
        if created:
            # --force: a session child of the stopped sshd may still be exiting as this user
            subprocess.run(["userdel", "--force", created], capture_output=True, check=False)


@pytest.fixture
def outbox(sshd: SSHServer) -> Iterator[Path]:
    """An empty folder on the server for one test."""
    path = sshd.data / f"outbox-{secrets.token_hex(4)}"
    path.mkdir()
    if os.geteuid() == 0:
        shutil.chown(path, user=sshd.user)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(sshd: SSHServer, outbox: Path, **overrides: object) -> dict:
    config = {"host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "path": outbox.name,
              "known_hosts": sshd.host_key_line, "connect_timeout": 5,
              "streams": {"enterprises": {"pattern": "企业*.csv", "columns": COLUMNS}}}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def _connector(sshd: SSHServer, outbox: Path, *, secret: dict | None = None, **overrides: object) -> SFTPConnector:
    return SFTPConnector(name="市监局SFTP", config=_config(sshd, outbox, **overrides),
                         secret=secret if secret is not None else {"private_key": sshd.private_key})


def _refused(raised: pytest.ExceptionInfo, *must_say: str, secret: str | None = None) -> None:
    message = str(raised.value)
    assert "source '市监局SFTP'" in message and "\n" not in message, message
    assert "BEGIN OPENSSH PRIVATE KEY" not in message
    if secret:
        assert secret not in message
    for text in must_say:
        assert text in message, message


def test_key_and_password_logins_read_the_files(sshd: SSHServer, outbox: Path) -> None:
    rows = enterprise_rows(1, 12)
    write_csv(outbox / "企业-1.csv", rows[:7])
    write_csv(outbox / "企业-2.csv", rows[7:], encoding="gb18030")
    stream = StreamSpec(table="enterprises", batch_rows=5)
    by_key = _connector(sshd, outbox)
    by_key.check(stream)
    # A server with several host keys is verified against the type its known_hosts entry has (RSA here).
    _connector(sshd, outbox, known_hosts=sshd.rsa_host_key_line).check(stream)
    batches = list(by_key.read(stream, ReadState()))
    assert [b.num_rows for b in batches] == [5, 5, 2]
    assert [r for b in batches for r in b.to_pylist()] == expected(rows)
    if sshd.password is None:
        pytest.skip("password login needs a system user; the tests do not run as root")
    by_password = _connector(sshd, outbox, secret={"password": sshd.password},
                             known_hosts=None, host_key_fingerprint=sshd.host_fingerprint)
    assert [r for b in by_password.read(stream, ReadState()) for r in b.to_pylist()] == expected(rows)


def test_wrong_password_or_key_is_refused(sshd: SSHServer, outbox: Path, tmp_path: Path) -> None:
    wrong = "Wr0ng-密码-" + secrets.token_hex(4)
    with pytest.raises(ConfigError) as raised:
        _connector(sshd, outbox, secret={"password": wrong}).check()
    _refused(raised, "login refused", f"user {sshd.user!r}", "wrong password", secret=wrong)

    _keygen(tmp_path / "stranger", "stranger")
    with pytest.raises(ConfigError) as raised:
        _connector(sshd, outbox, secret={"private_key": (tmp_path / "stranger").read_text()}).check()
    _refused(raised, "login refused", "wrong key")


def test_unknown_or_changed_host_key_is_refused_before_login(sshd: SSHServer, outbox: Path, tmp_path: Path) -> None:
    _keygen(tmp_path / "impostor", "impostor")
    impostor = (tmp_path / "impostor.pub").read_text().split()
    secret = {"password": "never-sent-" + secrets.token_hex(4)}
    cases = [
        ({"known_hosts": f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}"}, "does not match its known_hosts"),
        ({"known_hosts": f"[127.0.0.1]:1 {impostor[0]} {impostor[1]}"}, "is unknown"),
        ({"known_hosts": None, "host_key_fingerprint": "SHA256:" + "A" * 43}, "does not match the pinned"),
    ]
    for overrides, must_say in cases:
        with pytest.raises(ConfigError) as raised:
            _connector(sshd, outbox, secret=secret, **overrides).check()
        _refused(raised, must_say, sshd.host_fingerprint if "unknown" in must_say else "host key",
                 secret=secret["password"])
    with pytest.raises(ConfigError) as raised:
        SFTPConnector(name="x", config={**_config(sshd, outbox), "known_hosts": None})
    assert "host_key_fingerprint" in str(raised.value)


def test_missing_folder_wrong_host_and_closed_port(sshd: SSHServer, outbox: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _connector(sshd, outbox, path="no-such-folder").check()
    _refused(raised, "folder no-such-folder does not exist on the server")
    with pytest.raises(RetriableError) as raised:
        _connector(sshd, outbox, port=1, known_hosts=f"[127.0.0.1]:1 {sshd.host_key_line.split(' ', 1)[1]}").check()
    _refused(raised, "cannot connect to 127.0.0.1:1")
    with pytest.raises(ConfigError) as raised:
        _connector(sshd, outbox, host="no-such-host.invalid").check()
    _refused(raised, "host 'no-such-host.invalid' is not known")


def _stamp(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def test_sftp_into_published_versions_incrementally(hub_home: Path, sshd: SSHServer, outbox: Path) -> None:
    from pipeline.sync import sync_resource

    first, second, third = enterprise_rows(1, 20), enterprise_rows(21, 15), enterprise_rows(36, 5)
    _stamp(write_csv(outbox / "企业-0301.csv", first), datetime(2026, 3, 1, 8, tzinfo=UTC))
    _stamp(write_csv(outbox / "企业-0302.csv", second, encoding="gb18030"), datetime(2026, 3, 2, 8, tzinfo=UTC))
    hub = register_resource(kind="sftp", config=_config(sshd, outbox), secret={"private_key": sshd.private_key},
                            cursor="_file_modified")

    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (35, 35, 0)
    assert cursor_value(hub.resource_code).startswith("2026-03-02 08:00:00")

    _stamp(write_csv(outbox / "企业-0303.csv", third), datetime(2026, 3, 3, 8, tzinfo=UTC))
    report = sync_resource(resource_code=hub.resource_code)

    assert report.mode == "incremental" and report.version == 2
    assert report.rows_read == 5  # only the new file: 0301 and 0302 are recorded as read
    table = read_version(latest(hub.resource_code))
    published = [{k: v for k, v in row.items() if not k.startswith("_file")} for row in table.to_pylist()]
    assert published == expected(first + second + third)
    assert sorted(set(table.column("_file_name").to_pylist())) == ["企业-0301.csv", "企业-0302.csv", "企业-0303.csv"]

    # Uploaded with its old time kept (a day before the watermark): read by the next run, with the files after it.
    late = enterprise_rows(41, 3)
    _stamp(write_csv(outbox / "企业-0302b.csv", late), datetime(2026, 3, 2, 8, tzinfo=UTC) - timedelta(days=1))
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.mode, report.version, report.rows_read) == ("incremental", 3, 3 + 15 + 5)  # 0301 is older
    assert sorted(r["id"] for r in read_version(latest(hub.resource_code)).to_pylist()) == list(range(1, 44))

    # Rewritten in place with its time kept (a correction of one row, longer): read again. Then nothing.
    fixed = [list(r) for r in third]
    fixed[0][2] += "（更正）"
    _stamp(write_csv(outbox / "企业-0303.csv", fixed), datetime(2026, 3, 3, 8, tzinfo=UTC))
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.version, report.rows_read, report.changes["updated"]) == (4, 5, 1)
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_read, report.version) == (0, None)


def test_excel_over_sftp(sshd: SSHServer, outbox: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["编号", "统一社会信用代码", "企业名称", "注册资本", "成立日期", "更新时间", "备注"])
    for i in range(1, 301):
        sheet.append([i, f"91310000{i:09d}X", f"静安区第{i}号企业", i + 0.5, datetime(2021, 5, 6),
                      datetime(2026, 3, 1, 8, 0), "无" if i == 1 else None])
    workbook.save(outbox / "企业.xlsx")
    connector = _connector(sshd, outbox, streams={"enterprises": {"pattern": "*.xlsx", "columns": COLUMNS}})
    rows = [r for b in connector.read(StreamSpec(table="enterprises", batch_rows=100), ReadState()) for r in b.to_pylist()]
    assert len(rows) == 300 and rows[0]["name"] == "静安区第1号企业" and str(rows[299]["reg_capital"]) == "300.50"
    assert rows[0]["note"] == "无" and rows[1]["note"] is None


def test_cli_source_add_sftp_with_a_key_file(hub_home: Path, sshd: SSHServer, outbox: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from tests.helpers import PROVIDER, ensure_agency

    write_csv(outbox / "企业.csv", enterprise_rows(1, 3))
    key_file = tmp_path / "exchange_key"
    key_file.write_text(sshd.private_key)
    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
    streams = json.dumps({"enterprises": {"pattern": "企业*.csv", "columns": COLUMNS}}, ensure_ascii=False)
    runner, env = CliRunner(), {"COLUMNS": "300"}
    result = runner.invoke(app, ["source", "add", "scjg-sftp", "--agency", PROVIDER[0], "--kind", "sftp",
                                 "-o", "host=127.0.0.1", "-o", f"port={sshd.port}", "-o", f"user={sshd.user}",
                                 "-o", f"path={outbox.name}", "-o", f"host_key_fingerprint={sshd.host_fingerprint}",
                                 "-o", f"streams={streams}", "--key-file", str(key_file)], env=env)
    assert result.exit_code == 0, result.output
    for args in (["source", "check", "scjg-sftp", "--table", "enterprises"], ["source", "list"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert "PRIVATE KEY" not in result.output
    assert "scjg-sftp" in result.output and f"127.0.0.1:{sshd.port}" in result.output


def test_credentials_from_an_airflow_connection(sshd: SSHServer, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import quote

    if sshd.password is None:
        pytest.skip("password login needs a system user; the tests do not run as root")
    write_csv(outbox / "企业.csv", enterprise_rows(1, 4))
    monkeypatch.setenv("AIRFLOW_CONN_GS_SFTP_TEST",
                       f"sftp://{sshd.user}:{quote(sshd.password, safe='')}@127.0.0.1:{sshd.port}")
    config = {k: v for k, v in _config(sshd, outbox).items() if k not in ("host", "port", "user")}
    connector = SFTPConnector(name="市监局SFTP", config={**config, "airflow_conn_id": "gs_sftp_test"})
    assert "Airflow connection gs_sftp_test" in connector.describe()
    rows = [r for b in connector.read(StreamSpec(table="enterprises"), ReadState()) for r in b.to_pylist()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4]


# paramiko's read-ahead thread (readv) also sees the closed socket and ends with an exception of its own
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_connection_dropped_mid_read_is_retriable(sshd: SSHServer, outbox: Path) -> None:
    rows = enterprise_rows(1, 60_000)  # several MiB: more than one read-ahead window
    write_csv(outbox / "企业.csv", rows)
    connector = _connector(sshd, outbox)
    stream = StreamSpec(table="enterprises", batch_rows=1000)
    batches = connector.read(stream, ReadState())
    assert next(batches).num_rows == 1000
    assert sshd.drop_connections() >= 1
    with pytest.raises(RetriableError) as raised:
        for _ in batches:
            pass
    _refused(raised, "read failed")
    # The server is still there: a new read (the pipeline's retry) gets every row.
    assert sum(b.num_rows for b in connector.read(stream, ReadState())) == 60_000


def test_a_file_still_being_uploaded_stops_the_read(sshd: SSHServer, outbox: Path) -> None:
    """The hub read a remote file up to the size it listed: an upload in progress gave a file cut off mid-way.
    Its size changed while it was read, so the read stops with a retriable error; once the upload is done, the
    next read gets every row."""
    path = write_csv(outbox / "企业.csv", enterprise_rows(1, 3_000))
    connector = _connector(sshd, outbox)
    stream = StreamSpec(table="enterprises", batch_rows=500)
    batches = connector.read(stream, ReadState())
    assert next(batches).num_rows == 500
    with path.open("a", encoding="utf-8", newline="") as handle:  # the agency's upload is still going on
        csv.writer(handle).writerows(enterprise_rows(3_001, 2_000))
    with pytest.raises(RetriableError) as raised:
        for _ in batches:
            pass
    _refused(raised, "企业.csv changed while it was read", "bytes", "temporary name")
    assert sum(b.num_rows for b in connector.read(stream, ReadState())) == 5_000


def _published(code: str) -> list[dict]:
    """The latest version's rows by id, without the file columns."""
    return [{k: v for k, v in row.items() if not k.startswith("_file")}
            for row in read_version(latest(code)).sort_by("id").to_pylist()]


def test_a_same_size_rewrite_within_the_second_read_is_read_by_the_next_run(hub_home: Path, sshd: SSHServer,
                                                                             outbox: Path) -> None:
    """SFTP (v3) tells a file's time to the second and nothing else that changes with its content: an export
    rewritten in the second the hub read it, its size unchanged (a corrected digit), looked unchanged and waited up
    to a week for the full read. A file whose time is that recent when listed is read once more by the next run,
    and once more after that only when it has aged (then never again)."""
    from core import clock
    from pipeline.sync import sync_resource
    from tests.clock import pinned

    path = outbox / "企业-0301.csv"
    written = clock.now().replace(microsecond=0)  # the hub reads within the second the export wrote
    rows = enterprise_rows(1, 5)
    _stamp(write_csv(path, rows), written)
    size = path.stat().st_size
    hub = register_resource(kind="sftp", config=_config(sshd, outbox), secret={"private_key": sshd.private_key},
                            cursor="_file_modified")
    assert sync_resource(resource_code=hub.resource_code).rows_read == 5

    fixed = [list(r) for r in rows]
    fixed[2][3] = fixed[2][3].replace("3", "4", 1)  # a capital corrected, one digit: the same size
    _stamp(write_csv(path, fixed), written)
    assert path.stat().st_size == size and fixed != rows
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_read, report.version, report.changes["updated"]) == (5, 2, 1)
    assert _published(hub.resource_code) == expected(fixed)

    with pinned(clock.now() + timedelta(hours=1)):  # the file has aged: read once more, then left alone
        assert (sync_resource(resource_code=hub.resource_code).rows_read,
                sync_resource(resource_code=hub.resource_code).rows_read) == (5, 0)


def test_a_file_replaced_by_an_older_one_of_the_same_size_is_read_again(hub_home: Path, sshd: SSHServer,
                                                                         outbox: Path) -> None:
    """An export replaced by an earlier one of the same size (a rollback: the agency withdrew a wrong export and
    put the previous day's back, its time kept), its time moved back: the rows it holds now are published."""
    from pipeline.sync import sync_resource

    path = outbox / "企业.csv"
    rows = enterprise_rows(1, 5)
    _stamp(write_csv(path, rows), datetime(2026, 3, 2, 8, tzinfo=UTC))
    size = path.stat().st_size
    hub = register_resource(kind="sftp", config=_config(sshd, outbox), secret={"private_key": sshd.private_key},
                            cursor="_file_modified")
    assert sync_resource(resource_code=hub.resource_code).rows_read == 5

    older = [list(r) for r in rows]
    older[2][3] = older[2][3].replace("3", "4", 1)  # one digit apart: the same size
    _stamp(write_csv(path, older), datetime(2026, 3, 1, 8, tzinfo=UTC))
    assert path.stat().st_size == size and older != rows
    report = sync_resource(resource_code=hub.resource_code)
    assert (report.rows_read, report.version, report.changes["updated"]) == (5, 2, 1)
    assert _published(hub.resource_code) == expected(older)
