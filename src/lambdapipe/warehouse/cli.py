"""`lambdapipe warehouse build | status`: the dbt project on the profile's warehouse."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdapipe.resources import Resources
from lambdapipe.settings import get_settings
from lambdapipe.warehouse import transform
from lambdapipe.warehouse.raw import RAW_TABLES, SCHEMA

app = typer.Typer(help="The warehouse: RAW loaded by the batch job, STAGING and MARTS by dbt.")
console = Console()

MARTS = (
    "user_sessions",
    "daily_metrics",
    "customer_lifetime_value",
    "tier_behaviour",
    "product_performance",
    "conversion_funnel",
)


@app.command()
def build(
    select: Annotated[
        list[str] | None, typer.Option(help="dbt node selection (default: everything)")
    ] = None,
    full_refresh: Annotated[bool, typer.Option(help="rebuild incremental models whole")] = False,
) -> None:
    """Run `dbt build`: every model, data test and unit test; one line per node."""
    settings = get_settings()
    resources = Resources(settings)
    with resources.warehouse():  # creates the RAW schema where missing
        pass
    run = transform.build(settings, select or (), full_refresh=full_refresh)
    table = Table(title=f"dbt build on {resources.warehouse_location}")
    for column in ("kind", "node", "status", "rows", "seconds"):
        table.add_column(column)
    for r in run.results:
        colour = "green" if not r.failed else "red"
        rows = "-" if r.rows is None else str(r.rows)
        table.add_row(r.kind, r.name, f"[{colour}]{r.status}[/]", rows, f"{r.seconds:.2f}")
    console.print(table)
    console.print(f"[green]built[/]: {len(run.results)} nodes, none failed")


@app.command()
def status() -> None:
    """Rows per RAW table (and its newest load) and per mart."""
    resources = Resources(get_settings())
    table = Table(title=f"warehouse {resources.warehouse_location}")
    for column in ("table", "rows", "days", "newest load"):
        table.add_column(column)
    with resources.warehouse() as wh:
        for name in RAW_TABLES:
            row = wh.query_arrow(
                f"select count(*) as n, count(distinct batch_day) as days, max(loaded_at) as newest"  # noqa: S608
                f" from {SCHEMA}.{name}"
            ).to_pylist()[0]
            table.add_row(f"{SCHEMA}.{name}", str(row["n"]), str(row["days"]), str(row["newest"]))
        for mart in MARTS:
            try:
                n = wh.query_arrow(f"select count(*) as n from marts.{mart}").to_pylist()[0]["n"]  # noqa: S608
            except Exception:  # a mart dbt has not built yet
                n = "not built"
            table.add_row(f"marts.{mart}", str(n), "", "")
    console.print(table)
