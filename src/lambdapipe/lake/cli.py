"""`lambdapipe lake ...`: archive Kafka into the lake, maintain it, look into it."""

from __future__ import annotations

import dataclasses
import json
import sys
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
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
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
    if as_json:
        print(json.dumps(dataclasses.asdict(summary)))
        return
    table = Table(title="lake archive: run summary")
    for column in ("table", "commits", "records"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for name in sorted(set(summary.commits) | set(summary.records)):
        table.add_row(
            name, f"{summary.commits.get(name, 0):,}", f"{summary.records.get(name, 0):,}"
        )
    console.print(table)


@app.command("maintain")
def maintain() -> None:
    """Compact small files, expire old snapshots, rewrite manifests, remove orphan files."""
    from lambdapipe.lake.maintain import main as run_maintenance

    settings = get_settings()
    with console.status("maintaining the lake (Spark)"):
        results = run_maintenance(settings)
    table = Table(title="lake maintain")
    for column in ("table", "files rewritten", "files added", "snapshots expired", "orphans"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for done in results:
        rewrite = done.steps.get("rewrite_data_files", {})
        expire = done.steps.get("expire_snapshots", {})
        table.add_row(
            done.table,
            f"{rewrite.get('rewritten_data_files_count', 0):,}",
            f"{rewrite.get('added_data_files_count', 0):,}",
            f"{sum(v for k, v in expire.items() if k.startswith('deleted_')):,} files",
            f"{done.steps.get('remove_orphan_files', {}).get('removed_files', 0):,}",
        )
    console.print(table)


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Tables, snapshots, files, rows, bytes, and how far each lags behind Kafka."""
    from lambdapipe.lake.status import lake_status

    tables = lake_status(get_settings())
    if as_json:
        sys.stdout.write(json.dumps([t.as_dict() for t in tables], indent=2) + "\n")
        return
    table = Table(title="lake status")
    for column in ("table", "topic", "snapshots", "files", "rows", "bytes", "behind Kafka"):
        table.add_column(column, justify="left" if column in ("table", "topic") else "right")
    for t in tables:
        if not t.exists:
            table.add_row(t.name, t.topic, "[dim]not created[/]", "", "", "", "")
            continue
        table.add_row(
            t.name,
            t.topic,
            f"{t.snapshots:,}",
            f"{t.files:,}",
            f"{t.rows:,}",
            _size(t.bytes),
            f"[{'green' if t.behind == 0 else 'yellow'}]{t.behind:,}[/]",
        )
    console.print(table)


@app.command("snapshots")
def snapshots(
    table: Annotated[str, typer.Argument(help="a raw table, e.g. events")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """A table's snapshots, oldest first: what each commit added (time travel targets)."""
    from lambdapipe.lake.history import snapshot_rows

    rows = snapshot_rows(get_settings(), table)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    out = Table(title=f"snapshots of {table}")
    columns = ("snapshot_id", "committed_at", "operation", "added_records", "total_records")
    for column in columns:
        out.add_column(column.replace("_", " "))
    for row in rows:
        out.add_row(*(str(row[c]) for c in columns))
    console.print(out)


@app.command("read")
def read(
    table: Annotated[str, typer.Argument(help="a raw table, e.g. events")],
    as_of_snapshot: Annotated[
        int | None, typer.Option(help="read the table as this snapshot left it")
    ] = None,
    as_of_timestamp: Annotated[
        str | None, typer.Option(help="read the table as it was at this time (ISO 8601)")
    ] = None,
    limit: Annotated[int, typer.Option(help="records to print (0: only the count)")] = 10,
) -> None:
    """Read a raw table now or in the past (time travel): the row count and some records."""
    from lambdapipe.lake.history import read_as_of

    result = read_as_of(get_settings(), table, as_of_snapshot, as_of_timestamp, limit)
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")


@app.command("evolve")
def evolve() -> None:
    """Create the curated tables from the contracts (schemas/), or add the columns new
    optional fields need (old rows read them as null)."""
    from lambdapipe.lake.curated import ensure_curated_events
    from lambdapipe.resources import Resources

    settings = get_settings()
    with Resources(settings).lake_catalog() as catalog:
        table = ensure_curated_events(catalog, settings)
    schema = table.schema()
    console.print(
        f"[green]{settings.lake.curated_namespace}.events[/]: {len(schema.fields)} columns "
        f"(schema {schema.schema_id})"
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _interval(text: str) -> str:
    text = text.strip()
    units = {"ms": "milliseconds", "s": "seconds", "m": "minutes"}
    for suffix, unit in units.items():
        number = text.removesuffix(suffix)
        if number != text and number.replace(".", "", 1).isdigit():
            return f"{number} {unit}"
    return text
