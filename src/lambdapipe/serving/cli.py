"""`lambdapipe serve` and `lambdapipe query sql`, mounted into the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from lambdapipe.errors import Problem
from lambdapipe.settings import ServingSettings, Settings, get_settings, secrets_file

app = typer.Typer(
    help="Serving layer: API, dashboard and the realtime store.", no_args_is_help=True
)
query_app = typer.Typer(help="Query the serving store.", no_args_is_help=True)
app.add_typer(query_app, name="query")
console = Console(stderr=True)
# Prometheus scrapes reconcile's gauges here (no data beyond numbers: open, like /metrics)
RECONCILE_METRICS = "/metrics/reconcile"


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="port, default from settings")] = None,
    host: Annotated[str | None, typer.Option(help="interface, default from settings")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="chdb data directory")] = None,
) -> None:
    """Serve the API, the dashboard and (embedded backend) the ClickHouse HTTP endpoint."""
    import uvicorn
    from fastapi import Response
    from prometheus_client import CONTENT_TYPE_LATEST

    from lambdapipe.observability.targets import register_target
    from lambdapipe.reconcile.outputs import exposition
    from lambdapipe.reconcile.outputs import store_ddl as reconciliation_ddl
    from lambdapipe.resources import Resources, serving_data_dir
    from lambdapipe.serving.api import create_app
    from lambdapipe.serving.audit import AuditLog
    from lambdapipe.serving.auth import Access

    settings = get_settings()
    serving = settings.serving.model_copy(
        update={
            "port": port or settings.serving.port,
            "host": host or settings.serving.host,
            "data_dir": data_dir or serving_data_dir(settings),
        }
    )
    settings = settings.model_copy(update={"serving": serving})
    resources = Resources(settings)
    endpoint = resources.serves_store_endpoint
    check_secrets(serving, endpoint)
    audit = AuditLog(settings.log_dir / "audit.jsonl", serving.audit_max_bytes)
    store = resources.store(owner=True)
    store.create_schema(serving.retention_days)
    store.execute(reconciliation_ddl())
    target = register_target(settings, "serving", serving.host, serving.port)
    # reconcile's gauges, read from the store's results table at each scrape
    register_target(
        settings,
        "reconcile",
        serving.host,
        serving.port,
        labels={"__metrics_path__": RECONCILE_METRICS},
    )
    console.print(
        f"[bold]serving[/] {resources.store_backend} store at {resources.store_location}\n"
        f"  dashboard   {serving.endpoint}/\n  API docs    {serving.endpoint}/docs\n"
        + (f"  ClickHouse  {serving.endpoint}/clickhouse/\n" if endpoint else "")
        + f"  Prometheus  {target}\n"
        f"  audit log   {audit.path}\n"
        f"  sign in with the API token LAMBDAPIPE_SERVING__API_TOKEN ({secrets_hint(settings)})"
    )
    app = create_app(
        store,
        resources.store_backend,
        Access.from_settings(serving),
        store_endpoint=endpoint,
        audit=audit,
    )
    app.add_api_route(
        RECONCILE_METRICS,
        lambda: Response(exposition(store), media_type=CONTENT_TYPE_LATEST),
        include_in_schema=False,
    )
    try:
        uvicorn.run(
            app,
            host=serving.host,
            port=serving.port,
            log_level="warning",
        )
    finally:
        store.close()
        audit.close()


def check_secrets(serving: ServingSettings, endpoint: bool) -> None:
    """Refuse to serve with no way in: an empty API token, or store users without passwords."""
    missing = ["API_TOKEN"] if not serving.api_token.get_secret_value() else []
    if endpoint:
        missing += [
            f"{role.upper()}_PASSWORD"
            for role, secret in (
                ("writer", serving.writer_password),
                ("reader", serving.reader_password),
            )
            if not secret.get_secret_value()
        ]
    if missing:
        raise Problem(
            "the serving layer needs its secrets: "
            + ", ".join(f"LAMBDAPIPE_SERVING__{name}" for name in missing),
            hint="the local profile generates them into <home>/secrets.env; elsewhere set them "
            "in the environment (docs/serving.md)",
        )


def secrets_hint(settings: Settings) -> str:
    """Where the serving secrets are, for people: the local secrets file or the environment."""
    path = secrets_file(settings.home)
    return f"in {path}" if path.exists() else "from the environment"


@query_app.command("sql")
def sql(statement: Annotated[str, typer.Argument(help="one SELECT statement")]) -> None:
    """Run one read-only SELECT on the serving store; print rows as JSON."""
    from lambdapipe.resources import Resources
    from lambdapipe.serving.store import StoreError

    with Resources(get_settings()).store(role="reader") as store:
        try:
            table = store.query_readonly(statement)
        except StoreError as exc:
            console.print(f"[red]refused:[/] {exc}")
            raise typer.Exit(1) from exc
    typer.echo(orjson.dumps(table.to_pylist(), default=str, option=orjson.OPT_INDENT_2).decode())
