"""`lambdapipe lake ...`: archive Kafka into the lake, maintain it, look into it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdapipe.settings import get_settings

if TYPE_CHECKING:
    from lambdapipe.lake.archive import ArchiveSummary

app = typer.Typer(
    help="The lake: raw history in Iceberg tables, archived exactly once from Kafka.",
    no_args_is_help=True,
)
console = Console()


@app.command("archive")
def archive(
    commit_interval: Annotated[
        str | None, typer.Option(help="one Iceberg commit per table this often, e.g. 60s")
    ] = None,
    max_offsets: Annotated[
        int | None, typer.Option(help="max Kafka records per table per commit")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(help="stop once every table has caught up with Kafka for this many seconds"),
    ] = None,
) -> None:
    """Archive every topic into its raw table until interrupted (or idle with --until-idle)."""
    from lambdapipe.lake.archive import main as run_archiver  # PySpark loads only here

    settings = get_settings()
    changes: dict[str, object] = {}
    if commit_interval is not None:
        changes["commit_interval"] = _interval(commit_interval)
    if max_offsets is not None:
        changes["max_offsets_per_trigger"] = max_offsets
    if changes:
        settings = settings.model_copy(update={"lake": settings.lake.model_copy(update=changes)})
    with console.status("archiver starting") as status:

        def show(summary: ArchiveSummary) -> None:
            status.update(
                f"commits {sum(summary.commits.values()):,}  "
                f"records {sum(summary.records.values()):,}"
            )

        summary = run_archiver(settings, until_idle_s=until_idle, on_progress=show)
    table = Table(title="lake archive: run summary")
    for column in ("table", "commits", "records"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for name in sorted(set(summary.commits) | set(summary.records)):
        table.add_row(
            name, f"{summary.commits.get(name, 0):,}", f"{summary.records.get(name, 0):,}"
        )
    console.print(table)


def _interval(text: str) -> str:
    text = text.strip()
    units = {"ms": "milliseconds", "s": "seconds", "m": "minutes"}
    for suffix, unit in units.items():
        number = text.removesuffix(suffix)
        if number != text and number.replace(".", "", 1).isdigit():
            return f"{number} {unit}"
    return text
