"""`lambdapipe reconcile --date D [--truth FILE [--churn LOG]] [--json]`: speed vs batch vs truth
for a day."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from lambdapipe.errors import Problem
from lambdapipe.reconcile.compare import Reconciliation, Thresholds, reconcile
from lambdapipe.serving.store import ServingStore
from lambdapipe.settings import Settings, get_settings
from lambdapipe.warehouse.base import Warehouse

app = typer.Typer(help="Reconciliation: speed vs batch vs truth.", no_args_is_help=True)


@contextmanager
def timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Add the block's wall seconds to `seconds[phase]`."""
    began = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = round(seconds.get(phase, 0.0) + time.perf_counter() - began, 3)


def reconcile_day(
    store: ServingStore,
    warehouse: Warehouse,
    day: date,
    truth: Path | None,
    settings: Settings,
    seconds: dict[str, float] | None = None,
    churn: Path | None = None,
) -> Reconciliation:
    """Read both layers' rows of `day` (and the truth file, re-tiered by the churn log) and
    compare them; each phase's wall seconds go into `seconds` (read_speed, read_batch,
    compare)."""
    from lambdapipe.reconcile.layers import read_day
    from lambdapipe.reconcile.truth import read_churn_log, read_truth, retiered, truth_metrics

    phases = seconds if seconds is not None else {}
    if churn is not None and truth is None:
        raise Problem("--churn needs --truth: the churn log re-tiers the generator's truth")
    numbers = None
    if truth is not None:
        doc = read_truth(truth)
        if churn is not None:
            doc = retiered(doc, read_churn_log(churn))
        numbers = truth_metrics(doc, day)
    speed, batch = read_day(store, warehouse, day, phases)
    with timed(phases, "compare"):
        return reconcile(
            day,
            speed,
            batch,
            numbers,
            lateness=timedelta(seconds=settings.speed.lateness_s),
            thresholds=Thresholds(
                Decimal(str(settings.reconcile.max_unexplained)),
                Decimal(str(settings.reconcile.max_batch_vs_truth)),
            ),
        )


def publish(
    result: Reconciliation, store: ServingStore, warehouse: Warehouse, at: datetime
) -> None:
    """Write the results into the warehouse's and the store's reconciliation tables."""
    from lambdapipe.reconcile.outputs import results_table, write_to_store, write_to_warehouse

    rows = results_table(result, at)
    write_to_warehouse(warehouse, rows, result.day)
    write_to_store(store, rows, result.day, at)


@app.command("reconcile")
def reconcile_command(
    day_text: Annotated[str, typer.Option("--date", help="the day to reconcile (UTC)")],
    truth: Annotated[
        Path | None, typer.Option("--truth", help="the generator's truth file, for three ways")
    ] = None,
    churn: Annotated[
        Path | None,
        typer.Option("--churn", help="the churn log (`dims churn --log`) the truth follows"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Compare the speed and batch layers (and the truth) for a day; every difference is
    attributed to a cause; exits 1 when what is left, or batch vs truth, crosses a threshold."""
    from lambdapipe.reconcile.outputs import as_json as json_document
    from lambdapipe.reconcile.outputs import print_report
    from lambdapipe.resources import Resources

    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise Problem(f"--date {day_text!r} is not a day", hint="e.g. 2026-03-02") from None
    settings = get_settings()
    resources = Resources(settings)
    at = datetime.now(UTC)
    seconds: dict[str, float] = {}
    with resources.store(role="reader") as reader, resources.warehouse() as warehouse:
        result = reconcile_day(reader, warehouse, day, truth, settings, seconds, churn)
        with resources.store() as writer, timed(seconds, "write"):
            publish(result, writer, warehouse, at)
    if as_json:
        document = {**json_document(result), "seconds": seconds}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        console = Console()
        print_report(result, console)
        console.print(
            "seconds: " + ", ".join(f"{phase} {value:.1f}" for phase, value in seconds.items())
        )
    if result.failed:
        raise typer.Exit(1)
