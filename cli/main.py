"""The `govshare` command. Heavy imports (Airflow, pyarrow, FastAPI) stay inside the commands that need them."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import calendar as calendar_cmds
from cli import registry_cmds
from cli import validate as validate_cmds
from cli.output import console, reported_errors, table

app = typer.Typer(
    help="govshare: government data sharing and exchange hub (政务数据资源共享交换平台).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(registry_cmds.agency_app, name="agency")
app.add_typer(registry_cmds.source_app, name="source")
app.add_typer(registry_cmds.resource_app, name="resource")
app.add_typer(registry_cmds.token_app, name="token")
app.add_typer(calendar_cmds.app, name="calendar")
app.add_typer(validate_cmds.app, name="validate")
app.command("subscribe")(registry_cmds.subscribe_command)


@app.command()
def init() -> None:
    """Create or migrate the registry database to the latest schema.

    Example: GOVSHARE_DATABASE_URL=postgresql+psycopg2://govshare@db/govshare govshare init
    """
    from core.settings import get_settings
    from registry.dagspecs import write_dag_specs
    from registry.migrate import current_revision, upgrade

    with reported_errors():
        settings = get_settings()
        before = current_revision()
        upgrade()
        write_dag_specs()
        after = current_revision()
        state = "already up to date" if before == after else f"migrated {before or 'empty'} -> {after}"
        console.print(f"registry {settings.database_url.split('@')[-1]}: {state}")


@app.command()
def sync(resource: Annotated[str, typer.Argument(help="resource code")],
         full: Annotated[bool, typer.Option("--full", help="read everything, not only changes")] = False) -> None:
    """Extract, check, stage and publish a new version of a resource now.

    Example: govshare sync 101001/0001 --full
    """
    from pipeline.sync import sync_resource

    with reported_errors():
        report = sync_resource(resource_code=resource, full=full)
        table(f"{report.resource_code} v{report.version}", ["mode", "read", "published", "quarantined", "manifest"],
              [(report.mode, report.rows_read, report.rows_published, report.rows_quarantined,
                report.manifest_sha256[:16])])


@app.command()
def versions(resource: Annotated[str, typer.Argument(help="resource code")]) -> None:
    """List a resource's published versions, newest first.

    Example: govshare versions 101001/0001
    """
    from registry.db import session_scope
    from registry.resources import get_resource
    from registry.versions import list_versions

    with reported_errors(), session_scope() as session:
        rows = [(f"v{v.number}", v.created_at.strftime("%Y-%m-%d %H:%M:%S"), v.row_count, v.quarantined_count,
                 v.manifest.get("mode"), (v.manifest.get("watermark") or {}).get("value"), v.manifest_sha256[:16])
                for v in list_versions(session, resource=get_resource(session, code=resource))]
        table(f"{resource} versions", ["version", "published (UTC)", "rows", "quarantined", "mode", "watermark",
                                       "manifest"], rows)


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="bind address (GOVSHARE_API_HOST)")] = None,
          port: Annotated[int | None, typer.Option(help="port (GOVSHARE_API_PORT)")] = None) -> None:
    """Serve the HTTP API (catalogue, versions, downloads; OpenAPI at /openapi.json).

    Example: govshare serve --port 8000
    """
    import uvicorn

    from api.app import create_app
    from core.settings import get_settings

    with reported_errors():
        settings = get_settings()
        settings.require_secret()
        uvicorn.run(create_app(), host=host or settings.api_host, port=port or settings.api_port)


@app.command()
def demo(airflow: Annotated[bool, typer.Option(help="run the sync DAGs through Airflow's dag.test()")] = True) -> None:
    """Run the whole story on the embedded default (SQLite + local storage) under GOVSHARE_HOME (./var).

    Example: govshare demo
    """
    from cli.demo import run_demo

    with reported_errors():
        run_demo(use_airflow=airflow)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
