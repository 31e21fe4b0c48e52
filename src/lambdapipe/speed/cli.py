"""`lambdapipe speed run`: the streaming job, with progress and a summary at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lambdapipe.settings import get_settings

if TYPE_CHECKING:
    from lambdapipe.speed.job import RunSummary

app = typer.Typer(help="The speed layer: Spark Structured Streaming into the serving store.")
console = Console()


@app.command("run")
def run(
    trigger: Annotated[
        str | None, typer.Option(help="micro-batch interval, e.g. 2s or '2 seconds'")
    ] = None,
    max_offsets: Annotated[
        int | None, typer.Option(help="max Kafka records per micro-batch (backpressure)")
    ] = None,
    until_idle: Annotated[
        float | None, typer.Option(help="stop after this many seconds without input (tests)")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0: off)")] = None,
) -> None:
    """Run the speed layer until interrupted (or idle with --until-idle)."""
    from lambdapipe.speed.job import main as run_job  # PySpark loads only for this command

    settings = get_settings()
    changes: dict[str, object] = {}
    if trigger is not None:
        changes["trigger_interval"] = _interval(trigger)
    if max_offsets is not None:
        changes["max_offsets_per_trigger"] = max_offsets
    if metrics_port is not None:
        changes["metrics_port"] = metrics_port
    if changes:
        speed = settings.speed.model_copy(update=changes)
        settings = settings.model_copy(update={"speed": speed})
    with console.status("speed layer starting") as status:

        def show(summary: RunSummary) -> None:
            written = sum(summary.rows.values())
            dead = sum(summary.dead_letters.values())
            status.update(
                f"batches {summary.batches}  consumed {summary.consumed:,}  "
                f"rows {written:,}  dead letters {dead:,}  duplicates {summary.duplicates:,}"
            )

        summary = run_job(settings, until_idle_s=until_idle, on_progress=show)
    _print_summary(summary)


def _interval(text: str) -> str:
    text = text.strip()
    units = {"ms": "milliseconds", "s": "seconds", "m": "minutes"}
    for suffix, unit in units.items():
        number = text.removesuffix(suffix)
        if number != text and number.replace(".", "", 1).isdigit():
            return f"{number} {unit}"
    return text


def _print_summary(summary: RunSummary) -> None:
    table = Table(title="speed layer: run summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("micro-batches", f"{summary.batches:,}")
    table.add_row("records consumed", f"{summary.consumed:,}")
    for name, n in sorted(summary.rows.items()):
        table.add_row(f"rows into {name}", f"{n:,}")
    for reason, n in sorted(summary.dead_letters.items()):
        table.add_row(f"dead letters: {reason}", f"{n:,}")
    table.add_row("duplicates dropped", f"{summary.duplicates:,}")
    table.add_row("rows dropped by the watermark", f"{summary.dropped_by_watermark:,}")
    table.add_row("query restarts", f"{summary.restarts:,}")
    console.print(table)
