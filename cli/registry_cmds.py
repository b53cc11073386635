"""`govshare agency|source|resource|token|subscribe`: register who provides what, from where, to whom."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import console, err_console, reported_errors, shown, table
from cli.output import note as show_note
from cli.usage import bad_value

# The registry (SQLAlchemy and the models) is imported inside each command: `govshare --help` and a usage
# error never need it, and it is most of the command's start-up time.

agency_app = typer.Typer(help="Agencies (行政机构) that provide and consume data.", no_args_is_help=True)
source_app = typer.Typer(help="Sources: connections to agencies' business databases.", no_args_is_help=True)
resource_app = typer.Typer(help="Catalogue resources (信息资源) and the streams that feed them.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for consumer systems.", no_args_is_help=True)


@agency_app.command("add")
def agency_add(
    code: Annotated[str, typer.Argument(help="unified social credit code (统一社会信用代码), 18 characters")],
    name: Annotated[str, typer.Argument(help="full Chinese name")],
    level: Annotated[str, typer.Option(help="city (市级), district (区) or county (县)")] = "city",
    district: Annotated[str | None, typer.Option(help="district name for a district agency")] = None,
    parent: Annotated[str | None, typer.Option(help="parent agency code or name")] = None,
) -> None:
    """Register an agency.

    Example: govshare agency add 113100000024200171 上海市市场监督管理局
    """
    from registry.db import session_scope
    from registry.people.agencies import add_agency

    with reported_errors(), session_scope() as session:
        agency = add_agency(session, code=code, name=name, level=level, district=district, parent=parent)
        console.print(f"agency {shown(agency.code)} {shown(agency.name)} registered")


@agency_app.command("list")
def agency_list() -> None:
    """List agencies.

    Example: govshare agency list
    """
    from registry.db import session_scope
    from registry.people.agencies import list_agencies

    with reported_errors(), session_scope() as session:
        agencies = list_agencies(session)
        names = {a.id: a.name for a in agencies}
        table("机构 / agencies", ["code", "name", "level", "district", "parent 上级"],
              [(a.code, a.name, a.level, a.district, names.get(a.parent_id, "")) for a in agencies])


def _options(pairs: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise bad_value(pair, f"{pair!r} 应为 键=值 / is not KEY=VALUE")
        if value.lstrip().startswith(("{", "[")):  # nested settings, e.g. -o 'streams={"enterprises": {...}}'
            try:
                config[key.strip()] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise bad_value(pair, f"{key.strip()} 的值不是有效的 JSON / {key.strip()}: not valid JSON ({exc})") from None
            continue
        config[key.strip()] = value
    return config


def _secret_from(*, password_env: str | None, token_env: str | None, key_file: Path | None) -> dict[str, str] | None:
    secret = {}
    for field, variable in (("password", password_env), ("token", token_env)):
        if variable:
            if variable not in os.environ:
                raise bad_value(variable, f"环境变量 {variable} 未设置 / environment variable {variable} is not set")
            secret[field] = os.environ[variable]
    if key_file:
        try:
            secret["private_key"] = key_file.read_text()
        except OSError as exc:
            raise bad_value(key_file, f"无法读取 {key_file} / cannot read {key_file}: {exc.strerror}") from None
    return secret or None


@source_app.command("add")
def source_add(
    name: Annotated[str, typer.Argument(help="a short unique name")],
    agency: Annotated[str, typer.Option(help="owning agency code or name")],
    kind: Annotated[str, typer.Option(help="connector kind: postgresql, mysql, sqlite, sqlalchemy, files, sftp, http")],
    option: Annotated[list[str], typer.Option("--option", "-o", help="KEY=VALUE setting (VALUE may be JSON), repeatable")],
    password_env: Annotated[str | None, typer.Option(help="read the password from this environment variable")] = None,
    token_env: Annotated[str | None, typer.Option(help="read an API token (http kind) from this environment variable")] = None,
    key_file: Annotated[Path | None, typer.Option(help="private key file for an sftp source (stored encrypted)")] = None,
) -> None:
    """Register a source; its password is encrypted at rest and never printed.

    Example: govshare source add scjg-pg --agency 上海市市场监督管理局 --kind postgresql
    -o host=10.0.0.5 -o dbname=reg -o user=reader --password-env SCJG_PG_PASSWORD

    Files, SFTP and HTTP sources take their streams as JSON (see README.md), e.g.
    govshare source add scjg-sftp --agency 上海市市场监督管理局 --kind sftp -o host=10.0.0.9 -o user=exchange
    -o path=/outbox -o host_key_fingerprint=SHA256:... -o 'streams={"enterprises": {"pattern": "企业*.csv"}}'
    --key-file ~/.ssh/scjg_exchange
    """
    from registry.catalog.sources import add_source
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        secret = _secret_from(password_env=password_env, token_env=token_env, key_file=key_file)
        source = add_source(session, name=name, agency=agency, kind=kind, config=_options(option), secret=secret)
        console.print(f"source {shown(source.name)} ({source.kind}) registered")


@source_app.command("edit")
def source_edit(
    name: Annotated[str, typer.Argument(help="source name")],
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="KEY=VALUE setting to set (VALUE may be JSON), repeatable")] = None,
    unset: Annotated[list[str] | None, typer.Option(help="a setting to remove, repeatable")] = None,
    password_env: Annotated[str | None, typer.Option(help="new password from this environment variable")] = None,
    token_env: Annotated[str | None, typer.Option(help="new API token (http kind) from this environment variable")] = None,
    key_file: Annotated[Path | None, typer.Option(help="new private key file for an sftp source")] = None,
    check: Annotated[bool, typer.Option(help="connect with the new settings and report")] = True,
) -> None:
    """Change a source's settings or rotate its secret; the resources it feeds keep it. Audited, secrets never shown.

    Example: SCJG_PG_PASSWORD=... govshare source edit scjg-pg --password-env SCJG_PG_PASSWORD -o port=6432
    """
    from registry.catalog.sources import edit_source, open_connector
    from registry.db import session_scope

    with reported_errors():
        with session_scope() as session:
            secret = _secret_from(password_env=password_env, token_env=token_env, key_file=key_file)
            source = edit_source(session, name=name, config=_options(option or []), unset=unset, secret=secret)
            connector = open_connector(source)
        console.print(f"source {shown(name)} updated" + (f" (secret: {shown(', '.join(sorted(secret)))} replaced)" if secret else ""))
        if check:
            _report_check(connector)


def _report_check(connector) -> None:  # noqa: ANN001 - connectors.base.Connector
    """Connect and say how it went; the change is kept either way (a database may learn its new password later)."""
    from core.errors import GovshareError

    try:
        connector.check(None)
    except GovshareError as exc:
        err_console.print(f"[yellow]连接检查未通过 / check failed:[/yellow] {shown(exc, lines=True)}", soft_wrap=True)
        return
    console.print(f"source {shown(connector.name)}: ok")


@source_app.command("check")
def source_check(name: Annotated[str, typer.Argument(help="source name")],
                 table_name: Annotated[str | None, typer.Option("--table", help="also check this table")] = None) -> None:
    """Connect to a source (and a table) and report the first problem in one line.

    Example: govshare source check scjg-pg --table enterprises
    """
    from connectors.base import StreamSpec
    from registry.catalog.sources import get_source, open_connector
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        connector = open_connector(get_source(session, name=name))
        connector.check(StreamSpec(table=table_name) if table_name else None)
        console.print(f"source {shown(name)}: ok")


@source_app.command("list")
def source_list() -> None:
    """List sources (never their secrets).

    Example: govshare source list
    """
    from registry.catalog.sources import list_sources, open_connector
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        table("数据源 / sources", ["name", "kind", "agency", "where"],
              [(s.name, s.kind, s.agency.name, open_connector(s).describe()) for s in list_sources(session)])


@resource_app.command("add")
def resource_add(
    name: Annotated[str, typer.Argument(help="resource name (信息资源名称)")],
    agency: Annotated[str, typer.Option(help="provider agency code or name")],
    classification: Annotated[str, typer.Option(help="classification code, e.g. 101001")],
    source: Annotated[str | None, typer.Option(help="source feeding the resource")] = None,
    table_name: Annotated[str | None, typer.Option("--table", help="source table")] = None,
    query: Annotated[str | None, typer.Option(help="source query instead of a table")] = None,
    key: Annotated[str | None, typer.Option(help="primary key column(s), comma separated")] = None,
    cursor: Annotated[str | None, typer.Option(help="cursor column for incremental sync")] = None,
    mode: Annotated[str, typer.Option(help="sync mode: auto (incremental with --cursor, else full) or cdc "
                                           "(PostgreSQL change capture, 变更捕获)")] = "auto",
    abstract: Annotated[str, typer.Option(help="abstract (信息资源摘要)")] = "",
    sharing: Annotated[str, typer.Option(help="unconditional, conditional or not_shared")] = "unconditional",
    condition: Annotated[str, typer.Option(help="sharing condition or legal basis")] = "",
    cycle: Annotated[str, typer.Option(help="update cycle: realtime, hourly, daily, weekly, monthly, ...")] = "daily",
) -> None:
    """Register a catalogue resource; its code is generated as classification/sequence.

    Example: govshare resource add 企业基本信息 --agency 上海市市场监督管理局 --classification 101001
    --source scjg-pg --table enterprises --key id --cursor updated_at
    (change capture instead: --source scjg-pg --table enterprises --key id --mode cdc --cycle realtime)
    """
    from registry.catalog.resources import add_resource
    from registry.db import session_scope
    from registry.exchange.streams import verify_stream

    with reported_errors(), session_scope() as session:
        resource = add_resource(session, name=name, agency=agency, classification=classification, source=source,
                                table=table_name, query=query, primary_key=key.split(",") if key else None,
                                cursor_column=cursor, sync_mode=mode, abstract=abstract, sharing_type=sharing,
                                sharing_condition=condition, update_cycle=cycle)
        note = verify_stream(resource)  # a missing key or cursor column refuses the whole registration
        code = resource.code
    show_note(note)
    console.print(f"resource {shown(code)} {shown(name)} registered")


@resource_app.command("edit")
def resource_edit(
    code: Annotated[str, typer.Argument(help="resource code")],
    source: Annotated[str | None, typer.Option(help="move to this source (of the same agency)")] = None,
    table_name: Annotated[str | None, typer.Option("--table", help="source table")] = None,
    query: Annotated[str | None, typer.Option(help="source query instead of a table")] = None,
    key: Annotated[str | None, typer.Option(help="primary key column(s), comma separated")] = None,
    cursor: Annotated[str | None, typer.Option(help="cursor column for incremental sync ('' for none)")] = None,
) -> None:
    """Change what feeds a resource: another source of its agency, table, key or cursor; checked against the source.

    The versions stay; the next sync reads in full (and publishes nothing if nothing changed).
    Example: govshare resource edit 101001/0001 --source scjg-pg-2024
    """
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.streams import set_stream, verify_stream

    with reported_errors(), session_scope() as session:
        resource = get_resource(session, code=code)
        changed = set_stream(session, resource=resource, source=source, table=table_name, query=query,
                             primary_key=key.split(",") if key is not None else None, cursor_column=cursor)
        note = verify_stream(resource) if changed else None
    show_note(note)
    console.print(f"resource {shown(code)}: " + ("stream updated; the next sync reads in full" if changed else "unchanged"))


@resource_app.command("list")
def resource_list(agency: Annotated[str | None, typer.Option(help="only this agency")] = None) -> None:
    """List catalogue resources with their latest version.

    Example: govshare resource list --agency 上海市市场监督管理局
    """
    from registry.catalog.resources import list_resources
    from registry.db import session_scope
    from registry.exchange.versions import latest_version

    with reported_errors(), session_scope() as session:
        rows = []
        for r in list_resources(session, agency=agency):
            latest = latest_version(session, resource=r)
            rows.append((r.code, r.name, r.agency.name, r.sharing_type, r.update_cycle,
                         f"v{latest.number} ({latest.row_count} rows)" if latest else "-"))
        table("资源目录 / catalogue", ["code", "name", "provider", "sharing", "cycle", "latest"], rows)


@resource_app.command("show")
def resource_show(code: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """Show one resource's metadata and stream.

    Example: govshare resource show 101001/0001
    """
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.versions import latest_version

    with reported_errors(), session_scope() as session:
        r = get_resource(session, code=code)
        latest = latest_version(session, resource=r)
        table(f"{r.code} {r.name}", ["element", "value"], [
            ("provider 提供方", f"{r.agency.name} ({r.agency.code})"), ("abstract 摘要", r.abstract),
            ("sharing 共享类型", r.sharing_type), ("condition 共享条件", r.sharing_condition),
            ("modes 共享方式", ", ".join(r.sharing_modes)), ("cycle 更新周期", r.update_cycle),
            ("source 数据源", r.source.name if r.source else "-"), ("stream", r.stream),
            ("latest version", f"v{latest.number}, {latest.row_count} rows" if latest else "-")])


@token_app.command("issue")
def token_issue(agency: Annotated[str, typer.Argument(help="consumer agency code or name")],
                name: Annotated[str, typer.Option(help="which system holds it")] = "default",
                days: Annotated[int, typer.Option(help="validity in days")] = 90) -> None:
    """Issue an API token to a consumer agency's system; it is shown once.

    Example: govshare token issue 上海市人力资源和社会保障局 --name hr-sync
    """
    from registry.db import session_scope
    from registry.people.tokens import issue_token

    with reported_errors(), session_scope() as session:
        token = issue_token(session, agency=agency, name=name, days=days)
    # The token alone on standard output, so `TOKEN=$(govshare token issue ...)` keeps working; the note for
    # the person at the terminal goes to standard error.
    console.print(token, soft_wrap=True)
    err_console.print(f"访问令牌已签发给 {shown(agency)} 的系统 {shown(name)}，有效期 {days} 天；仅显示这一次（平台只保存其摘要），"
                      f"请妥善保存 / API token issued to {shown(agency)}'s system {shown(name)} for {days} days; shown once "
                      "(the hub keeps only its digest)", soft_wrap=True)


def subscribe_command(
    resource: Annotated[str, typer.Argument(help="resource code")],
    agency: Annotated[str, typer.Option(help="consumer agency code or name")],
    purpose: Annotated[str, typer.Option(help="purpose of use (共享用途)")],
) -> None:
    """Subscribe a consumer agency to an unconditionally shared resource (granted at once).

    Example: govshare subscribe 101001/0001 --agency 上海市人力资源和社会保障局 --purpose 就业登记核验
    """
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe

    with reported_errors(), session_scope() as session:
        subscribe(session, resource_code=resource, agency=agency, purpose=purpose)
        console.print(f"{shown(agency)} subscribed to {shown(resource)}")
