"""`lambdapipe dims …` and `lambdapipe cdc …`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lambdapipe.ingest import cdc
from lambdapipe.ingest.churn import ChurnResult, churn
from lambdapipe.ingest.load import load_dimensions
from lambdapipe.settings import get_settings

dims_app = typer.Typer(help="PostgreSQL dimensions: users and products.", no_args_is_help=True)
cdc_app = typer.Typer(help="Debezium change capture of the dimensions.", no_args_is_help=True)
console = Console()


@dims_app.command("load")
def dims_load(
    users: Annotated[int, typer.Option(help="number of users (as `generate --users`)")] = 10_000,
    products: Annotated[
        int, typer.Option(help="number of products (as `generate --products`)")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="population seed (the generator's)")] = 42,
) -> None:
    """Load the generator's population (migrating first); existing rows are kept."""
    settings = get_settings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as bar:  # fmt: skip
        tasks = {
            "users": bar.add_task("users", total=users),
            "products": bar.add_task("products", total=products),
        }
        results = load_dimensions(
            settings, users, products, seed, progress=lambda t, n: bar.advance(tasks[t], n)
        )
    table = Table(title="dims load")
    for column in ("table", "offered", "inserted", "kept (already there)", "rows/s"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.table, f"{r.offered:,}", f"{r.inserted:,}", f"{r.offered - r.inserted:,}",
            f"{r.rows_per_s:,.0f}",
        )  # fmt: skip
    console.print(table)


@dims_app.command("churn")
def dims_churn(
    rate: Annotated[float, typer.Option(help="changes per second (0 = as fast as possible)")] = 5,
    duration: Annotated[float | None, typer.Option(help="seconds to run")] = None,
    changes: Annotated[int | None, typer.Option(help="number of changes")] = None,
    seed: Annotated[int, typer.Option(help="seed of the change sequence")] = 0,
    watch_share: Annotated[
        float | None,
        typer.Option(help="move only the tiers of this share of users (`generate --watch-share`)"),
    ] = None,
    log: Annotated[
        Path | None, typer.Option(help="write every tier move and its commit time here (JSONL)")
    ] = None,
) -> None:
    """Tier moves, price changes, deactivations and new users, at a steady rate."""
    if duration is None and changes is None:
        duration = 60
    with console.status("churning…") as spinner:

        def show(result: ChurnResult) -> None:
            spinner.update(f"churning… {result.total:,} changes committed")

        result = churn(
            get_settings(),
            rate,
            duration,
            changes,
            seed,
            on_change=show,
            watch_share=watch_share,
            log=log,
        )
    console.print(
        f"{result.total:,} changes in {result.seconds:.1f}s "
        f"({result.total / max(result.seconds, 1e-9):,.1f}/s): "
        + ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
    )


@cdc_app.command("register")
def cdc_register() -> None:
    """Create or update the Debezium connector (idempotent)."""
    settings = get_settings()
    cdc.register(settings)
    console.print(
        f"[green]connector {cdc.CONNECTOR} registered[/]: topics "
        + ", ".join(cdc.topic(settings, t) for t in ("users", "products"))
    )


@cdc_app.command("status")
def cdc_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Connector and task state, and the WAL the replication slot holds."""
    status = cdc.status(get_settings())
    if as_json:
        sys.stdout.write(json.dumps(asdict(status), indent=2) + "\n")
        return
    console.print(f"connector {status.connector}: [bold]{status.connector_state}[/]")
    for task in status.tasks:
        console.print(f"  task {task['id']}: {task['state']} {task['trace']}")
    if status.slot_lag_bytes is None:
        console.print(f"  replication slot {cdc.SLOT}: absent")
    else:
        state = "active" if status.slot_active else "inactive"
        console.print(
            f"  replication slot {cdc.SLOT}: {state}, lag {status.slot_lag_bytes:,} bytes"
        )


@cdc_app.command("unregister")
def cdc_unregister(
    keep_slot: Annotated[bool, typer.Option(help="keep the replication slot")] = False,
) -> None:
    """Delete the connector and its replication slot."""
    existed = cdc.unregister(get_settings(), drop_slot=not keep_slot)
    console.print(f"connector {cdc.CONNECTOR} " + ("removed" if existed else "was not registered"))
