"""`govshare package ...` and `govshare push ...`: offline exchange (离线交换) of a version with one consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import console, reported_errors, shown, table

package_app = typer.Typer(help="Offline packages (离线交换包): signed, encrypted, for one consumer.", no_args_is_help=True)
push_app = typer.Typer(help="SFTP push (推送) of versions to consumers' servers.", no_args_is_help=True)
cache_app = typer.Typer(help="Derived files of the delivery channels (indexes, exports).", no_args_is_help=True)


@cache_app.command("prune")
def cache_prune() -> None:
    """Remove key indexes and file exports of versions that were pruned (run after `govshare housekeep`).

    Example: govshare delivery-cache prune
    """
    from delivery.caches import prune_delivery_caches

    with reported_errors():
        removed = prune_delivery_caches()
        console.print(f"removed {len(removed)} cached folder(s)" + "".join(f"\n  {shown(r)}" for r in removed))


@package_app.command("export")
def package_export(
    resource: Annotated[str, typer.Argument(help="resource code")],
    agency: Annotated[str, typer.Option("--for", help="consumer agency code (统一社会信用代码) or name")],
    out: Annotated[Path, typer.Option(help="package file to write (.gspkg)")],
    since: Annotated[int | None, typer.Option(help="only the changes after this version")] = None,
) -> None:
    """Write a signed, encrypted package of the latest version for one consumer (its granted data only).

    Example: govshare package export 101001/0001 --for 113100000024210120 --out 人社局_v3.gspkg
    """
    from delivery.packages import export_package

    with reported_errors():
        report = export_package(resource_code=resource, agency=agency, out=out, since=since)
        table("离线交换包 / offline package", ["file", "resource", "version", "consumer", "rows", "bytes", "expires"],
              [(report.path, report.resource, report.version, report.consumer, report.rows, report.bytes,
                report.expires_at)])


@package_app.command("import")
def package_import(
    package: Annotated[Path, typer.Argument(help="the .gspkg file received", exists=True, dir_okay=False)],
    agency: Annotated[str, typer.Option("--as", help="your agency's code (统一社会信用代码)")],
    key_file: Annotated[Path, typer.Option("--key", help="file holding your agency's key (`package key`)",
                                           exists=True, dir_okay=False)],
    hub_key: Annotated[Path, typer.Option("--hub-key", help="the hub's public key PEM (`package hub-key`)",
                                          exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option(help="new folder to unpack into")],
    ledger: Annotated[Path | None, typer.Option(help="record of the packages imported here (default "
                                                     "GOVSHARE_HOME/received-packages.jsonl; name one file for "
                                                     "every installation on a machine)", dir_okay=False)] = None,
) -> None:
    """Verify a package (hub signature, addressee, expiry, digests) and unpack it; a tampered or foreign one is
    refused, and so is one imported before, one older than a version already imported, an expired one or one
    without an expiry. A fresh package of data already imported changes nothing (it says where that data went).

    Example: govshare package import 人社局_v3.gspkg --as 113100000024210120 --key my.key --hub-key hub.pem --out in/
    """
    from core import clock
    from delivery.package_import import decode_key, import_package

    with reported_errors():
        report = import_package(package=package, key=decode_key(key_file.read_text()),
                                hub_public_key=hub_key.read_bytes(), agency=agency, out=out, ledger=ledger)
        if report.unchanged_since is not None:
            when = clock.to_beijing(report.unchanged_since).strftime("%Y-%m-%d %H:%M")
            console.print(f"与 {when}（北京时间）导入到 {shown(report.folder)} 的数据相同，未再导入 / the same data as "
                          f"imported on {when} Beijing time into {shown(report.folder)}: nothing changed, nothing "
                          f"unpacked ({shown(report.resource)} v{report.version})")
        else:
            console.print(f"验证通过，已导入 / verified and unpacked: {shown(report.resource)} v{report.version}, "
                          f"{report.rows} rows -> {shown(report.folder)}")
        console.print(f"接收记录 / recorded in: {shown(report.ledger)}")


@package_app.command("key")
def package_key(agency: Annotated[str, typer.Argument(help="consumer agency code or name")]) -> None:
    """Print the consumer's package key (base64), to hand over once through a secure channel.

    Example: govshare package key 113100000024210120 > 人社局.key
    """
    import base64

    from delivery.packages import hand_out_consumer_key

    with reported_errors():
        console.print(base64.b64encode(hand_out_consumer_key(agency=agency)).decode(), soft_wrap=True)


@package_app.command("hub-key")
def package_hub_key() -> None:
    """Print the hub's public signing key (PEM) that receivers use to verify packages.

    Example: govshare package hub-key > hub.pem
    """
    from delivery.packages import hub_private_key, public_pem

    with reported_errors():
        print(public_pem(hub_private_key()).decode(), end="")


@push_app.command("target")
def push_target(
    agency: Annotated[str, typer.Argument(help="consumer agency code or name")],
    host: Annotated[str, typer.Option(help="SFTP server")],
    user: Annotated[str, typer.Option(help="login")],
    host_key: Annotated[str, typer.Option(help="known_hosts line or SHA256:... fingerprint of the server key")],
    port: Annotated[int, typer.Option()] = 22,
    folder: Annotated[str, typer.Option(help="folder on the server")] = ".",
    private_key_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    password_env: Annotated[str | None, typer.Option(help="environment variable holding the password")] = None,
) -> None:
    """Register a consumer's SFTP server (credential stored encrypted).

    Example: govshare push target 113100000024210120 --host sftp.rsj.example --user hub --host-key SHA256:... \\
        --private-key-file hub_id_ed25519 --folder inbox
    """
    import os

    from delivery.sftp_push import add_target
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        password = os.environ.get(password_env) if password_env else None
        target = add_target(session, agency=agency, host=host, port=port, username=user, folder=folder,
                            host_key=host_key, password=password,
                            private_key=private_key_file.read_text() if private_key_file else None)
        console.print(f"SFTP target for agency {shown(agency)}: {shown(target.username)}@{shown(target.host)}:{target.port}/"
                      f"{shown(target.folder)}")


@push_app.command("sftp")
def push_sftp(
    resource: Annotated[str, typer.Argument(help="resource code")],
    agency: Annotated[str, typer.Option("--to", help="consumer agency code or name")],
    since: Annotated[int | None, typer.Option(help="only the changes after this version")] = None,
    attempts: Annotated[int, typer.Option(help="tries before giving up")] = 3,
) -> None:
    """Push the latest version (or its changes) to the consumer's SFTP server; never twice.

    Example: govshare push sftp 101001/0001 --to 113100000024210120
    """
    from delivery.sftp_push import push

    with reported_errors():
        report = push(resource_code=resource, agency=agency, since=since, attempts=attempts)
        label = "已推送 / delivered" if report.status == "delivered" else "此前已推送，未重复 / already delivered"
        console.print(f"{label}: {shown(report.resource)} v{report.version} -> {shown(report.consumer)} "
                      f"{shown(report.remote_path)}")
