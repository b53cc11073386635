"""`govshare demo`: the whole story on the embedded default, from agencies' databases to a consumer's download."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

from cli.output import console, table
from core.errors import ConfigError
from core.settings import get_settings, reset_settings

MARKER = ".govshare-demo"
ENTERPRISE_ROWS = 20_000


def _prepare_home() -> tuple[Path, str]:
    """Start over in a home the demo made before; refuse to touch a registry it did not make."""
    os.environ["GOVSHARE_DEMO"] = "1"
    reset_settings()
    settings = get_settings()
    home = settings.home
    marker = home / MARKER
    registry = home / "govshare.db"
    if not settings.database_url.startswith("sqlite"):
        raise ConfigError("the demo runs on the embedded default; unset GOVSHARE_DATABASE_URL")
    if registry.exists() and not marker.exists():
        raise ConfigError(f"{home} holds a registry the demo did not create; run with GOVSHARE_HOME=./var-demo")
    if marker.exists():
        for name in ("govshare.db", "govshare.db-wal", "govshare.db-shm", "dag_specs.json"):
            (home / name).unlink(missing_ok=True)
        for folder in ("storage", "sources"):
            shutil.rmtree(home / folder, ignore_errors=True)
        _clear_object_store()
        note = f"found an earlier demo in {home}: starting over (Airflow's metadata database is reused)"
    else:
        note = f"fresh demo in {home}"
    (home / "sources").mkdir(parents=True, exist_ok=True)
    marker.write_text("created by `govshare demo`; safe to delete\n")
    return home, note


def _clear_object_store() -> None:
    """An earlier demo's objects, when GOVSHARE_STORAGE names an object store (its prefix is the demo's)."""
    from core.storage import get_storage

    storage = get_storage()
    if storage.remote:
        for entry in storage.children(""):
            storage.delete(entry.path[len(storage.base) + 1:])
        shutil.rmtree(storage.root, ignore_errors=True)


def _register(home: Path, *, rows: int = ENTERPRISE_ROWS) -> dict[str, str]:
    from cli.demo_catalog import (
        CREDIT_CONDITION,
        catalogue_credit,
        catalogue_enterprises,
    )
    from cli.demo_story import add_oversight_agencies, add_people, mask_identifiers
    from registry.people.agencies import add_agency
    from registry.catalog.dagspecs import write_dag_specs
    from registry.db import session_scope
    from registry.migrate import upgrade
    from registry.catalog.resources import add_resource
    from registry.catalog.sources import add_source
    from registry.sharing.subscriptions import subscribe
    from registry.people.tokens import issue_token
    from samples.demo_sources import HR, MARKET, TAX, make_market_db, make_tax_db

    upgrade()
    market_db, tax_db = home / "sources" / "market.db", home / "sources" / "tax.db"
    make_market_db(market_db, rows=rows)
    make_tax_db(tax_db, rows=rows // 2)
    with session_scope() as session:
        for agency in (MARKET, TAX, HR):
            add_agency(session, code=agency.code, name=agency.name, actor="demo")
        add_oversight_agencies(session)
        add_source(session, name="scjg-registry", agency=MARKET.name, kind="sqlite", config={"path": str(market_db)}, actor="demo")
        add_source(session, name="tax-credit", agency=TAX.name, kind="sqlite", config={"path": str(tax_db)}, actor="demo")
        enterprises = add_resource(
            session, name="企业基本信息", agency=MARKET.name, classification="101001", source="scjg-registry",
            table="enterprises", primary_key=["id"], cursor_column="updated_at", update_cycle="daily",
            abstract="本市登记注册企业的统一社会信用代码、名称、法定代表人、注册资本、成立日期、登记状态和住所", actor="demo")
        credit = add_resource(
            session, name="企业纳税信用等级", agency=TAX.name, classification="102003", source="tax-credit",
            table="taxpayer_credit", primary_key=["uscc"], cursor_column="updated_at", update_cycle="monthly",
            sharing_type="conditional", sharing_condition=CREDIT_CONDITION,
            abstract="纳税人年度纳税信用等级评价结果（A/B/M/C/D）", actor="demo")
        # both entries are catalogued in full and published through the catalogue review before anyone takes them
        catalogue_enterprises(session, agency=MARKET.name, code=enterprises.code, abstract=enterprises.abstract)
        catalogue_credit(session, agency=TAX.name, code=credit.code, abstract=credit.abstract)
        add_people(session)
        mask_identifiers(session, resource_code=enterprises.code, scan_folder=home / "sources")
        subscribe(session, resource_code=enterprises.code, agency=HR.name, purpose="就业参保登记时核验用人单位信息",
                  actor="demo")
        token = issue_token(session, agency=HR.name, name="hr-employment-system", days=30, actor="demo")
        codes = {"enterprises": enterprises.code, "credit": credit.code}
    write_dag_specs()
    return {**codes, "token": token, "market_db": str(market_db)}


def _apply(made: dict[str, str]) -> str:
    """The application a new user follows in the browser (after the first versions exist)."""
    from cli.demo_story import apply_for_credit
    from registry.db import session_scope

    with session_scope() as session:
        return apply_for_credit(session, resource_code=made["credit"])


def stage_story(*, rows: int) -> dict[str, str]:
    """The demo's registry, versions and application without Airflow or the consumer's download (for tests of
    the pages a new user walks through); GOVSHARE_HOME must be a demo home."""
    from pipeline.sync import sync_resource

    home, _ = _prepare_home()
    made = _register(home, rows=rows)
    for code in (made["enterprises"], made["credit"]):
        sync_resource(resource_code=code)
    return {**made, "application": _apply(made)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _download_through_api(code: str, token: str) -> list[tuple[str, str, str]]:
    """Serve the API on loopback for a moment and download as the consumer system would."""
    import io

    import pyarrow.parquet as pq
    import requests
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config("api.app:create_app", factory=True, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        url = f"{base}/api/v1/resources/{code}/files"
        anonymous = requests.get(url, timeout=30)
        as_parquet = requests.get(url, params={"format": "parquet"}, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        as_parquet.raise_for_status()
        rows = pq.read_table(io.BytesIO(as_parquet.content)).num_rows
        as_csv = requests.get(url, params={"format": "csv"}, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        as_csv.raise_for_status()
        csv_lines = as_csv.content.decode("utf-8-sig").count("\n") - 1
        return [
            ("GET download, no token", str(anonymous.status_code), anonymous.json().get("detail_zh", "")),
            ("GET download?format=parquet", str(as_parquet.status_code),
             f"{rows} rows, v{as_parquet.headers['X-Govshare-Version']}, manifest {as_parquet.headers['X-Govshare-Manifest-SHA256'][:16]}…"),
            ("GET download?format=csv", str(as_csv.status_code), f"{csv_lines} rows, {len(as_csv.content):,} bytes"),
        ]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_demo(*, use_airflow: bool = True) -> None:
    from pipeline.airflow_runner import run_dags
    from pipeline.sync import sync_resource
    from registry.catalog.dagspecs import dag_id_for
    from samples.demo_sources import change_market_rows

    home, note = _prepare_home()
    console.print(f"[bold]govshare demo[/bold]: {note}")
    started = time.monotonic()
    made = _register(home)
    steps = [("registry", "5 agencies, 2 SQLite sources, 2 catalogue entries, 1 subscription, 5 web accounts, "
                          "1 API token"),
             ("catalogue 资源目录", (f"{made['enterprises']} (普遍共享) and {made['credit']} (按需共享): 13 core "
                                    "elements, submitted, confidentiality-reviewed, published by each agency's "
                                    "designated reviewer (govshare catalog show)"))]
    codes = [made["enterprises"], made["credit"]]
    if use_airflow:
        console.print("running the sync DAGs through Airflow (dag.test) …")
        states = run_dags([dag_id_for(code) for code in codes], airflow_home=home / "airflow")
        failed = {dag: state for dag, state in states.items() if state != "success"}
        if failed:
            raise ConfigError(f"Airflow runs did not succeed: {failed}; see the task logs under {home / 'airflow' / 'logs'}")
        steps += [(f"Airflow {dag}", state) for dag, state in states.items()]
    else:
        for code in codes:
            report = sync_resource(resource_code=code)
            steps.append((f"sync {code}", f"v{report.version}: {report.rows_published} rows"))
    changed = change_market_rows(Path(made["market_db"]), count=25)
    report = sync_resource(resource_code=made["enterprises"])
    steps.append((f"{changed} enterprises changed at source, sync {made['enterprises']}",
                  f"v{report.version} ({report.mode}): read {report.rows_read}, published {report.rows_published}"))
    steps += [(f"consumer {what}", f"{status} {detail}") for what, status, detail in
              _download_through_api(made["enterprises"], made["token"])]
    steps.append(("application 共享申请", f"{_apply(made)}: 张伟 (HR) applied for {made['credit']}, waiting for 王芳 (tax)"))
    table(f"what the demo did ({time.monotonic() - started:.0f} s)", ["step", "result"], steps)
    _print_next_steps(home, made)


def _print_next_steps(home: Path, made: dict[str, str]) -> None:
    from cli.demo_story import PASSWORD, USERS

    port = get_settings().api_port
    console.print(f"\nconsumer token (上海市人力资源和社会保障局): {made['token']}", soft_wrap=True)
    console.print(f"serve the hub:  GOVSHARE_DEMO=1 GOVSHARE_HOME={home} govshare serve", soft_wrap=True)
    console.print(f"then open in a browser: http://127.0.0.1:{port}/  (API docs: http://127.0.0.1:{port}/docs)",
                  soft_wrap=True)
    table(f"demo accounts (演示账号), password {PASSWORD}", ["用户名", "姓名", "机构", "做什么"],
          [(u.username, u.name, u.agency.name, u.does) for u in USERS])
