"""`lambdapipe schemas register | check`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from lambdapipe.contracts.subjects import COMPATIBILITY, check_all, register_all
from lambdapipe.settings import get_settings

app = typer.Typer(
    help="The schema registry: register and check the data contracts.", no_args_is_help=True
)
console = Console()


@app.command()
def register() -> None:
    """Register every schema, one subject per topic value, compatibility BACKWARD_TRANSITIVE."""
    ids = register_all(get_settings())
    table = Table(title=f"registered ({COMPATIBILITY})")
    table.add_column("subject")
    table.add_column("schema id", justify="right")
    for subject, schema_id in ids.items():
        table.add_row(subject, str(schema_id))
    console.print(table)


@app.command()
def check() -> None:
    """Are the working-tree schemas compatible with the registered ones? Exit 1 if not."""
    results = check_all(get_settings())
    table = Table(title=f"compatibility ({COMPATIBILITY})")
    for column in ("subject", "result", "details"):
        table.add_column(column)
    for r in results:
        verdict = (
            "[green]compatible[/]" if r.compatible and r.registered
            else "[yellow]not registered yet[/]" if not r.registered
            else "[red]INCOMPATIBLE[/]"
        )  # fmt: skip
        table.add_row(r.subject, verdict, "; ".join(r.messages))
    console.print(table)
    if not all(r.compatible for r in results):
        console.print("[red]incompatible change[/]: evolve by adding optional fields only")
        raise typer.Exit(1)
