"""`lambdapipe generate`: the generator's command line, mounted by the main CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lambdapipe.generator import metrics
from lambdapipe.generator.run import RunConfig, Summary, plan, run
from lambdapipe.generator.sinks import COMPRESSIONS

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)


@app.callback(invoke_without_command=True)
def generate(
    rate: Annotated[float, typer.Option(help="Events/s of event time, paced; 0 = flat out")] = 0,
    duration: Annotated[
        str | None, typer.Option(help="Event time to cover, e.g. 90s, 2h, 28d")
    ] = None,
    events: Annotated[int | None, typer.Option(help="Valid events to generate")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the population and the traffic")] = 42,
    sink: Annotated[str, typer.Option(help="kafka | stdout | file:PATH[.zst]")] = "kafka",
    start: Annotated[
        str | None, typer.Option(help="Event time of the first event (ISO 8601); default now")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (1-8)")] = 1,
    truth: Annotated[Path | None, typer.Option(help="Write the ground truth JSON here")] = None,
    faults: Annotated[
        str, typer.Option(help="e.g. duplicate=0.01,late=0.005:2h,malformed=0.001,schema=0.002")
    ] = "",
    compression: Annotated[
        str, typer.Option(help=f"Kafka compression: {' | '.join(COMPRESSIONS)}")
    ] = "lz4",
    users: Annotated[int, typer.Option(help="Users in the population")] = 10_000,
    products: Annotated[int, typer.Option(help="Products in the catalogue")] = 1_000,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus metrics (0: off)")] = 0,
    watch_share: Annotated[
        float,
        typer.Option(help="Share of users whose events the truth records, for `dims churn`"),
    ] = 0.0,
) -> None:
    """Generate shop traffic: events and transactions, with ground truth and faults."""
    try:
        config = plan(
            rate=rate,
            duration=duration,
            events=events,
            seed=seed,
            sink=sink,
            start=start,
            workers=workers,
            users=users,
            products=products,
            faults=faults,
            compression=compression,
            truth=truth,
            watch_share=watch_share,
        )
    except ValueError as problem:
        err.print(f"[bold red]error:[/] {problem}")
        raise typer.Exit(2) from None
    if config.sink == "kafka":
        from lambdapipe.settings import get_settings

        kafka = get_settings().kafka
        config = _with_kafka(config, kafka.bootstrap, kafka.events_topic, kafka.transactions_topic)
    metrics.serve(metrics_port)
    if metrics_port:
        from lambdapipe.observability.targets import register_target
        from lambdapipe.settings import get_settings

        register_target(get_settings(), "generator", "127.0.0.1", metrics_port)
    with Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("events", total=config.events)
        summary = run(config, progress=lambda n: bar.advance(task, n))
    err.print(summary_table(summary))
    if summary.delivery_errors:
        raise typer.Exit(1)


def _with_kafka(config: RunConfig, bootstrap: str, events: str, transactions: str) -> RunConfig:
    kafka = {"bootstrap": bootstrap, "events_topic": events, "transactions_topic": transactions}
    return replace(config, kafka=kafka)


def summary_table(summary: Summary) -> Table:
    """The one-screen summary: counts by type and tier, rate, bytes, delivery errors."""
    table = Table(title="generator summary", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, n in summary.truth.totals_by_type().items():
        table.add_row(f"events {name}", f"{n:,}")
    for tier, n in summary.truth.totals_by_tier().items():
        table.add_row(f"events tier {tier}", f"{n:,}")
    table.add_row("valid events", f"{summary.valid_events:,}")
    table.add_row("records sent (faults included)", f"{summary.records:,}")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("injected dead letters", f"{sum(summary.truth.dead_letters.values()):,}")
    table.add_row("achieved rate (events/s)", f"{summary.rate:,.0f}")
    table.add_row("bytes", f"{summary.bytes_written:,}")
    table.add_row("delivery errors", f"{summary.delivery_errors:,}")
    return table
