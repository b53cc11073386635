"""No command ever prints a traceback: the real `govshare` program, run as a person would, with bad input of
each kind (unknown names, malformed options, a missing environment variable, a column the source lacks, a
refused login, a lost file, an unreachable or unmigrated registry), answers in one clear line and an exit
status by cause (1 configuration, 2 retriable, 3 fatal)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import PROVIDER, REPO, child_env, pg_execute, pg_scratch_schema, pg_source_config, sqlite_execute
from tests.services import require_postgres


def govshare(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed command's entry point (cli.main:main), in a process of its own."""
    return subprocess.run([sys.executable, "-c", "from cli.main import main; main()", *args], cwd=REPO,
                          env={**child_env(), "COLUMNS": "200", **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def _clear(done: subprocess.CompletedProcess, status: int, *says: str) -> str:
    text = done.stdout + done.stderr
    assert "Traceback" not in text and 'File "' not in text, text
    assert done.returncode == status, f"exit {done.returncode}, expected {status}:\n{text}"
    flat = " ".join(text.split())
    for part in says:
        assert part in flat, f"{part!r} not in:\n{text}"
    return text


@pytest.fixture
def world(hub_home: Path, tmp_path: Path) -> dict[str, str]:
    database = tmp_path / "market.db"
    load_sqlite(database, rows=50, seed=3)
    _clear(govshare("agency", "add", PROVIDER[0], PROVIDER[1]), 0)
    _clear(govshare("source", "add", "scjg", "--agency", PROVIDER[1], "--kind", "sqlite", "-o",
                    f"path={database}"), 0, "registered")
    done = _clear(govshare("resource", "add", "企业基本信息", "--agency", PROVIDER[1], "--classification", "101001",
                           "--source", "scjg", "--table", "enterprises", "--key", "id", "--cursor", "updated_at"), 0)
    assert "101001/0001" in done
    return {"code": "101001/0001", "database": str(database)}


def test_bad_names_options_and_values_answer_in_one_line(world: dict[str, str], tmp_path: Path) -> None:
    code = world["code"]
    _clear(govshare("sync", "999999/0001"), 1, "no resource '999999/0001'")
    _clear(govshare("sync"), 2, "错误：缺少参数 resource")  # usage: the parser's, in Chinese (cli/usage.py)
    _clear(govshare("source", "add", "x", "--agency", PROVIDER[1], "--kind", "sqlite", "-o", "path"), 2,
           "is not KEY=VALUE")
    _clear(govshare("source", "add", "x", "--agency", PROVIDER[1], "--kind", "files", "-o", "streams={bad json"), 2,
           "not valid JSON")
    _clear(govshare("source", "add", "x", "--agency", PROVIDER[1], "--kind", "oracle", "-o", "host=h"), 1, "oracle")
    _clear(govshare("source", "add", "x", "--agency", PROVIDER[1], "--kind", "postgresql", "-o", "host=h",
                    "-o", "dbname=d", "-o", "user=u", "--password-env", "NO_SUCH_VARIABLE_X"), 2,
           "NO_SUCH_VARIABLE_X is not set")
    _clear(govshare("source", "edit", "scjg", "-o", "password=oops"), 1, "is a secret")
    _clear(govshare("resource", "add", "另一资源", "--agency", PROVIDER[1], "--classification", "bad"), 1,
           "classification 'bad'")
    _clear(govshare("export", code, "--out", str(tmp_path / "x.parquet")), 1, "has no published version yet")
    _clear(govshare("export", code, "--format", "xml", "--out", str(tmp_path / "x.xml")), 1, "format must be one of")
    _clear(govshare("quarantine", "replay", code, "--file", str(tmp_path / "missing.csv")), 1, "does not exist")
    bad_contract = tmp_path / "bad.yaml"
    bad_contract.write_text("name: [unclosed\n", encoding="utf-8")
    _clear(govshare("contract", "check", str(bad_contract)), 1, "not valid YAML")
    _clear(govshare("calendar", "check", "2026-13-45"), 2)
    _clear(govshare("evaluate", "--period", "2026Q9"), 1)
    # a day still to come would count deadlines not yet reached as missed (and detect violations before they happen)
    _clear(govshare("evaluate", "--period", "2026Q4", "--as-of", "2099-01-05"), 2, "晚于今天")
    _clear(govshare("violation", "detect", "--as-of", "2099-01-05"), 2, "晚于今天")


def test_usage_errors_of_every_command_are_said_in_chinese(hub_home: Path) -> None:
    """A bad option value, an unknown option or command, a missing value: the parser's English ("Invalid value
    for '--keep': ...", in a box headed Error) is said in Chinese with the command's usage, exit status 2."""
    cases = [
        (("evaluate", "--period", "2026Q4", "--as-of", "2026-13-40"),
         "错误：选项 --as-of 的值无效：'2026-13-40' 不是有效日期", "用法：", "evaluate [OPTIONS]"),
        (("housekeep", "--keep", "abc"), "错误：选项 --keep 的值无效：'abc' 不是整数", "housekeep --help"),
        (("sync", "101001/0001", "--wait", "soon"), "错误：选项 --wait 的值无效：'soon' 不是数字", "sync --help"),
        (("calendar", "check", "2026-13-45"), "错误：参数 DATE 的值无效：'2026-13-45' 不是有效日期"),
        (("source", "add", "x", "--agency", PROVIDER[1], "--kind", "sqlite", "-o", "path"),
         "错误：选项 --option / -o 的值无效：'path' 应为 键=值"),
        (("resource", "list", "--bogus"), "错误：没有选项 --bogus", "resource list --help"),
        (("catalog", "export", "x.xlsx", "--agency"), "错误：选项 --agency 需要一个值", "catalog export --help"),
        (("snyc", "101001/0001"), "错误：没有命令 snyc（是否想用 'sync'？）"),
        (("sync", "101001/0001", "extra"), "错误：多余的参数：extra"),
    ]
    for args, *says in cases:
        text = _clear(govshare(*args), 2, *says)
        assert "Invalid value" not in text and "Error" not in text and "Usage:" not in text, text
        assert len(text.strip().splitlines()) == 2, text  # the error, then the usage


def test_columns_the_source_lacks_are_refused_when_named_and_stop_a_sync_naming_them(world: dict[str, str]) -> None:
    code = world["code"]
    _clear(govshare("resource", "add", "企业名录", "--agency", PROVIDER[1], "--classification", "101002",
                    "--source", "scjg", "--table", "enterprises", "--key", "enterprise_no", "--cursor", "changed"), 1,
           "主键 key enterprise_no", "游标 cursor changed", "has no column(s)")
    _clear(govshare("resource", "list"), 0)
    _clear(govshare("resource", "edit", code, "--cursor", "modified_at"), 1, "游标 cursor modified_at")
    _clear(govshare("sync", code), 0)
    # The column goes at the source after registration: the next sync stops, naming it; nothing is published.
    sqlite_execute(Path(world["database"]), "ALTER TABLE enterprises RENAME COLUMN updated_at TO modified")
    _clear(govshare("sync", code, "--full"), 3, "游标 cursor updated_at", "nothing was published")
    _clear(govshare("versions", code), 0, "v1")


def test_a_lost_file_and_a_registry_that_cannot_be_used_are_explained(world: dict[str, str], hub_home: Path,
                                                                       tmp_path: Path) -> None:
    code = world["code"]
    _clear(govshare("sync", code), 0)
    from pipeline.paths import resolve
    from tests.helpers import latest

    version = latest(code)
    (resolve(version.path) / version.manifest["files"][0]["path"]).unlink()  # someone removed a published file
    _clear(govshare("export", code, "--out", str(tmp_path / "copy.parquet")), 1, "file or network error")
    assert not (tmp_path / "copy.parquet").exists()

    unmigrated = tmp_path / "fresh-home"
    _clear(govshare("resource", "list", env={"GOVSHARE_HOME": str(unmigrated)}), 1, "run `govshare init`")
    down = "postgresql+psycopg2://nobody@127.0.0.1:1/govshare"
    _clear(govshare("resource", "list", env={"GOVSHARE_DATABASE_URL": down}), 2, "registry database cannot be reached")
    for wrong in ("postgres:/nobody@127.0.0.1", "mysql://root@127.0.0.1/test", "registry.db"):  # a typo, a kind
        _clear(govshare("init", env={"GOVSHARE_DATABASE_URL": wrong}), 1,  # with no driver, a bare path: not a bug
               "GOVSHARE_DATABASE_URL 无法使用", "expected sqlite:///PATH")


def test_a_refused_login_is_a_configuration_error_on_every_path_and_never_retried(hub_home: Path) -> None:
    """The hub may not log in (here: a role the server does not know): `source check`, a full read and an
    incremental read (two different drivers) all say so as a configuration error, and `--attempts` does not
    try again; a `source edit` that fixes the login lets the next sync through."""
    from tests.helpers import sync_runs

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        from samples.loaders import load_postgres

        load_postgres(dsn, rows=40, seed=9, schema=schema)
        config, _ = pg_source_config(dsn, schema=schema)
        options = [arg for key, value in config.items() for arg in ("-o", f"{key}={value}")]
        _clear(govshare("agency", "add", PROVIDER[0], PROVIDER[1]), 0)
        _clear(govshare("source", "add", "pg", "--agency", PROVIDER[1], "--kind", "postgresql", *options), 0)
        _clear(govshare("resource", "add", "企业基本信息", "--agency", PROVIDER[1], "--classification", "101001",
                        "--source", "pg", "--table", "enterprises", "--key", "id", "--cursor", "updated_at"), 0)
        code = "101001/0001"
        _clear(govshare("sync", code), 0)
        pg_execute(dsn, f'UPDATE "{schema}".enterprises SET status = \'注销\', updated_at = now() WHERE id = 3')

        _clear(govshare("source", "edit", "pg", "-o", "user=govshare_no_such_role", "--no-check"), 0, "updated")
        _clear(govshare("source", "check", "pg"), 1, "the source refused the hub", "govshare_no_such_role")
        runs_before = len(sync_runs(code))
        _clear(govshare("sync", code, "--attempts", "3"), 1, "the source refused the hub")  # incremental: ADBC
        _clear(govshare("sync", code, "--full", "--attempts", "3"), 1, "the source refused the hub")  # psycopg2
        assert len(sync_runs(code)) == runs_before + 2  # one failed run each: no retry
        assert all(r.status == "failed" for r in sync_runs(code)[runs_before:])

        _clear(govshare("source", "edit", "pg", "-o", f"user={config['user']}"), 0, "source pg: ok")
        _clear(govshare("sync", code), 0, "v2")


def test_serve_refuses_a_registry_that_is_empty_or_behind_instead_of_answering_500(hub_home: Path,
                                                                                     tmp_path: Path) -> None:
    """`govshare serve` on a registry `govshare init` never made (or made by an older hub) once started, said
    /healthz ok and answered every request 500 with a traceback in its log; it now refuses in one line."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])

    def serve(env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", port],
                              cwd=REPO, env={**child_env(), "COLUMNS": "200", **env}, capture_output=True, text=True,
                              timeout=60)

    _clear(serve({"GOVSHARE_HOME": str(tmp_path / "never-initialised")}), 1, "登记库结构不是最新",
           "run `govshare init` first")
    from registry.migrate import downgrade, upgrade

    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url=behind)
    downgrade(url=behind, revision="-1")
    _clear(serve({"GOVSHARE_DATABASE_URL": behind}), 1, "登记库结构不是最新", "run `govshare init` first")
    down = "postgresql+psycopg2://nobody@127.0.0.1:1/govshare"
    _clear(serve({"GOVSHARE_DATABASE_URL": down}), 2, "registry database cannot be reached")

    # The port taken by another process: one line saying so (uvicorn logged it in English and exited 3).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(port)))
        taken.listen()
        _clear(serve({}), 1, "cannot listen on 127.0.0.1:" + port, "端口已被占用")


def test_a_secret_key_other_than_the_registrys_is_refused_before_it_seals_anything(tmp_path: Path) -> None:
    """A mistyped GOVSHARE_SECRET_KEY (or another hub's) used to be taken: every action it audited was sealed
    with the wrong key, so `audit verify` under the right key showed those records as forged, for good. Now
    every audited command and `serve` refuse it in one line, before writing; a demo registry may take a real key."""
    right = {"GOVSHARE_HOME": str(tmp_path / "home"), "GOVSHARE_SECRET_KEY": "the-right-secret-key-0123456789abcdef"}
    wrong = {**right, "GOVSHARE_SECRET_KEY": "a-mistyped-secret-key-0123456789abcdef"}
    _clear(govshare("init", env=right), 0)
    _clear(govshare("agency", "add", PROVIDER[0], PROVIDER[1], env=right), 0)
    refused = "GOVSHARE_SECRET_KEY 不是此登记库审计日志封印所用的密钥"
    _clear(govshare("agency", "add", "11310000MB2F3956X1", "上海市民政局", env=wrong), 1, refused,
           "set the original key back")
    _clear(govshare("serve", "--port", "1", env=wrong), 1, refused)
    _clear(govshare("audit", "verify", env=right), 0, "audit log intact: 1 records")
    assert "上海市民政局" not in govshare("agency", "list", env=right).stdout

    demo = {"GOVSHARE_HOME": str(tmp_path / "trial"), "GOVSHARE_DEMO": "1"}
    _clear(govshare("init", env=demo), 0)
    _clear(govshare("agency", "add", PROVIDER[0], PROVIDER[1], env={**demo, **{"GOVSHARE_DEMO": "0"},
                                                                    "GOVSHARE_SECRET_KEY": right["GOVSHARE_SECRET_KEY"]}), 0)


def test_a_storage_path_that_is_a_file_is_one_line_not_tracebacks(world: dict[str, str], tmp_path: Path) -> None:
    """GOVSHARE_STORAGE naming a file: `govshare sync` printed two tracebacks (the failed run's clean-up logged
    with its traceback) and 'File exists'; now what to fix, and a logged warning stays one line."""
    a_file = tmp_path / "storage"
    a_file.write_text("not a folder")
    for command in (("sync", world["code"]), ("housekeep",)):
        _clear(govshare(*command, env={"GOVSHARE_STORAGE": str(a_file)}), 1, "is a file, not a folder",
               "是文件而不是文件夹")


def test_a_registry_user_without_rights_is_told_so_not_to_run_init(pg_database: str, tmp_path: Path) -> None:
    """GOVSHARE_DATABASE_URL naming a PostgreSQL user without rights on the registry's tables: every command,
    `init` included, said "not up to date: run `govshare init`", a loop; now what is wrong and what to grant."""
    import uuid

    import psycopg2

    admin_dsn = require_postgres()
    owner = pg_database.replace("postgresql://", "postgresql+psycopg2://", 1)
    role = f"govshare_t_r_{uuid.uuid4().hex[:8]}"
    env = {"GOVSHARE_HOME": str(tmp_path / "home"), "GOVSHARE_DEMO": "1"}
    _clear(govshare("init", env={**env, "GOVSHARE_DATABASE_URL": owner}), 0)
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{role}" LOGIN')
        base, _, name = owner.rpartition("/")
        scheme, _, host = base.partition("://")
        reader = f"{scheme}://{role}@{host.rpartition('@')[2]}/{name}"
        for command in (("agency", "list"), ("init",)):
            text = _clear(govshare(*command, env={**env, "GOVSHARE_DATABASE_URL": reader}), 1,
                          "the registry database refused the hub's user", "permission denied")
            assert "govshare init" not in text
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_govshare_runs_shows_how_each_run_ended_and_why_one_failed(world: dict[str, str], tmp_path: Path) -> None:
    """An operator had no command to see a failed or abandoned run (only Airflow's task log, or the database):
    `govshare runs` lists them newest first with the reason, filtered by resource and status."""
    code = world["code"]
    _clear(govshare("sync", code), 0)
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    _clear(govshare("sync", code, env={"GOVSHARE_STORAGE": str(a_file)}), 1)
    listed = " ".join(_clear(govshare("runs", code), 0).split())
    # how each ended and how it read, in Chinese (schemas/labels.yaml run_statuses, run_modes)
    assert listed.index("│ 失败 │") < listed.index("│ 已发布 │") and "GOVSHARE_STORAGE" in listed and "│ v1 │" in listed
    assert "│ 全量 │" in listed and "│ full │" not in listed
    only_failed = " ".join(_clear(govshare("runs", "--status", "failed"), 0).split())
    assert "│ 失败 │" in only_failed and "│ 已发布 │" not in only_failed
    _clear(govshare("runs", "999999/0001"), 1, "no resource '999999/0001'")
