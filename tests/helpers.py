"""Reusable test setup: register agencies, sources and resources through the service functions, read
published versions back, compare them with a source, and serve the real API on a loopback port.

Everything here goes through the hub's own service functions (registry.*, pipeline.*), so a test that uses
these helpers exercises the same code paths as the CLI.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

# Agencies used across the tests (18-character unified social credit codes, 统一社会信用代码).
# Valid codes (check characters computed per GB 32100 and GB 11714): agencies are validated on registration.
PROVIDER = ("113100000024200171", "上海市市场监督管理局")
CONSUMER = ("1131000000242101XC", "上海市人力资源和社会保障局")
OTHER_PROVIDER = ("11310000MB2F3956X1", "上海市民政局")

# Columns of samples.enterprises, in table order.
ENTERPRISE_COLUMNS = ("id", "uscc", "name", "legal_rep", "legal_rep_id", "reg_capital", "established", "status",
                      "address", "industry", "updated_at")


@dataclass
class Hub:
    """What register_resource created: the codes and names a test needs, and the consumer's token."""

    resource_code: str
    resource_id: int
    source_name: str | None
    provider_code: str
    consumer_code: str
    token: str


# --- registry setup -------------------------------------------------------------------------------------------

def ensure_agency(session, code: str, name: str):  # noqa: ANN001, ANN201 - Session -> Agency
    from core.errors import NotFound
    from registry.people.agencies import add_agency, get_agency

    try:
        return get_agency(session, ref=code)
    except NotFound:
        return add_agency(session, code=code, name=name, actor="test")


def conditional_hub(session, *, password: str, roles: Sequence[str] = ("data_admin",)) -> str:  # noqa: ANN001
    """A published conditional entry of the provider and an administrator on each side (p.admin, c.admin, with
    `roles`); the entry's code."""
    from registry.catalog.resources import add_resource
    from registry.people.auth import console
    from registry.people.users import add_user

    for code, name in (PROVIDER, CONSUMER):
        ensure_agency(session, code, name)
    resource = add_resource(session, name="企业纳税信用信息", agency=PROVIDER[0], classification="101001",
                            sharing_type="conditional", sharing_condition="限于行政审批核验", actor="test")
    publish_entry(session, resource.code, columns=("uscc", "credit_level"))
    for username, agency in (("p.admin", PROVIDER[0]), ("c.admin", CONSUMER[0])):
        add_user(session, username=username, agency=agency, roles=list(roles), password=password, by=console("test"))
    return resource.code


def publish_entry(session, code: str, *, columns: Sequence[str] = ENTERPRISE_COLUMNS,  # noqa: ANN001 - Session
                  personal: dict[str, str] | None = None, names: dict[str, str] | None = None) -> None:
    """Publish a registered entry as the measures require before anything is shared: its elements compiled
    (one data item per column; `personal` marks columns: {"legal_rep_id": "idcard"} as the 主体标识, or a
    personal-information kind), submitted by a designated cataloguer, confidentiality-reviewed and approved by
    a designated reviewer of its agency (people created once per agency). `names`: an item's Chinese name by
    column (default: the column's name)."""
    from sqlalchemy import select

    from registry.catalog.entries import upsert_entry
    from registry.people.models import Person
    from registry.catalog.review import record_confidentiality_review, review_revision, submit_revision
    from registry.people.persons import add_person, designate
    from registry.catalog.resources import get_resource
    from schemas.catalog_metadata import CatalogEntryData

    resource = get_resource(session, code=code)
    suffix = resource.agency.code[-8:].lower()
    cataloguer, reviewer = f"cat-{suffix}", f"rev-{suffix}"
    if session.scalar(select(Person).where(Person.account == cataloguer)) is None:
        for account, role in ((cataloguer, "cataloguer"), (reviewer, "reviewer")):
            add_person(session, agency=resource.agency.code, account=account, name=f"{role}{suffix}", actor="test")
            designate(session, account=account, role=role, valid_from=date(2024, 1, 1), actor="test")
    personal = personal or {}
    items = []
    for column in columns:
        mark = personal.get(column)
        item = {"name": (names or {}).get(column, column), "column": column, "data_type": "string"}
        if mark == "idcard":
            item["subject_id"] = "idcard"
        elif mark:
            item["personal"] = mark
        items.append(item)
    data = CatalogEntryData(classification=resource.classification, name=resource.name,
                            abstract=resource.abstract or resource.name, format="database", data_items=items,
                            sharing_type=resource.sharing_type, sharing_condition=resource.sharing_condition,
                            sharing_modes=list(resource.sharing_modes), update_cycle=resource.update_cycle)
    upsert_entry(session, agency=resource.agency.code, data=data, code=code, author=cataloguer, actor="test")
    submit_revision(session, code=code, account=cataloguer)
    record_confidentiality_review(session, code=code, account=reviewer, passed=True, note="不涉及国家秘密")
    review_revision(session, code=code, account=reviewer, approve=True)


def person_of(session, agency_code: str, *roles: str, name: str = "staff"):  # noqa: ANN001, ANN201 - Principal
    """A signed-in person of an agency holding roles, as the API or the console's `--as` would identify them."""
    from registry.people.agencies import get_agency
    from registry.people.auth import Principal

    agency = get_agency(session, ref=agency_code)
    return Principal(kind="user", name=f"{name}-{agency.code[-6:]}", agency_id=agency.id, agency_code=agency.code,
                     roles=frozenset(roles))


def register_resource(
    *,
    kind: str | None,
    config: dict[str, Any] | None = None,
    secret: dict[str, Any] | None = None,
    table: str | None = "enterprises",
    query: str | None = None,
    key: Sequence[str] = ("id",),
    cursor: str | None = "updated_at",
    name: str = "企业基本信息",
    classification: str = "101001",
    provider: tuple[str, str] = PROVIDER,
    consumer: tuple[str, str] = CONSUMER,
    update_cycle: str = "daily",
    sharing_type: str = "unconditional",
    sharing_condition: str = "",
    subscribe: bool = False,
    token_days: int = 30,
    source_name: str | None = None,
    publish: bool = True,
    columns: Sequence[str] | None = None,
) -> Hub:
    """Register provider and consumer agencies, a source (unless kind is None), a resource fed by it, and an
    API token for the consumer; optionally subscribe the consumer. Writes the DAG snapshot afterwards.
    ``columns``: the entry's data items (default the enterprise table's); a subscription grants those."""
    from registry.catalog.dagspecs import write_dag_specs
    from registry.db import session_scope
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source
    from registry.sharing.subscriptions import subscribe as subscribe_to
    from registry.people.tokens import issue_token

    with session_scope() as session:
        ensure_agency(session, *provider)
        ensure_agency(session, *consumer)
        if kind is not None:
            source_name = source_name or f"{kind}-{uuid.uuid4().hex[:6]}"
            add_source(session, name=source_name, agency=provider[0], kind=kind, config=config or {}, secret=secret,
                       actor="test")
        resource = add_resource(
            session, name=name, agency=provider[0], classification=classification,
            source=source_name if kind is not None else None,
            table=table if kind is not None else None, query=query if kind is not None else None,
            primary_key=list(key) if kind is not None else None, cursor_column=cursor if kind is not None else None,
            update_cycle=update_cycle, sharing_type=sharing_type, sharing_condition=sharing_condition, actor="test")
        code, resource_id = resource.code, resource.id
        if publish:
            publish_entry(session, code, **({"columns": columns} if columns else {}))
        if subscribe:
            subscribe_to(session, resource_code=code, agency=consumer[0], purpose="就业登记核验", actor="test")
        token = issue_token(session, agency=consumer[0], name=f"system-{uuid.uuid4().hex[:6]}", days=token_days,
                            actor="test")
    write_dag_specs()
    return Hub(resource_code=code, resource_id=resource_id, source_name=source_name if kind else None,
               provider_code=provider[0], consumer_code=consumer[0], token=token)


def subscribe_consumer(resource_code: str, agency_code: str = CONSUMER[0]) -> None:
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe

    with session_scope() as session:
        subscribe(session, resource_code=resource_code, agency=agency_code, purpose="就业登记核验", actor="test")


def issue_token(agency_code: str = CONSUMER[0], *, days: int = 30) -> str:
    from registry.db import session_scope
    from registry.people.tokens import issue_token as issue

    with session_scope() as session:
        return issue(session, agency=agency_code, name=f"system-{uuid.uuid4().hex[:6]}", days=days, actor="test")


def revoke_token(token: str) -> None:
    """Mark a token revoked in the registry (the registry has no revoke service yet)."""
    from sqlalchemy import select

    from core import clock
    from core.crypto import sha256_hex
    from registry.db import session_scope
    from registry.people.models import ApiToken

    with session_scope() as session:
        record = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))
        assert record is not None, "token to revoke is not registered"
        record.revoked_at = clock.now()


# --- sources --------------------------------------------------------------------------------------------------

def pg_source_config(dsn: str, *, schema: str = "public") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A postgresql source's config and secret from a libpq URL such as postgresql://user:pw@host:port/db."""
    url = urlsplit(dsn)
    config = {"host": url.hostname or "127.0.0.1", "port": url.port or 5432,
              "dbname": unquote(url.path.lstrip("/")), "user": unquote(url.username or "postgres"), "schema": schema}
    secret = {"password": unquote(url.password)} if url.password else None
    return config, secret


@contextmanager
def pg_scratch_schema(dsn: str) -> Iterator[str]:
    """A uniquely named schema in the test database, dropped (with its tables) afterwards."""
    import psycopg2

    schema = f"gs_src_{uuid.uuid4().hex[:10]}"
    with closing(psycopg2.connect(dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with closing(psycopg2.connect(dsn)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_execute(dsn: str, statement: str, params: Sequence[Any] | None = None) -> list[tuple]:
    """Run one statement in its own committed transaction; the rows it returns, if any."""
    import psycopg2

    with closing(psycopg2.connect(dsn)) as conn:
        with conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


def pg_rows(dsn: str, table: str, *, columns: Sequence[str] = ENTERPRISE_COLUMNS, order_by: str = "id") -> list[tuple]:
    """Every row of a source table as psycopg2 returns it (Decimal, date, aware datetime, str), sorted."""
    column_list = ", ".join(f'"{c}"' for c in columns)
    return pg_execute(dsn, f"SELECT {column_list} FROM {table} ORDER BY {order_by}")


# --- published versions ---------------------------------------------------------------------------------------

def write_corrections(path: Path, rows: list[dict]) -> Path:
    """A provider's corrected quarantine export, as `govshare quarantine replay --file` reads it (UTF-8 with BOM,
    the export's own columns)."""
    import csv

    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def latest(resource_code: str):  # noqa: ANN201 - DatasetVersion | None
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import latest_version

    with session_scope() as session:
        return latest_version(session, resource=get_resource(session, code=resource_code))


def versions(resource_code: str) -> list:
    """Published versions, oldest first."""
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import list_versions

    with session_scope() as session:
        return list(reversed(list_versions(session, resource=get_resource(session, code=resource_code))))


def cursor_value(resource_code: str) -> str | None:
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import cursor_state

    with session_scope() as session:
        state = cursor_state(session, resource=get_resource(session, code=resource_code))
        return state.cursor_value if state else None


def sync(hub: Hub, *, full: bool = False):  # noqa: ANN201 - PublishReport
    """One sync of the hub's resource, as `govshare sync` runs it."""
    from pipeline.sync import sync_resource

    return sync_resource(resource_code=hub.resource_code, full=full)


REPO = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """This process's environment (the test's hub home) with this repository importable."""
    import os

    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


@contextmanager
def hub_child(code: str, *args: str) -> Iterator[Any]:
    """A Python child process running ``code`` with this repository importable; killed if still running when
    the block ends (a test that strikes it with SIGKILL uses :func:`sigkill`)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def wait_for_marker(child: Any, marker: Path, what: str, *, seconds: float = 300) -> None:  # noqa: ANN401 - Popen
    """Wait until a hub child writes ``marker`` (it has reached the point a test strikes at); fail with the
    child's error output if it ends first, or with ``what`` it never reached."""
    import time

    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"the child never {what}"
        time.sleep(0.05)


def sigkill(child: Any) -> None:  # noqa: ANN401 - subprocess.Popen
    """A real SIGKILL: the process gets no chance to clean up."""
    import signal

    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def sqlite_query(database: Path, sql: str) -> list[tuple]:
    """Rows of a query on a SQLite source database, as the driver returns them."""
    import sqlite3

    with closing(sqlite3.connect(database)) as conn:
        return conn.execute(sql).fetchall()


def sqlite_execute(database: Path, *statements: str) -> None:
    """Change a SQLite source database: the statements in one transaction."""
    import sqlite3

    with closing(sqlite3.connect(database)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def sync_runs(resource_code: str) -> list:
    """Every sync run of the resource, oldest first."""
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.exchange.models import SyncRun
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        return list(session.scalars(select(SyncRun).where(SyncRun.resource_id == resource.id)
                                    .order_by(SyncRun.started_at)))


def run_prefixes(resource_id: int) -> list[str]:
    """The run prefixes ``datasets/<resource>/<name>`` in the storage: in the store (an object store) and in
    this process's working copy; their names, sorted."""
    from core.storage import get_storage

    storage = get_storage()
    names = {Path(info.path).name for info in storage.children(f"datasets/{resource_id}")}
    local = storage.root / "datasets" / str(resource_id)
    names |= {p.name for p in local.iterdir()} if local.is_dir() else set()
    return sorted(names)


def stored_names() -> list[str]:
    """Every file's storage-relative name, in the store and in this process's working copy."""
    import pyarrow.fs as pafs

    from core.storage import get_storage

    storage = get_storage()
    selector = pafs.FileSelector(storage.base, recursive=True, allow_not_found=True)
    names = {info.path[len(storage.base) + 1:] for info in storage.fs.get_file_info(selector)}
    names |= {p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*")}
    return sorted(names)


def version_folder(version) -> Path:  # noqa: ANN001 - DatasetVersion
    from pipeline.paths import resolve

    return resolve(version.path)


def read_version(version, *, sort_by: str | None = "id") -> pa.Table:  # noqa: ANN001 - DatasetVersion
    """A published version's rows: the live rows of the parts its manifest lists (pipeline.layers)."""
    from pipeline.layers import iter_parts, parts_schema, version_parts

    parts = version_parts(version)
    table = pa.Table.from_batches(list(iter_parts(parts)), schema=parts_schema(parts))
    return table.sort_by(sort_by) if sort_by else table


# --- comparing values -----------------------------------------------------------------------------------------

def canonical(value: Any) -> Any:
    """One spelling per value, whichever driver produced it: decimals keep their scale, instants are UTC."""
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return ["timestamp", value.isoformat()]
        return ["timestamptz", value.astimezone(timezone.utc).isoformat()]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    return value


def canonical_rows(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    return [[canonical(v) for v in row] for row in rows]


def table_rows(table: pa.Table, columns: Sequence[str] = ENTERPRISE_COLUMNS) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns)))


def rows_digest(rows: Iterable[Sequence[Any]]) -> str:
    """SHA-256 over the canonical JSON of the rows, in the order given."""
    digest = hashlib.sha256()
    for row in canonical_rows(rows):
        digest.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def first_difference(left: Sequence[Sequence[Any]], right: Sequence[Sequence[Any]]) -> str:
    """A short description of where two row lists differ, for assertion messages."""
    a, b = canonical_rows(left), canonical_rows(right)
    if len(a) != len(b):
        return f"row counts differ: {len(a)} != {len(b)}"
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"row {index} differs:\n  {x}\n  {y}"
    return "no difference"


# --- the HTTP API on loopback ---------------------------------------------------------------------------------

class ApiServer:
    """The real FastAPI app under uvicorn, in a background thread, on a free loopback port."""

    def __init__(self) -> None:
        import uvicorn

        from api.app import create_app

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="govshare-test-api", daemon=True)

    def start(self) -> ApiServer:
        import requests

        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("the API server thread stopped while starting")
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the API server did not answer /healthz")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._socket.close()


@contextmanager
def running_api() -> Iterator[ApiServer]:
    server = ApiServer().start()
    try:
        yield server
    finally:
        server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
