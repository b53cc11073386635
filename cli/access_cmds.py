"""`govshare user|audit` and `token list|revoke`: people, system credentials and the audit log (article 18),
plus the console helpers the sharing commands share.

The CLI is the platform's local console: whoever runs it holds the registry database already, so by default it
acts as the console (audited as console:<login name>). `--as USERNAME` acts as that person instead, with their
agency and roles checked exactly as through the API. A refused command is audited too.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.output import console, parse_day, reported_errors, shown, table
from cli.usage import bad_value
from core.errors import AccessDenied

user_app = typer.Typer(help="People (用户) of agencies and their roles.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log (审计日志): verify the chain, export a period.", no_args_is_help=True)
ROLE_HELP = ("role, repeatable: agency_admin, cataloguer, reviewer, data_admin, coordination_office, supervisor, "
             "operator")
AsUser = Annotated[Optional[str], typer.Option("--as", help="act as this user (their roles are checked)")]


def acting_as(session, as_user: str | None):  # noqa: ANN001, ANN202 - Session -> Principal
    from registry.people.auth import console as console_principal
    from registry.people.auth import user_principal
    from registry.people.users import get_user

    if as_user:
        return user_principal(get_user(session, username=as_user))
    return console_principal(getpass.getuser())


@contextmanager
def refusals_audited(as_user: str | None, command: str) -> Iterator[None]:
    """A refused command is evidence too: logged in its own transaction (the command's was rolled back)."""
    try:
        yield
    except AccessDenied as denied:
        if not denied.audited:
            from registry.audit.log import record_refusal

            record_refusal(actor=f"user:{as_user}" if as_user else f"console:{getpass.getuser()}",
                           action="command.refused", reason=denied.en, detail={"command": command})
        raise


def _password(env: str | None) -> str:
    if env:
        if env not in os.environ:
            raise bad_value(env, f"环境变量 {env} 未设置 / environment variable {env} is not set")
        return os.environ[env]
    return typer.prompt("password 密码", hide_input=True, confirmation_prompt=True)


@user_app.command("add")
def user_add(username: str, agency: Annotated[str, typer.Option(help="agency code or name")],
             role: Annotated[list[str], typer.Option("--role", help=ROLE_HELP)],
             name: Annotated[str, typer.Option(help="display name")] = "",
             password_env: Annotated[Optional[str], typer.Option(help="read the password from this variable")] = None,
             as_user: AsUser = None) -> None:
    """Add a person to an agency with roles.

    Example: govshare user add zhang.wei --agency 上海市人力资源和社会保障局 --role data_admin --password-env PW
    """
    from registry.db import session_scope
    from registry.people.users import add_user
    from schemas.presentation import label_list

    with reported_errors(), refusals_audited(as_user, "user add"), session_scope() as session:
        user = add_user(session, username=username, agency=agency, roles=role, password=_password(password_env),
                        display_name=name, by=acting_as(session, as_user))
        agency, username = shown(user.agency.name), shown(user.username)
        console.print(f"已为{agency}添加用户 {username}（{label_list('roles', user.roles)}） / "
                      f"user {username} ({', '.join(user.roles)}) added to {agency}")


@user_app.command("list")
def user_list(as_user: AsUser = None) -> None:
    """List people and their roles.

    Example: govshare user list
    """
    from registry.db import session_scope
    from registry.people.users import list_users
    from schemas.presentation import label_list

    with reported_errors(), refusals_audited(as_user, "user list"), session_scope() as session:
        table("用户 / users", ["username", "name", "agency", "roles", "active"],
              [(u.username, u.display_name, u.agency.name, label_list("roles", u.roles), u.active)
               for u in list_users(session, by=acting_as(session, as_user))])


@user_app.command("roles")
def user_roles(username: str, role: Annotated[list[str], typer.Option("--role")], as_user: AsUser = None) -> None:
    """Replace a person's roles.

    Example: govshare user roles zhang.wei --role data_admin --role reviewer
    """
    from registry.db import session_scope
    from registry.people.users import set_roles
    from schemas.presentation import label_list

    with reported_errors(), refusals_audited(as_user, "user roles"), session_scope() as session:
        user = set_roles(session, username=username, roles=role, by=acting_as(session, as_user))
        console.print(f"用户 {shown(user.username)} 的角色：{label_list('roles', user.roles)} / "
                      f"user {shown(user.username)}: {', '.join(user.roles)}")


@user_app.command("password")
def user_password(username: str, password_env: Annotated[Optional[str], typer.Option()] = None,
                  as_user: AsUser = None) -> None:
    """Set a new password (also unlocks a locked account)."""
    from registry.db import session_scope
    from registry.people.users import set_password

    with reported_errors(), refusals_audited(as_user, "user password"), session_scope() as session:
        set_password(session, username=username, password=_password(password_env), by=acting_as(session, as_user))
        console.print(f"用户 {shown(username)} 的密码已更改（账户如被锁定已解锁） / password of {shown(username)} changed")


@user_app.command("deactivate")
def user_deactivate(username: str, as_user: AsUser = None) -> None:
    """Deactivate a person; their open sessions end at once."""
    from registry.db import session_scope
    from registry.people.users import deactivate_user

    with reported_errors(), refusals_audited(as_user, "user deactivate"), session_scope() as session:
        deactivate_user(session, username=username, by=acting_as(session, as_user))
        console.print(f"用户 {shown(username)} 已停用，其登录会话立即失效 / user {shown(username)} deactivated")


def token_list(agency: Annotated[Optional[str], typer.Option(help="only this agency")] = None) -> None:
    """List API tokens (never the tokens themselves).

    Example: govshare token list --agency 上海市人力资源和社会保障局
    """
    from registry.db import session_scope
    from registry.people.tokens import list_tokens

    with reported_errors(), session_scope() as session:
        table("令牌 / API tokens", ["id", "agency", "name", "expires", "revoked"],
              [(t.id, t.agency.name, t.name, t.expires_at, t.revoked_at or "-")
               for t in list_tokens(session, agency=agency)])


def token_revoke(token_id: int, as_user: AsUser = None) -> None:
    """Revoke an API token at once.

    Example: govshare token revoke 3
    """
    from registry.db import session_scope
    from registry.people.tokens import revoke_token

    with reported_errors(), refusals_audited(as_user, "token revoke"), session_scope() as session:
        record = revoke_token(session, token_id=token_id, by=acting_as(session, as_user))
        console.print(f"令牌 {record.id}（{shown(record.name)}）已撤销，立即失效 / token {record.id} ({shown(record.name)}) revoked")


@audit_app.command("verify")
def audit_verify(anchor: Annotated[Optional[str], typer.Option(
                     help="an anchor file written by `audit anchor` (or an export's .anchor.json), or a last hash")
                 ] = None,
                 file: Annotated[Optional[Path], typer.Option(help="an exported file, checked by its anchor")] = None,
                 ) -> None:
    """Prove the audit chain intact, or name the first bad record and the kind of tampering (exit 3).

    Every record since sealing began must carry its seal; with --anchor, the anchored head must still be there.

    Example: govshare audit verify --anchor /mnt/anchors/audit-anchor-2026-12-06-1042.json
    """
    from registry.audit.verify import verify_export, verify_log
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        report = verify_export(file) if file else verify_log(session, anchor=anchor)
    if report.ok:
        console.print(f"审计日志完整 / audit log intact: {report.count} records, last hash {report.last_hash}")
        return
    first = report.first
    console.print(f"[red]审计日志被篡改 / audit log tampered:[/red] first bad record: {shown(first)}", soft_wrap=True)
    for finding in report.findings[1:10]:
        console.print(f"  also: {shown(finding)}", soft_wrap=True)
    raise typer.Exit(3)


@audit_app.command("anchor")
def audit_anchor(out: Annotated[Optional[Path], typer.Option(
                     help="file to write; default GOVSHARE_AUDIT_ANCHOR_DIR/audit-anchor-DAY-ID.json")] = None
                 ) -> None:
    """Write the audit chain's head (id, hash, seal) outside the database, after verifying the log.

    Keep the files where a database writer cannot reach them; `audit verify --anchor FILE` then catches records
    deleted from the end or a rewritten log. The daily supervision DAG writes one too.

    Example: govshare audit anchor --out /mnt/anchors/audit-anchor.json
    """
    from registry.audit.verify import write_anchor
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        try:
            path, anchor = write_anchor(session, out=out)
        except ValueError as refused:
            from core.errors import ConfigError

            raise ConfigError(f"审计日志校验未通过，不写锚点 / {refused}") from None
    console.print(f"锚点已写入 / anchor written: {shown(path)} (record {anchor['id']}, hash {anchor['hash']})")


@audit_app.command("export")
def audit_export(start: Annotated[str, typer.Option("--from", help="first day (Beijing time)")],
                 end: Annotated[str, typer.Option("--to", help="last day (Beijing time)")],
                 out: Annotated[Path, typer.Option(help="JSON Lines file; the anchor goes beside it")]) -> None:
    """Write a period's log for inspectors, with its verification anchor (hash before, last hash).

    Example: govshare audit export --from 2026-10-01 --to 2026-10-31 --out audit-2026-10.jsonl
    """
    from registry.audit.verify import export_period
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        anchor = export_period(session, start=parse_day(start), end=parse_day(end), out=out)
    console.print(f"{anchor['count']} records written to {shown(out)}; anchor {shown(out)}.anchor.json: hash before "
                  f"{anchor['hash_before']}, last hash {anchor['last_hash']}, log verified {anchor['log_verified']}")
